//! Lease properties (PROTOCOLS.md §2.6, §3.4) and fencing.

use super::{PropertyId, Verdict, Violation};
use crate::lease::{fence_admits, Epoch, LeaseDoc};
use crate::time::{GlobalTime, Secs};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A real-time interval during which `holder` believed it held `lease`: from the reply that
/// granted it until its local deadline passed (or it gave the lease up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenure {
    /// The lease.
    pub lease: String,
    /// The believer.
    pub holder: String,
    /// The epoch granted.
    pub epoch: Epoch,
    /// Real time the belief began.
    pub from_real: u64,
    /// Real time the belief ended (exclusive).
    pub until_real: u64,
}

/// L6: at every real instant, at most one holder believes it holds a lease.
pub fn l6_exclusion(tenures: &[Tenure]) -> Verdict {
    let mut by_lease: BTreeMap<&str, Vec<&Tenure>> = BTreeMap::new();
    for t in tenures.iter().filter(|t| t.until_real > t.from_real) {
        by_lease.entry(&t.lease).or_default().push(t);
    }
    for (lease, mut ts) in by_lease {
        ts.sort_by_key(|t| t.from_real);
        // The latest-ending belief so far of each holder is enough to find any overlap.
        let mut open: Vec<&Tenure> = Vec::new();
        for t in ts {
            open.retain(|o| o.until_real > t.from_real);
            if let Some(o) = open.iter().find(|o| o.holder != t.holder) {
                return Err(Violation::new(
                    PropertyId::L6,
                    format!(
                        "lease {lease:?}: {:?} ({}) believed it held it until real {} but {:?} ({}) believed so from real {}",
                        o.holder,
                        o.epoch,
                        Secs(o.until_real),
                        t.holder,
                        t.epoch,
                        Secs(t.from_real)
                    ),
                )
                .at(t.from_real));
            }
            open.push(t);
        }
    }
    Ok(())
}

/// A granted claim or extension, with the real interval of the call that earned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The lease.
    pub lease: String,
    /// The holder granted.
    pub holder: String,
    /// The epoch granted.
    pub epoch: Epoch,
    /// Real time the call was invoked.
    pub invoked_real: u64,
    /// Real time the grant was received.
    pub granted_real: u64,
}

/// F1 (grants): a call invoked after another grant of the same lease was received gets an epoch
/// at least as large, and strictly larger if the holder differs. (Calls that overlap in real
/// time may be ordered either way.)
pub fn f1_epochs(grants: &[Grant]) -> Verdict {
    let mut by_lease: BTreeMap<&str, Vec<&Grant>> = BTreeMap::new();
    for g in grants {
        by_lease.entry(&g.lease).or_default().push(g);
    }
    for (lease, gs) in by_lease {
        let mut by_granted = gs.clone();
        by_granted.sort_by_key(|g| g.granted_real);
        let mut by_invoked = gs;
        by_invoked.sort_by_key(|g| g.invoked_real);
        let mut i = 0;
        let mut max: Option<(Epoch, Vec<&Grant>)> = None;
        for g in by_invoked {
            while i < by_granted.len() && by_granted[i].granted_real < g.invoked_real {
                let d = by_granted[i];
                match &mut max {
                    // One grant per holder is enough to find a second holder of the epoch:
                    // a lease extended many times would otherwise make this quadratic.
                    Some((e, hs)) if d.epoch == *e => {
                        if hs.iter().all(|h| h.holder != d.holder) {
                            hs.push(d);
                        }
                    }
                    Some((e, _)) if d.epoch < *e => {}
                    _ => max = Some((d.epoch, vec![d])),
                }
                i += 1;
            }
            let Some((e, hs)) = &max else { continue };
            let earlier = if g.epoch < *e {
                hs.first()
            } else {
                hs.iter().find(|p| g.epoch == *e && p.holder != g.holder)
            };
            if let Some(p) = earlier {
                return Err(Violation::new(
                    PropertyId::F1,
                    format!(
                        "lease {lease:?}: {:?} was granted {} by a call invoked at real {}, after {:?} had been granted {} at real {}",
                        g.holder,
                        g.epoch,
                        Secs(g.invoked_real),
                        p.holder,
                        p.epoch,
                        Secs(p.granted_real)
                    ),
                )
                .at(g.granted_real));
            }
        }
    }
    Ok(())
}

/// A write guarded by a fencing epoch, as the guarded store answered it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedWrite {
    /// The lease whose epoch guards the write.
    pub lease: String,
    /// The epoch presented.
    pub epoch: Epoch,
    /// Whether the guarded store accepted it.
    pub accepted: bool,
    /// Real time the write was sent.
    pub invoked: u64,
    /// Real time its answer came (it took effect somewhere in between).
    pub completed: u64,
}

/// F1 (guarded writes): once a write with epoch `e` was accepted, no write with a smaller epoch
/// is accepted. A write takes effect somewhere between its invocation and its answer, so only
/// a stale write sent after a newer one was answered is certainly out of order (a holder paused
/// between its write and the answer sees the answer late).
pub fn f1_fenced_writes(writes: &[FencedWrite]) -> Verdict {
    let mut by_completion: Vec<&FencedWrite> = writes.iter().filter(|w| w.accepted).collect();
    by_completion.sort_by_key(|w| w.completed);
    let mut by_invocation = by_completion.clone();
    by_invocation.sort_by_key(|w| w.invoked);
    // Per lease, the largest epoch accepted and answered before the write at hand was sent.
    let mut max: BTreeMap<&str, &FencedWrite> = BTreeMap::new();
    let mut answered = by_completion.into_iter().peekable();
    for w in by_invocation {
        while let Some(done) = answered.next_if(|d| d.completed < w.invoked) {
            let m = max.entry(&done.lease).or_insert(done);
            if m.epoch < done.epoch {
                *m = done;
            }
        }
        if let Some(m) = max.get(w.lease.as_str()) {
            if !fence_admits(Some(m.epoch), w.epoch) {
                return Err(Violation::new(
                    PropertyId::F1,
                    format!(
                        "lease {:?}: a write with stale {} sent at real {} was accepted after one \
                         with {} was, at real {}",
                        w.lease,
                        w.epoch,
                        Secs(w.invoked),
                        m.epoch,
                        Secs(m.completed)
                    ),
                )
                .at(w.invoked));
            }
        }
    }
    Ok(())
}

/// One change of a lease document in the store, with the true global time when it happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseChange {
    /// The document before (`None`: absent).
    pub before: Option<LeaseDoc>,
    /// The document after (`None`: deleted).
    pub after: Option<LeaseDoc>,
    /// The clock document's value at that instant.
    pub global: GlobalTime,
}

/// L2, L3, L4 and F1 over the store's own sequence of changes to lease documents. A term ends
/// only through a vacant document (L2): expired once global time is past it (L4), or released
/// early by its own holder, which the vacant document records (`released_by`, same epoch).
pub fn store_changes(changes: &[LeaseChange]) -> Verdict {
    for c in changes {
        let name = c
            .after
            .as_ref()
            .or(c.before.as_ref())
            .map_or("?", |d| d.name.as_str());
        let (b, a) = (
            c.before.as_ref().and_then(|d| d.term.as_ref()),
            c.after.as_ref().and_then(|d| d.term.as_ref()),
        );
        if let (Some(bt), Some(at)) = (b, a) {
            if bt.holder != at.holder {
                return Err(Violation::new(
                    PropertyId::L2,
                    format!(
                        "lease {name:?} passed from {:?} to {:?} without expiring",
                        bt.holder, at.holder
                    ),
                ));
            }
            if at.expiry() < bt.expiry() {
                return Err(Violation::new(
                    PropertyId::L3,
                    format!(
                        "lease {name:?} of {:?} was shortened from {} to {}",
                        at.holder,
                        bt.expiry(),
                        at.expiry()
                    ),
                ));
            }
        }
        if let (Some(bt), None) = (b, a) {
            let released = c.after.as_ref().is_some_and(|d| {
                d.released_by.as_deref() == Some(bt.holder.as_str())
                    && c.before.as_ref().is_some_and(|b| b.epoch == d.epoch)
            });
            if c.global <= bt.expiry() && !released {
                return Err(Violation::new(
                    PropertyId::L4,
                    format!(
                        "lease {name:?} of {:?} was expired at {} but ran until {}",
                        bt.holder,
                        c.global,
                        bt.expiry()
                    ),
                ));
            }
        }
        if let (Some(before), Some(after)) = (&c.before, &c.after) {
            let changed_holder = before.holder() != after.holder();
            if after.epoch < before.epoch
                || (changed_holder && after.term.is_some() && after.epoch <= before.epoch)
            {
                return Err(Violation::new(
                    PropertyId::F1,
                    format!(
                        "lease {name:?} went from {} to {} on a change of holder",
                        before.epoch, after.epoch
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A successful claim or extension with the true global time when its call started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedTerm {
    /// The lease.
    pub lease: String,
    /// Global time when the call began.
    pub global_at_call_start: GlobalTime,
    /// The duration asked for.
    pub duration: Duration,
    /// The stored expiry after the call.
    pub expiry: GlobalTime,
}

/// L5: a successful claim or extension lasts at least its duration from global time at the
/// start of the call.
pub fn l5_claim_lasts(granted: &[GrantedTerm]) -> Verdict {
    match granted
        .iter()
        .find(|g| g.expiry < g.global_at_call_start.after(g.duration))
    {
        Some(g) => Err(Violation::new(
            PropertyId::L5,
            format!(
                "lease {:?} was granted until {} but the call began at {} and asked for {:?}",
                g.lease, g.expiry, g.global_at_call_start, g.duration
            ),
        )),
        None => Ok(()),
    }
}

/// M6 (bounded liveness): lease `lease`'s term expired at global `expiry`, which global time
/// first passed at real `passed_at`; at real `now` it is still held, and no fault struck after
/// real `quiet_since`. From the later of the two, a running manager must expire it within
/// `window` (see `overdue` in this module's parent).
pub fn m6_expired_in_time(
    lease: &str,
    expiry: GlobalTime,
    passed_at: u64,
    quiet_since: u64,
    now: u64,
    window: Duration,
) -> Verdict {
    super::overdue(
        PropertyId::M6,
        passed_at,
        quiet_since,
        now,
        window,
        |waited| {
            format!(
                "lease {lease:?} expired at {expiry} (passed at real {}) but is still held at real {}: {} without a fault, the window is {:?}",
                Secs(passed_at),
                Secs(now),
                Secs(waited),
                window
            )
        },
    )
}

/// M4: a token check answers "not held" only after a refresh. Each answer is
/// `(held, refreshed)`.
pub fn m4_not_held_after_refresh(answers: &[(bool, bool)]) -> Verdict {
    match answers
        .iter()
        .position(|(held, refreshed)| !held && !refreshed)
    {
        Some(i) => Err(Violation::new(
            PropertyId::M4,
            format!("check #{i} answered \"not held\" from the cache without refreshing"),
        )),
        None => Ok(()),
    }
}

/// M4's other half: a check answers "held" only if its holder held the lease in the store at
/// some instant while the check ran (`held_meanwhile`, gathered by the driver from the store's
/// changes between the request and the answer). Rollbacks and non-atomic writes rewrite the
/// store's history: this holds only without them.
pub fn m4_held_while_checked(lease: &str, holder: &str, held_meanwhile: bool) -> Verdict {
    if held_meanwhile {
        return Ok(());
    }
    Err(Violation::new(
        PropertyId::M4,
        format!("a check answered {holder:?} holds lease {lease:?}, but it held it at no instant while the check ran"),
    ))
}

/// M5, as one manager can be held to it: a wait on a lease ends only after the term ended
/// (expired, or released by its holder, whose belief ends as it asks), so never while a holder
/// that same manager granted it to still believes it holds it. The
/// grant put the lease in that manager's cache; only an expiry, or a read made after the grant,
/// can take it out (a cache moved back by an older read ended waits on a lease just claimed).
/// `granted` are the beliefs that manager granted in `lease`. Rollbacks and non-atomic writes
/// can vacate a lease under a live belief: this holds only without them.
pub fn m5_wait_ends_after_expiry(lease: &str, ended_real: u64, granted: &[Tenure]) -> Verdict {
    match granted
        .iter()
        .find(|t| t.lease == lease && t.from_real <= ended_real && ended_real < t.until_real)
    {
        Some(t) => Err(Violation::new(
            PropertyId::M5,
            format!(
                "a wait on lease {lease:?} ended at real {} while {:?}, granted epoch {} by the same manager, believes it holds it until real {}",
                Secs(ended_real),
                t.holder,
                t.epoch.0,
                Secs(t.until_real)
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(holder: &str, epoch: u64, from: u64, until: u64) -> Tenure {
        Tenure {
            lease: "l".into(),
            holder: holder.into(),
            epoch: Epoch(epoch),
            from_real: from,
            until_real: until,
        }
    }

    #[test]
    fn exclusion_allows_handover_and_same_holder_overlap() {
        assert!(l6_exclusion(&[t("a", 1, 0, 10), t("a", 1, 5, 20), t("b", 2, 20, 30)]).is_ok());
        let e = l6_exclusion(&[t("a", 1, 0, 10), t("b", 2, 9, 30)]).unwrap_err();
        assert_eq!(e.property, PropertyId::L6);
        // Overlap hidden behind a later belief of the same holder is still found.
        assert!(l6_exclusion(&[t("a", 1, 0, 100), t("a", 1, 5, 10), t("b", 2, 50, 60)]).is_err());
    }

    #[test]
    fn a_wait_ends_only_outside_the_managers_own_grants() {
        let granted = [t("a", 1, 10, 20)];
        assert!(m5_wait_ends_after_expiry("l", 5, &granted).is_ok());
        assert!(m5_wait_ends_after_expiry("l", 20, &granted).is_ok());
        assert!(m5_wait_ends_after_expiry("other", 15, &granted).is_ok());
        let e = m5_wait_ends_after_expiry("l", 15, &granted).unwrap_err();
        assert_eq!(e.property, PropertyId::M5);
    }

    #[test]
    fn epochs_must_rise_on_holder_change() {
        let g = |h: &str, e, r| Grant {
            lease: "l".into(),
            holder: h.into(),
            epoch: Epoch(e),
            invoked_real: r,
            granted_real: r + 1,
        };
        assert!(f1_epochs(&[g("a", 1, 0), g("a", 1, 5), g("b", 2, 9)]).is_ok());
        assert!(f1_epochs(&[g("a", 1, 0), g("b", 1, 9)]).is_err());
        assert!(f1_epochs(&[g("a", 2, 0), g("b", 1, 9)]).is_err());
        // Overlapping calls may be ordered either way.
        assert!(f1_epochs(&[g("a", 2, 0), g("b", 1, 0)]).is_ok());
        let w = |e, acc, r| FencedWrite {
            lease: "l".into(),
            epoch: Epoch(e),
            accepted: acc,
            invoked: r,
            completed: r,
        };
        assert!(f1_fenced_writes(&[w(1, true, 0), w(2, true, 1), w(1, false, 2)]).is_ok());
        assert!(f1_fenced_writes(&[w(2, true, 0), w(1, true, 1)]).is_err());
        // A stale write answered late, but sent before the newer one was answered: it may have
        // taken effect first (its holder was paused before it saw the answer).
        let late = FencedWrite {
            completed: 10,
            ..w(1, true, 0)
        };
        assert!(f1_fenced_writes(&[w(2, true, 5), late.clone()]).is_ok());
        let sent_after = FencedWrite { invoked: 6, ..late };
        assert!(f1_fenced_writes(&[w(2, true, 5), sent_after]).is_err());
    }
}
