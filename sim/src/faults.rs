//! How often each fault strikes in a simulated run, and swarm testing: each seed may draw which
//! faults are on and how often they strike (Groce et al., "Swarm testing", 2012: runs with
//! fewer kinds of fault reach deeper into each).
//!
//! The switches are the core's ([`tenure::fault::Fault`]); a rate is a probability in parts per
//! million per opportunity: per store operation it could affect (ambiguous, lost, delay,
//! rollback, stale read, non-atomic CAS), or per process and second of simulated time (pause,
//! crash).

use crate::rng::{Rng, PPM};
use serde::Serialize;
use std::fmt;
use tenure::fault::{Fault, FaultSet};

/// The rate each fault strikes at when it is on and nothing else is said: often enough that a
/// run of a minute meets each many times, rarely enough that most operations succeed.
pub fn default_rate(fault: Fault) -> u32 {
    match fault {
        Fault::Ambiguous | Fault::Lost => 20_000,
        Fault::Delay => 50_000,
        Fault::Rollback => 10_000,
        Fault::StaleRead => 100_000,
        Fault::NonAtomicCas => 200_000,
        Fault::Pause => 10_000,
        Fault::Crash => 2_000,
        _ => 0,
    }
}

/// The faults a correct protocol must survive: every fault of DESIGN.md but rollback (`w:1`
/// writes under failover) and non-atomic compare-and-swap, which break lease exclusion by
/// design and are switched on to show it (`--faults all`).
pub fn survivable() -> FaultSet {
    Fault::ALL
        .iter()
        .copied()
        .filter(|f| !matches!(f, Fault::Rollback | Fault::NonAtomicCas))
        .collect()
}

/// A rate per fault (0: off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FaultRates {
    rates: [u32; 16],
}

impl FaultRates {
    /// No faults.
    pub const NONE: FaultRates = FaultRates { rates: [0; 16] };

    /// Every fault of `set` at its default rate.
    pub fn of(set: FaultSet) -> FaultRates {
        let mut r = FaultRates::NONE;
        for f in set.iter() {
            r.set(f, default_rate(f));
        }
        r
    }

    /// The rate of `fault`, in parts per million.
    pub fn rate(&self, fault: Fault) -> u32 {
        self.rates[fault as usize]
    }

    /// Sets the rate of `fault` (clamped to one million).
    pub fn set(&mut self, fault: Fault, ppm: u32) {
        self.rates[fault as usize] = ppm.min(PPM);
    }

    /// Whether `fault` is on.
    pub fn has(&self, fault: Fault) -> bool {
        self.rate(fault) > 0
    }

    /// The faults that are on.
    pub fn set_of(&self) -> FaultSet {
        Fault::ALL
            .iter()
            .copied()
            .filter(|f| self.has(*f))
            .collect()
    }

    /// Swarm testing: each fault on here stays on with probability one half and strikes at its
    /// rate times 1/4, 1/2, 1, 2 or 4, as `rng` draws.
    pub fn swarm(&self, rng: &mut Rng) -> FaultRates {
        let mut out = FaultRates::NONE;
        for f in self.set_of().iter() {
            if rng.chance(PPM / 2) {
                let scale = [1, 2, 4, 8, 16][rng.below(5) as usize];
                out.set(f, self.rate(f).saturating_mul(scale) / 4);
            }
        }
        out
    }
}

impl fmt::Display for FaultRates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<String> = self
            .set_of()
            .iter()
            .map(|x| format!("{}={}", x.name(), self.rate(x)))
            .collect();
        if on.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&on.join(","))
        }
    }
}

impl FaultRates {
    /// Parses `none`, `all` (every fault at its default rate), `survivable` (every fault the
    /// protocols must survive), or a comma-separated list of `name` or `name=ppm`.
    pub fn parse(s: &str) -> Result<FaultRates, String> {
        match s.trim() {
            "none" | "" => return Ok(FaultRates::NONE),
            "all" => return Ok(FaultRates::of(FaultSet::all())),
            "survivable" => return Ok(FaultRates::of(survivable())),
            _ => {}
        }
        let mut out = FaultRates::NONE;
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, rate) = match item.split_once('=') {
                Some((n, r)) => {
                    let r = r.trim().parse::<u32>().map_err(|_| {
                        format!("fault rate {r:?} in {item:?} is not a whole number of parts per million")
                    })?;
                    (n.trim(), Some(r))
                }
                None => (item, None),
            };
            let fault: Fault = name
                .parse()
                .map_err(|e: tenure::fault::UnknownFault| e.to_string())?;
            if rate.is_some_and(|r| r > PPM) {
                return Err(format!("fault rate in {item:?} exceeds {PPM} ppm"));
            }
            out.set(fault, rate.unwrap_or_else(|| default_rate(fault)));
        }
        Ok(out)
    }

    /// The list [`FaultRates::parse`] reads back as these rates.
    pub fn to_arg(&self) -> String {
        let on: Vec<String> = self
            .set_of()
            .iter()
            .map(|f| format!("{}={}", f.name(), self.rate(f)))
            .collect();
        if on.is_empty() {
            "none".into()
        } else {
            on.join(",")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_keeps_a_subset_at_scaled_rates() {
        let all = FaultRates::of(FaultSet::all());
        let mut rng = Rng::new(3);
        let mut seen_off = false;
        for _ in 0..50 {
            let s = all.swarm(&mut rng);
            for f in Fault::ALL {
                if s.has(*f) {
                    let r = s.rate(*f);
                    assert!(r >= all.rate(*f) / 4 && r <= all.rate(*f) * 4, "{f}: {r}");
                } else {
                    seen_off = true;
                }
            }
        }
        assert!(seen_off, "swarm switches faults off");
        assert!(!survivable().has(Fault::Rollback) && survivable().has(Fault::Crash));
    }
}
