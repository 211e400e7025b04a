//! Raw core throughput: the baseline every driver (model checker, simulator, MongoDB adapter) is
//! compared against. Effects are executed on the in-memory reference store, so the figures are
//! the protocol logic's own cost with no I/O.
//!
//! Run: `cargo bench --bench core`.
//! - `lease_manager/claim_or_extend`: one claim-or-extend call of a lease manager, end to end
//!   (the call plus every store reply it needs); throughput is in manager events (one
//!   `handle_*` call each), so "elem/s" reads as events per second.
//! - `presence_watcher/sync_10000_keys`: one watcher sync over 10,000 live keys (read the current
//!   and previous slot documents, decode every bit, diff against the known state), warm (the
//!   beings are already known) and cold (the first sync, which also loads every being).

mod shared;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use shared::lease::{claim_or_extend, drive, manager_holding_many, SECOND};
use tenure::actor::Actor;
use tenure::presence::{Agent, PresenceConfig, PresenceWatcher};
use tenure::substrate::MemoryStore;
use tenure::time::LocalTime;

fn lease_manager(c: &mut Criterion) {
    let mut group = c.benchmark_group("lease_manager");
    // Events per claim-or-extend, measured once so the throughput unit is exact.
    let (mut m, mut store, t) = manager_holding_many(1);
    let events = claim_or_extend(&mut m, &mut store, t + 1_000_000, 1);
    group.throughput(Throughput::Elements(events));
    let mut req = 2;
    let mut now = t + 1_000_000;
    group.bench_function("claim_or_extend", |b| {
        b.iter(|| {
            now += 1_000_000;
            req += 1;
            black_box(claim_or_extend(&mut m, &mut store, now, req))
        })
    });
    group.finish();
}

const KEYS: usize = 10_000;

/// A store where `KEYS` pingers have registered and pinged the current slot, and a watcher
/// that watches all of them, not yet synced.
fn presence_world() -> (MemoryStore, PresenceWatcher, LocalTime) {
    let mut store = MemoryStore::new();
    let epoch = 1_000 * SECOND;
    store.set_server_time(epoch);
    let config = PresenceConfig::new("bench");
    let mut agent = Agent::new(config.clone(), None, None).expect("valid config");
    let now = LocalTime(0);
    for k in 0..KEYS {
        let fx = agent
            .handle_start(&format!("unit-{k}"), now)
            .expect("valid key");
        drive(&mut store, fx, |id, r| agent.handle_reply(id, r, now));
    }
    let fx = agent.handle_flush(now);
    drive(&mut store, fx, |id, r| agent.handle_reply(id, r, now));
    let mut w = PresenceWatcher::new(config, None).expect("valid config");
    for k in 0..KEYS {
        drop(
            w.handle_watch(&format!("unit-{k}"), now)
                .expect("valid key"),
        );
    }
    (store, w, now)
}

fn sync(store: &mut MemoryStore, w: &mut PresenceWatcher, now: LocalTime) -> u64 {
    let fx = w.handle_start_sync(now);
    let (notes, events) = drive(store, fx, |id, r| w.handle_reply(id, r, now));
    black_box(notes);
    events
}

fn presence_watcher(c: &mut Criterion) {
    let mut group = c.benchmark_group("presence_watcher");
    group.sample_size(20);
    let (mut store, mut w, now) = presence_world();
    sync(&mut store, &mut w, now);
    let alive = w.alive_keys().count();
    assert_eq!(
        alive, KEYS,
        "every pinging key is alive after the first sync"
    );
    group.throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("sync_10000_keys_warm", |b| {
        b.iter(|| sync(&mut store, &mut w, now))
    });
    let (store, w, now) = presence_world();
    group.bench_function("sync_10000_keys_cold", |b| {
        b.iter_batched(
            || (store.clone(), w.clone()),
            |(mut s, mut w)| sync(&mut s, &mut w, now),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, lease_manager, presence_watcher);
criterion_main!(benches);
