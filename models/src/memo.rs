//! Actor transitions remembered.
//!
//! The core's actors are pure: a timer or a store reply handed to a process in a given state
//! always gives the same next state and the same effects. The checker hands the same few
//! thousand process states the same inputs millions of times (in every interleaving of what the
//! other processes do), so it runs each distinct (process, input) once and looks the rest up.
//! Interned processes ([`crate::shared`]) make the key cheap: a kept process is identified by
//! where it is kept.

use crate::shared::Shared;
use crate::state::{Out, Proc};
use dashmap::DashMap;
use tenure::effects::OpId;
use tenure::substrate::OpResult;
use tenure::time::LocalTime;

/// Most transitions remembered. Past it, new transitions are computed every time (memory stays
/// bounded; about 1 KiB each).
pub const ENTRIES_MAX: usize = 2_000_000;

/// What a process was handed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    /// Its timer fired at local time `now`.
    Timeout(LocalTime),
    /// A store reply arrived at local time `now`.
    Reply(OpId, OpResult, LocalTime),
}

/// (Kept process, input) → (kept next process, its effects).
#[derive(Debug, Default)]
pub struct Memo {
    seen: DashMap<(usize, Input), (Shared<Proc>, Out), ahash::RandomState>,
}

impl Memo {
    /// Runs `input` on `proc` (as `run` does), or replays what it did the first time.
    /// `intern` keeps the next process so that it can be handed out again.
    pub fn call(
        &self,
        proc: &mut Shared<Proc>,
        input: Input,
        run: impl FnOnce(&mut Proc, Input) -> Out,
        intern: impl FnOnce(&mut Shared<Proc>),
    ) -> Out {
        let Some(at) = proc.kept_at() else {
            return run(proc.make_mut(), input);
        };
        let key = (at, input);
        if let Some(hit) = self.seen.get(&key) {
            *proc = hit.0.clone();
            return hit.1.clone();
        }
        let out = run(proc.make_mut(), key.1.clone());
        intern(proc);
        if self.seen.len() < ENTRIES_MAX {
            self.seen.insert(key, (proc.clone(), out.clone()));
        }
        out
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
    use super::{Input, Memo};
    use crate::model::{Action, TenureModel};
    use crate::shared::Interner;
    use crate::ModelConfig;
    use std::cell::Cell;
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
        let memo = Memo::default();
        let runs = Cell::new(0);
        let call = || {
            let mut p = start.clone();
            let out = memo.call(
                &mut p,
                Input::Timeout(now),
                |proc, input| {
                    runs.set(runs.get() + 1);
                    let Input::Timeout(now) = input else {
                        unreachable!("a timeout was given")
                    };
                    proc.actor.timeout(now)
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
