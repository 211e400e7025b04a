//! Leadership properties (PROTOCOLS.md §4.3).

use super::lease::Tenure;
use super::{PropertyId, Verdict, Violation};
use crate::leadership::{TicketId, TicketKind};
use crate::time::Secs;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// A `claim_leader` ticket answered `true`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderAnswer {
    /// The application (lease).
    pub application: String,
    /// The unit (holder).
    pub unit: String,
    /// Real time the ticket was issued.
    pub issued_real: u64,
    /// Real time the answer was given.
    pub answered_real: u64,
    /// Real time at which the unit's own clock has run `ClaimDuration` past the issue: the
    /// unit measures its tenure with that clock.
    pub claim_until_real: u64,
}

/// T1: a true `claim_leader` answer is covered by a tenure of that unit, begun by the time of the
/// answer, lasting until the unit's clock has run `ClaimDuration` past the ticket's issue.
/// `tenures` are the real intervals during which the unit was guaranteed the lease.
pub fn t1_backed(answers: &[LeaderAnswer], tenures: &[Tenure]) -> Verdict {
    for a in answers {
        let covered = tenures
            .iter()
            .filter(|t| {
                t.lease == a.application && t.holder == a.unit && t.from_real <= a.answered_real
            })
            .map(|t| t.until_real)
            .max()
            .is_some_and(|until| until >= a.claim_until_real);
        if !covered {
            return Err(Violation::new(
                PropertyId::T1,
                format!(
                    "{:?} was told it leads {:?} at real {} but its guaranteed tenure ends before real {}",
                    a.unit,
                    a.application,
                    Secs(a.issued_real),
                    Secs(a.claim_until_real)
                ),
            ));
        }
    }
    Ok(())
}

/// One ticket event of one tracker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketEvent {
    /// The ticket was issued.
    Issued(TicketId, TicketKind),
    /// The ticket resolved with a value.
    Resolved(TicketId, bool),
    /// The tracker stopped.
    Stopped,
}

/// T4: every ticket resolves exactly once, none before it is issued, and every ticket resolved
/// after the tracker stopped resolves false. `all_done` says the run ended with the tracker
/// stopped, so unresolved tickets are violations too.
pub fn t4_tickets_once(events: &[TicketEvent], all_done: bool) -> Verdict {
    let mut open: BTreeMap<TicketId, TicketKind> = BTreeMap::new();
    let mut stopped = false;
    for e in events {
        match e {
            TicketEvent::Issued(id, k) => {
                open.insert(*id, *k);
            }
            TicketEvent::Resolved(id, v) => {
                if open.remove(id).is_none() {
                    return Err(Violation::new(
                        PropertyId::T4,
                        format!("ticket {} resolved twice or never issued", id.0),
                    ));
                }
                if stopped && *v {
                    return Err(Violation::new(
                        PropertyId::T4,
                        format!("ticket {} resolved true after the tracker stopped", id.0),
                    ));
                }
            }
            TicketEvent::Stopped => stopped = true,
        }
    }
    match open.keys().next() {
        Some(id) if all_done && stopped => Err(Violation::new(
            PropertyId::T4,
            format!(
                "ticket {} never resolved although the tracker stopped",
                id.0
            ),
        )),
        _ => Ok(()),
    }
}

/// T3: at most one release-waiter is outstanding, given `+1` when one starts and `-1` when one
/// returns, in order.
pub fn t3_one_release_waiter(deltas: &[i8]) -> Verdict {
    let mut n = 0i64;
    for d in deltas {
        n += i64::from(*d);
        if n > 1 {
            return Err(Violation::new(
                PropertyId::T3,
                format!("{n} release-waiters outstanding at once"),
            ));
        }
    }
    Ok(())
}

/// T5: every claim asks for twice the claim duration.
pub fn t5_twice(claims: &[Duration], claim_duration: Duration) -> Verdict {
    match claims.iter().find(|d| **d != claim_duration * 2) {
        Some(d) => Err(Violation::new(
            PropertyId::T5,
            format!("a claim asked for {d:?}, not 2 × {claim_duration:?}"),
        )),
        None => Ok(()),
    }
}

/// T6 (bounded liveness): the leadership lease `application` has been free since real
/// `free_since` and is still free at real `now`, while a running unit waits to lead, and no
/// fault struck after real `quiet_since`. From the later of the two, a waiting unit must have
/// claimed it within `window` (see `overdue` in this module's parent).
pub fn t6_served_in_time(
    application: &str,
    free_since: u64,
    quiet_since: u64,
    now: u64,
    window: Duration,
) -> Verdict {
    super::overdue(
        PropertyId::T6,
        free_since,
        quiet_since,
        now,
        window,
        |waited| {
            format!(
                "the lease {application:?} has been free since real {} and a unit waits to lead, but nobody holds it at real {}: {} without a fault, the window is {:?}",
                Secs(free_since),
                Secs(now),
                Secs(waited),
                window
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::t6_served_in_time;
    use std::time::Duration;

    #[test]
    fn t6_allows_the_window_from_the_later_of_freeing_and_the_last_fault() {
        let w = Duration::from_nanos(10);
        assert!(
            t6_served_in_time("app", 5, 0, 15, w).is_ok(),
            "exactly the window"
        );
        let late = t6_served_in_time("app", 5, 0, 16, w).expect_err("one past it");
        assert!(late.detail.contains("free since"), "{late}");
        assert!(
            t6_served_in_time("app", 5, 8, 18, w).is_ok(),
            "a fault restarts it"
        );
        assert!(t6_served_in_time("app", 5, 8, 19, w).is_err());
    }
}
