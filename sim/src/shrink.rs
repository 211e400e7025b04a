//! Shrinking: a failing run made smaller while it still breaks the same property: fewer kinds
//! of fault, fewer processes, a shorter faulty phase (a shorter prefix of events). Each
//! candidate is a configuration of its own run with the same seed, so the result is printed as
//! an ordinary replay command.

use crate::config::SimConfig;
use crate::faults::FaultRates;
use crate::run::{simulate, Report};
use std::time::Duration;
use tenure::property::PropertyId;

/// Most runs one shrink may try.
pub const TRIES_MAX: usize = 60;
/// The shortest faulty phase a shrink tries.
pub const SIM_TIME_MIN: Duration = Duration::from_secs(5);

/// A shrunk failure: the smaller configuration, its report, and how many runs it took.
#[derive(Clone, Debug)]
pub struct Shrunk {
    /// The smallest failing configuration found (swarm off: its fault rates are explicit).
    pub config: SimConfig,
    /// Its run.
    pub report: Report,
    /// Runs tried.
    pub tries: usize,
}

/// Shrinks `failed` (a failing report) while the same property still fails.
pub fn shrink(failed: &Report) -> Option<Shrunk> {
    let target = failed.first()?.violation.property;
    let mut best = SimConfig {
        swarm: false,
        faults: failed.faults,
        ..failed.config.clone()
    };
    let mut report = failed.clone();
    let mut tries = 0;
    let still_fails = |c: &SimConfig, tries: &mut usize| -> Option<Report> {
        *tries += 1;
        let r = simulate(c, failed.seed, false);
        (r.first().map(|f| f.violation.property) == Some(target)).then_some(r)
    };
    loop {
        let mut improved = false;
        for candidate in candidates(&best, target) {
            if tries >= TRIES_MAX {
                break;
            }
            if candidate.validate().is_err() {
                continue;
            }
            if let Some(r) = still_fails(&candidate, &mut tries) {
                best = candidate;
                report = r;
                improved = true;
                break;
            }
        }
        if !improved || tries >= TRIES_MAX {
            break;
        }
    }
    Some(Shrunk {
        config: best,
        report,
        tries,
    })
}

/// Smaller configurations than `c`, most promising first.
fn candidates(c: &SimConfig, _target: PropertyId) -> Vec<SimConfig> {
    let mut out = Vec::new();
    for f in c.faults.set_of().iter() {
        let mut faults: FaultRates = c.faults;
        faults.set(f, 0);
        out.push(SimConfig {
            faults,
            ..c.clone()
        });
    }
    let half = |n: u32| (n > 1).then_some((n / 2).max(1));
    let smaller = [
        half(c.managers).map(|managers| SimConfig {
            managers,
            ..c.clone()
        }),
        half(c.leases).map(|leases| SimConfig {
            leases,
            ..c.clone()
        }),
        half(c.units).map(|units| SimConfig { units, ..c.clone() }),
        half(c.keys)
            .filter(|k| *k >= c.agents)
            .map(|keys| SimConfig { keys, ..c.clone() }),
        half(c.agents).map(|agents| SimConfig {
            agents,
            ..c.clone()
        }),
        half(c.updaters).map(|updaters| SimConfig {
            updaters,
            ..c.clone()
        }),
    ];
    out.extend(smaller.into_iter().flatten());
    if c.sim_time > SIM_TIME_MIN {
        out.push(SimConfig {
            sim_time: (c.sim_time / 2).max(SIM_TIME_MIN),
            ..c.clone()
        });
    }
    out
}
