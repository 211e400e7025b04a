//! Transitions remembered.
//!
//! The core's actors and the store are pure: a timer, a store reply or a holder's call handed to
//! a process in a given state always gives the same next state and the same effects, and an
//! operation on a given store the same store and answer. The checker hands the same few
//! thousand process states and stores the same inputs millions of times (in every interleaving
//! of what the other processes do), so it runs each distinct (part, input) once and looks the
//! rest up. Interned parts ([`crate::speedup::shared`]) make the key cheap: a kept part is identified by
//! where it is kept.

use crate::harness::state::{Answer, CallKind, Flight, Out, Proc};
use crate::protocol::WatchedChange;
use crate::speedup::shared::Shared;
use dashmap::DashMap;
use nohash_hasher::NoHashHasher;
use std::hash::{BuildHasherDefault, Hash};
use std::sync::Arc;
use std::time::Duration;
use tenure::effects::{OpId, Request};
use tenure::property::Violation;
use tenure::substrate::MemoryStore;
use tenure::time::LocalTime;

/// Most transitions remembered per memo. Past it, new transitions are computed every time
/// (memory stays bounded; an entry takes a hash, a pointer and its output).
pub const ENTRIES_MAX: usize = 2_000_000;

/// What a process was handed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Its timer fired at local time `now`.
    Timeout(LocalTime),
    /// A store reply arrived at local time `now`.
    Reply(OpId, Answer, LocalTime),
    /// Holder `h<holder>` called its lease manager (a claim or extension for `duration`, or a
    /// token check) on lease `l<lease>` with request id `req`, at local time `now`.
    Call {
        kind: CallKind,
        req: u64,
        lease: u8,
        holder: u8,
        duration: Duration,
        /// The token's epoch, for a release (0 otherwise).
        epoch: u64,
        now: LocalTime,
    },
}

/// An operation reaching the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreInput {
    /// The request.
    pub req: Shared<Request>,
    /// Written by `_id` without re-checking its filter (fault `non-atomic-cas`).
    pub unchecked: bool,
}

/// What an operation did to the store.
#[derive(Clone, Debug)]
pub(crate) struct StoreOutcome {
    /// The store's answer.
    pub(crate) result: Answer,
    /// A read: the store is as it was.
    pub(crate) read: bool,
    /// What changed in the watched documents, if any of them did.
    pub(crate) changed: Option<Arc<WatchedChange>>,
}

/// A process's transitions: what it was handed, and whether its operation ids are renumbered
/// afterwards (`TenureModel::alone`).
pub type ActorMemo = Memo<Proc, (Input, bool), Arc<Out>>;

/// The store's transitions.
pub(crate) type StoreMemo = Memo<MemoryStore, StoreInput, StoreOutcome>;

/// An edit of the requests in flight. Copying the set, editing the copy, hashing it and finding
/// it kept already took a tenth of a lease check's instructions; the sets are few (thousands),
/// so each (kept set, edit) is worked out once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FlightEdit {
    /// The request at this index left (delivered, or filter-checked to write later).
    Remove(u8),
    /// A request was issued, and is inserted where the canonical order puts it
    /// ([`crate::harness::state::State::canonical_order`]).
    Insert {
        /// The issuing process and its incarnation.
        proc: u8,
        incarnation: u8,
        /// For a clock advance, the base it swaps against.
        clock_base: Option<u64>,
        /// The request, by its 64-bit hash (as the interner knows parts: [`crate::speedup::shared`]).
        req: u64,
    },
}

/// The requests in flight's edits.
pub(crate) type FlightsMemo = Memo<Vec<Flight>, FlightEdit, ()>;

/// The store's server time set at each tick (presence): (kept store, server time in ns) → the
/// kept store with it, instead of a copy of every document at every tick.
pub(crate) type ServerTimeMemo = Memo<MemoryStore, u64, ()>;

/// What P6 judges of a pruner's write, other than the store after it (the memo's part).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct PruneInput {
    /// The store before the write, by its 64-bit hash (as the interner knows it).
    pub(crate) before: u64,
    /// The pass's current slot (the ghost's, set when the pass began).
    pub(crate) slot: Option<i64>,
    /// The sequences referenced by the pings the pass must keep, when it began.
    pub(crate) referenced: Vec<u64>,
}

/// A pruner's write as P6 sees it: (kept store after it, [`PruneInput`]) → (P6's violation,
/// whether ping slots were removed). Building the snapshots of both stores at every pruner
/// write took a fifth of a presence search; the (store, write) pairs recur in every
/// interleaving of the other processes' steps.
pub(crate) type PruneMemo = Memo<MemoryStore, PruneInput, (Option<Violation>, bool)>;

/// P2 at an idle tick: (kept store, (hash of the pings sent, the last prune's cut)) → P2's
/// violation. Comparing the store's ping bits with the OR of those sent built and formatted
/// both sides at every idle tick; the (store, pings sent) pairs recur in every interleaving of
/// the watcher's and the pruner's steps.
pub(crate) type SettledMemo = Memo<MemoryStore, (u64, i64), Option<Violation>>;

/// (Kept part, input) → (kept next part, output).
///
/// A transition is known by the 64-bit hash of its (kept part, input), as the interner knows a
/// part ([`crate::speedup::shared`]): a remembered transition then takes a third of the memory it took
/// with its input beside it, and a lookup reads less of a table far out of cache. Debug builds
/// keep the input too, and compare.
pub struct Memo<P: 'static, I: Hash + Eq, O> {
    seen: DashMap<u64, Remembered<P, I, O>, BuildHasherDefault<NoHashHasher<u64>>>,
    /// Hashes (kept part, input).
    hasher: ahash::RandomState,
}

/// What a transition did.
struct Remembered<P: 'static, I, O> {
    next: Shared<P>,
    out: O,
    #[cfg(debug_assertions)]
    key: (usize, I),
    #[cfg(not(debug_assertions))]
    key: std::marker::PhantomData<I>,
}

impl<P: 'static, I: Hash + Eq, O> std::fmt::Debug for Memo<P, I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Memo({} transitions)", self.seen.len())
    }
}

impl<P: 'static, I: Hash + Eq, O> Default for Memo<P, I, O> {
    fn default() -> Self {
        Memo {
            seen: DashMap::default(),
            hasher: ahash::RandomState::new(),
        }
    }
}

impl<P: Clone + Hash + 'static, I: Clone + Hash + Eq, O: Clone> Memo<P, I, O> {
    /// Runs `input` on `part` (as `run` does), or replays what it did the first time.
    /// `intern` keeps the next part so that it can be handed out again.
    pub fn call(
        &self,
        part: &mut Shared<P>,
        input: I,
        run: impl FnOnce(&mut Shared<P>, I) -> O,
        intern: impl FnOnce(&mut Shared<P>),
    ) -> O {
        let Some(at) = part.kept_at() else {
            return run(part, input);
        };
        let hash = self.hasher.hash_one((at, &input));
        if let Some(hit) = self.seen.get(&hash) {
            #[cfg(debug_assertions)]
            assert!(
                hit.key == (at, input.clone()),
                "two transitions share a 64-bit hash"
            );
            *part = hit.next.clone();
            return hit.out.clone();
        }
        #[cfg(debug_assertions)]
        let key = (at, input.clone());
        #[cfg(not(debug_assertions))]
        let key = std::marker::PhantomData;
        let out = run(part, input);
        intern(part);
        if self.seen.len() < ENTRIES_MAX {
            let next = part.clone();
            self.seen.entry(hash).or_insert_with(|| Remembered {
                next,
                out: out.clone(),
                key,
            });
        }
        out
    }

    /// The 64-bit hash of `value` with this memo's hasher: to put a large input into a key by
    /// its hash, as parts are.
    pub fn hash(&self, value: &impl Hash) -> u64 {
        self.hasher.hash_one(value)
    }

    /// Transitions remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether none is remembered yet.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{ActorMemo, Input};
    use crate::harness::{Action, TenureModel};
    use crate::speedup::shared::Interner;
    use crate::ModelConfig;
    use std::cell::Cell;
    use std::sync::Arc;
    use tenure::mutant::Protocol;

    #[test]
    fn a_transition_runs_once_and_replays_the_same_process_and_effects() {
        let m = TenureModel::new(ModelConfig::default_for(Protocol::Clock));
        let mut s = m.initial();
        m.step(&mut s, Action::Tick, &mut Vec::new());
        let procs = Interner::default();
        let start = {
            let mut p = s.procs[0].clone();
            procs.intern(&mut p);
            p
        };
        let now = start.clock.local(s.real);
        let memo = ActorMemo::default();
        let runs = Cell::new(0);
        let call = || {
            let mut p = start.clone();
            let out = memo.call(
                &mut p,
                (Input::Timeout(now), false),
                |proc, (input, _)| {
                    runs.set(runs.get() + 1);
                    let Input::Timeout(now) = input else {
                        unreachable!("a timeout was given")
                    };
                    Arc::new(crate::harness::state::timeout(
                        &mut proc.make_mut().actor,
                        now,
                    ))
                },
                |p| procs.intern(p),
            );
            (p, out)
        };
        let (first, first_out) = call();
        let (again, again_out) = call();
        assert_eq!(runs.get(), 1, "the second call is a lookup");
        assert_ne!(first, start, "the timer changed the updater");
        assert_eq!(first, again);
        assert_eq!(first_out, again_out);
        assert!(!first_out.0.is_empty(), "the updater reads the clock");
        assert_eq!(memo.len(), 1);
    }
}
