//! The clock's model (PROTOCOLS.md §1): updaters advance the clock document by compare-and-swap,
//! a watcher polls it. What the model observes, and the core properties it hands it to:
//!
//! - every change of the clock document: G1 (never backwards), G2 (one chain of advances),
//!   G3 (no faster than real time, within the step bound), and the samples G6 (it keeps
//!   moving once faults stop) and M6 (leases expire in time) read;
//! - the watcher's values: G5 (each strictly later than the last);
//! - milestones: the clock advanced, the watcher emitted.

use super::{reach, record, Milestone, WatchedChange};
use crate::harness::state::State;
use crate::harness::TenureModel;
use tenure::clock::watcher::WatcherOutput;
use tenure::clock::UpdaterConfig;
use tenure::clock::UpdaterOutput;
use tenure::property::clock::{
    g1_stored, g2_chain, g3_lowest, g3_rate, g5_watcher_strictly_later, ClockWrite,
};
use tenure::property::{PropertyId, Violation};
use tenure::time::GlobalTime;

/// The clock document moved (or was created) at real time `real`. `clock_base` is what the
/// writer meant to swap against (G2 needs the writer's intent).
pub(crate) fn moved(
    model: &TenureModel,
    s: &mut State,
    change: &WatchedChange,
    clock_base: Option<u64>,
    real: u64,
    why: &mut Vec<Violation>,
) {
    let (g0, g1) = change.global;
    let existed = change.clock_existed;
    record(why, g1_stored(GlobalTime(g0), GlobalTime(g1)));
    if existed && g1 > g0 && model.observes(PropertyId::G2) {
        let write = (clock_base.unwrap_or(g0), g1);
        let cw = |(from, to): (u64, u64)| ClockWrite {
            from: GlobalTime(from),
            to: GlobalTime(to),
        };
        record(
            why,
            match s.ghost.clock_write_last {
                Some(last) => g2_chain(GlobalTime(last.0), &[cw(last), cw(write)]),
                None => g2_chain(GlobalTime(0), &[cw(write)]),
            },
        );
        s.ghost.clock_write_last = Some(write);
    }
    if model.observes(PropertyId::G3) {
        let ppm = model.config.rate_error_ppm;
        let sample = (real, GlobalTime(g1));
        let lowest = s.ghost.clock_lowest.map(|(r, g)| (r, GlobalTime(g)));
        let both = [lowest.unwrap_or(sample), sample];
        let samples = if lowest.is_some() {
            &both[..]
        } else {
            &both[1..]
        };
        record(why, g3_rate(samples, ppm, model.config.clock_step_max()));
        s.ghost.clock_lowest = g3_lowest(samples, ppm).map(|(r, g)| (r, g.0));
    }
    if model.observes(PropertyId::G6) {
        s.ghost.clock_last = Some((real, g1));
    }
    if model.observes(PropertyId::M6) {
        s.ghost.clock_samples.push((real, g1));
    }
}

/// What an updater reported.
pub(crate) fn updater_note(s: &mut State, out: &UpdaterOutput) {
    if let UpdaterOutput::Advanced { .. } = out {
        reach(s, Milestone::ClockAdvanced);
    }
}

/// What the watcher reported: each value strictly later than the last (G5).
pub(crate) fn watcher_note(s: &mut State, out: &WatcherOutput, why: &mut Vec<Violation>) {
    if let WatcherOutput::Time(t) = out {
        if let Some(last) = s.ghost.watcher_emitted {
            record(why, g5_watcher_strictly_later(&[GlobalTime(last), *t]));
        }
        s.ghost.watcher_emitted = Some(t.0);
        reach(s, Milestone::WatcherEmitted);
    }
}

impl TenureModel {
    /// The clock updaters' configuration: the model's interval, and a backoff as long.
    pub(crate) fn updater_config(&self) -> UpdaterConfig {
        UpdaterConfig {
            update_interval: self.config.update_interval,
            backoff_delay: self.config.update_interval,
            mutant: self.config.mutant,
        }
    }
}
