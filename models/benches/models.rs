//! Model-checking throughput: unique states per second of each core-driven model, side by side
//! with a minimal hand-written stateright model of the same lease protocol (small integers, no
//! core, no abstraction) as the baseline.
//!
//! Run: `cargo bench -p tenure-models --bench models`. Criterion's "elem/s" is unique states/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stateright::{Checker, Model, Property};
use std::time::Duration;
use tenure::mutant::Protocol;
use tenure_models::run::{check, CheckOptions};
use tenure_models::{FaultSet, ModelConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The configurations measured: small enough for many samples, large enough to be steady.
fn configs() -> Vec<(&'static str, ModelConfig)> {
    let lease = ModelConfig {
        faults: FaultSet::NONE,
        ..ModelConfig::default_for(Protocol::Lease)
    };
    vec![
        ("clock", ModelConfig::default_for(Protocol::Clock)),
        ("lease_no_faults", lease),
        (
            "leadership_no_faults",
            ModelConfig {
                faults: FaultSet::NONE,
                ..ModelConfig::default_for(Protocol::Leadership)
            },
        ),
        (
            "presence_no_faults",
            ModelConfig {
                faults: FaultSet::NONE,
                ..ModelConfig::default_for(Protocol::Presence)
            },
        ),
    ]
}

fn core_models(c: &mut Criterion) {
    let mut group = c.benchmark_group("models");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, config) in configs() {
        let options = CheckOptions {
            threads: 1,
            ..CheckOptions::default()
        };
        let unique = check(&config, &options, &mut |_| {}).unique_states;
        eprintln!("{name}: {unique} unique states");
        group.throughput(Throughput::Elements(unique as u64));
        group.bench_function(name, |b| {
            b.iter(|| check(&config, &options, &mut |_| {}).unique_states)
        });
    }
    // Sized to explore about as many unique states as the core-driven lease model above, so
    // both meet the same hash-table and cache effects.
    let baseline = BaselineLease {
        managers: 4,
        horizon: 16,
        duration: 3,
        claims: 3,
        properties: 1,
    };
    // A diagnostic, not the target: the same baseline with as many properties as the lease
    // model checks (stateright looks each one up by name for every state), to tell the
    // checker's per-property cost from the model's own.
    let baseline_14 = BaselineLease {
        properties: PROPERTY_NAMES.len(),
        ..baseline.clone()
    };
    for (name, model) in [
        ("baseline_hand_written_lease", baseline),
        ("baseline_hand_written_lease_14_properties", baseline_14),
    ] {
        let unique = model
            .clone()
            .checker()
            .threads(1)
            .spawn_bfs()
            .join()
            .unique_state_count();
        eprintln!("{name}: {unique} unique states");
        group.throughput(Throughput::Elements(unique as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                model
                    .clone()
                    .checker()
                    .threads(1)
                    .spawn_bfs()
                    .join()
                    .unique_state_count()
            })
        });
    }
    group.finish();
}

/// Names for the baseline's properties: the lease model checks 10 `always` and 4 `sometimes`
/// properties, with names of this length.
const PROPERTY_NAMES: [&str; 14] = [
    "G1 clock never goes backwards",
    "G2 no lost or doubled increment",
    "G3 global time no faster than real time",
    "L2 holder changes only through expiry",
    "L3 extension never shortens",
    "L4 expiry only strictly after start + duration",
    "L5 claim lasts its duration from the call start",
    "L6 lease exclusion",
    "F1 fencing epochs strictly increase",
    "M4 not held only after refresh",
    "sometimes: a lease is claimed",
    "sometimes: a lease changes holder",
    "sometimes: a lease expires",
    "sometimes: a claim is denied",
];

/// A hand-written lease model: one clock, one lease, `managers` holders that claim up to
/// `claims` times each, read
/// global time, write with a compare-and-swap, and believe until `start + duration`; an expirer
/// removes the lease once global time is past its expiry. Real time and global time are the
/// same integer (no drift), as the smallest fair baseline.
#[derive(Clone)]
struct BaselineLease {
    managers: usize,
    horizon: u8,
    duration: u8,
    claims: u8,
    /// How many (identical) exclusion properties to register.
    properties: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct BaseState {
    now: u8,
    /// (holder, epoch, expiry)
    lease: Option<(u8, u8, u8)>,
    last_epoch: u8,
    managers: Vec<BaseManager>,
    claims_left: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BaseManager {
    Idle,
    /// Read global time `g` and the lease version it saw.
    Read {
        g: u8,
        seen: Option<(u8, u8, u8)>,
    },
    /// Believes it holds the lease until `until`.
    Holds {
        until: u8,
    },
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BaseAction {
    Tick,
    Start(usize),
    Write(usize),
    Expire,
}

impl Model for BaselineLease {
    type State = BaseState;
    type Action = BaseAction;

    fn init_states(&self) -> Vec<BaseState> {
        vec![BaseState {
            now: 0,
            lease: None,
            last_epoch: 0,
            managers: vec![BaseManager::Idle; self.managers],
            claims_left: vec![self.claims; self.managers],
        }]
    }

    fn actions(&self, s: &BaseState, actions: &mut Vec<BaseAction>) {
        if s.now < self.horizon {
            actions.push(BaseAction::Tick);
        }
        for (i, m) in s.managers.iter().enumerate() {
            match m {
                BaseManager::Idle | BaseManager::Done if s.claims_left[i] > 0 => {
                    actions.push(BaseAction::Start(i))
                }
                BaseManager::Read { .. } => actions.push(BaseAction::Write(i)),
                _ => {}
            }
        }
        if s.lease.is_some_and(|(_, _, e)| s.now > e) {
            actions.push(BaseAction::Expire);
        }
    }

    fn next_state(&self, s: &BaseState, a: BaseAction) -> Option<BaseState> {
        let mut n = s.clone();
        match a {
            BaseAction::Tick => {
                n.now += 1;
                for m in &mut n.managers {
                    if matches!(m, BaseManager::Holds { until } if *until <= n.now) {
                        *m = BaseManager::Done;
                    }
                }
            }
            BaseAction::Start(i) => {
                n.claims_left[i] -= 1;
                n.managers[i] = BaseManager::Read {
                    g: s.now,
                    seen: s.lease,
                }
            }
            BaseAction::Write(i) => {
                let BaseManager::Read { g, seen } = s.managers[i] else {
                    return None;
                };
                // Compare-and-swap on the version read; only a vacant lease can be claimed.
                n.managers[i] = if s.lease == seen && seen.is_none() {
                    n.last_epoch += 1;
                    n.lease = Some((i as u8, n.last_epoch, g + self.duration));
                    BaseManager::Holds {
                        until: g + self.duration,
                    }
                } else {
                    BaseManager::Done
                };
            }
            BaseAction::Expire => n.lease = None,
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let exclusion = |_: &BaselineLease, s: &BaseState| {
            s.managers
                .iter()
                .filter(|m| matches!(m, BaseManager::Holds { .. }))
                .count()
                <= 1
        };
        match self.properties {
            1 => vec![Property::always("lease exclusion", exclusion)],
            n => PROPERTY_NAMES
                .iter()
                .take(n)
                .map(|name| Property::always(name, exclusion))
                .collect(),
        }
    }

    fn within_boundary(&self, s: &BaseState) -> bool {
        s.now <= self.horizon
    }
}

criterion_group!(benches, core_models);
criterion_main!(benches);
