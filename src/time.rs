//! Time as the protocols see it: explicit arguments, never read from the OS.
//!
//! Three clocks appear in Tenure (DESIGN.md, "Time"):
//! - **real time** exists only in the executors (model checker, simulator, one host's monotonic
//!   clock in live runs); properties are stated in it;
//! - **local time** ([`LocalTime`]) is one process's monotonic clock, passed as `now` to every
//!   `handle_*` call; it may run at a rate within `[1-ρ, 1+ρ]` of real time;
//! - **global time** ([`GlobalTime`]) is the value of the clock document, advanced by updaters.
//!
//! All three are nanosecond counts in a `u64`: 584 years of range, exact arithmetic, and cheap to
//! hash in model states.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// One nanosecond-resolution reading of a process's local monotonic clock.
///
/// Only differences between readings of the *same* process mean anything.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LocalTime(pub u64);

/// A value of the global clock document (`{_id: "g", time}`), in nanoseconds since the global
/// epoch. It has no relation to any wall-clock date.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct GlobalTime(pub u64);

/// Converts a [`Duration`] to nanoseconds, saturating at `u64::MAX` (585 years), which every
/// validated duration is far below.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl LocalTime {
    /// The reading `d` after this one (saturating: time never wraps).
    #[must_use]
    pub fn after(self, d: Duration) -> LocalTime {
        LocalTime(self.0.saturating_add(nanos(d)))
    }
    /// The time elapsed since `earlier`, zero if `earlier` is not earlier.
    pub fn since(self, earlier: LocalTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl GlobalTime {
    /// The global time `d` after this one (saturating).
    #[must_use]
    pub fn after(self, d: Duration) -> GlobalTime {
        GlobalTime(self.0.saturating_add(nanos(d)))
    }
    /// The global time elapsed since `earlier`, zero if `earlier` is not earlier.
    pub fn since(self, earlier: GlobalTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "local {}", Secs(self.0))
    }
}

impl fmt::Display for GlobalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "global {}", Secs(self.0))
    }
}

/// Nanoseconds printed as seconds with millisecond precision, the unit people read timelines in.
#[derive(Clone, Copy, Debug)]
pub struct Secs(pub u64);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:03}s",
            self.0 / 1_000_000_000,
            (self.0 / 1_000_000) % 1000
        )
    }
}

/// Bounds on clock behaviour that a lease holder needs to turn a global-time lease into a safe
/// local deadline (DESIGN.md, "The arithmetic a holder must get right").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkewBounds {
    /// ρ in parts per million: every local clock runs between `1-ρ` and `1+ρ` times real time.
    pub rate_error_ppm: u32,
    /// `S`: the largest single step of the global clock, at least the
    /// [`step_max`](crate::clock::UpdaterConfig::step_max) its updaters cap every write to.
    pub clock_step_max: Duration,
}

/// The largest ρ accepted: 10%. A clock worse than that is broken hardware, not drift.
pub const RATE_ERROR_PPM_MAX: u32 = 100_000;

impl SkewBounds {
    /// No drift and no step: Juju's "at least D after the start of the call". Only for tests and
    /// models that fix every clock's rate.
    pub const EXACT: SkewBounds = SkewBounds {
        rate_error_ppm: 0,
        clock_step_max: Duration::ZERO,
    };

    /// The local deadline until which a holder may believe it holds a lease of `duration` earned
    /// by a call that began at local time `call_start`:
    /// `call_start + (D - S)·(1-ρ)/(1+ρ)`.
    ///
    /// Returns `None` when `S ≥ D`: no guarantee at all can be given, and the caller must not
    /// believe it holds the lease.
    pub fn local_deadline(&self, call_start: LocalTime, duration: Duration) -> Option<LocalTime> {
        let d = nanos(duration);
        let s = nanos(self.clock_step_max);
        if s >= d {
            return None;
        }
        let rho = u128::from(self.rate_error_ppm.min(RATE_ERROR_PPM_MAX));
        let margin = u128::from(d - s) * (1_000_000 - rho) / (1_000_000 + rho);
        let margin = u64::try_from(margin).unwrap_or(u64::MAX);
        debug_assert!(margin <= d - s, "the safe margin never exceeds D - S");
        Some(LocalTime(call_start.0.saturating_add(margin)))
    }
}

/// A simulated local clock: `local = offset + real × (1 + rate_ppm / 10⁶)`, for executors that
/// own real time (the model checker, the simulator, tests). Protocol code never sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DriftingClock {
    /// Rate error in parts per million (negative: slow).
    pub rate_ppm: i64,
    /// Local reading at real time zero.
    pub offset: u64,
}

impl DriftingClock {
    /// A clock that reads real time.
    pub const EXACT: DriftingClock = DriftingClock {
        rate_ppm: 0,
        offset: 0,
    };

    /// The local reading at real time `real` (ns), rounded down.
    pub fn local(&self, real: u64) -> LocalTime {
        // In 64 bits while the product fits (real times below about three hours): the model
        // checker reads every process's clock in every state, and 128-bit division is a call.
        let rate = u64::try_from(1_000_000 + self.rate_ppm).ok();
        let scaled = match rate.and_then(|r| real.checked_mul(r)) {
            Some(product) => product / 1_000_000,
            None => {
                let scaled = i128::from(real) * (1_000_000 + i128::from(self.rate_ppm)) / 1_000_000;
                u64::try_from(scaled.max(0)).unwrap_or(u64::MAX)
            }
        };
        LocalTime(self.offset.saturating_add(scaled))
    }

    /// The first real time at which the clock reads `local` or later.
    pub fn real_of(&self, local: LocalTime) -> u64 {
        if local.0 <= self.offset {
            return 0;
        }
        let num = i128::from(local.0 - self.offset) * 1_000_000;
        let den = (1_000_000 + i128::from(self.rate_ppm)).max(1);
        let mut t = u64::try_from((num + den - 1) / den).unwrap_or(u64::MAX);
        // Rounding in `local` can leave the estimate a nanosecond short.
        while self.local(t) < local && t < u64::MAX {
            t += 1;
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_bounds_give_full_duration_from_call_start() {
        let d = SkewBounds::EXACT.local_deadline(LocalTime(100), Duration::from_nanos(50));
        assert_eq!(d, Some(LocalTime(150)));
    }

    #[test]
    fn rate_error_and_step_shrink_the_deadline() {
        let b = SkewBounds {
            rate_error_ppm: 100_000,
            clock_step_max: Duration::from_secs(1),
        };
        // (10 - 1) s * 0.9 / 1.1 = 7.3636... s
        let d = b
            .local_deadline(LocalTime(0), Duration::from_secs(10))
            .unwrap();
        assert_eq!(d.0, 7_363_636_363);
    }

    #[test]
    fn drifting_clock_inverts() {
        for rate_ppm in [-100_000, -1, 0, 7, 100_000] {
            let c = DriftingClock {
                rate_ppm,
                offset: 5,
            };
            for real in [0, 1, 999_999, 1_000_000_007, 86_400_000_000_000] {
                let l = c.local(real);
                let back = c.real_of(l);
                assert!(back <= real && c.local(back) >= l, "{rate_ppm} {real}");
            }
        }
        let fast = DriftingClock {
            rate_ppm: 100_000,
            offset: 0,
        };
        assert_eq!(fast.local(10_000_000_000), LocalTime(11_000_000_000));
    }

    #[test]
    fn the_64_bit_reading_equals_the_128_bit_one_on_both_sides_of_overflow() {
        let reference = |c: &DriftingClock, real: u64| {
            let scaled = i128::from(real) * (1_000_000 + i128::from(c.rate_ppm)) / 1_000_000;
            LocalTime(
                c.offset
                    .saturating_add(u64::try_from(scaled.max(0)).unwrap_or(u64::MAX)),
            )
        };
        for rate_ppm in [-2_000_000, -1_000_000, -100_000, -1, 0, 1, 100_000] {
            let c = DriftingClock {
                rate_ppm,
                offset: 3,
            };
            // The 64-bit product overflows past u64::MAX / (10⁶ + ρ) ≈ 1.7·10¹³ ns.
            for real in [
                0,
                1,
                999_999,
                1_000_001,
                17_000_000_000_000,
                20_000_000_000_000,
                u64::MAX / 1_100_000,
                u64::MAX / 1_000_000 + 1,
                u64::MAX,
            ] {
                assert_eq!(
                    c.local(real),
                    reference(&c, real),
                    "ρ {rate_ppm} real {real}"
                );
            }
        }
    }

    #[test]
    fn step_at_least_duration_gives_no_guarantee() {
        let b = SkewBounds {
            rate_error_ppm: 0,
            clock_step_max: Duration::from_secs(10),
        };
        assert_eq!(
            b.local_deadline(LocalTime(0), Duration::from_secs(10)),
            None
        );
    }

    #[test]
    fn secs_display() {
        assert_eq!(Secs(1_234_567_890).to_string(), "1.234s");
    }
}
