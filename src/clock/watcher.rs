//! The clock watcher (PROTOCOLS.md §1.2, `Watcher`): polls global time on the local clock and
//! emits a value only when it is strictly later than the last one emitted.
//!
//! Coalescing is the executor's half of the contract: it delivers [`ClockWatcher`]'s values into
//! a latest-value slot (a `tokio::sync::watch` in the adapter), so a consumer that is not reading
//! sees only the newest pending value.
//!
//! **Stalls.** With no updater advancing it, global time stands still and no lease ever expires
//! (G4: a liveness loss, never a safety loss). Nothing else notices, so the watcher does: given
//! [`WatcherConfig::stall_after`], it reports [`WatcherOutput::Stalled`] once global time has
//! not moved for that long on its local clock, and the next later value ends the stall.

use super::{ClockError, Reader};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::mutant::Mutant;
use crate::substrate::{Collection, OpResult, ReadConcern};
use crate::time::{GlobalTime, LocalTime};
use crate::validate::{check_duration, InputError};
use std::time::Duration;

/// Watcher configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatcherConfig {
    /// Time between polls.
    pub poll_interval: Duration,
    /// Report a stall once global time has not advanced for this long (`None`: never). Must
    /// exceed the poll interval; [`stall_threshold`] gives the bound a healthy deployment keeps.
    pub stall_after: Option<Duration>,
    /// A deliberately broken variant, for checker tests.
    pub mutant: Option<Mutant>,
}

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatcherOutput {
    /// Global time, strictly later than the previous value emitted.
    Time(GlobalTime),
    /// A poll failed; polling goes on.
    PollFailed(ClockError),
    /// Global time has stood at `global_time` for `stalled_for` of local time, longer than
    /// [`WatcherConfig::stall_after`]: no updater is advancing it, so no lease expires. Reported
    /// once per stall; the next [`WatcherOutput::Time`] ends it.
    Stalled {
        /// The value global time is stuck at.
        global_time: GlobalTime,
        /// How long it has not moved, on the watcher's local clock.
        stalled_for: Duration,
    },
}

/// How long global time may stand still in a healthy deployment before a watcher calls it
/// stalled: twice the longest gap between advances, which is one update interval plus one
/// backoff delay (the time a standing-by updater waits before taking over from a crashed one,
/// PROTOCOLS.md §1.3). Twice leaves room for slow store calls and the watcher's own polling.
pub fn stall_threshold(updater: &super::UpdaterConfig) -> Duration {
    (updater.update_interval + updater.backoff_delay) * 2
}

/// The clock watcher actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClockWatcher {
    config: WatcherConfig,
    ids: OpIds,
    last_emitted: Option<GlobalTime>,
    /// When `last_emitted` was first seen, while stall detection is on.
    advanced_at: Option<LocalTime>,
    /// Whether the current stall has been reported.
    stalled: bool,
    next_poll: Option<LocalTime>,
    in_flight: Option<OpId>,
}

impl Renumber for ClockWatcher {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.in_flight)
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.ids.lower(by, self.in_flight.as_mut());
    }
}

impl Actor for ClockWatcher {
    type Output = WatcherOutput;

    /// It only reads.
    fn may_write(&self, _coll: Collection) -> bool {
        false
    }

    /// When the watcher next wants [`ClockWatcher::handle_timeout`].
    fn next_deadline(&self) -> Option<LocalTime> {
        if self.in_flight.is_some() {
            None
        } else {
            self.next_poll
        }
    }

    /// Polls if due; early calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<WatcherOutput> {
        match self.next_poll {
            Some(t) if t <= now && self.in_flight.is_none() => {}
            _ => return Effects::none(),
        }
        let req = self.ids.request(Reader::request(ReadConcern::Majority));
        self.in_flight = Some(req.id);
        Effects {
            requests: vec![req],
            notifications: Vec::new(),
        }
    }

    /// Takes a poll result and schedules the next poll.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<WatcherOutput> {
        if self.in_flight != Some(id) {
            return Effects::none();
        }
        self.in_flight = None;
        self.next_poll = Some(now.after(self.config.poll_interval));
        let mut fx = Effects::none();
        match Reader::decode(&result) {
            Ok(t) => {
                let later = self.last_emitted.is_none_or(|last| t > last);
                if later {
                    self.advanced(now);
                } else if let Some(stalled) = self.newly_stalled(now) {
                    fx.notify(stalled);
                }
                if later || self.config.mutant == Some(Mutant::ClockWatcherRepeats) {
                    self.last_emitted = Some(self.last_emitted.map_or(t, |l| l.max(t)));
                    fx.notify(WatcherOutput::Time(t));
                }
            }
            Err(e) => fx.notify(WatcherOutput::PollFailed(e)),
        }
        fx
    }
}

impl ClockWatcher {
    /// A watcher whose first poll happens at the first [`ClockWatcher::handle_timeout`].
    pub fn new(config: WatcherConfig) -> Result<ClockWatcher, InputError> {
        check_duration(
            "poll interval",
            config.poll_interval,
            super::updater::INTERVAL_MAX,
        )?;
        if let Some(limit) = config.stall_after {
            check_duration("stall threshold", limit, super::updater::INTERVAL_MAX)?;
            if limit <= config.poll_interval {
                return Err(InputError::InvalidConfig(format!(
                    "stall threshold {limit:?} must exceed the poll interval {:?}: a clock is \
                     only seen to move between polls",
                    config.poll_interval
                )));
            }
        }
        Ok(ClockWatcher {
            config,
            ids: OpIds::default(),
            last_emitted: None,
            advanced_at: None,
            stalled: false,
            next_poll: Some(LocalTime(0)),
            in_flight: None,
        })
    }

    /// The last value emitted.
    pub fn last_emitted(&self) -> Option<GlobalTime> {
        self.last_emitted
    }

    /// Whether global time is stalled (reported and not yet ended by a later value).
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Global time moved: a stall, if any, is over. Timestamps are kept only when stall
    /// detection is on, so a model without it does not grow its state space.
    fn advanced(&mut self, now: LocalTime) {
        if self.config.stall_after.is_some() {
            self.advanced_at = Some(now);
        }
        self.stalled = false;
    }

    /// The stall to report if global time has now stood still past the threshold.
    fn newly_stalled(&mut self, now: LocalTime) -> Option<WatcherOutput> {
        let limit = self.config.stall_after?;
        let since = self.advanced_at?;
        let stalled_for = now.since(since);
        if self.stalled || stalled_for < limit {
            return None;
        }
        self.stalled = true;
        Some(WatcherOutput::Stalled {
            global_time: self.last_emitted?,
            stalled_for,
        })
    }
}
