//! Partial-order reduction: where one step commutes with everything else that can happen
//! before it, explore it first and not the other orders (an *ample set*, as SPIN does), because
//! they lead to the same states.
//!
//! Within one tick the processes' timers and the store's requests interleave freely, and with
//! three managers and two updaters most of those orders differ only in which process went
//! first. The first step reduced here is **a due timer of process `p`, fired before the other
//! processes' steps**, when:
//!
//! 1. `p` has nothing in flight, nothing waiting to be written and no reply held: no other
//!    process's step can change `p`'s state before it fires, and the local time it reads is
//!    fixed until the next tick, which cannot come while `p`'s timer is due; so firing now or
//!    later gives the same result, and nothing but `p`'s own pause or crash can disable it;
//! 2. firing changes only `p` and adds `p`'s own requests: no store write, no note to the ghost
//!    observations, no other process touched (a pinger's pings go straight to the batcher, so
//!    its timer is never reduced). Every other step reads the store, the ghost, its own process
//!    and its own request, so it commutes with this one; and since the properties read only the
//!    ghost, the step is invisible to them.
//!
//! After the tick's first step (`tick_start` clear) the timer is explored alone. At the start of
//! a tick, holders' calls, pauses and crashes (which happen only then) are explored too, beside
//! the timer: any other first step ends the tick's start as firing `p` does, and then commutes
//! with it.
//!
//! The second step reduced here is **a read delivered, before the other processes' steps**
//! (the request `r` of process `p`, reading collection `C`), when:
//!
//! 3. `p` has nothing else in flight, no reply held and no due timer, and no other process
//!    that may write `C` (`Node::may_write`) has anything in flight or a due timer: no step
//!    before `r` lands can change what it reads (a process with nothing to do does nothing
//!    until the next tick, which cannot come while `r` is in flight), and nothing but `r`
//!    changes `p`; `p` is not the presence batcher, whose state the pingers' steps change;
//! 4. delivering it, and losing it where the `lost` fault may strike, changes only `p` and the
//!    requests in flight (and the fault budget), as for 2; every other step reads the store's
//!    other collections, its own process and the ghost, so it commutes with this one.
//!
//! Faults that let a step depend on every write (`stale-read`, whose read sees the store
//! before the last write; `rollback`, which undoes one) or let real time pass with requests
//! in flight (`delay`) turn this second reduction off.
//!
//! These are the conditions C0-C2 of the ample-set method (Peled; Clarke, Grumberg and Peled,
//! *Model Checking*, ch. 10); C3 (no cycle closed by reduced steps only) holds because a step
//! within a tick never returns to an earlier state. Condition 2 is checked on the actor's
//! transition (remembered, so the look costs one lookup): the step is local when the actor
//! reports nothing, which debug builds (and so the tests) assert by computing the whole step,
//! and otherwise the whole step is computed and compared. Condition 4 is checked the same way
//! (the store's answer and the process's transition are remembered too). Every violation and
//! every milestone reachable without the reduction is still reached; a counterexample is
//! shortest among the reduced orders, so it may carry a timer that fired before it mattered.
//! `ModelConfig::partial_order` (`tenure check --no-partial-order`) turns it off, to cross-check.

use crate::harness::faults::Fault;
use crate::harness::state::State;
use crate::harness::{Action, How, PresenceRole, TenureModel};
use crate::speedup::memo::Input;
use tenure::actor::Actor;

/// The due timer to fire alone in `s`, if one meets the conditions above.
pub(crate) fn lone_timer(model: &TenureModel, s: &State) -> Option<Action> {
    (0..s.procs.len()).find_map(|p| {
        let p8 = u8::try_from(p).ok()?;
        let idle = s.procs[p].held.is_empty() && requests_of(s, p) == 0;
        if !(idle && model.timer_due(s, p)) {
            return None;
        }
        // Firing changes only `p` and the requests in flight when the actor reports nothing (a
        // note is what could reach the ghost or another process, see `TenureModel::absorb`);
        // when it does report, the whole step tells (many notes change nothing observed).
        let now = model.now(s, p);
        let out = model.run_actor(
            &mut s.procs[p].clone(),
            Input::Timeout(now),
            model.alone(s, p),
        );
        let (_, notes) = &*out;
        let action = Action::Fire(p8);
        debug_assert!(
            !notes.is_empty() || only_changes(model, s, action, p8),
            "a timer that reports nothing changed more than its process: {action}"
        );
        (notes.is_empty() || only_changes(model, s, action, p8)).then_some(action)
    })
}

/// Process `p`'s requests in flight or filter-checked and waiting to be written.
fn requests_of(s: &State, p: usize) -> usize {
    s.flights
        .iter()
        .chain(s.checked.iter())
        .filter(|f| usize::from(f.proc) == p)
        .count()
}

/// The request in flight whose delivery (as `Deliver(i, _)`, every way it may land) meets
/// conditions 3 and 4 above, if one does.
pub(crate) fn lone_read(model: &TenureModel, s: &State) -> Option<u8> {
    let faults = model.config.faults;
    if [Fault::StaleRead, Fault::Rollback, Fault::Delay]
        .into_iter()
        .any(|f| faults.has(f))
    {
        return None;
    }
    let busy = |q: usize| model.timer_due(s, q) || requests_of(s, q) > 0;
    s.flights.iter().enumerate().find_map(|(i, f)| {
        let p = usize::from(f.proc);
        let op = &f.req.op;
        let alone = !op.is_write()
            && model.presence_role(p) != Some(PresenceRole::Batcher)
            && s.procs[p].held.is_empty()
            && !model.timer_due(s, p)
            && requests_of(s, p) == 1
            && op.collection().is_none_or(|c| {
                (0..s.procs.len()).all(|q| q == p || !s.procs[q].actor.may_write(c) || !busy(q))
            });
        let i = u8::try_from(i).ok()?;
        let lost = faults.has(Fault::Lost) && s.budget > 0;
        // A fault restarts the windows of G6, M6 and T6 where they are checked: in the ghost.
        let quiet_restarts = lost && model.tracks_quiet() && s.ghost.quiet_since != s.real;
        // Each way it may land: local when the process reports nothing (debug builds check the
        // whole step), otherwise when the whole step says so.
        let lands_locally = |how: How| {
            let quiet = model.read_reports_nothing(s, f, how == How::Lost);
            let action = Action::Deliver(i, how);
            debug_assert!(
                !quiet || only_changes(model, s, action, f.proc),
                "a read that reports nothing changed more than its process: {action}"
            );
            quiet || only_changes(model, s, action, f.proc)
        };
        let local = alone
            && !quiet_restarts
            && lands_locally(How::Ok)
            && (!lost || lands_locally(How::Lost));
        local.then_some(i)
    })
}

/// Whether taking `action` in `s` changes only process `p` and `p`'s requests (and, for a
/// fault, the budget), and reveals nothing.
fn only_changes(model: &TenureModel, s: &State, action: Action, p: u8) -> bool {
    let mut next = s.clone();
    let mut why = Vec::new();
    model.step(&mut next, action, &mut why);
    let faulty = matches!(action, Action::Deliver(_, how) if how != How::Ok);
    local_to(p, s, &next, &why) && (next.budget == s.budget || faulty)
}

/// Whether `next` differs from `s` only in process `p`, in requests `p` added or that were
/// delivered, and (for a fault) in the budget.
fn local_to(p: u8, s: &State, next: &State, why: &[tenure::property::Violation]) -> bool {
    let others_same = s
        .procs
        .iter()
        .zip(next.procs.iter())
        .enumerate()
        .all(|(q, (a, b))| q == usize::from(p) || a == b);
    why.is_empty()
        && others_same
        && next.ghost == s.ghost
        && next.store == s.store
        && next.checked == s.checked
        && next.real == s.real
        && next.violated == s.violated
        && next.reached == s.reached
        && !next.tick_start
        && next.before_write == s.before_write
        && next.unreplicated == s.unreplicated
        && next
            .flights
            .iter()
            .filter(|f| f.proc != p)
            .eq(s.flights.iter().filter(|f| f.proc != p))
}

/// At the start of a tick: of `actions`, keeps the steps that happen only at the start of a tick
/// and those of the step explored alone (`alone` tells).
pub(crate) fn keep_ample(actions: &mut Vec<Action>, alone: impl Fn(&Action) -> bool) {
    actions.retain(|a| alone(a) || a.only_at_tick_start());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::harness::state::Flight;
    use stateright::Model;
    use std::collections::{HashSet, VecDeque};
    use std::hash::RandomState;
    use tenure::mutant::Protocol;

    fn after(model: &TenureModel, s: &State, action: Action) -> State {
        let mut next = s.clone();
        model.step(&mut next, action, &mut Vec::new());
        next
    }

    /// Where `f` is in flight in `s` (each flight of these states is distinct).
    fn position(s: &State, f: &Flight) -> u8 {
        let i = s
            .flights
            .iter()
            .position(|g| g == f)
            .expect("still in flight");
        u8::try_from(i).expect("few flights")
    }

    /// `action`, taken in `from`, as the same step in `to` (the requests in flight renumbered).
    fn same_step(action: Action, from: &State, to: &State) -> Action {
        match action {
            Action::Deliver(j, how) => {
                Action::Deliver(position(to, &from.flights[usize::from(j)]), how)
            }
            other => other,
        }
    }

    /// Every read the reduction delivers alone commutes with every other step enabled beside
    /// it: delivering it (or losing it) and then taking the other step ends in the same state
    /// as the other way round, violations and milestones included. (That it also commutes
    /// with the steps that become enabled later is what its conditions argue, and what the
    /// verdicts' cross-check in `tests/check.rs` tests.)
    #[test]
    fn a_read_delivered_alone_commutes_with_every_other_step() {
        let config = ModelConfig {
            managers: 3,
            leases: 2,
            updaters: 2,
            horizon: 2,
            ..ModelConfig::default_for(Protocol::Lease)
        };
        let model = TenureModel::new(config);
        let mut plain = model.clone();
        plain.config.partial_order = false;
        let mut queue = VecDeque::from([model.initial()]);
        let mut seen = HashSet::new();
        let hasher = RandomState::new();
        let (mut alone, mut pairs) = (0, 0);
        while let Some(s) = queue.pop_front() {
            // (By hash: a state's interior mutability is only its parts' kept flags.)
            let hash = std::hash::BuildHasher::hash_one(&hasher, &s);
            if seen.len() > 30_000 || !seen.insert(hash) {
                continue;
            }
            let mut all = Vec::new();
            plain.actions(&s, &mut all);
            if let Some(i) = lone_read(&model, &s) {
                alone += 1;
                let r = s.flights[usize::from(i)].clone();
                assert!(!r.req.op.is_write(), "only reads are delivered alone");
                let ways = all
                    .iter()
                    .filter(|a| matches!(a, Action::Deliver(j, _) if *j == i))
                    .copied()
                    .collect::<Vec<_>>();
                for t in all
                    .iter()
                    .filter(|a| !ways.contains(a) && !a.only_at_tick_start())
                {
                    for &way in &ways {
                        let after_r = after(&model, &s, way);
                        let r_then_t = after(&model, &after_r, same_step(*t, &s, &after_r));
                        let after_t = after(&model, &s, *t);
                        let way_after_t = match way {
                            Action::Deliver(_, how) => Action::Deliver(position(&after_t, &r), how),
                            other => other,
                        };
                        let t_then_r = after(&model, &after_t, way_after_t);
                        assert_eq!(r_then_t, t_then_r, "{way} and {t} do not commute");
                        pairs += 1;
                    }
                }
            }
            let mut reduced = Vec::new();
            model.actions(&s, &mut reduced);
            queue.extend(reduced.into_iter().filter_map(|a| model.next_state(&s, a)));
        }
        eprintln!("{} states, {alone} reads alone, {pairs} pairs", seen.len());
        assert!(
            alone > 100 && pairs > 100,
            "{alone} reads alone, {pairs} pairs"
        );
    }
}
