//! The clock watcher (PROTOCOLS.md §1.2, `Watcher`): polls global time on the local clock and
//! emits a value only when it is strictly later than the last one emitted.
//!
//! Coalescing is the executor's half of the contract: it delivers [`ClockWatcher`]'s values into
//! a latest-value slot (a `tokio::sync::watch` in the adapter), so a consumer that is not reading
//! sees only the newest pending value.

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
}

/// The clock watcher actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClockWatcher {
    config: WatcherConfig,
    ids: OpIds,
    last_emitted: Option<GlobalTime>,
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
        Ok(ClockWatcher {
            config,
            ids: OpIds::default(),
            last_emitted: None,
            next_poll: Some(LocalTime(0)),
            in_flight: None,
        })
    }

    /// The last value emitted.
    pub fn last_emitted(&self) -> Option<GlobalTime> {
        self.last_emitted
    }
}
