//! Partial-order reduction: where one step commutes with everything else that can happen
//! before it, explore it first and not the other orders (an *ample set*, as SPIN does), because
//! they lead to the same states.
//!
//! Within one tick the processes' timers and the store's requests interleave freely, and with
//! three managers and two updaters most of those orders differ only in which process went
//! first. The step reduced here is **a due timer of process `p`, fired before the other
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
//! These are the conditions C0-C2 of the ample-set method (Peled; Clarke, Grumberg and Peled,
//! *Model Checking*, ch. 10); C3 (no cycle closed by reduced steps only) holds because a step
//! within a tick never returns to an earlier state. Condition 2 is checked on the actor's
//! transition (remembered, so the look costs one lookup): the step is local when the actor
//! reports nothing, which debug builds (and so the tests) assert by computing the whole step,
//! and otherwise the whole step is computed and compared. Every violation and every milestone
//! reachable without the reduction is still reached; a counterexample is shortest among the
//! reduced orders, so it may carry a timer that fired before it mattered.
//! `ModelConfig::partial_order` (`tenure check --no-partial-order`) turns it off, to
//! cross-check.

use crate::memo::Input;
use crate::model::{Action, TenureModel};
use crate::state::State;

/// The due timer to fire alone in `s`, if one meets the conditions above.
pub(crate) fn lone_timer(model: &TenureModel, s: &State) -> Option<Action> {
    (0..s.procs.len()).find_map(|p| {
        let p8 = u8::try_from(p).ok()?;
        let idle = s.procs[p].held.is_empty()
            && !s
                .flights
                .iter()
                .chain(s.checked.iter())
                .any(|f| f.proc == p8);
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

/// Whether taking `action` in `s` changes only process `p` and `p`'s requests, and reveals no
/// violation.
fn only_changes(model: &TenureModel, s: &State, action: Action, p: u8) -> bool {
    let mut next = s.clone();
    let mut why = Vec::new();
    model.step(&mut next, action, &mut why);
    local_to(p, s, &next, &why)
}

/// Whether `next` differs from `s` only in process `p` and in requests `p` added.
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
        && next.budget == s.budget
        && !next.tick_start
        && next.before_write == s.before_write
        && next.unreplicated == s.unreplicated
        && next
            .flights
            .iter()
            .filter(|f| f.proc != p)
            .eq(s.flights.iter())
}

/// At the start of a tick: of `actions`, keeps the steps that happen only at the start of a tick
/// and the lone timer `alone`.
pub(crate) fn keep_ample(actions: &mut Vec<Action>, alone: Action) {
    actions.retain(|a| *a == alone || a.only_at_tick_start());
}
