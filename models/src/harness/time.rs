//! Real time, which the model owns and advances in ticks, and each process's drifting local
//! clock read from it.

use super::TenureModel;
use crate::harness::state::State;
use std::time::Duration;
use tenure::time::{nanos, DriftingClock, LocalTime};

impl TenureModel {
    /// One tick of real time, in ns.
    pub(super) fn tick_ns(&self) -> u64 {
        nanos(self.config.tick)
    }

    /// Real time at the current tick, in ns.
    pub fn real(&self, s: &State) -> u64 {
        s.real
    }

    /// The real time at which the model ends, in ns.
    pub(super) fn horizon_ns(&self) -> u64 {
        u64::from(self.config.horizon) * self.tick_ns()
    }

    /// Where the next time step lands: one tick on, or (exact timers) the next deadline of a
    /// running process if sooner.
    pub(super) fn next_real(&self, s: &State) -> u64 {
        let tick = s.real + self.tick_ns();
        if !self.config.exact_timers {
            return tick;
        }
        s.procs
            .iter()
            .filter(|p| p.runs())
            .filter_map(|p| p.due())
            .filter(|t| *t > s.real)
            .min()
            .map_or(tick, |t| t.min(tick))
            .min(self.horizon_ns())
    }

    /// Process `p`'s clock, at the rate [`ModelConfig::rate_ppm`] gives it.
    ///
    /// [`ModelConfig::rate_ppm`]: crate::config::ModelConfig::rate_ppm
    pub(super) fn clock_of(&self, p: usize) -> DriftingClock {
        let rate_ppm = match self.manager_of(p) {
            Some(m) => self.config.rate_ppm(usize::from(m), true),
            None => self.config.rate_ppm(p, false),
        };
        DriftingClock {
            rate_ppm,
            offset: 0,
        }
    }

    /// Process `p`'s local clock at the current real time.
    pub(crate) fn now(&self, s: &State, p: usize) -> LocalTime {
        s.procs[p].clock.local(self.real(s))
    }

    /// Whether process `p` runs and its next timer is due (at or before the current real
    /// time: a timer fires at the first tick at or after its deadline).
    pub(crate) fn timer_due(&self, s: &State, p: usize) -> bool {
        s.procs[p].runs() && s.procs[p].due().is_some_and(|due| due <= self.real(s))
    }

    /// The real time a `local` duration can take on the slowest local clock.
    pub(super) fn on_slowest_clock(&self, local: Duration) -> Duration {
        let ppm = u128::from(self.config.rate_error_ppm.min(999_999));
        let real = local.as_nanos() * 1_000_000 / (1_000_000 - ppm);
        Duration::from_nanos(u64::try_from(real).unwrap_or(u64::MAX))
    }
}
