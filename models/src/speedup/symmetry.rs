//! Symmetry reduction: states that differ only in the order of interchangeable processes are
//! one state to the checker.
//!
//! Interchangeable means: the same kind of actor on the same local clock, with nothing in its
//! state, its requests or the ghost observations that names it. The clock updaters qualify (an
//! updater's writes carry no writer id), so updaters that share a clock rate are put in a
//! canonical order and the requests in flight follow them. Managers, units and pingers do not:
//! their holder, writer and key names live in the store, in their requests and in the ghost
//! state, so swapping two of them would mean renaming every one of those names. The default
//! configurations give every process its own clock rate on purpose (a fast clock against a slow
//! one is where timing bugs live), so the reduction pays off when clocks are equal, as with
//! `--rate-error-ppm 0` or more updaters than rates.
//!
//! stateright applies a representative function in its depth-first search only; a run with
//! symmetry therefore searches depth first, and its counterexamples are real paths but not
//! necessarily the shortest.

use crate::harness::state::{Node, State};

/// The representative of `s`'s class: interchangeable updaters sorted by their state's hash.
/// Two states of one class map to the same representative unless two distinct updaters share a
/// hash, which costs only some reduction, never soundness (the result is always a permutation).
pub fn representative(s: &State) -> State {
    let n = s.procs.len();
    let updaters: Vec<usize> = (0..n)
        .filter(|p| matches!(s.procs[*p].actor, Node::Updater(_)))
        .collect();
    // perm[old] = new position of process `old`.
    let mut perm: Vec<usize> = (0..n).collect();
    let mut moved = false;
    let mut done = vec![false; n];
    for &first in &updaters {
        if done[first] {
            continue;
        }
        let clock = s.procs[first].clock;
        let positions: Vec<usize> = updaters
            .iter()
            .copied()
            .filter(|p| s.procs[*p].clock == clock)
            .collect();
        positions.iter().for_each(|p| done[*p] = true);
        if positions.len() < 2 {
            continue;
        }
        let mut members = positions.clone();
        members.sort_by_key(|p| (s.procs[*p].fingerprint(), *p));
        for (slot, member) in positions.iter().zip(&members) {
            perm[*member] = *slot;
            moved |= slot != member;
        }
    }
    let mut r = s.clone();
    if !moved {
        return r;
    }
    for (old, proc) in s.procs.iter().enumerate() {
        r.procs[perm[old]] = proc.clone();
    }
    for f in r.flights.iter_mut().chain(r.checked.iter_mut()) {
        f.proc = perm
            .get(usize::from(f.proc))
            .and_then(|p| u8::try_from(*p).ok())
            .unwrap_or(f.proc);
    }
    r.canonical_order();
    r
}

#[cfg(test)]
mod tests {
    use super::representative;
    use crate::harness::{Action, TenureModel};
    use crate::{FaultSet, ModelConfig};
    use tenure::mutant::Protocol;

    fn model(rate_error_ppm: u32) -> TenureModel {
        TenureModel::new(ModelConfig {
            updaters: 2,
            rate_error_ppm,
            faults: FaultSet::NONE,
            ..ModelConfig::default_for(Protocol::Clock)
        })
    }

    /// From the initial state: a tick, then updater `p`'s timer fires.
    fn after_fire(m: &TenureModel, p: u8) -> crate::harness::state::State {
        let mut s = m.initial();
        let mut why = Vec::new();
        m.step(&mut s, Action::Tick, &mut why);
        m.step(&mut s, Action::Fire(p), &mut why);
        assert!(why.is_empty());
        s
    }

    #[test]
    fn mirrored_states_of_equal_updaters_share_a_representative() {
        let m = model(0);
        let (a, b) = (after_fire(&m, 0), after_fire(&m, 1));
        assert_ne!(a, b, "updater 0 and updater 1 fired: different states");
        assert_eq!(a.flights.len(), 1);
        let (ra, rb) = (representative(&a), representative(&b));
        assert_eq!(ra, rb);
        // The request in flight followed its updater.
        let owner = usize::from(ra.flights[0].proc);
        assert!(
            ra.procs[owner].due().is_none(),
            "the owner awaits its reply"
        );
        assert_eq!(representative(&ra), ra, "a representative is its own");
    }

    #[test]
    fn updaters_on_different_clocks_are_left_in_place() {
        let m = model(100_000);
        let (a, b) = (after_fire(&m, 0), after_fire(&m, 1));
        assert_eq!(representative(&a), a);
        assert_eq!(representative(&b), b);
        assert_ne!(representative(&a), representative(&b));
    }
}
