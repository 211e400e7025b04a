//! Releasing a lease early (Tenure's extension of PROTOCOLS.md §2.4): the holder's term ends at
//! once, another holder may claim it with a larger epoch, and a release never ends a term it
//! does not name, whatever its token's age or the fate of its write.

mod common;

use common::lease::{check, claim, manager, release, set_global};
use common::{secs, Clock, Fault, Sim};
use std::time::Duration;
use tenure::lease::{lease_id, Epoch, LeaseDoc, ManagerConfig, ManagerError, ManagerOutput};
use tenure::property::lease::store_changes;
use tenure::substrate::Collection;

const D: Duration = Duration::from_secs(60);

fn stored(sim: &Sim) -> LeaseDoc {
    let doc = sim.store.get(Collection::Leases, &lease_id("app", "db"));
    LeaseDoc::decode(doc.expect("stored"), "app").expect("valid")
}

fn last(sim: &Sim, n: usize) -> ManagerOutput {
    sim.manager_outputs(n).last().cloned().expect("an answer")
}

/// Two started managers on the reference store.
fn two_managers() -> (Sim, usize, usize) {
    let mut sim = Sim::new();
    set_global(&mut sim, secs(100));
    let a = manager(&mut sim, ManagerConfig::new("app", "ctl-0"), Clock::EXACT);
    let b = manager(&mut sim, ManagerConfig::new("app", "ctl-1"), Clock::EXACT);
    sim.settle();
    (sim, a, b)
}

/// Goal: a released lease is vacant at once, marked with who released it, and another
/// manager's holder claims it long before its expiry, with the next epoch; the store's own
/// properties accept the early end.
#[test]
fn a_released_lease_is_claimed_by_another_at_once_with_the_next_epoch() {
    let (mut sim, a, b) = two_managers();
    claim(&mut sim, a, 1, "db", "u0", D);
    sim.settle();
    // The other manager learns of the holder (a denial), so its cache is now stale-held.
    claim(&mut sim, b, 2, "db", "u1", D);
    sim.settle();
    assert!(matches!(last(&sim, b), ManagerOutput::Denied { holder, .. } if holder == "u0"));
    release(&mut sim, a, 3, "db", "u0", 1);
    sim.settle();
    assert!(
        matches!(
            last(&sim, a),
            ManagerOutput::Released {
                epoch: Epoch(1),
                vacated: true,
                ..
            }
        ),
        "{:?}",
        sim.manager_outputs(a)
    );
    let doc = stored(&sim);
    assert_eq!(doc.term, None);
    assert_eq!(doc.released_by.as_deref(), Some("u0"));
    // Global time has not moved: only a release can have ended the term.
    sim.real += secs(1);
    claim(&mut sim, b, 4, "db", "u1", D);
    sim.settle();
    assert!(
        matches!(
            last(&sim, b),
            ManagerOutput::Claimed {
                epoch: Epoch(2),
                ..
            }
        ),
        "the other manager looks before denying on its stale cache: {:?}",
        sim.manager_outputs(b)
    );
    assert_eq!(stored(&sim).released_by, None, "a claim clears the mark");
    assert_eq!(store_changes(&sim.log().lease_changes), Ok(()));
}

/// Goal: a stale token (its holder claimed again after it expired) releases nothing: the
/// holder's newer term stays held.
#[test]
fn a_stale_token_releases_nothing() {
    let (mut sim, a, _) = two_managers();
    claim(&mut sim, a, 1, "db", "u0", Duration::from_secs(3));
    sim.settle();
    set_global(&mut sim, secs(110));
    sim.run_until(secs(40));
    assert_eq!(stored(&sim).term, None, "expired");
    claim(&mut sim, a, 2, "db", "u0", D);
    sim.settle();
    assert!(matches!(
        last(&sim, a),
        ManagerOutput::Claimed {
            epoch: Epoch(2),
            ..
        }
    ));
    release(&mut sim, a, 3, "db", "u0", 1);
    sim.settle();
    assert!(matches!(
        last(&sim, a),
        ManagerOutput::Released {
            epoch: Epoch(1),
            vacated: false,
            ..
        }
    ));
    let doc = stored(&sim);
    assert_eq!((doc.epoch, doc.holder()), (Epoch(2), Some("u0")));
}

/// Goal: a release whose write was lost answers "outcome unknown"; until a new version is
/// written the cache no longer vouches for the holder (a check reads the store) and an
/// extension that would keep the old version is refused; a release applied but unacknowledged
/// is found done by the read that follows it.
#[test]
fn a_release_of_unknown_outcome_is_resolved_or_reported() {
    let (mut sim, a, _) = two_managers();
    claim(&mut sim, a, 1, "db", "u0", D);
    sim.settle();
    release(&mut sim, a, 2, "db", "u0", 1);
    sim.deliver(0, Fault::Lost);
    sim.settle();
    assert!(
        matches!(
            last(&sim, a),
            ManagerOutput::Failed {
                error: ManagerError::OutcomeUnknown(_),
                ..
            }
        ),
        "{:?}",
        sim.manager_outputs(a)
    );
    let reads_before = sim.log().delivered.len();
    check(&mut sim, a, 3, "db", "u0");
    sim.settle();
    assert!(
        sim.log().delivered.len() > reads_before,
        "the check read the store"
    );
    // Same global time: an extension would write nothing, and the lost release could land.
    claim(&mut sim, a, 4, "db", "u0", D);
    sim.settle();
    assert!(matches!(
        last(&sim, a),
        ManagerOutput::Failed {
            error: ManagerError::OutcomeUnknown(_),
            ..
        }
    ));
    // Applied, reply lost: the read after it finds the term ended.
    release(&mut sim, a, 5, "db", "u0", 1);
    sim.deliver(0, Fault::Ambiguous);
    sim.settle();
    assert!(matches!(
        last(&sim, a),
        ManagerOutput::Released {
            epoch: Epoch(1),
            ..
        }
    ));
    assert_eq!(stored(&sim).released_by.as_deref(), Some("u0"));
}

/// Goal: an extension answered after its holder asked to release that term is void: the
/// caller is told so instead of being granted a term the release then ends.
#[test]
fn a_grant_of_a_term_released_meanwhile_is_void() {
    let (mut sim, a, _) = two_managers();
    claim(&mut sim, a, 1, "db", "u0", D);
    sim.settle();
    sim.real += secs(1);
    set_global(&mut sim, secs(101));
    claim(&mut sim, a, 2, "db", "u0", D);
    release(&mut sim, a, 3, "db", "u0", 1);
    sim.settle();
    let answers = sim.manager_outputs(a);
    assert!(
        answers.iter().any(|o| matches!(
            o,
            ManagerOutput::Failed {
                error: ManagerError::ReleasedMeanwhile(_),
                ..
            }
        )),
        "{answers:?}"
    );
    assert!(matches!(
        last(&sim, a),
        ManagerOutput::Released { vacated: true, .. }
    ));
    assert_eq!(stored(&sim).term, None);
}
