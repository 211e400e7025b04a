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

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use tenure::actor::Actor;
use tenure::effects::{Effects, OpId, Request};
use tenure::lease::{LeaseManager, ManagerConfig, ManagerOutput, RequestId};
use tenure::presence::{Agent, PresenceConfig, PresenceWatcher};
use tenure::substrate::MemoryStore;
use tenure::substrate::{fields, Collection, Document, OpResult, Value};
use tenure::time::LocalTime;

/// Runs `fx` to completion on `store`: every request is applied and its reply fed back through
/// `reply`. Returns the notifications and the number of events (replies) fed.
fn drive<N>(
    store: &mut MemoryStore,
    fx: Effects<N>,
    mut reply: impl FnMut(OpId, OpResult) -> Effects<N>,
) -> (Vec<N>, u64) {
    let mut queue: Vec<Request> = fx.requests;
    let mut notes = fx.notifications;
    let mut events = 0;
    while let Some(req) = queue.pop() {
        let result = store.apply(&req.op);
        let more = reply(req.id, result);
        events += 1;
        queue.extend(more.requests);
        notes.extend(more.notifications);
    }
    (notes, events)
}

const SECOND: u64 = 1_000_000_000;

fn set_global(store: &mut MemoryStore, nanos: u64) {
    store.put(
        Collection::Clock,
        Document::new(
            tenure::clock::CLOCK_ID,
            fields([(tenure::clock::TIME_FIELD, Value::from(nanos))]),
        ),
    );
}

/// A started manager holding lease "a" for "h", at local time 1 s.
fn manager_holding() -> (LeaseManager, MemoryStore, u64) {
    let mut store = MemoryStore::new();
    set_global(&mut store, 0);
    let mut m = LeaseManager::new(ManagerConfig::new("bench", "ctl-0")).expect("valid config");
    let now = LocalTime(SECOND);
    let fx = m.handle_start(now);
    drive(&mut store, fx, |id, r| m.handle_reply(id, r, now));
    (m, store, SECOND)
}

fn lease_manager(c: &mut Criterion) {
    let mut group = c.benchmark_group("lease_manager");
    // Events per claim-or-extend, measured once so the throughput unit is exact.
    let (mut m, mut store, t) = manager_holding();
    let fx = m.handle_claim(
        RequestId(0),
        "a",
        "h",
        Duration::from_secs(60),
        LocalTime(t),
    );
    let (notes, replies) = drive(&mut store, fx, |id, r| m.handle_reply(id, r, LocalTime(t)));
    assert!(
        matches!(notes.last(), Some(ManagerOutput::Claimed { .. })),
        "{notes:?}"
    );
    group.throughput(Throughput::Elements(replies + 1));
    let mut req = 1;
    let mut now = t;
    group.bench_function("claim_or_extend", |b| {
        b.iter(|| {
            // Global time moves on, so every call is a real extension of the stored term.
            now += 1_000_000;
            set_global(&mut store, now);
            let at = LocalTime(now);
            let fx = m.handle_claim(RequestId(req), "a", "h", Duration::from_secs(60), at);
            req += 1;
            let (notes, _) = drive(&mut store, fx, |id, r| m.handle_reply(id, r, at));
            black_box(notes)
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
