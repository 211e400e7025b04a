//! The clock updater worker (PROTOCOLS.md §1.2 `Updater`, §1.3 the 2017 worker loop).
//!
//! The worker owns one updater at a time. It ensures the document exists, then every
//! `update_interval` advances global time by the local time elapsed since it last *observed* the
//! clock (capped at [`UpdaterConfig::step_max`]), with a compare-and-swap on the exact base it
//! holds. A lost race refreshes the base and
//! waits `backoff_delay` (another updater is ticking). Any other outcome discards the updater:
//! the worker reports the failure and builds a fresh one after `backoff_delay`, as Juju's
//! dependency engine restarts a dead worker.

use super::{decode, ClockError, Reader, CLOCK_ID, TIME_FIELD};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::mutant::Mutant;
use crate::substrate::{
    fields, Collection, Fields, Op, OpResult, ReadConcern, Reply, Update, Value,
};
use crate::time::{GlobalTime, LocalTime, Secs};
use crate::validate::{check_duration, InputError};
use std::time::Duration;

/// Longest accepted update interval or backoff: past an hour, leases would stall for that long
/// after every failover.
pub const INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// Updater worker configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UpdaterConfig {
    /// How often the winning updater advances the clock (Juju: 1 s).
    pub update_interval: Duration,
    /// How long a losing updater stands by, and the delay before rebuilding after a failure
    /// (Juju: 30 s). It bounds the largest clock step S after a failover.
    pub backoff_delay: Duration,
    /// A deliberately broken variant, for checker tests.
    pub mutant: Option<Mutant>,
}

impl UpdaterConfig {
    /// Juju's production values: 1 s interval, 30 s backoff.
    pub fn juju() -> UpdaterConfig {
        UpdaterConfig {
            update_interval: Duration::from_secs(1),
            backoff_delay: Duration::from_secs(30),
            mutant: None,
        }
    }

    /// Checks both durations are positive and at most [`INTERVAL_MAX`].
    pub fn validate(&self) -> Result<(), InputError> {
        check_duration("update interval", self.update_interval, INTERVAL_MAX)?;
        check_duration("backoff delay", self.backoff_delay, INTERVAL_MAX)
    }

    /// The largest step one successful advance makes (longer elapsed times are capped to it):
    /// the clock step bound `S` a lease holder must budget for.
    pub fn step_max(&self) -> Duration {
        self.update_interval.max(self.backoff_delay)
    }
}

/// What the worker reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdaterOutput {
    /// A fresh updater observed the clock at `base`.
    Ready {
        /// The observed global time.
        base: GlobalTime,
    },
    /// A compare-and-swap succeeded.
    Advanced {
        /// The value swapped against.
        from: GlobalTime,
        /// The value written.
        to: GlobalTime,
        /// The local time since the base was observed, which is what was added.
        elapsed: Duration,
    },
    /// A compare-and-swap's outcome is unknown (its reply was lost): the clock may or may not
    /// hold `to`. The updater is discarded next ([`UpdaterOutput::Failed`]); a history checker
    /// needs this to tell a lost reply from a lost increment (G2).
    AdvanceUnknown {
        /// The value swapped against.
        from: GlobalTime,
        /// The value it tried to write.
        to: GlobalTime,
    },
    /// Another updater moved the clock; the base is now `observed`.
    Conflict {
        /// The refreshed base.
        observed: GlobalTime,
    },
    /// The updater was discarded; a new one is built after the backoff delay.
    Failed(ClockError),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pending {
    Ensure,
    Advance { base: GlobalTime, amount: u64 },
    Refresh,
}

/// The updater worker actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Updater {
    config: UpdaterConfig,
    ids: OpIds,
    /// The cached base: the value this updater last observed; `None` until ensured.
    base: Option<GlobalTime>,
    /// Local time of that observation.
    observed_at: LocalTime,
    /// Local time the current updater was built (used only by a mutant).
    built_at: LocalTime,
    /// When to act next (advance, or rebuild after a failure).
    next_tick: Option<LocalTime>,
    in_flight: Option<(OpId, Pending)>,
    last_now: LocalTime,
}

impl Renumber for Updater {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.in_flight.as_ref().map(|(id, _)| *id))
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.ids
            .lower(by, self.in_flight.as_mut().map(|(id, _)| id));
    }
}

impl Actor for Updater {
    type Output = UpdaterOutput;

    /// Only the clock document.
    fn may_write(&self, coll: Collection) -> bool {
        coll == Collection::Clock
    }

    /// When the worker next wants [`Updater::handle_timeout`].
    fn next_deadline(&self) -> Option<LocalTime> {
        if self.in_flight.is_some() {
            None
        } else {
            self.next_tick
        }
    }

    /// Fires the interval or backoff timer. Early or spurious calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<UpdaterOutput> {
        self.tick(now);
        match self.next_tick {
            Some(t) if t <= now && self.in_flight.is_none() => {}
            _ => return Effects::none(),
        }
        let Some(base) = self.base else {
            return self.handle_start(now);
        };
        // One write adds at most `step_max`: an updater paused between observing and writing
        // (GC, SIGSTOP) would otherwise add the whole pause at once, and every lease holder's
        // margin S must cover the largest single step. Falling behind is safe; jumping is not.
        let amount = if self.config.mutant == Some(Mutant::ClockElapsedSinceStart) {
            now.0.saturating_sub(self.built_at.0)
        } else {
            let cap = u64::try_from(self.config.step_max().as_nanos()).unwrap_or(u64::MAX);
            now.0.saturating_sub(self.observed_at.0).min(cap)
        };
        let to = base.0.saturating_add(amount);
        let expect = if self.config.mutant == Some(Mutant::ClockBlindWrite) {
            Fields::new()
        } else {
            fields([(TIME_FIELD, Value::from(base.0))])
        };
        let op = Op::Update {
            coll: Collection::Clock,
            id: CLOCK_ID.to_owned(),
            expect,
            update: Update {
                set: fields([(TIME_FIELD, Value::from(to))]),
                ..Update::default()
            },
            upsert: false,
            return_new: false,
        };
        self.send(op, Pending::Advance { base, amount })
    }

    /// Takes the result of the outstanding request. Unknown ids are ignored.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<UpdaterOutput> {
        self.tick(now);
        let pending = match self.in_flight.take() {
            Some((want, p)) if want == id => p,
            other => {
                self.in_flight = other;
                return Effects::none();
            }
        };
        let mut fx = Effects::none();
        match (pending, result) {
            (Pending::Ensure, OpResult::Ok(Reply::Doc(Some(doc)))) => match decode(&doc) {
                Ok(base) => {
                    self.observe(base, now, self.config.update_interval);
                    fx.notify(UpdaterOutput::Ready { base });
                }
                Err(e) => return self.fail(ClockError::Corrupt(e), now),
            },
            (Pending::Ensure, other) => {
                return self.fail(
                    ClockError::Store {
                        context: "getting new updater".to_owned(),
                        cause: other.failure(),
                    },
                    now,
                );
            }
            (Pending::Advance { base, amount }, OpResult::Ok(_)) => {
                let to = GlobalTime(base.0.saturating_add(amount));
                self.observe(to, now, self.config.update_interval);
                fx.notify(UpdaterOutput::Advanced {
                    from: base,
                    to,
                    elapsed: Duration::from_nanos(amount),
                });
            }
            (Pending::Advance { .. }, OpResult::PreconditionFailed) => {
                return self.send(Reader::request(ReadConcern::Linearizable), Pending::Refresh);
            }
            (Pending::Advance { base, amount }, other) => {
                if other == OpResult::Unknown {
                    fx.notify(UpdaterOutput::AdvanceUnknown {
                        from: base,
                        to: GlobalTime(base.0.saturating_add(amount)),
                    });
                }
                let context = format!(
                    "updating global clock: adding {} to current time {}",
                    Secs(amount),
                    Secs(base.0)
                );
                fx.extend(self.fail(
                    ClockError::Store {
                        context,
                        cause: other.failure(),
                    },
                    now,
                ));
            }
            (Pending::Refresh, result) => match Reader::decode(&result) {
                Ok(observed) => {
                    self.observe(observed, now, self.config.backoff_delay);
                    fx.notify(UpdaterOutput::Conflict { observed });
                }
                Err(ClockError::Store { cause, .. }) => {
                    let context = "refreshing time after write conflict".to_owned();
                    return self.fail(ClockError::Store { context, cause }, now);
                }
                Err(e) => return self.fail(e, now),
            },
        }
        fx
    }
}

impl Updater {
    /// A worker that does nothing until [`Updater::handle_start`].
    pub fn new(config: UpdaterConfig) -> Result<Updater, InputError> {
        config.validate()?;
        Ok(Updater {
            config,
            ids: OpIds::default(),
            base: None,
            observed_at: LocalTime(0),
            built_at: LocalTime(0),
            next_tick: None,
            in_flight: None,
            last_now: LocalTime(0),
        })
    }

    /// The base this updater holds, if it has one.
    pub fn base(&self) -> Option<GlobalTime> {
        self.base
    }

    /// Whether a store request is outstanding.
    pub fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    fn tick(&mut self, now: LocalTime) {
        debug_assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = now;
    }

    /// Builds a fresh updater: find-and-modify `$inc time 0` with upsert, which creates
    /// `{_id: "g", time: 0}` if missing and leaves an existing document untouched.
    pub fn handle_start(&mut self, now: LocalTime) -> Effects<UpdaterOutput> {
        self.tick(now);
        if self.in_flight.is_some() {
            return Effects::none();
        }
        self.base = None;
        self.built_at = now;
        self.next_tick = None;
        let op = Op::Update {
            coll: Collection::Clock,
            id: CLOCK_ID.to_owned(),
            expect: Fields::new(),
            update: Update {
                inc: fields([(TIME_FIELD, Value::Int(0))]),
                ..Update::default()
            },
            upsert: true,
            return_new: true,
        };
        self.send(op, Pending::Ensure)
    }

    /// Stops the updater (its process shuts it down or crashes). An advance still in flight
    /// may yet apply, and no reply will come to say so: it is reported as
    /// [`UpdaterOutput::AdvanceUnknown`], so a history holds it as a write that may have
    /// happened rather than missing it (G2).
    pub fn handle_stop(&mut self, now: LocalTime) -> Effects<UpdaterOutput> {
        self.tick(now);
        self.next_tick = None;
        let mut fx = Effects::none();
        if let Some((_, Pending::Advance { base, amount })) = self.in_flight.take() {
            fx.notify(UpdaterOutput::AdvanceUnknown {
                from: base,
                to: GlobalTime(base.0.saturating_add(amount)),
            });
        }
        fx
    }

    fn send(&mut self, op: Op, pending: Pending) -> Effects<UpdaterOutput> {
        let req = self.ids.request(op);
        self.in_flight = Some((req.id, pending));
        Effects {
            requests: vec![req],
            notifications: Vec::new(),
        }
    }

    fn observe(&mut self, base: GlobalTime, now: LocalTime, wait: Duration) {
        // The base can move backwards only if the store lost acknowledged writes (a `w:1`
        // rollback): the updater carries on from what the store holds, and G1 reports it.
        self.base = Some(base);
        self.observed_at = now;
        self.next_tick = Some(now.after(wait));
    }

    fn fail(&mut self, err: ClockError, now: LocalTime) -> Effects<UpdaterOutput> {
        self.base = None;
        self.next_tick = if self.config.mutant == Some(Mutant::ClockUpdaterGivesUp) {
            None
        } else {
            Some(now.after(self.config.backoff_delay))
        };
        let mut fx = Effects::none();
        fx.notify(UpdaterOutput::Failed(err));
        fx
    }
}
