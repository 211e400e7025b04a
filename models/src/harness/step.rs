//! What each action does to a state.

use super::{Action, How, PresenceRole, TenureModel};
use crate::harness::state::{CallKind, Node, State};
use crate::protocol::presence;
use crate::protocol::{self, WatchedChange};
use crate::speedup::memo::Input;
use tenure::mutant::Protocol;
use tenure::property::clock::g6_progress;
use tenure::property::{PropertyId, Violation};
use tenure::substrate::OpResult;

impl TenureModel {
    /// Runs `action` on `s`, collecting the violations it reveals (with their details).
    pub fn step(&self, s: &mut State, action: Action, why: &mut Vec<Violation>) {
        let budget = s.budget;
        s.tick_start = action == Action::Tick || action.only_at_tick_start();
        match action {
            Action::Tick => self.tick(s, why),
            Action::StopPinger(i) => self.switch_pinger(s, i, true, why),
            Action::StartPinger(i) => self.switch_pinger(s, i, false, why),
            Action::Prune => self.prune(s, why),
            Action::Deliver(i, how) => self.deliver(s, i, how, why),
            Action::WriteChecked(i) => {
                let f = s.checked.remove(usize::from(i));
                let r = self.apply(s, &f, true, why);
                self.reply(s, &f, r, why);
            }
            Action::Fire(p) => {
                let p = usize::from(p);
                let now = self.now(s, p);
                let out = self.call_actor(s, p, Input::Timeout(now));
                self.absorb(s, p, &out, why);
            }
            Action::Claim(m, k) => self.holder_call(s, m, k, CallKind::Claim, why),
            Action::Check(m, k) => self.holder_call(s, m, k, CallKind::Check, why),
            Action::Release(m, k) => self.holder_call(s, m, k, CallKind::Release, why),
            Action::Ticket(m, kind) => self.ticket(s, m, kind, why),
            Action::Resign(m) => self.resign(s, m, why),
            Action::Pause(p) => {
                s.budget = s.budget.saturating_sub(1);
                s.proc_mut(usize::from(p)).paused = true;
                // A paused pinger pings no more: its key may die (P5 starts again on resume).
                if let Some(PresenceRole::Pinger(i)) = self.presence_role(usize::from(p)) {
                    s.ghost.presence_mut().pinging_since[i] = None;
                }
            }
            Action::Resume(p) => self.resume(s, usize::from(p), why),
            Action::Crash(p) => self.crash(s, usize::from(p), why),
            Action::Rollback => {
                if let Some(old) = s.unreplicated.take() {
                    let before = std::mem::replace(&mut s.store, old);
                    if let Some(change) = WatchedChange::between(self, &before, &s.store) {
                        protocol::store_change(self, s, &change, None, why);
                    }
                }
            }
        }
        // A fault, or the end of a pause, restarts the G6 and M6 windows (kept at 0 where
        // neither is checked, so it splits no states there).
        let fault_ended = s.budget < budget
            || matches!(
                action,
                Action::Resume(_) | Action::WriteChecked(_) | Action::Rollback
            );
        if fault_ended && self.tracks_quiet() {
            s.ghost.quiet_since = s.real;
        }
        self.mark_violated(s, why);
        s.canonical_order();
    }

    /// Real time moves on (a tick, or to the next deadline), and the windows of the
    /// bounded-liveness properties are judged.
    fn tick(&self, s: &mut State, why: &mut Vec<Violation>) {
        s.real = self.next_real(s);
        // (Writing the ghost copies it if it is shared, so only what changes.)
        if s.ghost.called_this_tick != 0 {
            s.ghost.called_this_tick = 0;
        }
        let now = self.real(s);
        // While a process is paused, the windows have not started.
        if s.procs.iter().all(|p| p.runs()) {
            if self.observes(PropertyId::G6) {
                let last_change = s.ghost.clock_last.map_or(0, |(r, _)| r);
                let window = self.progress_window();
                protocol::record(
                    why,
                    g6_progress(last_change, s.ghost.quiet_since, now, window),
                );
            }
            if self.observes(PropertyId::M6) {
                protocol::lease::expiries_due(self, s, now, why);
            }
        }
        // Not only when every process runs: a paused leader is what frees the lease.
        if self.observes(PropertyId::T6) {
            protocol::leadership::candidates_served(self, s, now, why);
        }
        // A belief that has ended cannot overlap any later one.
        if s.ghost.beliefs.iter().any(|b| b.until <= now) {
            s.ghost.beliefs.retain(|b| b.until > now);
        }
        if self.config.protocol == Protocol::Presence {
            self.set_server_time(s);
            let b = usize::from(self.config.pingers);
            let idle = match &s.procs[b].actor {
                Node::Batcher(x) => x.pending_docs() == 0 && x.in_flight() == 0,
                _ => false,
            };
            if idle && !s.flights.iter().any(|f| usize::from(f.proc) == b) {
                presence::settled_bits(self, s, why);
            }
        }
    }

    /// Request `i` lands as `how` says: applied and answered, or under a fault.
    fn deliver(&self, s: &mut State, i: u8, how: How, why: &mut Vec<Violation>) {
        let f = self.take_flight(s, i);
        if how != How::Ok {
            s.budget = s.budget.saturating_sub(1);
        }
        match how {
            How::Ok => {
                let r = self.apply(s, &f, false, why);
                self.reply(s, &f, r, why);
            }
            How::Lost => self.reply(s, &f, self.answer(OpResult::Unknown), why),
            How::Ambiguous => {
                self.apply(s, &f, false, why);
                self.reply(s, &f, self.answer(OpResult::Unknown), why);
            }
            How::Unreplicated => {
                let before = s.store.clone();
                let r = self.apply(s, &f, false, why);
                s.unreplicated = Some(before);
                self.reply(s, &f, r, why);
            }
            How::Stale => {
                let old = s.before_write.clone().unwrap_or_default();
                let r = old.query(&f.req.op).unwrap_or(OpResult::Unknown);
                self.reply(s, &f, self.answer(r), why);
            }
            How::FilterOnly => {
                if s.store.expect_holds(&f.req.op) {
                    s.checked.push(f);
                } else {
                    let refused = self.answer(OpResult::PreconditionFailed);
                    self.reply(s, &f, refused, why);
                }
            }
        }
    }

    /// Paused process `p` resumes and takes the replies held for it.
    fn resume(&self, s: &mut State, p: usize, why: &mut Vec<Violation>) {
        s.proc_mut(p).paused = false;
        // One at a time, the rest still held: they refer to the process's operation
        // ids, so it is not renumbered before the last (`alone`).
        while !s.procs[p].held.is_empty() {
            let (id, result) = s.proc_mut(p).held.remove(0);
            self.deliver_reply(s, p, id, result, why);
        }
        if let Some(PresenceRole::Pinger(i)) = self.presence_role(p) {
            let running = matches!(&s.procs[p].actor, Node::Pinger(x) if x.is_running());
            if running && s.ghost.presence().pinging_since[i].is_none() {
                s.ghost.presence_mut().pinging_since[i] = Some(self.real(s));
            }
        }
    }

    /// Process `p` crashes and restarts: what lived in it (its holder's beliefs and calls, its
    /// tickets, its watches) dies with it.
    fn crash(&self, s: &mut State, p: usize, why: &mut Vec<Violation>) {
        s.budget = s.budget.saturating_sub(1);
        let proc = s.proc_mut(p);
        proc.paused = false;
        proc.held.clear();
        proc.incarnation = proc.incarnation.wrapping_add(1);
        // The holder lived in the crashed process: its beliefs and calls die with it.
        // (Only what changes is written: writing the ghost copies it if it is shared.)
        if let Some(m) = self.manager_of(p) {
            if s.ghost.beliefs.iter().any(|b| b.holder == m) {
                s.ghost.beliefs.retain(|b| b.holder != m);
            }
            if s.ghost.calls.iter().any(|c| c.manager == m) {
                s.ghost.calls.retain(|c| c.manager != m);
            }
            let l = s.ghost.leadership();
            let waits = l.waiters.get(usize::from(m)).is_some_and(|w| *w > 0);
            if waits || l.tickets.iter().any(|t| t.unit == m) {
                let l = s.ghost.leadership_mut();
                l.tickets.retain(|t| t.unit != m);
                if let Some(w) = l.waiters.get_mut(usize::from(m)) {
                    *w = 0;
                }
            }
        }
        // G5 is per watcher: a restarted watcher starts a new sequence.
        if Some(p) == self.watcher() {
            s.ghost.watcher_emitted = None;
        }
        match self.presence_role(p) {
            Some(PresenceRole::Pinger(i)) => s.ghost.presence_mut().pinging_since[i] = None,
            // A new watcher's watches are new: their events start afresh (P4).
            Some(PresenceRole::Watcher) => s
                .ghost
                .presence_mut()
                .last_event
                .iter_mut()
                .for_each(|e| *e = None),
            _ => {}
        }
        self.start(s, p, why);
    }
}
