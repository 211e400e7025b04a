//! The simulator's one source of randomness: ChaCha8 seeded from the run's seed. Nothing else
//! may decide anything at random (no OS entropy, no hash-map order, no wall clock), so a seed
//! replays its run exactly.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Parts per million: the unit of every probability and rate in the simulator.
pub const PPM: u32 = 1_000_000;

/// A seeded random stream.
#[derive(Clone, Debug)]
pub struct Rng(ChaCha8Rng);

impl Rng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// An independent stream drawn from this one (for a part of the run that must not shift
    /// when another part draws more or less).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.0.next_u64())
    }

    /// A value uniform in `[0, n)`; 0 when `n` is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        // Lemire's multiply-shift: no division, bias below 2^-64 · n.
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi, "empty range {lo}..={hi}");
        lo + self.below(hi.saturating_sub(lo).saturating_add(1))
    }

    /// True with probability `ppm` parts per million.
    pub fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.below(u64::from(PPM)) < u64::from(ppm)
    }

    /// One of `items`, uniformly (`None` if empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        let n = u64::try_from(items.len()).ok()?;
        items.get(usize::try_from(self.below(n)).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_one_stream_and_draws_stay_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.range(3, 9);
            assert_eq!(x, b.range(3, 9));
            assert!((3..=9).contains(&x));
        }
        assert_ne!(Rng::new(7).below(u64::MAX), Rng::new(8).below(u64::MAX));
        assert!(!Rng::new(1).chance(0));
        assert!(Rng::new(1).chance(PPM));
    }
}
