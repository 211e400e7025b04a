//! A unit: a leadership tracker wired to the lease manager it claims through, on one process
//! (one local clock), driven like any store actor.
//!
//! The tracker asks for claims and release-waits; the unit turns them into manager requests
//! and turns the manager's answers back into [`ClaimResult`]s and releases, passing the
//! manager's safe local deadline through (same clock). The unit holds no protocol logic of its
//! own: it is the routing every executor would otherwise write.

use super::tracker::{ClaimResult, TicketId, TicketKind, Tracker, TrackerConfig, TrackerOutput};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, Renumber};
use crate::lease::{LeaseManager, ManagerConfig, ManagerError, ManagerOutput, RequestId};
use crate::mutant::Mutant;
use crate::substrate::{Collection, OpResult};
use crate::time::LocalTime;
use crate::validate::InputError;
use std::collections::BTreeMap;

/// Everything a unit reports: its manager's outputs and its tracker's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitOutput {
    /// From the lease manager (including the answers the unit routes to the tracker).
    Manager(ManagerOutput),
    /// From the tracker.
    Tracker(TrackerOutput),
    /// A resignation ended: the leadership lease was released (`Ok(true)`), or this unit held
    /// no term to release (`Ok(false)`), or the release failed (its outcome then unknown: the
    /// lease expires at the end of its term at the latest). The manager has stopped.
    Resigned(Result<bool, ManagerError>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Waiting {
    Claim,
    /// A wait for the lease to be released (the tracker's release-waiter).
    Release,
    /// This unit's own release of the lease, resigning.
    Resign,
}

/// A tracker and its manager.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unit {
    manager: LeaseManager,
    tracker: Tracker,
    waiting: BTreeMap<RequestId, Waiting>,
    next_req: u64,
}

/// The unit's operations are its manager's (the tracker talks to the manager, not the store).
impl Renumber for Unit {
    fn oldest_op_id(&self) -> OpId {
        self.manager.oldest_op_id()
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.manager.lower_op_ids(by);
    }
}

impl Actor for Unit {
    type Output = UnitOutput;

    /// Its manager's lease documents.
    fn may_write(&self, coll: Collection) -> bool {
        coll == Collection::Leases
    }

    /// The earlier of the manager's and the tracker's deadlines.
    fn next_deadline(&self) -> Option<LocalTime> {
        [self.manager.next_deadline(), self.tracker.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires whichever of the two timers is due.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<UnitOutput> {
        let m = self.manager.handle_timeout(now);
        let t = self.tracker.handle_timeout(now);
        self.route(m, t, now)
    }

    /// Takes a store reply (all requests are the manager's).
    fn handle_reply(&mut self, id: OpId, result: OpResult, now: LocalTime) -> Effects<UnitOutput> {
        let m = self.manager.handle_reply(id, result, now);
        self.route(m, Effects::none(), now)
    }
}

impl Unit {
    /// A unit whose tracker claims through a manager of its own; refuses timings that cannot
    /// work ([`TrackerConfig::check_timing`]). The manager sweeps at least every
    /// [`TrackerConfig::sweep_interval`], whatever its own `max_sleep` says.
    pub fn new(mut manager: ManagerConfig, tracker: TrackerConfig) -> Result<Unit, InputError> {
        tracker.validate()?;
        tracker.check_timing(&manager)?;
        if tracker.mutant != Some(Mutant::LeadershipSweepAtMaxSleep) {
            manager.max_sleep = manager.max_sleep.min(tracker.sweep_interval());
        }
        Ok(Unit {
            manager: LeaseManager::new(manager)?,
            tracker: Tracker::new(tracker)?,
            waiting: BTreeMap::new(),
            next_req: 0,
        })
    }

    /// The tracker (for getters such as [`Tracker::is_leader`]).
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The manager.
    pub fn manager(&self) -> &LeaseManager {
        &self.manager
    }

    /// Starts the manager, then the tracker (whose first claim follows).
    pub fn handle_start(&mut self, now: LocalTime) -> Effects<UnitOutput> {
        let m = self.manager.handle_start(now);
        let t = self.tracker.handle_start(now);
        self.route(m, t, now)
    }

    /// Issues a ticket to the tracker.
    pub fn handle_ticket(
        &mut self,
        kind: TicketKind,
        now: LocalTime,
    ) -> (TicketId, Effects<UnitOutput>) {
        let (id, t) = self.tracker.handle_ticket(kind, now);
        (id, self.route(Effects::none(), t, now))
    }

    /// Steps down: the tracker stops at once (tickets resolve false, the tenure ends), then the
    /// term this unit holds, if its manager knows one, is released so that another unit may
    /// lead at once instead of after its expiry; then the manager stops. Ends with
    /// [`UnitOutput::Resigned`].
    pub fn handle_resign(&mut self, now: LocalTime) -> Effects<UnitOutput> {
        let t = self.tracker.handle_stop(now);
        let (application, unit) = (self.tracker.application(), self.tracker.unit());
        let held = self
            .manager
            .leases()
            .find(|(name, info)| *name == application && info.holder == unit)
            .map(|(_, info)| info.epoch);
        let Some(epoch) = held else {
            let m = self.manager.handle_stop(now);
            let mut fx = self.route(m, t, now);
            fx.notify(UnitOutput::Resigned(Ok(false)));
            return fx;
        };
        let req = RequestId(self.next_req);
        self.next_req += 1;
        self.waiting.insert(req, Waiting::Resign);
        let (application, unit) = (application.to_owned(), unit.to_owned());
        let m = self
            .manager
            .handle_release(req, &application, &unit, epoch, now);
        self.route(m, t, now)
    }

    /// Stops the tracker (tickets resolve false) and the manager.
    pub fn handle_stop(&mut self, now: LocalTime) -> Effects<UnitOutput> {
        let t = self.tracker.handle_stop(now);
        let m = self.manager.handle_stop(now);
        self.route(m, t, now)
    }

    /// Routes tracker requests to the manager and manager answers to the tracker until neither
    /// has anything more to say. Bounded: each round answers a request or issues one to the
    /// manager, which answers later through the store.
    fn route(
        &mut self,
        mut from_manager: Effects<ManagerOutput>,
        mut from_tracker: Effects<TrackerOutput>,
        now: LocalTime,
    ) -> Effects<UnitOutput> {
        let mut out = Effects::none();
        // Tracker effects never carry store requests.
        debug_assert!(from_tracker.requests.is_empty());
        while !from_manager.is_empty() || !from_tracker.notifications.is_empty() {
            out.requests.append(&mut from_manager.requests);
            for note in std::mem::take(&mut from_tracker.notifications) {
                let req = RequestId(self.next_req);
                match &note {
                    TrackerOutput::Claim {
                        application,
                        unit,
                        duration,
                    } => {
                        self.next_req += 1;
                        self.waiting.insert(req, Waiting::Claim);
                        from_manager.extend(self.manager.handle_claim(
                            req,
                            application,
                            unit,
                            *duration,
                            now,
                        ));
                    }
                    TrackerOutput::WaitReleased { application } => {
                        self.next_req += 1;
                        self.waiting.insert(req, Waiting::Release);
                        from_manager.extend(self.manager.handle_wait_expired(
                            req,
                            application,
                            now,
                        ));
                    }
                    _ => {}
                }
                out.notify(UnitOutput::Tracker(note));
            }
            out.requests.append(&mut from_manager.requests);
            for note in std::mem::take(&mut from_manager.notifications) {
                let answered = match &note {
                    ManagerOutput::Claimed { req, .. }
                    | ManagerOutput::Denied { req, .. }
                    | ManagerOutput::Failed { req, .. }
                    | ManagerOutput::Released { req, .. }
                    | ManagerOutput::WaitEnded { req }
                    | ManagerOutput::WaitCancelled { req } => self.waiting.remove(req),
                    _ => None,
                };
                if answered == Some(Waiting::Resign) {
                    let resigned = match &note {
                        ManagerOutput::Released { vacated, .. } => Ok(*vacated),
                        ManagerOutput::Failed { error, .. } => Err(error.clone()),
                        other => Err(ManagerError::Unavailable(
                            format!("unexpected answer to a release: {other:?}").into(),
                        )),
                    };
                    out.notify(UnitOutput::Manager(note));
                    out.notify(UnitOutput::Resigned(resigned));
                    from_manager.extend(self.manager.handle_stop(now));
                    continue;
                }
                let fx = match (answered, &note) {
                    (Some(Waiting::Claim), answer) => self
                        .tracker
                        .handle_claim_result(ClaimResult::from_answer(answer, true), now),
                    (Some(Waiting::Release), _) => self.tracker.handle_released(now),
                    (Some(Waiting::Resign) | None, _) => Effects::none(),
                };
                from_tracker.extend(fx);
                out.notify(UnitOutput::Manager(note));
            }
        }
        // A request id only pairs a request with its answer, and every request the manager
        // holds is one the unit waits on: with none outstanding, numbering starts again, so a
        // unit's state does not count the claims it has made (states that differ only in that
        // count are one state to the model checker).
        if self.waiting.is_empty() {
            self.next_req = 0;
        }
        out
    }
}
