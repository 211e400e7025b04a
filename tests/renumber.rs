//! Renumbering an actor's operation ids (`tenure::effects::Renumber`) changes nothing it does.
//! The model checker relies on it to make states that differ only in how many operations came
//! before one state.

use std::collections::VecDeque;
use std::time::Duration;
use tenure::actor::Actor;
use tenure::clock::{Updater, UpdaterConfig};
use tenure::effects::{Effects, OpId, Renumber, Request};
use tenure::lease::{LeaseManager, ManagerConfig, RequestId};
use tenure::presence::batcher::BatcherOutput;
use tenure::presence::{Batcher, BatcherConfig, Ping, BATCH_MAX};
use tenure::substrate::MemoryStore;
use tenure::time::LocalTime;

/// An actor as the drivers below see it: the core's driver interface, renumberable.
trait Driven: Actor<Output: Note> + Renumber + Clone {}
impl<A: Actor<Output: Note> + Renumber + Clone> Driven for A {}

/// A notification, compared across the two copies: one that names an operation names it by
/// the id its copy gave it.
trait Note: PartialEq + Clone + std::fmt::Debug {
    /// This note as the renumbered copy says it, its ids `offset` below the plain copy's.
    fn lowered(&self, _offset: u64) -> Self {
        self.clone()
    }
}
impl Note for tenure::lease::ManagerOutput {}
impl Note for tenure::clock::UpdaterOutput {}
impl Note for BatcherOutput {
    fn lowered(&self, offset: u64) -> Self {
        match self.clone() {
            BatcherOutput::Flushed { bulk, docs, lag } => BatcherOutput::Flushed {
                bulk: bulk.lowered(offset),
                docs,
                lag,
            },
            BatcherOutput::Requeued { bulk, docs, cause } => BatcherOutput::Requeued {
                bulk: bulk.lowered(offset),
                docs,
                cause,
            },
            other => other,
        }
    }
}

/// Two copies of one actor, fed the same inputs on stores of their own: `plain` keeps its ids,
/// `renumbered` is renumbered from 0 after every call (its requests in flight with it), as the
/// model checker does. `offset` is how far the renumbered one's ids are below the plain one's.
struct Pair<A: Driven> {
    plain: A,
    renumbered: A,
    stores: [MemoryStore; 2],
    in_flight: VecDeque<(Request, Request)>,
    offset: u64,
}

impl<A: Driven> Pair<A> {
    fn new(actor: A) -> Self {
        Pair {
            renumbered: actor.clone(),
            plain: actor,
            stores: [MemoryStore::new(), MemoryStore::new()],
            in_flight: VecDeque::new(),
            offset: 0,
        }
    }

    /// Makes one call on both copies (`call` is told which: 0 plain, 1 renumbered), then
    /// renumbers.
    fn call(&mut self, call: impl Fn(&mut A, usize) -> Effects<A::Output>) -> Vec<A::Output> {
        let (p, mut r) = (call(&mut self.plain, 0), call(&mut self.renumbered, 1));
        let lowered: Vec<_> = p
            .notifications
            .iter()
            .map(|n| n.lowered(self.offset))
            .collect();
        assert_eq!(lowered, r.notifications);
        assert_eq!(p.requests.len(), r.requests.len());
        let by = self.renumbered.oldest_op_id().0;
        self.renumbered.lower_op_ids(by);
        for (_, req) in self.in_flight.iter_mut() {
            req.id = req.id.lowered(by);
        }
        for req in &mut r.requests {
            req.id = req.id.lowered(by);
        }
        self.offset += by;
        for (p, r) in p.requests.into_iter().zip(r.requests) {
            assert_eq!(p.op, r.op, "the same operation");
            assert_eq!(
                p.id.0,
                r.id.0 + self.offset,
                "ids shifted by the renumbering"
            );
            self.in_flight.push_back((p, r));
        }
        assert_eq!(
            self.renumbered.oldest_op_id(),
            self.in_flight
                .front()
                .map_or(OpId(self.plain.oldest_op_id().0 - self.offset), |(_, r)| r
                    .id),
        );
        p.notifications
    }

    /// Runs every request in flight, in order, answering both copies.
    fn settle(&mut self, now: LocalTime) -> Vec<A::Output> {
        let mut notes = Vec::new();
        while let Some((p, r)) = self.in_flight.pop_front() {
            let (pr, rr) = (self.stores[0].apply(&p.op), self.stores[1].apply(&r.op));
            assert_eq!(pr, rr, "the stores answer alike");
            let answers = [(p.id, pr), (r.id, rr)];
            notes.extend(self.call(|a, i| a.handle_reply(answers[i].0, answers[i].1.clone(), now)));
        }
        notes
    }
}

fn ping(model: &str, slot: i64, bit: i64) -> Ping {
    Ping {
        model: model.into(),
        slot,
        field: "0".into(),
        bit,
    }
}

fn at(secs: u64) -> LocalTime {
    LocalTime(secs * 1_000_000_000)
}

#[test]
fn a_renumbered_lease_manager_claims_checks_and_expires_as_the_original() {
    let manager = LeaseManager::new(ManagerConfig::new("app", "ctl-0")).expect("valid config");
    let mut pair = Pair::new(manager);
    pair.call(|m, _| m.handle_start(at(1)));
    pair.settle(at(1));
    let d = Duration::from_secs(3);
    pair.call(|m, _| m.handle_claim(RequestId(1), "l0", "h0", d, at(2)));
    let claimed = pair.settle(at(2));
    assert!(
        claimed
            .iter()
            .any(|n| matches!(n, tenure::lease::ManagerOutput::Claimed { .. })),
        "{claimed:?}"
    );
    pair.call(|m, _| m.handle_check(RequestId(2), "l0", "h0", at(3)));
    pair.call(|m, _| m.handle_claim(RequestId(3), "l0", "h0", d, at(3)));
    pair.settle(at(3));
    for t in 4..40 {
        pair.call(|m, _| m.handle_timeout(at(t)));
        pair.settle(at(t));
    }
    assert!(pair.offset > 0, "the renumbering was exercised");
    assert_eq!(pair.renumbered.oldest_op_id(), OpId(0));
}

#[test]
fn a_renumbered_clock_updater_advances_as_the_original() {
    let updater = Updater::new(UpdaterConfig::juju()).expect("valid config");
    let mut pair = Pair::new(updater);
    pair.call(|u, _| u.handle_start(at(0)));
    pair.settle(at(0));
    let mut advanced = 0;
    for t in 1..20 {
        pair.call(|u, _| u.handle_timeout(at(t)));
        advanced += pair
            .settle(at(t))
            .iter()
            .filter(|n| matches!(n, tenure::clock::UpdaterOutput::Advanced { .. }))
            .count();
    }
    assert!(advanced > 5, "the clock advanced {advanced} times");
    assert!(pair.offset > 5);
}

/// The batcher is the one actor with several requests in flight at once: renumbering lowers
/// them all, and it still answers each bulk as the original does.
#[test]
fn a_renumbered_presence_batcher_flushes_as_the_original() {
    let batcher = Batcher::new(BatcherConfig {
        flush_interval: Duration::from_secs(1),
        jitter_seed: None,
        mutant: None,
    })
    .expect("valid config");
    let mut pair = Pair::new(batcher);
    let mut flushed = 0;
    for round in 0..4 {
        let now = at(round + 1);
        // More slot documents than one bulk takes: two bulks in flight, then a third.
        for slot in 0..(BATCH_MAX as i64 + 5) {
            pair.call(|b, _| b.handle_ping(&ping("m", slot * 30, 1 << round), now));
        }
        pair.call(|b, _| b.handle_flush(now));
        pair.call(|b, _| b.handle_ping(&ping("n", 0, 1), now));
        pair.call(|b, _| b.handle_flush(now));
        assert_eq!(pair.in_flight.len(), 3);
        flushed += pair
            .settle(now)
            .iter()
            .filter(|n| matches!(n, BatcherOutput::Flushed { .. }))
            .count();
    }
    assert_eq!(flushed, 12);
    assert!(pair.offset >= 9, "renumbered by {}", pair.offset);
}
