//! The leadership tracker (PROTOCOLS.md §4.2).
//!
//! The tracker claims for `2 × duration`, measuring `until = now + 2 × duration` *before* the
//! claim, and renews at `until − duration`, so while the renewal timer is pending the lease runs
//! at least `duration` longer (T1). A `claim_leader` ticket issued after the renewal fell due
//! waits for the renewal first. While a minion it keeps exactly one release-waiter outstanding
//! (T3), and claims again when it returns.
//!
//! The tracker talks to a lease manager through [`TrackerOutput::Claim`] and
//! [`TrackerOutput::WaitReleased`]; the executor routes them and reports back with
//! [`Tracker::handle_claim_result`] and [`Tracker::handle_released`].

use crate::effects::Effects;
use crate::lease::{keep, Epoch, ManagerConfig, ManagerOutput};
use crate::mutant::Mutant;
use crate::time::LocalTime;
use crate::validate::{check_duration, check_name, InputError, DURATION_MAX};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Identifies a ticket; handed out by the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId(pub u64);

/// What a ticket waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TicketKind {
    /// "Am I leader now, for at least ClaimDuration?"
    ClaimLeader,
    /// "Tell me when I become leader."
    WaitLeader,
    /// "Tell me when I am a minion."
    WaitMinion,
}

/// Tracker configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrackerConfig {
    /// The application (the lease name).
    pub application: String,
    /// The unit (the holder).
    pub unit: String,
    /// The guaranteed tenure of a true `claim_leader` answer (Juju's uniter: 30 s).
    pub claim_duration: Duration,
    /// A deliberately broken variant, for checker tests.
    pub mutant: Option<Mutant>,
}

impl TrackerConfig {
    /// Checks names and that `2 × claim_duration` is a valid lease duration.
    pub fn validate(&self) -> Result<(), InputError> {
        check_name("application", &self.application)?;
        check_name("unit", &self.unit)?;
        check_duration("claim duration", self.claim_duration, DURATION_MAX / 2)
    }

    /// How long after a claim the store could not answer the tracker claims again: a quarter
    /// of the claim duration, so a leader whose renewal failed tries about four more times
    /// before its guarantee lapses.
    pub fn retry_delay(&self) -> Duration {
        self.claim_duration / 4
    }

    /// The longest a unit's manager goes between sweeps: one claim duration. A lease freed by a
    /// resignation (released, not expired) is learnt of only by a sweep, so a waiting unit
    /// takes over within one claim duration of a resignation instead of when the old lease
    /// would have expired (up to twice that).
    pub fn sweep_interval(&self) -> Duration {
        self.claim_duration
    }

    /// The duration the tracker claims its lease for: twice the claim duration (Juju), so a
    /// renewal at half-time leaves a whole claim duration of guaranteed tenure.
    pub fn lease_duration(&self) -> Duration {
        self.claim_duration * 2
    }

    /// Checks that leadership can work with the manager it claims through: the claim duration
    /// must be longer than the clock step bound (or no tenure is left to guarantee), and the
    /// longest retry delay shorter than the claim duration (or a renewal that meets a concurrent
    /// change could not be retried before the tenure lapses).
    pub fn check_timing(&self, manager: &ManagerConfig) -> Result<(), InputError> {
        if self.claim_duration <= manager.skew.clock_step_max {
            return Err(InputError::InvalidConfig(format!(
                "claim duration {:?} must be longer than the clock step bound {:?}",
                self.claim_duration, manager.skew.clock_step_max
            )));
        }
        if manager.retry.delay_max >= self.claim_duration {
            return Err(InputError::InvalidConfig(format!(
                "the longest retry delay {:?} must be shorter than the claim duration {:?}",
                manager.retry.delay_max, self.claim_duration
            )));
        }
        Ok(())
    }
}

/// The outcome of a claim, as the executor reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimResult {
    /// Granted; `local_deadline` is the manager's safe deadline if it runs on this process's
    /// clock, which tightens the tracker's own `until`.
    Granted {
        /// The manager's safe local deadline, when known.
        local_deadline: Option<LocalTime>,
        /// The leadership lease's fencing epoch: the unit's leader-only writes carry it.
        epoch: Epoch,
    },
    /// Another unit leads.
    Denied,
    /// The store was unreachable or the outcome unknown: nothing is learnt. The tracker keeps
    /// what it knew (a leader stays one until its guarantee lapses) and claims again after
    /// [`TrackerConfig::retry_delay`].
    Unavailable(String),
    /// Anything else (a corrupt lease document, a stopped manager): the tracker dies
    /// ("leadership failure").
    Failed(String),
}

impl ClaimResult {
    /// The claim result a manager's answer to the tracker's claim is. `share_deadline`: whether
    /// the manager runs on the tracker's clock, so its local deadline can tighten the tracker's.
    pub fn from_answer(answer: &ManagerOutput, share_deadline: bool) -> ClaimResult {
        match answer {
            ManagerOutput::Claimed {
                local_deadline,
                epoch,
                ..
            } => ClaimResult::Granted {
                local_deadline: share_deadline.then_some(*local_deadline),
                epoch: *epoch,
            },
            ManagerOutput::Denied { .. } => ClaimResult::Denied,
            ManagerOutput::Failed { error, .. } if error.is_transient() => {
                ClaimResult::Unavailable(error.to_string())
            }
            other => ClaimResult::Failed(format!("{other:?}")),
        }
    }
}

/// What the tracker asks for or reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerOutput {
    /// Claim the application's lease for this unit for `duration` (always 2 × claim duration).
    Claim {
        /// The lease name.
        application: String,
        /// The holder.
        unit: String,
        /// The lease duration.
        duration: Duration,
    },
    /// Wait until the application's lease is released, then call `handle_released`.
    WaitReleased {
        /// The lease name.
        application: String,
    },
    /// A ticket resolved: `true` if what it asked for holds.
    Ticket {
        /// The ticket.
        id: TicketId,
        /// Its kind.
        kind: TicketKind,
        /// The answer.
        value: bool,
    },
    /// The tracker became leader, guaranteed until `until` on its local clock.
    BecameLeader {
        /// End of the guarantee.
        until: LocalTime,
        /// The leadership lease's fencing epoch, for fenced leader-only writes. A renewal
        /// keeps it; it grows when another unit led in between.
        epoch: Epoch,
    },
    /// The tracker became a minion.
    BecameMinion,
    /// The guarantee ending at `until` ran out before a renewal was granted: the unit must stop
    /// acting as leader. What it is now is known once the renewal in flight answers.
    Lapsed {
        /// The end of the guarantee that ran out.
        until: LocalTime,
    },
    /// The tracker died; every ticket was resolved false.
    Stopped(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Role {
    /// Not known yet, or no longer (after a lapse).
    Unknown,
    Leader {
        renew_at: LocalTime,
        until: LocalTime,
    },
    /// `retry_at` is set only by the `leadership-second-release-waiter` mutant.
    Minion { retry_at: Option<LocalTime> },
}

/// The tracker actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tracker {
    config: TrackerConfig,
    role: Role,
    claim_started: Option<LocalTime>,
    /// When to claim again after a claim the store could not answer.
    retry_at: Option<LocalTime>,
    waiting_release: bool,
    pending: BTreeMap<TicketId, TicketKind>,
    next_ticket: u64,
    stopped: bool,
}

impl Tracker {
    /// A tracker that claims at [`Tracker::handle_start`].
    pub fn new(config: TrackerConfig) -> Result<Tracker, InputError> {
        config.validate()?;
        Ok(Tracker {
            config,
            role: Role::Unknown,
            claim_started: None,
            retry_at: None,
            waiting_release: false,
            pending: BTreeMap::new(),
            next_ticket: 0,
            stopped: false,
        })
    }

    /// `ClaimDuration`.
    pub fn claim_duration(&self) -> Duration {
        self.config.claim_duration
    }

    /// The application led.
    pub fn application(&self) -> &str {
        &self.config.application
    }

    /// The unit this tracker claims for.
    pub fn unit(&self) -> &str {
        &self.config.unit
    }

    /// Whether the tracker currently believes it leads (without renewing).
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Local time until which leadership is guaranteed, if leader.
    pub fn leader_until(&self) -> Option<LocalTime> {
        match self.role {
            Role::Leader { until, .. } => Some(until),
            _ => None,
        }
    }

    /// Whether a release-waiter is outstanding.
    pub fn is_waiting_release(&self) -> bool {
        self.waiting_release
    }

    /// Whether the tracker has stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Tickets not yet resolved.
    pub fn pending_tickets(&self) -> usize {
        self.pending.len()
    }

    /// When the tracker next wants [`Tracker::handle_timeout`]: while leader, the renewal time,
    /// or, once the renewal is under way, the end of the guarantee (when it lapses unless the
    /// renewal was granted first).
    pub fn next_deadline(&self) -> Option<LocalTime> {
        if self.stopped {
            return None;
        }
        match self.role {
            Role::Leader { until, .. } if self.claim_started.is_some() => Some(until),
            // A failed renewal is retried later, but the lapse comes when it comes.
            Role::Leader { renew_at, until } => {
                Some(self.retry_at.map_or(renew_at, |r| r.min(until)))
            }
            _ if self.claim_started.is_some() => None,
            Role::Minion { retry_at } => self.retry_at.or(retry_at),
            Role::Unknown => self.retry_at,
        }
    }

    /// Starts the tracker with a first claim.
    pub fn handle_start(&mut self, now: LocalTime) -> Effects<TrackerOutput> {
        self.refresh(now)
    }

    fn refresh(&mut self, now: LocalTime) -> Effects<TrackerOutput> {
        let mut fx = Effects::none();
        if self.stopped || self.claim_started.is_some() {
            return fx;
        }
        self.claim_started = Some(now);
        self.retry_at = None;
        fx.notify(TrackerOutput::Claim {
            application: self.config.application.clone(),
            unit: self.config.unit.clone(),
            duration: self.claims_for(),
        });
        fx
    }

    /// The duration each claim asks for: twice the claim duration ([`TrackerConfig::lease_duration`]).
    fn claims_for(&self) -> Duration {
        if self.config.mutant == Some(Mutant::LeadershipSingleDuration) {
            self.config.claim_duration
        } else {
            self.config.lease_duration()
        }
    }

    /// Renews if the renewal is due, or reports the lapse if the guarantee ran out before the
    /// renewal answered; early calls do nothing.
    pub fn handle_timeout(&mut self, now: LocalTime) -> Effects<TrackerOutput> {
        match self.role {
            Role::Leader { until, .. } if until <= now && !self.stopped => self.lapse(until, now),
            _ => match self.next_deadline() {
                Some(t) if t <= now => self.refresh(now),
                _ => Effects::none(),
            },
        }
    }

    /// The guarantee ran out without a granted renewal: this unit may no longer act as leader,
    /// and does not know whether it leads until a renewal answers (tickets wait for it). One is
    /// started if none is under way (a unit paused through its renewal time has none).
    fn lapse(&mut self, until: LocalTime, now: LocalTime) -> Effects<TrackerOutput> {
        debug_assert!(self.is_leader(), "only a leader's tenure lapses");
        self.role = Role::Unknown;
        let mut fx = Effects::none();
        fx.notify(TrackerOutput::Lapsed { until });
        fx.extend(self.refresh(now));
        fx
    }

    /// Takes the result of the last claim.
    pub fn handle_claim_result(
        &mut self,
        result: ClaimResult,
        now: LocalTime,
    ) -> Effects<TrackerOutput> {
        let Some(started) = self.claim_started.take() else {
            return Effects::none();
        };
        if self.stopped {
            return Effects::none();
        }
        match result {
            ClaimResult::Granted {
                local_deadline,
                epoch,
            } => {
                let until = if self.config.mutant == Some(Mutant::LeadershipRenewFromClaimEnd) {
                    // Broken: trusts its own arithmetic, from the end of the call.
                    now.after(self.config.lease_duration())
                } else {
                    let own = started.after(self.config.lease_duration());
                    local_deadline.map_or(own, |d| d.min(own))
                };
                let lead = keep::renewal_lead(self.claims_for());
                let renew_at = LocalTime(until.0.saturating_sub(crate::time::nanos(lead)));
                self.role = Role::Leader { renew_at, until };
                let mut fx = Effects::none();
                fx.notify(TrackerOutput::BecameLeader { until, epoch });
                // A renewal that was due when a ClaimLeader ticket arrived answers it now.
                let leader_now = renew_at > now;
                fx.extend(self.resolve(|k| match k {
                    TicketKind::WaitLeader => Some(true),
                    TicketKind::ClaimLeader => Some(leader_now),
                    TicketKind::WaitMinion => None,
                }));
                if !leader_now {
                    fx.extend(self.refresh(now));
                }
                fx
            }
            ClaimResult::Denied => {
                let second = self.config.mutant == Some(Mutant::LeadershipSecondReleaseWaiter);
                self.role = Role::Minion {
                    retry_at: second.then(|| now.after(self.config.claim_duration)),
                };
                let mut fx = Effects::none();
                fx.notify(TrackerOutput::BecameMinion);
                if !self.waiting_release || second {
                    self.waiting_release = true;
                    fx.notify(TrackerOutput::WaitReleased {
                        application: self.config.application.clone(),
                    });
                }
                fx.extend(self.resolve(|k| match k {
                    TicketKind::WaitMinion => Some(true),
                    TicketKind::ClaimLeader => Some(false),
                    TicketKind::WaitLeader => None,
                }));
                fx
            }
            ClaimResult::Unavailable(_) => self.claim_later(now),
            ClaimResult::Failed(e) => self.stop(format!("leadership failure: {e}")),
        }
    }

    /// A claim the store could not answer: claim again after the retry delay, whatever the role
    /// (a leader's guarantee still lapses at `until` if no renewal is granted by then). A
    /// `claim_leader` ticket waiting for the claim cannot be promised: it is answered false.
    fn claim_later(&mut self, now: LocalTime) -> Effects<TrackerOutput> {
        self.retry_at = Some(now.after(self.config.retry_delay()));
        self.resolve(|k| (k == TicketKind::ClaimLeader).then_some(false))
    }

    /// The release-waiter returned (whatever it returned): claim again.
    pub fn handle_released(&mut self, now: LocalTime) -> Effects<TrackerOutput> {
        self.waiting_release = false;
        let claims = self.config.mutant != Some(Mutant::LeadershipIgnoresRelease);
        if matches!(self.role, Role::Minion { .. }) && claims {
            self.refresh(now)
        } else {
            Effects::none()
        }
    }

    /// Issues a ticket of `kind`; its answer arrives as [`TrackerOutput::Ticket`], possibly in
    /// the returned effects.
    pub fn handle_ticket(
        &mut self,
        kind: TicketKind,
        now: LocalTime,
    ) -> (TicketId, Effects<TrackerOutput>) {
        let id = TicketId(self.next_ticket);
        self.next_ticket += 1;
        let mut fx = Effects::none();
        if self.stopped {
            fx.notify(TrackerOutput::Ticket {
                id,
                kind,
                value: false,
            });
            return (id, fx);
        }
        let answer = match (kind, self.role) {
            // The store could not answer the last claim: nothing can be promised now.
            (TicketKind::ClaimLeader, Role::Unknown) if self.retry_at.is_some() => Some(false),
            (_, Role::Unknown) => None,
            (TicketKind::ClaimLeader, Role::Leader { renew_at, .. }) => {
                if renew_at > now
                    || self.config.mutant == Some(Mutant::LeadershipAnswerWithoutRenewal)
                {
                    Some(true)
                } else {
                    // Overdue: renew before answering.
                    fx.extend(self.refresh(now));
                    None
                }
            }
            (TicketKind::ClaimLeader, Role::Minion { .. }) => Some(false),
            (TicketKind::WaitLeader, Role::Leader { .. }) => Some(true),
            (TicketKind::WaitLeader, Role::Minion { .. }) => None,
            (TicketKind::WaitMinion, Role::Minion { .. }) => Some(true),
            (TicketKind::WaitMinion, Role::Leader { .. }) => None,
        };
        match answer {
            Some(value) => fx.notify(TrackerOutput::Ticket { id, kind, value }),
            None => {
                self.pending.insert(id, kind);
            }
        }
        (id, fx)
    }

    /// Stops the tracker; every pending ticket resolves false.
    pub fn handle_stop(&mut self, _now: LocalTime) -> Effects<TrackerOutput> {
        self.stop("stopped by its owner".to_owned())
    }

    fn stop(&mut self, why: String) -> Effects<TrackerOutput> {
        if self.stopped {
            return Effects::none();
        }
        let mut fx = self.resolve(|_| Some(false));
        self.stopped = true;
        self.role = Role::Unknown;
        fx.notify(TrackerOutput::Stopped(why));
        fx
    }

    fn resolve(&mut self, answer: impl Fn(TicketKind) -> Option<bool>) -> Effects<TrackerOutput> {
        let mut fx = Effects::none();
        let done: Vec<_> = self
            .pending
            .iter()
            .filter_map(|(id, k)| answer(*k).map(|v| (*id, *k, v)))
            .collect();
        for (id, kind, value) in done {
            self.pending.remove(&id);
            fx.notify(TrackerOutput::Ticket { id, kind, value });
        }
        fx
    }
}
