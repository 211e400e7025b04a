//! A process's local clock in the simulator: monotonic, running at a rate within ±ρ of real
//! time from an arbitrary offset, and changing its rate now and then (a host clock drifts with
//! temperature and load), never leaving the bound the protocols budget for (DESIGN.md, "Time").

use tenure::time::{DriftingClock, LocalTime};

/// Most rate changes one clock makes in a run (a bound on its segments).
pub const RATE_CHANGES_MAX: usize = 8;

/// One stretch of constant rate: from real time `real`, reading `local`, at `rate_ppm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Segment {
    real: u64,
    local: u64,
    rate_ppm: i64,
}

impl Segment {
    fn local_at(&self, real: u64) -> u64 {
        let d = i128::from(real - self.real) * (1_000_000 + i128::from(self.rate_ppm)) / 1_000_000;
        self.local
            .saturating_add(u64::try_from(d.max(0)).unwrap_or(u64::MAX))
    }

    /// The first real time (in this segment) at which it reads `local` or later.
    fn real_at(&self, local: u64) -> u64 {
        let num = i128::from(local.saturating_sub(self.local)) * 1_000_000;
        let den = (1_000_000 + i128::from(self.rate_ppm)).max(1);
        let mut t = self
            .real
            .saturating_add(u64::try_from((num + den - 1) / den).unwrap_or(u64::MAX));
        // Rounding in `local_at` can leave the estimate a nanosecond short.
        while self.local_at(t) < local && t < u64::MAX {
            t += 1;
        }
        t
    }
}

/// A piecewise-linear monotonic clock.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SimClock {
    segments: Vec<Segment>,
}

impl SimClock {
    /// A clock reading `offset` at real time zero and running at `rate_ppm`.
    pub fn new(rate_ppm: i64, offset: u64) -> SimClock {
        assert!(rate_ppm > -1_000_000, "a clock must run forward");
        SimClock {
            segments: vec![Segment {
                real: 0,
                local: offset,
                rate_ppm,
            }],
        }
    }

    /// The rate since the last change.
    pub fn rate_ppm(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.rate_ppm)
    }

    /// From real time `real` on, runs at `rate_ppm` (ignored past [`RATE_CHANGES_MAX`], or if
    /// `real` is before the last change).
    pub fn change_rate(&mut self, real: u64, rate_ppm: i64) {
        let Some(last) = self.segments.last().copied() else {
            return;
        };
        if self.segments.len() > RATE_CHANGES_MAX || real < last.real || rate_ppm <= -1_000_000 {
            return;
        }
        self.segments.push(Segment {
            real,
            local: last.local_at(real),
            rate_ppm,
        });
    }

    fn segment_at_real(&self, real: u64) -> &Segment {
        let i = self.segments.partition_point(|s| s.real <= real);
        &self.segments[i.saturating_sub(1)]
    }

    /// The local reading at real time `real`.
    pub fn local(&self, real: u64) -> LocalTime {
        LocalTime(self.segment_at_real(real).local_at(real))
    }

    /// The first real time at which the clock reads `local` or later.
    pub fn real_of(&self, local: LocalTime) -> u64 {
        let i = self.segments.partition_point(|s| s.local <= local.0);
        self.segments[i.saturating_sub(1)].real_at(local.0)
    }
}

/// The core's fixed-rate clock, as one segment.
impl From<DriftingClock> for SimClock {
    fn from(c: DriftingClock) -> SimClock {
        SimClock::new(c.rate_ppm, c.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the clock is monotonic across rate changes and `real_of` inverts `local`.
    #[test]
    fn readings_are_monotonic_and_invertible_across_rate_changes() {
        let mut c = SimClock::new(100_000, 5_000);
        c.change_rate(3_000_000_000, -100_000);
        c.change_rate(7_000_000_000, 0);
        let mut last = LocalTime(0);
        for real in (0..10_000_000_000u64).step_by(333_333_333) {
            let l = c.local(real);
            assert!(l >= last, "monotonic at {real}");
            last = l;
            let back = c.real_of(l);
            assert!(back <= real && c.local(back) >= l, "{real}: {back}");
        }
        assert_eq!(c.local(1_000_000_000), LocalTime(1_100_005_000));
    }
}
