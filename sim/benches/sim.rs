//! The simulator's speed, side by side with the core's raw event rate in one run (this
//! machine is shared and noisy: compare the ratio, not the absolute figures).
//!
//! Run: `cargo bench -p tenure-sim --bench sim`.
//! - `events/core_raw_claim_or_extend`: one lease manager claiming and extending one lease on
//!   the reference store, driven directly (the loop of `benches/core.rs`): manager events per
//!   second with no executor in between; `..._100_leases`: the same with a hundred leases in
//!   the manager's cache, as each manager of the lease-bench world has.
//! - `events/sim_lease_bench_100_managers`: the `lease-bench` preset (100 managers each keeping
//!   its own lease, 20 calls a second each, 2 updaters), 10 simulated seconds: events (actor
//!   calls) per second on one core. Every property is checked as the run goes.
//! - `acceleration/presence_10000_keys`: the `presence-scale` preset (10,000 keys over 10
//!   agents, a watcher and a pruner, 30 s slots, every survivable fault, seed 1), a simulated
//!   hour: "elem/s" reads as simulated seconds per second, the time acceleration.

#[path = "../../benches/shared/lease.rs"]
mod lease;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;
use tenure_sim::{simulate, SimConfig};

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("events");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));

    // The raw core, with one lease in the manager's cache and with a hundred (as each manager
    // of the lease-bench world has): a manager's work per call grows with what it caches.
    for (name, leases) in [
        ("core_raw_claim_or_extend", 1),
        ("core_raw_claim_or_extend_100_leases", 100),
    ] {
        let (mut m, mut store, t) = lease::manager_holding_many(leases);
        let per_call = lease::claim_or_extend(&mut m, &mut store, t + 1_000_000, 1_000);
        // A batch of calls per iteration, so the figure is not the timer's.
        const CALLS: u64 = 1_000;
        group.throughput(Throughput::Elements(per_call * CALLS));
        let (mut now, mut req) = (t + 1_000_000, 1_000);
        group.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..CALLS {
                    now += 1_000_000;
                    req += 1;
                    black_box(lease::claim_or_extend(&mut m, &mut store, now, req));
                }
            })
        });
    }

    let bench = SimConfig {
        sim_time: Duration::from_secs(10),
        ..SimConfig::preset("lease-bench").expect("a preset")
    };
    let run = simulate(&bench, 1, false);
    assert!(!run.failed(), "{:?}", run.found);
    group.throughput(Throughput::Elements(run.stats.events));
    group.bench_function("sim_lease_bench_100_managers", |b| {
        b.iter(|| black_box(simulate(&bench, 1, false)))
    });
    group.finish();
}

fn acceleration(c: &mut Criterion) {
    let mut group = c.benchmark_group("acceleration");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(40));
    let scale = SimConfig {
        sim_time: Duration::from_secs(3_600),
        ..SimConfig::preset("presence-scale").expect("a preset")
    };
    let run = simulate(&scale, 1, false);
    assert!(!run.failed(), "{:?}", run.found);
    group.throughput(Throughput::Elements(run.sim_ns / 1_000_000_000));
    group.bench_function("presence_10000_keys", |b| {
        b.iter(|| black_box(simulate(&scale, 1, false)))
    });
    group.finish();
}

criterion_group!(benches, events, acceleration);
criterion_main!(benches);
