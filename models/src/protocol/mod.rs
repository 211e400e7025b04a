//! From transitions to verdicts: each store change and each actor note is handed to the core's
//! property functions (`tenure::property`), and a violation sets its bit in the ghost state.
//! Nothing here restates a property; it only gathers the observations the core's functions take.

pub mod clock;
pub mod leadership;
pub mod lease;
pub mod presence;

use crate::harness::state::{Note, State};
use crate::harness::TenureModel;
use leadership::FirstLease;
use tenure::clock::CLOCK_ID;
use tenure::property::{PropertyId, Verdict, Violation};
use tenure::substrate::{Collection, Document, MemoryStore};

/// `id`'s place in `PropertyId::ALL` (the bit of its counterexample in the shared word of
/// those reported).
pub fn index(id: PropertyId) -> usize {
    PropertyId::ALL.iter().position(|p| *p == id).unwrap_or(63)
}

/// Global time in the store (0 while the clock document is absent). The model's actors never
/// write a corrupt clock document: if one appeared, a debug build says so.
pub fn global(store: &MemoryStore) -> u64 {
    let g = tenure::clock::decode_stored(store.get(Collection::Clock, CLOCK_ID));
    debug_assert!(g.is_ok(), "a corrupt clock document in the model: {g:?}");
    g.map_or(0, |g| g.0)
}

pub(crate) fn record(why: &mut Vec<Violation>, verdict: Verdict) {
    if let Err(v) = verdict {
        why.push(v);
    }
}

/// A change of the documents the properties watch (the clock and every lease), as far as it
/// depends on the documents alone. It is worked out once per store and operation (and
/// remembered with the store's transition, [`crate::speedup::memo`]); [`store_change`] adds what depends
/// on the run (the ghost's clock history, real time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchedChange {
    /// Global time before and after (0 while the clock document is absent).
    pub(crate) global: (u64, u64),
    /// Whether the clock document existed before.
    pub(crate) clock_existed: bool,
    /// What the lease store's properties say of the leases that changed.
    pub(crate) lease_violations: Vec<Violation>,
    /// The first lease after the change, if it changed (T6).
    pub(crate) first_lease: Option<FirstLease>,
}

impl WatchedChange {
    /// The change from `before` to `after`, or `None` if none of the watched documents
    /// changed (most writes: a failed compare-and-swap, a presence write). Compares the raw
    /// documents and decodes only the leases that changed.
    pub(crate) fn between(
        model: &TenureModel,
        before: &MemoryStore,
        after: &MemoryStore,
    ) -> Option<WatchedChange> {
        fn clock(s: &MemoryStore) -> Option<&Document> {
            s.get(Collection::Clock, CLOCK_ID)
        }
        let global = (global(before), global(after));
        let mut any = clock(before) != clock(after);
        let mut change = WatchedChange {
            global,
            clock_existed: clock(before).is_some(),
            lease_violations: Vec::new(),
            first_lease: None,
        };
        let (leases_changed, violations, first_lease) =
            lease::changes(model, before, after, global.1);
        change.lease_violations = violations;
        change.first_lease = first_lease;
        any |= leases_changed;
        any.then_some(change)
    }
}

/// Observes one change of the watched documents. `clock_base` is what the writer meant to
/// swap against, if the change is a clock advance.
pub(crate) fn store_change(
    model: &TenureModel,
    s: &mut State,
    change: &WatchedChange,
    clock_base: Option<u64>,
    why: &mut Vec<Violation>,
) {
    let real = model.real(s);
    let (g0, g1) = change.global;
    if g1 != g0 || !change.clock_existed {
        clock::moved(model, s, change, clock_base, real, why);
    }
    why.extend(change.lease_violations.iter().cloned());
    if let Some(first) = change.first_lease {
        leadership::lease_freed(model, s, first, real);
    }
}

/// Observes one note of process `p`.
pub(crate) fn note(
    model: &TenureModel,
    s: &mut State,
    p: usize,
    note: &Note,
    why: &mut Vec<Violation>,
) {
    let real = model.real(s);
    match note {
        Note::Updater(out) => clock::updater_note(s, out),
        Note::ClockWatcher(out) => clock::watcher_note(s, out, why),
        Note::Manager(out) => lease::manager_note(model, s, p, out, real, why),
        Note::Tracker(out) => leadership::tracker_note(model, s, p, out, real, why),
        Note::Pinger(out) => presence::pinger_note(model, s, p, out, why),
        Note::PresenceWatcher(out) => presence::watcher_note(model, s, out, why),
        // The model runs pingers and the batcher apart, never as an agent. A resignation's
        // release is observed as its manager's note.
        Note::Batcher(_) | Note::Agent(_) | Note::Pruner(_) | Note::Resigned(_) => {}
    }
}

/// Things that must happen in some run, or the model is vacuous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Milestone {
    /// A `claim_leader` ticket was answered true.
    LeaderConfirmed,
    /// A second unit became leader.
    LeadershipMoved,
    /// A unit became a minion.
    BecameMinion,
    /// A watcher reported a key alive.
    KeyAlive,
    /// A watcher reported a key dead after it had been alive.
    KeyDied,
    /// The pruner removed a slot document.
    SlotsPruned,
    /// An updater advanced global time.
    ClockAdvanced,
    /// The clock watcher emitted a value.
    WatcherEmitted,
    /// A lease was claimed.
    LeaseClaimed,
    /// A lease changed holder (epoch 2 or later granted).
    HolderChanged,
    /// A manager expired a lease.
    LeaseExpired,
    /// A claim was denied because another holder held the lease.
    ClaimDenied,
    /// A holder's release vacated its lease.
    LeaseReleased,
}

impl Milestone {
    /// Every milestone.
    pub const ALL: [Milestone; 13] = [
        Milestone::LeaderConfirmed,
        Milestone::LeadershipMoved,
        Milestone::BecameMinion,
        Milestone::KeyAlive,
        Milestone::KeyDied,
        Milestone::SlotsPruned,
        Milestone::ClockAdvanced,
        Milestone::WatcherEmitted,
        Milestone::LeaseClaimed,
        Milestone::HolderChanged,
        Milestone::LeaseExpired,
        Milestone::ClaimDenied,
        Milestone::LeaseReleased,
    ];

    /// The `sometimes` property's name.
    pub fn name(self) -> &'static str {
        match self {
            Milestone::ClockAdvanced => "sometimes: the clock advances",
            Milestone::WatcherEmitted => "sometimes: the clock watcher emits",
            Milestone::LeaseClaimed => "sometimes: a lease is claimed",
            Milestone::HolderChanged => "sometimes: a lease changes holder",
            Milestone::LeaseExpired => "sometimes: a lease expires",
            Milestone::ClaimDenied => "sometimes: a claim is denied",
            Milestone::LeaseReleased => "sometimes: a holder releases a lease",
            Milestone::LeaderConfirmed => "sometimes: claim_leader answers true",
            Milestone::LeadershipMoved => "sometimes: leadership moves",
            Milestone::BecameMinion => "sometimes: a unit becomes a minion",
            Milestone::KeyAlive => "sometimes: a key is reported alive",
            Milestone::KeyDied => "sometimes: a key is reported dead after being alive",
            Milestone::SlotsPruned => "sometimes: the pruner removes a slot",
        }
    }

    /// The key stateright knows its `sometimes` property by (see [`crate::properties`]).
    pub fn key(self) -> &'static str {
        match self {
            Milestone::ClockAdvanced => "advance",
            Milestone::WatcherEmitted => "emitted",
            Milestone::LeaseClaimed => "claimed",
            Milestone::HolderChanged => "changed",
            Milestone::LeaseExpired => "expired",
            Milestone::ClaimDenied => "denied",
            Milestone::LeaseReleased => "release",
            Milestone::LeaderConfirmed => "leader",
            Milestone::LeadershipMoved => "moved",
            Milestone::BecameMinion => "minion",
            Milestone::KeyAlive => "alive",
            Milestone::KeyDied => "died",
            Milestone::SlotsPruned => "pruned",
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Marks `m` reached.
pub(crate) fn reach(s: &mut State, m: Milestone) {
    s.reached |= m.bit();
}

type Condition = fn(&TenureModel, &State) -> bool;

/// Fails only in the first state found with the property's bit set: every later state of that
/// run carries the bit too, and stateright keeps the last counterexample it is told about, which
/// would make it the longest instead of the shortest (breadth first, the first found is the
/// shortest, give or take the work split between checker threads).
fn holds<const I: u32>(m: &TenureModel, s: &State) -> bool {
    s.violated & m.state_bit_at(I as usize) == 0 || m.already_reported(1u64 << I)
}

/// Holds only in the first state found reaching the milestone (see `holds`): every later state
/// of that run has reached it too, and each time the condition holds stateright records the
/// discovery again, cloning its path.
fn reached<const I: u16>(m: &TenureModel, s: &State) -> bool {
    s.reached & (1u16 << I) != 0 && !m.already_witnessed(1u64 << I)
}

/// The `always` condition for `id`: its bit in `State::violated` is clear.
pub fn holds_fn(id: PropertyId) -> Condition {
    const TABLE: [Condition; 40] = [
        holds::<0>,
        holds::<1>,
        holds::<2>,
        holds::<3>,
        holds::<4>,
        holds::<5>,
        holds::<6>,
        holds::<7>,
        holds::<8>,
        holds::<9>,
        holds::<10>,
        holds::<11>,
        holds::<12>,
        holds::<13>,
        holds::<14>,
        holds::<15>,
        holds::<16>,
        holds::<17>,
        holds::<18>,
        holds::<19>,
        holds::<20>,
        holds::<21>,
        holds::<22>,
        holds::<23>,
        holds::<24>,
        holds::<25>,
        holds::<26>,
        holds::<27>,
        holds::<28>,
        holds::<29>,
        holds::<30>,
        holds::<31>,
        holds::<32>,
        holds::<33>,
        holds::<34>,
        holds::<35>,
        holds::<36>,
        holds::<37>,
        holds::<38>,
        holds::<39>,
    ];
    let i = PropertyId::ALL.iter().position(|p| *p == id).unwrap_or(0);
    TABLE[i]
}

/// The `sometimes` condition for `m`.
pub fn reached_fn(m: Milestone) -> Condition {
    const TABLE: [Condition; Milestone::ALL.len()] = [
        reached::<0>,
        reached::<1>,
        reached::<2>,
        reached::<3>,
        reached::<4>,
        reached::<5>,
        reached::<6>,
        reached::<7>,
        reached::<8>,
        reached::<9>,
        reached::<10>,
        reached::<11>,
        reached::<12>,
    ];
    TABLE[m as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_place_and_a_check_one_bit_each() {
        assert!(PropertyId::ALL.len() <= 40);
        for (i, p) in PropertyId::ALL.iter().enumerate() {
            assert_eq!(index(*p), i);
        }
        for protocol in tenure::mutant::Protocol::ALL {
            let m = TenureModel::new(crate::ModelConfig::default_for(protocol));
            let bits: Vec<u32> = PropertyId::ALL.iter().map(|p| m.state_bit(*p)).collect();
            let checked = m.checked_properties();
            for (p, b) in PropertyId::ALL.iter().zip(&bits) {
                assert_eq!(*b != 0, checked.contains(p), "{p:?} in {protocol:?}");
                assert!(b.is_power_of_two() || *b == 0);
            }
            let all = bits.iter().fold(0, |a, b| a | b);
            assert_eq!(all.count_ones() as usize, checked.len(), "one bit each");
        }
    }
}
