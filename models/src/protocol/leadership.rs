//! The leadership model (PROTOCOLS.md §4): units, each a tracker wired to its own lease manager,
//! claim one application's lease and answer tickets. What the model observes, and the core
//! properties it hands it to:
//!
//! - claims: T5 (for twice the claim duration); release-waiters: T3 (one per unit);
//! - tickets: T4 (each resolved once) and T1 (a true `claim_leader` is backed by a claim
//!   duration of guaranteed tenure, against every holder's belief);
//! - a free lease with a unit waiting to lead: T6 (served in time once faults stop);
//! - milestones: a leader confirmed, leadership moved, a minion.

use super::{reach, record, Milestone};
use crate::harness::state::{split, Belief, Note, Ticket};
use crate::harness::state::{Node, State};
use crate::harness::{belief_tenure, TenureModel};
use tenure::leadership::{TicketKind, TrackerOutput};
use tenure::mutant::Protocol;
use tenure::property::leadership::{
    t1_backed, t3_one_release_waiter, t4_tickets_once, t5_twice, t6_served_in_time, LeaderAnswer,
    TicketEvent,
};
use tenure::property::{PropertyId, Violation};

/// The leadership lease after a change of its document (T6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum FirstLease {
    /// Someone holds a term.
    Held,
    /// Vacant (or absent); `released` if its holder released it rather than a manager expiring it.
    Free { released: bool },
}

/// The leadership lease became free or held at real `real`: when T6's window opens, and
/// whether a release opened it.
pub(crate) fn lease_freed(model: &TenureModel, s: &mut State, first: FirstLease, real: u64) {
    if !model.observes(PropertyId::T6) {
        return;
    }
    let ghost = s.ghost.leadership_mut();
    match (first, ghost.free_since) {
        (FirstLease::Free { .. }, Some(_)) => {}
        (FirstLease::Free { released }, None) => {
            ghost.free_since = Some(real);
            ghost.freed_by_release = released;
        }
        (FirstLease::Held, _) => {
            ghost.free_since = None;
            ghost.freed_by_release = false;
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
                model.service_window(s.ghost.leadership().freed_by_release),
            ),
        );
    }
}

pub(crate) fn tracker_note(
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

impl TenureModel {
    /// Whether unit `h0` may resign now: resignations left, and its unit running and not yet
    /// stopped (a crash restarts it as a new unit, which may resign again if any are left).
    pub(crate) fn may_resign(&self, s: &State) -> bool {
        if self.config.protocol != Protocol::Leadership || s.ghost.leadership().resigns_left == 0 {
            return false;
        }
        let proc = &s.procs[self.manager_proc(0)];
        proc.runs() && matches!(&proc.actor, Node::Unit(u) if !u.tracker().is_stopped())
    }

    /// Unit `h<m>` resigns: from now on it does not act as leader of any term it held, whatever
    /// the release's fate; its tracker stops and its manager releases the term it holds.
    pub(crate) fn resign(&self, s: &mut State, m: u8, why: &mut Vec<Violation>) {
        let p = self.manager_proc(m);
        let leadership = s.ghost.leadership_mut();
        leadership.resigns_left = leadership.resigns_left.saturating_sub(1);
        let real = s.real;
        let ends = |b: &Belief| b.holder == m && b.until > real;
        if s.ghost.beliefs.iter().any(ends) {
            for b in s.ghost.make_mut().beliefs.iter_mut().filter(|b| ends(b)) {
                b.until = real;
            }
        }
        let now = self.now(s, p);
        let out = self.call_directly(s, p, |a| match a {
            Node::Unit(u) => Some(split(u.handle_resign(now), Note::from)),
            _ => None,
        });
        if let Some(out) = out {
            self.absorb(s, p, &out, why);
        }
    }

    /// Unit `h<m>` is given a leadership ticket.
    pub(crate) fn ticket(&self, s: &mut State, m: u8, kind: TicketKind, why: &mut Vec<Violation>) {
        let p = self.manager_proc(m);
        let mi = usize::from(m);
        s.ghost.leadership_mut().tickets_left[mi] =
            s.ghost.leadership().tickets_left[mi].saturating_sub(1);
        let now = self.now(s, p);
        let issued = self.real(s);
        let mut ticket = None;
        let out = self.call_directly(s, p, |a| match a {
            Node::Unit(u) => {
                let (id, fx) = u.handle_ticket(kind, now);
                ticket = Some(id);
                Some(split(fx, Note::from))
            }
            _ => None,
        });
        if let (Some(id), Some(out)) = (ticket, out) {
            s.ghost.leadership_mut().tickets.push(Ticket {
                unit: m,
                id: id.0,
                kind,
                issued,
            });
            self.absorb(s, p, &out, why);
        }
    }
}
