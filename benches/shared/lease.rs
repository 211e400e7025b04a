//! The raw lease manager loop, shared by the core's benchmark (`benches/core.rs`) and the
//! simulator's (`sim/benches/sim.rs`), so both measure the same baseline: one manager
//! claiming and extending one lease on the reference store, with no executor in between.

use std::time::Duration;
use tenure::actor::Actor;
use tenure::effects::{Effects, OpId, Request};
use tenure::lease::{LeaseManager, ManagerConfig, ManagerOutput, RequestId};
use tenure::substrate::{fields, Collection, Document, MemoryStore, OpResult, Value};
use tenure::time::LocalTime;

/// Runs `fx` to completion on `store`: every request is applied and its reply fed back through
/// `reply`. Returns the notifications and the number of events (replies) fed.
pub fn drive<N>(
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

pub const SECOND: u64 = 1_000_000_000;

pub fn set_global(store: &mut MemoryStore, nanos: u64) {
    store.put(
        Collection::Clock,
        Document::new(
            tenure::clock::CLOCK_ID,
            fields([(tenure::clock::TIME_FIELD, Value::from(nanos))]),
        ),
    );
}

/// A started manager holding `n` leases ("a", then "b1", "b2", ...) for "h", at local time 1 s:
/// what a manager of a namespace of `n` leases has in its cache.
pub fn manager_holding_many(n: usize) -> (LeaseManager, MemoryStore, u64) {
    let mut store = MemoryStore::new();
    set_global(&mut store, 0);
    let mut m = LeaseManager::new(ManagerConfig::new("bench", "ctl-0")).expect("valid config");
    let now = LocalTime(SECOND);
    let fx = m.handle_start(now);
    drive(&mut store, fx, |id, r| m.handle_reply(id, r, now));
    for i in 0..n {
        let lease = if i == 0 {
            "a".to_owned()
        } else {
            format!("b{i}")
        };
        let fx = m.handle_claim(
            RequestId(i as u64),
            &lease,
            "h",
            Duration::from_secs(60),
            now,
        );
        let (notes, _) = drive(&mut store, fx, |id, r| m.handle_reply(id, r, now));
        assert!(
            matches!(notes.last(), Some(ManagerOutput::Claimed { .. })),
            "{notes:?}"
        );
    }
    (m, store, SECOND)
}

/// One claim-or-extend at local time `now` (global time moved on to it, so it really extends
/// the stored term); returns the manager events it took (the call and every reply).
pub fn claim_or_extend(m: &mut LeaseManager, store: &mut MemoryStore, now: u64, req: u64) -> u64 {
    set_global(store, now);
    let at = LocalTime(now);
    let fx = m.handle_claim(RequestId(req), "a", "h", Duration::from_secs(60), at);
    let (notes, replies) = drive(store, fx, |id, r| m.handle_reply(id, r, at));
    debug_assert!(matches!(notes.last(), Some(ManagerOutput::Claimed { .. })));
    replies + 1
}
