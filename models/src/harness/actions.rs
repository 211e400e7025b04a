//! Which actions are enabled in a state: requests delivered (every way the faults allow),
//! timers fired, holders' calls, faults struck, and the tick.

use super::{call_bit, Action, How, PresenceRole, TenureModel};
use crate::harness::faults::{self, Fault};
use crate::harness::state::{CallKind, Node, State};
use std::sync::atomic::Ordering;
use tenure::leadership::TicketKind;
use tenure::mutant::Protocol;

impl TenureModel {
    /// Pushes the actions enabled in `s`: with the partial-order reduction on, only those of an
    /// ample set (see [`crate::speedup::reduction`]).
    pub(super) fn enabled_actions(&self, s: &State, actions: &mut Vec<Action>) {
        if self.halt.load(Ordering::Relaxed) {
            return;
        }
        let lone_timer = self
            .config
            .partial_order
            .then(|| crate::speedup::reduction::lone_timer(self, s))
            .flatten();
        if let (Some(alone), false) = (lone_timer, s.tick_start) {
            actions.push(alone);
            return;
        }
        let faults = self.config.faults;
        let spare = s.budget > 0;
        let lone_read = (self.config.partial_order && lone_timer.is_none())
            .then(|| crate::speedup::reduction::lone_read(self, s))
            .flatten();
        if let (Some(i), false) = (lone_read, s.tick_start) {
            // A read is never ambiguous, and stale reads turn the reduction off.
            actions.push(Action::Deliver(i, How::Ok));
            if spare && faults.has(Fault::Lost) {
                actions.push(Action::Deliver(i, How::Lost));
            }
            return;
        }
        for (i, f) in s.flights.iter().enumerate() {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            actions.push(Action::Deliver(i, How::Ok));
            if !spare {
                continue;
            }
            let op = &f.req.op;
            if faults.has(Fault::Lost) {
                actions.push(Action::Deliver(i, How::Lost));
            }
            if faults.has(Fault::Ambiguous) && op.is_write() {
                actions.push(Action::Deliver(i, How::Ambiguous));
            }
            if faults.has(Fault::Rollback) && op.is_write() && s.unreplicated.is_none() {
                actions.push(Action::Deliver(i, How::Unreplicated));
            }
            if faults.has(Fault::StaleRead)
                && faults::tolerates_stale(op)
                && s.before_write.is_some()
            {
                actions.push(Action::Deliver(i, How::Stale));
            }
            if faults.has(Fault::NonAtomicCas) && faults::is_conditional_write(op) {
                actions.push(Action::Deliver(i, How::FilterOnly));
            }
        }
        for i in 0..s.checked.len() {
            actions.push(Action::WriteChecked(u8::try_from(i).unwrap_or(u8::MAX)));
        }
        let mut due = false;
        for p in 0..s.procs.len() {
            if self.timer_due(s, p) {
                due = true;
                actions.push(Action::Fire(u8::try_from(p).unwrap_or(u8::MAX)));
            }
        }
        for m in 0..self.config.managers {
            if !s.tick_start || !s.procs[self.manager_proc(m)].runs() {
                continue;
            }
            for k in 0..self.config.leases {
                if self.config.protocol != Protocol::Lease {
                    break;
                }
                for kind in [CallKind::Claim, CallKind::Check, CallKind::Release] {
                    if kind == CallKind::Release && s.ghost.first_grant == 0 {
                        continue; // no token to give up yet
                    }
                    let busy = s
                        .ghost
                        .calls
                        .iter()
                        .any(|c| c.manager == m && c.lease == k && c.kind == kind);
                    let slot = self.call_slot(m, k, kind);
                    let allowed = s.ghost.calls_left.get(slot).is_some_and(|c| *c > 0)
                        && s.ghost.called_this_tick & call_bit(slot) == 0;
                    if !busy && allowed {
                        actions.push(match kind {
                            CallKind::Claim => Action::Claim(m, k),
                            CallKind::Check => Action::Check(m, k),
                            CallKind::Release => Action::Release(m, k),
                        });
                    }
                }
            }
        }
        // (Only at the start of a tick: the ghost is not read in most states.)
        for m in (0..self.config.managers).filter(|_| s.tick_start) {
            let runs = s.procs[self.manager_proc(m)].runs();
            let left = s
                .ghost
                .leadership()
                .tickets_left
                .get(usize::from(m))
                .copied()
                .unwrap_or(0);
            if s.tick_start && runs && left > 0 {
                for kind in [
                    TicketKind::ClaimLeader,
                    TicketKind::WaitLeader,
                    TicketKind::WaitMinion,
                ] {
                    actions.push(Action::Ticket(m, kind));
                }
            }
        }
        if s.tick_start && self.may_resign(s) {
            actions.push(Action::Resign(0));
        }
        if s.tick_start && self.config.protocol == Protocol::Presence {
            for i in 0..usize::from(self.config.pingers) {
                let running = matches!(&s.procs[i].actor, Node::Pinger(x) if x.is_running());
                let i8 = u8::try_from(i).unwrap_or(u8::MAX);
                if !s.procs[i].runs() {
                    continue;
                }
                if running && s.ghost.presence().kills_left[i] > 0 {
                    actions.push(Action::StopPinger(i8));
                } else if !running && s.ghost.presence().pinging_since[i].is_none() {
                    actions.push(Action::StartPinger(i8));
                }
            }
            if s.ghost.presence().prunes_left > 0 {
                actions.push(Action::Prune);
            }
        }
        for (p, proc) in s.procs.iter().enumerate() {
            if !s.tick_start {
                break;
            }
            // A batcher's pending pings die with it, which P2 cannot tell from corruption.
            if self.presence_role(p) == Some(PresenceRole::Batcher) {
                continue;
            }
            let p8 = u8::try_from(p).unwrap_or(u8::MAX);
            if proc.paused {
                actions.push(Action::Resume(p8));
            } else if spare {
                if faults.has(Fault::Pause) {
                    actions.push(Action::Pause(p8));
                }
                if faults.has(Fault::Crash) {
                    actions.push(Action::Crash(p8));
                }
            }
        }
        if s.unreplicated.is_some() {
            actions.push(Action::Rollback);
        }
        let settled = faults.has(Fault::Delay) || (s.flights.is_empty() && s.checked.is_empty());
        if s.real < self.horizon_ns() && !due && settled {
            actions.push(Action::Tick);
        }
        if let Some(alone) = lone_timer {
            crate::speedup::reduction::keep_ample(actions, |a| *a == alone);
        } else if let Some(i) = lone_read {
            crate::speedup::reduction::keep_ample(
                actions,
                |a| matches!(a, Action::Deliver(j, _) if *j == i),
            );
        }
    }
}
