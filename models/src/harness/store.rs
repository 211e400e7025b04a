//! The store and the requests in flight: putting requests in flight, applying them to the
//! store (remembered, as the store is pure), and handing the answers back.

use super::{PresenceRole, TenureModel};
use crate::harness::faults::Fault;
use crate::harness::state::{Answer, Flight, State};
use crate::protocol::presence;
use crate::protocol::{self, WatchedChange};
use crate::speedup::memo::{FlightEdit, Input, StoreInput, StoreOutcome};
use crate::speedup::shared::Shared;
use std::sync::Arc;
use tenure::property::Violation;
use tenure::substrate::{MemoryStore, OpResult};

impl TenureModel {
    /// Sets what the store answers for server time (presence slots are numbered from it).
    pub(super) fn set_server_time(&self, s: &mut State) {
        let nanos = self.config.server_epoch_secs * 1_000_000_000 + self.real(s);
        self.server_time_memo.call(
            &mut s.store,
            nanos,
            |store, nanos| store.make_mut().set_server_time(nanos),
            |store| self.parts.intern_store(store),
        );
    }

    /// Puts `f` in flight, where the canonical order puts it (remembered per kept set).
    pub(super) fn add_flight(&self, s: &mut State, f: Flight) {
        let edit = FlightEdit::Insert {
            proc: f.proc,
            incarnation: f.incarnation,
            clock_base: f.clock_base,
            req: f.req.fingerprint(),
        };
        self.flights_memo.call(
            &mut s.flights,
            edit,
            |flights, _| {
                let flights = flights.make_mut();
                // After those that sort equal: as appending, then sorting stably, would.
                let at = flights.partition_point(|g| g.order() <= f.order());
                flights.insert(at, f);
            },
            |flights| self.parts.intern_flights(flights),
        );
    }

    /// Takes request `i` out of flight (remembered per kept set).
    pub(super) fn take_flight(&self, s: &mut State, i: u8) -> Flight {
        let f = s.flights[usize::from(i)].clone();
        self.flights_memo.call(
            &mut s.flights,
            FlightEdit::Remove(i),
            |flights, _| {
                flights.make_mut().remove(usize::from(i));
            },
            |flights| self.parts.intern_flights(flights),
        );
        f
    }

    /// Hands a reply to the process that asked, unless it restarted or is down; a paused
    /// process keeps it for later.
    pub(super) fn reply(
        &self,
        s: &mut State,
        f: &Flight,
        result: Answer,
        why: &mut Vec<Violation>,
    ) {
        let p = usize::from(f.proc);
        if s.procs[p].incarnation != f.incarnation {
            return;
        }
        if s.procs[p].paused {
            s.proc_mut(p).held.push((f.req.id, result));
            return;
        }
        self.deliver_reply(s, p, f.req.id, result, why);
    }

    /// The store's answer `r`, kept (so that the transitions it starts are looked up by where
    /// it is kept rather than by comparing documents).
    pub(super) fn answer(&self, r: OpResult) -> Answer {
        let mut a = Shared::new(r);
        self.parts.intern_answer(&mut a);
        a
    }

    /// Applies `f` to the store and observes what changed.
    pub(super) fn apply(
        &self,
        s: &mut State,
        f: &Flight,
        unchecked: bool,
        why: &mut Vec<Violation>,
    ) -> Answer {
        // The store before the operation, for stale reads and the pruner's check (sharing it
        // costs nothing: a write copies it anyway, and the parent state keeps it).
        let before = s.store.clone();
        let outcome = self.run_store(&mut s.store, f, unchecked);
        let result = outcome.result;
        if outcome.read {
            return result;
        }
        if let Some(change) = outcome.changed {
            protocol::store_change(self, s, &change, f.clock_base, why);
        }
        if self.presence_role(usize::from(f.proc)) == Some(PresenceRole::Pruner) {
            presence::pruned(self, s, &before, why);
        }
        if self.config.faults.has(Fault::StaleRead) && matches!(*result, OpResult::Ok(_)) {
            s.before_write = Some(before);
        }
        result
    }

    /// Runs `f`'s operation on `store` (remembered: the store is pure).
    pub(super) fn run_store(
        &self,
        store: &mut Shared<MemoryStore>,
        f: &Flight,
        unchecked: bool,
    ) -> StoreOutcome {
        let input = StoreInput {
            req: f.req.clone(),
            unchecked,
        };
        self.store_memo.call(
            store,
            input,
            |store, input| {
                let op = &input.req.op;
                if let Some(answer) = store.query(op) {
                    return StoreOutcome {
                        result: self.answer(answer),
                        read: true,
                        changed: None,
                    };
                }
                let before = store.clone();
                let result = if input.unchecked {
                    store.make_mut().apply_unchecked(op)
                } else {
                    store.make_mut().apply(op)
                };
                StoreOutcome {
                    result: self.answer(result),
                    read: false,
                    changed: WatchedChange::between(self, &before, store).map(Arc::new),
                }
            },
            |store| self.parts.intern_store(store),
        )
    }

    /// Whether delivering the read `f` of `s` (answered, or lost) reports nothing: its process
    /// takes the answer (or holds it, paused, or ignores it, restarted since) and at most
    /// issues requests. For `reduction::lone_read`, which has checked that `f` is its process's
    /// only business, so that its ids are renumbered afterwards if renumbering is on.
    pub(crate) fn read_reports_nothing(&self, s: &State, f: &Flight, lost: bool) -> bool {
        let p = usize::from(f.proc);
        let proc = &s.procs[p];
        if proc.incarnation != f.incarnation || proc.paused {
            return true;
        }
        let answer = if lost {
            self.answer(OpResult::Unknown)
        } else {
            let outcome = self.run_store(&mut s.store.clone(), f, false);
            if !outcome.read {
                return false;
            }
            outcome.result
        };
        let now = self.now(s, p);
        let input = Input::Reply(f.req.id, answer, now);
        let out = self.run_actor(&mut proc.clone(), input, self.config.renumber);
        out.1.is_empty()
    }
}
