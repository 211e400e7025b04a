//! From transitions to verdicts: each store change and each actor note is handed to the core's
//! property functions (`tenure::property`), and a violation sets its bit in the ghost state.
//! Nothing here restates a property; it only gathers the observations the core's functions take.

use crate::model::{belief_tenure, namespace, TenureModel};
use crate::state::{Belief, CallKind, Node, Note, State};
use tenure::clock::watcher::WatcherOutput;
use tenure::clock::{UpdaterOutput, CLOCK_ID};
use tenure::leadership::{TicketKind, TrackerOutput};
use tenure::lease::{LeaseDoc, ManagerOutput};
use tenure::property::clock::{
    g1_stored, g2_chain, g3_lowest, g3_rate, g5_watcher_strictly_later, ClockWrite,
};
use tenure::property::leadership::{
    t1_backed, t3_one_release_waiter, t4_tickets_once, t5_twice, t6_served_in_time, LeaderAnswer,
    TicketEvent,
};
use tenure::property::lease::{
    l5_claim_lasts, l6_exclusion, m4_not_held_after_refresh, m6_expired_in_time, store_changes,
    GrantedTerm, LeaseChange,
};
use tenure::property::{PropertyId, Verdict, Violation};
use tenure::substrate::{Collection, Document, MemoryStore, Op, ReadConcern};
use tenure::time::GlobalTime;

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
/// remembered with the store's transition, [`crate::memo`]); [`store_change`] adds what depends
/// on the run (the ghost's clock history, real time).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WatchedChange {
    /// Global time before and after (0 while the clock document is absent).
    global: (u64, u64),
    /// Whether the clock document existed before.
    clock_existed: bool,
    /// What the lease store's properties say of the leases that changed.
    lease_violations: Vec<Violation>,
    /// Whether the first lease is free after the change, if it changed (T6).
    first_lease_free: Option<bool>,
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
        let decode = |d: Option<&Document>| d.and_then(|d| LeaseDoc::decode(d, namespace()).ok());
        let global = (global(before), global(after));
        let mut any = clock(before) != clock(after);
        let mut change = WatchedChange {
            global,
            clock_existed: clock(before).is_some(),
            lease_violations: Vec::new(),
            first_lease_free: None,
        };
        for (k, id) in model.lease_ids() {
            let (b, a) = (
                before.get(Collection::Leases, id),
                after.get(Collection::Leases, id),
            );
            if b == a {
                continue;
            }
            let (b, a) = (decode(b), decode(a));
            if a == b {
                continue;
            }
            any = true;
            if k == 0 {
                change.first_lease_free = Some(a.as_ref().is_none_or(|d| d.term.is_none()));
            }
            let lease = LeaseChange {
                before: b,
                after: a,
                global: GlobalTime(global.1),
            };
            record(&mut change.lease_violations, store_changes(&[lease]));
        }
        any.then_some(change)
    }
}

/// M6 at real `now`: every lease still held whose expiry global time passed must be expired
/// within the window.
pub(crate) fn expiries_due(model: &TenureModel, s: &State, now: u64, why: &mut Vec<Violation>) {
    let window = model.expiry_window();
    for (k, id) in model.lease_ids() {
        let Some(term) = s
            .store
            .get(Collection::Leases, id)
            .and_then(|d| LeaseDoc::decode(d, namespace()).ok())
            .and_then(|d| d.term)
        else {
            continue;
        };
        let expiry = term.expiry();
        let passed = s.ghost.clock_samples.iter().find(|(_, g)| *g > expiry.0);
        if let Some((passed_at, _)) = passed {
            let lease = model.lease_name(k);
            record(
                why,
                m6_expired_in_time(lease, expiry, *passed_at, s.ghost.quiet_since, now, window),
            );
        }
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
    let existed = change.clock_existed;
    if g1 != g0 || !existed {
        record(why, g1_stored(GlobalTime(g0), GlobalTime(g1)));
        if existed && g1 > g0 && model.observes(PropertyId::G2) {
            let write = (clock_base.unwrap_or(g0), g1);
            let cw = |(from, to): (u64, u64)| ClockWrite {
                from: GlobalTime(from),
                to: GlobalTime(to),
            };
            record(
                why,
                match s.ghost.clock_write_last {
                    Some(last) => g2_chain(GlobalTime(last.0), &[cw(last), cw(write)]),
                    None => g2_chain(GlobalTime(0), &[cw(write)]),
                },
            );
            s.ghost.clock_write_last = Some(write);
        }
        if model.observes(PropertyId::G3) {
            let ppm = model.config.rate_error_ppm;
            let sample = (real, GlobalTime(g1));
            let lowest = s.ghost.clock_lowest.map(|(r, g)| (r, GlobalTime(g)));
            let both = [lowest.unwrap_or(sample), sample];
            let samples = if lowest.is_some() {
                &both[..]
            } else {
                &both[1..]
            };
            record(why, g3_rate(samples, ppm, model.config.clock_step_max()));
            s.ghost.clock_lowest = g3_lowest(samples, ppm).map(|(r, g)| (r, g.0));
        }
        if model.observes(PropertyId::G6) {
            s.ghost.clock_last = Some((real, g1));
        }
        if model.observes(PropertyId::M6) {
            s.ghost.clock_samples.push((real, g1));
        }
    }
    why.extend(change.lease_violations.iter().cloned());
    if model.observes(PropertyId::T6) {
        if let Some(free) = change.first_lease_free {
            s.ghost.leadership_mut().free_since = match (free, s.ghost.leadership().free_since) {
                (true, Some(since)) => Some(since),
                (true, None) => Some(real),
                (false, _) => None,
            };
        }
    }
}

/// T6: while the leadership lease is free and a running unit waits to lead (its tracker alive
/// and not leader), the window since it was freed (or the last fault) must not have closed.
pub(crate) fn candidates_served(
    model: &TenureModel,
    s: &State,
    now: u64,
    why: &mut Vec<Violation>,
) {
    let Some(free_since) = s.ghost.leadership().free_since else {
        return;
    };
    let waiting = (0..model.config.managers).any(|m| {
        let proc = &s.procs[model.manager_proc(m)];
        let candidate = match &proc.actor {
            Node::Unit(u) => !u.tracker().is_stopped() && !u.tracker().is_leader(),
            _ => false,
        };
        proc.runs() && candidate
    });
    if waiting {
        record(
            why,
            t6_served_in_time(
                model.lease_name(0),
                free_since,
                s.ghost.quiet_since,
                now,
                model.service_window(),
            ),
        );
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
        Note::Updater(UpdaterOutput::Advanced { .. }) => reach(s, Milestone::ClockAdvanced),
        Note::Updater(_) => {}
        Note::ClockWatcher(WatcherOutput::Time(t)) => {
            if let Some(last) = s.ghost.watcher_emitted {
                record(why, g5_watcher_strictly_later(&[GlobalTime(last), *t]));
            }
            s.ghost.watcher_emitted = Some(t.0);
            reach(s, Milestone::WatcherEmitted);
        }
        Note::ClockWatcher(_) => {}
        Note::Manager(out) => manager_note(model, s, p, out, real, why),
        Note::Tracker(out) => tracker_note(model, s, p, out, real, why),
        Note::Pinger(out) => crate::presence::pinger_note(model, s, p, out, why),
        Note::PresenceWatcher(out) => crate::presence::watcher_note(model, s, out, why),
        Note::Batcher(_) | Note::Pruner(_) => {}
    }
}

fn tracker_note(
    model: &TenureModel,
    s: &mut State,
    p: usize,
    out: &TrackerOutput,
    real: u64,
    why: &mut Vec<Violation>,
) {
    let Some(m) = model.manager_of(p) else {
        return;
    };
    let d = model.config.lease_duration;
    match out {
        TrackerOutput::Claim { duration, .. } => record(why, t5_twice(&[*duration], d)),
        TrackerOutput::WaitReleased { .. } => {
            if let Some(w) = s.ghost.leadership_mut().waiters.get_mut(usize::from(m)) {
                *w = w.saturating_add(1);
                record(why, t3_one_release_waiter(&vec![1; usize::from(*w)]));
            }
        }
        TrackerOutput::Ticket { id, kind, value } => {
            let open = s
                .ghost
                .leadership()
                .tickets
                .iter()
                .position(|t| t.unit == m && t.id == id.0);
            let Some(i) = open else {
                // Resolved twice, or never issued: the core's T4 says which.
                record(
                    why,
                    t4_tickets_once(&[TicketEvent::Resolved(*id, *value)], false),
                );
                return;
            };
            let ticket = s.ghost.leadership_mut().tickets.remove(i);
            if *kind == TicketKind::ClaimLeader && *value {
                reach(s, Milestone::LeaderConfirmed);
                let clock = s.procs[p].clock;
                let answer = LeaderAnswer {
                    application: "l0".to_owned(),
                    unit: format!("h{m}"),
                    issued_real: ticket.issued,
                    answered_real: real,
                    claim_until_real: clock.real_of(clock.local(ticket.issued).after(d)),
                };
                let tenures: Vec<_> = s.ghost.beliefs.iter().map(belief_tenure).collect();
                record(why, t1_backed(&[answer], &tenures));
            }
        }
        TrackerOutput::BecameLeader { .. } => {
            s.ghost.leadership_mut().leaders |= 1 << m;
            if s.ghost.leadership().leaders.count_ones() > 1 {
                reach(s, Milestone::LeadershipMoved);
            }
        }
        TrackerOutput::BecameMinion => reach(s, Milestone::BecameMinion),
        TrackerOutput::Lapsed { .. } | TrackerOutput::Stopped(_) => {}
    }
}

fn manager_note(
    model: &TenureModel,
    s: &mut State,
    p: usize,
    out: &ManagerOutput,
    real: u64,
    why: &mut Vec<Violation>,
) {
    // A unit's release-waiter returned.
    if let (ManagerOutput::Released { .. } | ManagerOutput::WaitCancelled { .. }, Some(m)) =
        (out, model.manager_of(p))
    {
        if let Some(w) = s.ghost.leadership_mut().waiters.get_mut(usize::from(m)) {
            *w = w.saturating_sub(1);
        }
    }
    let answered = match out {
        ManagerOutput::Claimed { req, .. }
        | ManagerOutput::Denied { req, .. }
        | ManagerOutput::Checked { req, .. }
        | ManagerOutput::Failed { req, .. } => Some(req.0),
        _ => None,
    };
    let call = answered.and_then(|r| {
        let i = s.ghost.calls.iter().position(|c| c.req == r)?;
        Some(s.ghost.calls.remove(i))
    });
    match out {
        ManagerOutput::Claimed {
            lease,
            epoch,
            local_deadline,
            global_expiry,
            ..
        } => {
            reach(s, Milestone::LeaseClaimed);
            if epoch.0 > 1 {
                reach(s, Milestone::HolderChanged);
            }
            // A holder's own call carries the global time at its start (L5); a unit's tracker
            // claims on its own, so its claims are checked for exclusion only.
            if let Some(call) = call.filter(|c| c.kind == CallKind::Claim) {
                record(
                    why,
                    l5_claim_lasts(&[GrantedTerm {
                        lease: lease.clone(),
                        global_at_call_start: GlobalTime(call.global_at_start),
                        duration: call.duration,
                        expiry: *global_expiry,
                    }]),
                );
            }
            let (Some(holder), Some(k)) = (
                model.manager_of(p),
                lease.strip_prefix('l').and_then(|k| k.parse::<u8>().ok()),
            ) else {
                return;
            };
            let until = s.procs[p].clock.real_of(*local_deadline).max(real);
            s.ghost.beliefs.push(Belief {
                lease: k,
                holder,
                epoch: epoch.0,
                from: real,
                until,
            });
            // L6 compares the beliefs in one lease; the new one alone in its lease (most often)
            // has none to overlap, and its names need not be built.
            let same_lease = s.ghost.beliefs.iter().filter(|b| b.lease == k);
            if same_lease.clone().nth(1).is_some() {
                let tenures: Vec<_> = same_lease.map(belief_tenure).collect();
                record(why, l6_exclusion(&tenures));
            }
        }
        ManagerOutput::Denied { .. } => reach(s, Milestone::ClaimDenied),
        ManagerOutput::Checked {
            held, refreshed, ..
        } => record(
            why,
            m4_not_held_after_refresh(&[(held.is_some(), *refreshed)]),
        ),
        ManagerOutput::Expired { .. } => reach(s, Milestone::LeaseExpired),
        _ => {}
    }
}

/// Whether a read may be served stale: only reads that did not ask for linearizability.
pub(crate) fn tolerates_stale(op: &Op) -> bool {
    match op {
        Op::Read { concern, .. } | Op::Find { concern, .. } => {
            *concern != ReadConcern::Linearizable
        }
        _ => false,
    }
}

/// Whether a write carries a filter a non-atomic server could check apart from the write.
pub(crate) fn is_conditional_write(op: &Op) -> bool {
    match op {
        Op::Update { expect, .. } => !expect.is_empty(),
        Op::Delete { .. } => true,
        _ => false,
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
}

impl Milestone {
    /// Every milestone.
    pub const ALL: [Milestone; 12] = [
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
    const TABLE: [Condition; 12] = [
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
