//! Deterministic jitter for backoffs and flush schedules.
//!
//! The core takes no entropy from the OS (STYLE.md §7.3): every actor that jitters owns a
//! [`Jitter`] seeded from its configuration. The adapter seeds it from the OS, the simulator from
//! its run seed, and models use [`Jitter::NONE`] so jitter adds no states.
//! The generator is SplitMix64: statistically fine for spreading timers, not for cryptography.

use std::time::Duration;

/// A seeded source of jitter fractions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Jitter {
    state: u64,
    enabled: bool,
}

impl Jitter {
    /// No jitter: every fraction is the midpoint of its range.
    pub const NONE: Jitter = Jitter {
        state: 0,
        enabled: false,
    };

    /// Jitter seeded with `seed`; the same seed gives the same sequence.
    pub fn seeded(seed: u64) -> Jitter {
        Jitter {
            state: seed,
            enabled: true,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value uniformly drawn from `[0, 1_000_000)` parts per million, or 500_000 without jitter.
    pub fn ppm(&mut self) -> u64 {
        if self.enabled {
            self.next_u64() % 1_000_000
        } else {
            500_000
        }
    }

    /// `base` scaled by a factor drawn from `[lo_ppm, hi_ppm)` parts per million.
    pub fn scale(&mut self, base: Duration, lo_ppm: u64, hi_ppm: u64) -> Duration {
        debug_assert!(lo_ppm <= hi_ppm);
        let f = lo_ppm + (hi_ppm - lo_ppm) * self.ppm() / 1_000_000;
        let n = crate::time::nanos(base) as u128 * u128::from(f) / 1_000_000;
        Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_in_range() {
        let (mut a, mut b) = (Jitter::seeded(7), Jitter::seeded(7));
        for _ in 0..100 {
            let (x, y) = (
                a.scale(Duration::from_secs(1), 800_000, 1_200_000),
                b.scale(Duration::from_secs(1), 800_000, 1_200_000),
            );
            assert_eq!(x, y);
            assert!(
                x >= Duration::from_millis(800) && x < Duration::from_millis(1200),
                "{x:?}"
            );
        }
    }

    #[test]
    fn none_is_the_midpoint() {
        let mut none = Jitter::NONE;
        assert_eq!(
            none.scale(Duration::from_secs(1), 800_000, 1_200_000),
            Duration::from_secs(1)
        );
    }
}
