//! The lease model (PROTOCOLS.md §2-§3): managers serve their holders' claims and token
//! checks over one lease namespace and expire abandoned leases. What the model observes, and the
//! core properties it hands it to:
//!
//! - every change of a lease document: L2-L4 and F1 over the store's own changes;
//! - every grant: L5 (a claim lasts from global time at the call's start) and L6 (at most one
//!   holder believes it holds a lease at any real instant, from the holders' local deadlines);
//! - token checks: M4 (not held only after a refresh); leases past their expiry: M6 (expired in
//!   time once faults stop);
//! - milestones: a lease claimed, denied, expired, and changing holder.

use super::leadership::FirstLease;
use super::{reach, record, Milestone};
use crate::harness::state::Call;
use crate::harness::state::{Belief, CallKind, State};
use crate::harness::{belief_tenure, namespace, TenureModel};
use crate::harness::{call_bit, NAMESPACE};
use crate::speedup::memo::Input;
use std::time::Duration;
use tenure::lease::ManagerConfig;
use tenure::lease::{LeaseDoc, ManagerOutput};
use tenure::mutant::Protocol;
use tenure::property::lease::{
    l5_claim_lasts, l6_exclusion, m4_not_held_after_refresh, m6_expired_in_time, store_changes,
    GrantedTerm, LeaseChange,
};
use tenure::property::Violation;
use tenure::substrate::{Collection, Document, MemoryStore};
use tenure::time::GlobalTime;
use tenure::time::SkewBounds;

/// What changed in the lease documents from `before` to `after`: whether any did, what the
/// store's lease properties (L2-L4, F1) say of each change, and whether the first lease is free
/// after it if it changed (T6). Decodes only the documents that changed.
pub(crate) fn changes(
    model: &TenureModel,
    before: &MemoryStore,
    after: &MemoryStore,
    global: u64,
) -> (bool, Vec<Violation>, Option<FirstLease>) {
    let decode = |d: Option<&Document>| d.and_then(|d| LeaseDoc::decode(d, namespace()).ok());
    let (mut any, mut violations, mut first_lease_free) = (false, Vec::new(), None);
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
            first_lease_free = Some(match &a {
                Some(d) if d.term.is_some() => FirstLease::Held,
                Some(d) => FirstLease::Free {
                    released: d.released_by.is_some(),
                },
                None => FirstLease::Free { released: false },
            });
        }
        let lease = LeaseChange {
            before: b,
            after: a,
            global: GlobalTime(global),
        };
        record(&mut violations, store_changes(&[lease]));
    }
    (any, violations, first_lease_free)
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

pub(crate) fn manager_note(
    model: &TenureModel,
    s: &mut State,
    p: usize,
    out: &ManagerOutput,
    real: u64,
    why: &mut Vec<Violation>,
) {
    // A unit's release-waiter returned.
    if let (ManagerOutput::WaitEnded { .. } | ManagerOutput::WaitCancelled { .. }, Some(m)) =
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
        | ManagerOutput::Released { req, .. }
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
            if holder == 0 && k == 0 && s.ghost.first_grant == 0 {
                s.ghost.make_mut().first_grant = epoch.0;
            }
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
        ManagerOutput::Released { vacated: true, .. } => reach(s, Milestone::LeaseReleased),
        _ => {}
    }
}

impl TenureModel {
    /// Manager `m`'s configuration in its `incarnation`: the model's skew bounds and mutant,
    /// and a writer id of its own (a restarted manager is a new writer, as in the adapter).
    pub(crate) fn manager_config(&self, m: u8, incarnation: u8) -> ManagerConfig {
        let writer = match incarnation {
            0 => format!("ctl-{m}"),
            i => format!("ctl-{m}-{i}"),
        };
        let mut c = ManagerConfig::new(NAMESPACE, writer);
        c.max_sleep = Duration::from_secs(30);
        c.skew = SkewBounds {
            rate_error_ppm: self.config.rate_error_ppm,
            clock_step_max: self.config.clock_step_max(),
        };
        c.mutant = self.config.mutant;
        if self.config.protocol == Protocol::Leadership {
            // A unit's retries must fit in its claim duration (TrackerConfig::check_timing).
            c.retry.delay_max = c.retry.delay_max.min(self.config.lease_duration / 2);
        }
        c
    }

    /// Holder `h<m>` gives up its first token of lease `l<k>` (a release): from now on it does
    /// not act on that term, whatever the release's fate. Returns the token's epoch.
    fn give_up(&self, s: &mut State, m: u8, k: u8) -> u64 {
        let epoch = s.ghost.first_grant;
        let real = s.real;
        let ends = |b: &Belief| b.holder == m && b.lease == k && b.epoch == epoch && b.until > real;
        if s.ghost.beliefs.iter().any(ends) {
            for b in s.ghost.make_mut().beliefs.iter_mut().filter(|b| ends(b)) {
                b.until = real;
            }
        }
        epoch
    }

    /// Holder `h<m>` calls its manager: claim (or extend) lease `l<k>`, or check its token.
    pub(crate) fn holder_call(
        &self,
        s: &mut State,
        m: u8,
        k: u8,
        kind: CallKind,
        why: &mut Vec<Violation>,
    ) {
        let p = self.manager_proc(m);
        let slot = self.call_slot(m, k, kind);
        let left = s.ghost.calls_left.get(slot).copied().unwrap_or(0);
        let extending = m == 0 && left < self.config.claims_first_holder;
        let duration = if extending {
            self.config.extend_duration
        } else {
            self.config.lease_duration
        };
        if let Some(c) = s.ghost.calls_left.get_mut(slot) {
            *c = c.saturating_sub(1);
        }
        s.ghost.called_this_tick |= call_bit(slot);
        let req = u64::try_from(slot).unwrap_or(u64::MAX);
        let global_at_start = super::global(&s.store);
        s.ghost.calls.push(Call {
            manager: m,
            lease: k,
            kind,
            req,
            global_at_start,
            duration,
        });
        let epoch = if kind == CallKind::Release {
            self.give_up(s, m, k)
        } else {
            0
        };
        // Remembered, as timers and replies are: a holder's call is an input like them.
        let now = self.now(s, p);
        let call = Input::Call {
            kind,
            req,
            lease: k,
            holder: m,
            duration,
            epoch,
            now,
        };
        let out = self.call_actor(s, p, call);
        self.absorb(s, p, &out, why);
    }
}
