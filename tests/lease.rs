//! Reference behaviours of the lease store and manager (PROTOCOLS.md §2-§3) and Tenure's
//! fencing epochs, driven through the sans-I/O manager on the reference store.

mod common;

use common::lease::{cancel, check, claim, manager, set_global, stop, wait};
use common::{secs, Actor, Clock, Fault, Sim};
use std::time::Duration;
use tenure::lease::{
    lease_id, Epoch, LeaseDoc, ManagerConfig, ManagerError, ManagerOutput, RequestId,
};
use tenure::substrate::{fields, Collection, Document, Op, Value};
use tenure::time::{GlobalTime, LocalTime, SkewBounds};

const D: Duration = Duration::from_secs(60);

fn cfg(writer: &str) -> ManagerConfig {
    ManagerConfig::new("app", writer)
}

fn stored(sim: &Sim, name: &str) -> LeaseDoc {
    LeaseDoc::decode(
        sim.store
            .get(Collection::Leases, &lease_id("app", name))
            .unwrap(),
        "app",
    )
    .unwrap()
}

fn last(sim: &Sim, n: usize) -> ManagerOutput {
    sim.manager_outputs(n).last().cloned().unwrap()
}

fn writes_by(sim: &Sim, n: usize) -> usize {
    sim.log()
        .delivered
        .iter()
        .filter(|(node, op)| *node == n && op.is_write())
        .count()
}

/// Goal: a claim on an absent lease inserts it with start = a fresh global read, epoch 1, and
/// grants a local deadline measured from the start of the call.
#[test]
fn claim_inserts_with_fresh_global_time_and_epoch_one() {
    let mut sim = Sim::new();
    set_global(&mut sim, secs(500));
    let m = manager(
        &mut sim,
        cfg("ctl-0"),
        Clock {
            rate_ppm: 0,
            offset: secs(3),
        },
    );
    sim.settle();
    sim.real = secs(10);
    claim(&mut sim, m, 1, "db", "unit-0", D);
    sim.settle();
    let ManagerOutput::Claimed {
        req,
        epoch,
        local_deadline,
        global_read,
        global_expiry,
        ..
    } = last(&sim, m)
    else {
        panic!("{:?}", sim.manager_outputs(m))
    };
    assert_eq!((req, epoch), (RequestId(1), Epoch(1)));
    assert_eq!(local_deadline, LocalTime(secs(13) + secs(60)));
    assert_eq!(
        (global_read, global_expiry),
        (GlobalTime(secs(500)), GlobalTime(secs(560)))
    );
    let doc = stored(&sim, "db");
    let term = doc.term.unwrap();
    assert_eq!(
        (
            term.holder.as_str(),
            term.start,
            term.duration,
            term.writer.as_str()
        ),
        ("unit-0", GlobalTime(secs(500)), D, "ctl-0")
    );
}

/// Goal: the holder's deadline shrinks by the clock step bound and rate error (DESIGN.md).
#[test]
fn skew_bounds_shrink_the_deadline() {
    let mut sim = Sim::new();
    let skew = SkewBounds {
        rate_error_ppm: 100_000,
        clock_step_max: Duration::from_secs(6),
    };
    let m = manager(
        &mut sim,
        ManagerConfig {
            skew,
            ..cfg("ctl-0")
        },
        Clock::EXACT,
    );
    claim(&mut sim, m, 1, "db", "unit-0", D);
    sim.settle();
    let ManagerOutput::Claimed { local_deadline, .. } = last(&sim, m) else {
        panic!()
    };
    // (60 - 6) s × 0.9 / 1.1
    assert_eq!(local_deadline, LocalTime(44_181_818_181));
}

/// Goal: a lease held by another holder is denied without any store write (M2), and the
/// requester is guaranteed not to hold it.
#[test]
fn foreign_holder_is_denied_without_a_store_call() {
    let mut sim = Sim::new();
    let a = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    claim(&mut sim, a, 1, "db", "unit-0", D);
    sim.settle();
    let b = manager(&mut sim, cfg("ctl-1"), Clock::EXACT);
    sim.settle();
    let before = writes_by(&sim, b);
    claim(&mut sim, b, 2, "db", "unit-1", D);
    sim.settle();
    assert_eq!(
        last(&sim, b),
        ManagerOutput::Denied {
            req: RequestId(2),
            lease: "db".into(),
            holder: "unit-0".into()
        }
    );
    assert_eq!(writes_by(&sim, b), before);
}

/// Goal: the same holder's claim extends, and extending never shortens (L3): a shorter
/// extension writes nothing and reports the existing, longer term.
#[test]
fn extension_extends_to_and_never_shortens() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    claim(&mut sim, m, 1, "db", "u", D);
    sim.settle();
    set_global(&mut sim, secs(10));
    sim.real = secs(10);
    let writes = writes_by(&sim, m);
    claim(&mut sim, m, 2, "db", "u", Duration::from_secs(30));
    sim.settle();
    assert_eq!(
        writes_by(&sim, m),
        writes,
        "a shorter extension must not write"
    );
    let ManagerOutput::Claimed {
        global_expiry,
        epoch,
        ..
    } = last(&sim, m)
    else {
        panic!()
    };
    assert_eq!((global_expiry, epoch), (GlobalTime(secs(60)), Epoch(1)));
    claim(&mut sim, m, 3, "db", "u", Duration::from_secs(90));
    sim.settle();
    let t = stored(&sim, "db").term.unwrap();
    assert_eq!(
        (t.start, t.duration),
        (GlobalTime(secs(10)), Duration::from_secs(90))
    );
}

/// Goal: expiry happens only once global time is strictly past start + duration (L4, L7): local
/// time passing alone never expires a lease; the document keeps its epoch, and the next holder
/// gets epoch 2 (F1).
#[test]
fn expiry_is_strictly_after_and_keeps_the_epoch() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    claim(&mut sim, m, 1, "db", "u0", D);
    sim.settle();
    // Local time runs far past the expiry while global time stands still: nothing expires.
    sim.run_until(secs(600));
    assert!(stored(&sim, "db").term.is_some());
    set_global(&mut sim, secs(60));
    sim.run_until(secs(700));
    assert!(
        stored(&sim, "db").term.is_some(),
        "global == start + duration is not past it"
    );
    set_global(&mut sim, secs(60) + 1);
    sim.run_until(secs(800));
    let doc = stored(&sim, "db");
    assert_eq!((doc.term, doc.epoch), (None, Epoch(1)));
    assert!(sim.manager_outputs(m).iter().any(|o| matches!(
        o,
        ManagerOutput::Expired {
            epoch: Epoch(1),
            ..
        }
    )));
    claim(&mut sim, m, 2, "db", "u1", D);
    sim.settle();
    assert!(matches!(
        last(&sim, m),
        ManagerOutput::Claimed {
            epoch: Epoch(2),
            ..
        }
    ));
}

/// Goal: two managers with stale caches race to claim: one wins, the other's Invalid is retried
/// after the refresh and becomes a denial (M3: Invalid never reaches the caller).
#[test]
fn racing_claims_one_wins_the_other_is_denied() {
    let mut sim = Sim::new();
    let a = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    let b = manager(&mut sim, cfg("ctl-1"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, a, 1, "db", "ua", D);
    claim(&mut sim, b, 2, "db", "ub", D);
    // Both read global time, then both write: interleave until both have written.
    for _ in 0..20 {
        if sim.in_flight().is_empty() {
            break;
        }
        let i = sim.in_flight().len() - 1;
        sim.deliver(i, Fault::Applied);
    }
    sim.settle();
    let outs: Vec<_> = [a, b].iter().map(|n| last(&sim, *n)).collect();
    assert_eq!(
        outs.iter()
            .filter(|o| matches!(o, ManagerOutput::Claimed { .. }))
            .count(),
        1,
        "{outs:?}"
    );
    assert_eq!(
        outs.iter()
            .filter(|o| matches!(o, ManagerOutput::Denied { .. }))
            .count(),
        1,
        "{outs:?}"
    );
}

/// Goal: waits end when the lease is observed absent, at once for an unheld lease, and can be
/// cancelled.
#[test]
fn wait_until_expired_releases_and_cancels() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    wait(&mut sim, m, 1, "free");
    assert_eq!(
        last(&sim, m),
        ManagerOutput::WaitEnded { req: RequestId(1) }
    );
    claim(&mut sim, m, 2, "db", "u", D);
    sim.settle();
    wait(&mut sim, m, 3, "db");
    wait(&mut sim, m, 4, "db");
    sim.settle();
    cancel(&mut sim, m, 4);
    assert_eq!(
        last(&sim, m),
        ManagerOutput::WaitCancelled { req: RequestId(4) }
    );
    set_global(&mut sim, secs(61));
    sim.run_until(secs(120));
    assert!(sim
        .manager_outputs(m)
        .contains(&ManagerOutput::WaitEnded { req: RequestId(3) }));
    assert!(!sim
        .manager_outputs(m)
        .contains(&ManagerOutput::WaitEnded { req: RequestId(4) }));
}

/// A manager whose holder claimed "db" for `D` and stopped, with global time now past the
/// expiry.
fn abandoned_and_expired() -> (Sim, usize) {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "db", "u", D);
    sim.settle();
    set_global(&mut sim, secs(61));
    sim.real = secs(61);
    (sim, m)
}

/// Goal: an expiry tick expires an expired lease even when its refresh answers later than the
/// tick began (real I/O takes time; found live on SecantusDB, where no lease ever expired).
#[test]
fn expiry_tick_judges_at_the_refresh_reply_not_at_the_tick_start() {
    let (mut sim, m) = abandoned_and_expired();
    for _ in 0..20 {
        // Fire the tick, then let 5 ms pass before each store reply arrives.
        sim.real += secs(1);
        sim.fire(m);
        while !sim.in_flight().is_empty() {
            sim.real += 5_000_000;
            sim.deliver(0, Fault::Applied);
        }
    }
    assert!(
        sim.manager_outputs(m)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Expired { lease, .. } if lease == "db")),
        "{:?}",
        sim.manager_outputs(m)
    );
    assert_eq!(stored(&sim, "db").term, None);
}

/// Goal: a lost reply to a read (a timeout) changes nothing and stops nothing: the expiry tick
/// whose refresh was lost looks again soon, not after max_sleep, and the abandoned lease is
/// expired (M6; found by the model checker, where one lost read stopped the manager for good).
#[test]
fn a_lost_read_on_an_expiry_tick_is_retried_soon() {
    let (mut sim, m) = abandoned_and_expired();
    sim.fire(m);
    assert!(!sim.in_flight().is_empty(), "the expiry tick refreshes");
    sim.deliver(0, Fault::Lost);
    sim.settle();
    assert!(
        !sim.manager_outputs(m)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Stopped(_))),
        "a lost read stopped the manager"
    );
    // Within a second (far less than max_sleep), the retried tick expires the lease.
    sim.run_until(sim.real + secs(1));
    assert_eq!(stored(&sim, "db").term, None);
}

/// Goal: a token check answers from the cache when held, and refreshes once before saying
/// "not held" (M4).
#[test]
fn token_check_refreshes_before_not_held() {
    let mut sim = Sim::new();
    let a = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    let b = manager(&mut sim, cfg("ctl-1"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, a, 1, "db", "ua", D);
    sim.settle();
    check(&mut sim, a, 2, "db", "ua");
    assert_eq!(
        last(&sim, a),
        ManagerOutput::Checked {
            req: RequestId(2),
            held: Some(Epoch(1)),
            refreshed: false
        }
    );
    // b's cache predates the claim: it refreshes and then sees ua holding.
    check(&mut sim, b, 3, "db", "ua");
    sim.settle();
    assert_eq!(
        last(&sim, b),
        ManagerOutput::Checked {
            req: RequestId(3),
            held: Some(Epoch(1)),
            refreshed: true
        }
    );
    check(&mut sim, b, 4, "db", "ub");
    sim.settle();
    assert_eq!(
        last(&sim, b),
        ManagerOutput::Checked {
            req: RequestId(4),
            held: None,
            refreshed: true
        }
    );
}

/// Goal: an ambiguous claim is resolved by re-reading, never guessed: applied → granted;
/// lost → retried and granted.
#[test]
fn unknown_outcomes_are_resolved_by_rereading() {
    for fault in [Fault::Ambiguous, Fault::Lost] {
        let mut sim = Sim::new();
        let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
        sim.settle();
        claim(&mut sim, m, 1, "db", "u", D);
        sim.deliver(0, Fault::Applied); // the global read
        assert!(matches!(sim.in_flight()[0].req.op, Op::Insert { .. }));
        sim.deliver(0, fault);
        sim.settle();
        assert!(
            matches!(
                last(&sim, m),
                ManagerOutput::Claimed {
                    epoch: Epoch(1),
                    ..
                }
            ),
            "{fault:?}: {:?}",
            sim.manager_outputs(m)
        );
        assert_eq!(stored(&sim, "db").holder(), Some("u"));
    }
}

/// Goal: bad input gets a typed error naming the input; nothing reaches the store.
#[test]
fn bad_input_is_refused_before_the_store() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    let writes = writes_by(&sim, m);
    for (i, (lease, holder, d)) in [
        ("a.b", "u", D),
        ("db", "", D),
        ("db", "u", Duration::ZERO),
        ("db", "u", Duration::from_secs(365 * 86_400)),
    ]
    .into_iter()
    .enumerate()
    {
        claim(&mut sim, m, i as u64, lease, holder, d);
        let ManagerOutput::Failed {
            error: ManagerError::Input(e),
            ..
        } = last(&sim, m)
        else {
            panic!("{:?}", last(&sim, m))
        };
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(writes_by(&sim, m), writes);
    assert!(
        tenure::lease::LeaseManager::new(ManagerConfig::new("app", "bad id"))
            .unwrap_err()
            .to_string()
            .contains("writer id")
    );
}

/// Goal: a corrupt or foreign document costs only its own lease: every call on it (claim,
/// check, wait) is answered with an error naming its `_id`, the document is never touched,
/// every other lease is served as usual, and once repaired the lease is served again.
#[test]
fn a_corrupt_document_costs_only_its_lease() {
    let mut sim = Sim::new();
    let bad = Document::new(
        "app#db#",
        fields([
            ("namespace", Value::Str("app".into())),
            ("name", Value::Str("db".into())),
        ]),
    );
    sim.store.put(Collection::Leases, bad.clone());
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    let names_it = |out: &ManagerOutput, req: u64| {
        matches!(out, ManagerOutput::Failed { req: r, error: e @ ManagerError::Corrupt(_) }
            if *r == RequestId(req) && e.to_string().contains("\"app#db#\""))
    };
    claim(&mut sim, m, 1, "db", "u", D);
    check(&mut sim, m, 2, "db", "u");
    wait(&mut sim, m, 3, "db");
    claim(&mut sim, m, 4, "web", "u", D);
    sim.settle();
    let outs = sim.manager_outputs(m);
    for req in 1..=3 {
        assert!(outs.iter().any(|o| names_it(o, req)), "{req}: {outs:?}");
    }
    assert!(
        outs.iter().any(|o| matches!(
            o,
            ManagerOutput::Claimed {
                req: RequestId(4),
                ..
            }
        )),
        "{outs:?}"
    );
    assert!(!outs.iter().any(|o| matches!(o, ManagerOutput::Stopped(_))));
    assert_eq!(sim.store.get(Collection::Leases, "app#db#"), Some(&bad));

    // Repaired by hand: the next claim re-reads it and is served.
    sim.store.put(
        Collection::Leases,
        LeaseDoc {
            name: "db".into(),
            epoch: Epoch(4),
            term: None,
            writer: "by-hand".into(),
            released_by: None,
        }
        .encode("app"),
    );
    claim(&mut sim, m, 5, "db", "u", D);
    sim.settle();
    assert!(
        matches!(
            last(&sim, m),
            ManagerOutput::Claimed {
                req: RequestId(5),
                epoch: Epoch(5),
                ..
            }
        ),
        "{:?}",
        last(&sim, m)
    );
}

/// Goal: every request gets an answer, whatever happens to its store call. A call the store
/// refuses (unreachable, not primary) is answered with "unavailable" and the manager keeps
/// serving; a stop while a call is in flight answers that call too.
#[test]
fn every_request_is_answered_when_its_store_call_fails() {
    for (req, at) in [(1, 0), (2, 1)] {
        // Refuse the global read (at 0) or the write (at 1).
        let mut sim = Sim::new();
        let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
        sim.settle();
        claim(&mut sim, m, req, "db", "u", D);
        for _ in 0..at {
            sim.deliver(0, Fault::Applied);
        }
        sim.deliver(0, Fault::Refused);
        sim.settle();
        assert!(
            matches!(&last(&sim, m), ManagerOutput::Failed { req: r, error: ManagerError::Unavailable(e) }
                if *r == RequestId(req) && e.message().contains("not primary")),
            "{:?}",
            sim.manager_outputs(m)
        );
        check(&mut sim, m, 10, "db", "u");
        sim.deliver(0, Fault::Refused);
        sim.settle();
        assert!(matches!(
            last(&sim, m),
            ManagerOutput::Failed {
                req: RequestId(10),
                error: ManagerError::Unavailable(_)
            }
        ));
        claim(&mut sim, m, 11, "db", "u", D);
        sim.settle();
        assert!(
            matches!(
                last(&sim, m),
                ManagerOutput::Claimed {
                    req: RequestId(11),
                    ..
                }
            ),
            "the manager serves again once the store answers: {:?}",
            last(&sim, m)
        );
    }

    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "db", "u", D);
    assert_eq!(
        sim.in_flight().len(),
        1,
        "the claim's store call is in flight"
    );
    stop(&mut sim, m);
    sim.settle();
    assert!(sim.manager_outputs(m).contains(&ManagerOutput::Failed {
        req: RequestId(1),
        error: ManagerError::Stopped("stopped by its owner".into())
    }));
}

/// Goal: stopping answers every pending request with "stopped".
#[test]
fn stop_answers_pending_requests() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "db", "u", D);
    sim.settle();
    wait(&mut sim, m, 2, "db");
    stop(&mut sim, m);
    let outs = sim.manager_outputs(m);
    assert!(outs.contains(&ManagerOutput::Failed {
        req: RequestId(2),
        error: ManagerError::Stopped("stopped by its owner".into())
    }));
    assert!(matches!(outs.last(), Some(ManagerOutput::Stopped(_))));
    assert!(sim.manager(m).is_stopped());
}

/// Delivers the newest request in flight until `done` holds, leaving the oldest `keep` alone.
fn deliver_newest_until(sim: &mut Sim, keep: usize, done: impl Fn(&Sim) -> bool) {
    for _ in 0..50 {
        if done(sim) {
            return;
        }
        assert!(
            sim.in_flight().len() > keep,
            "nothing else to deliver: {:?}",
            sim.manager_outputs(0)
        );
        let i = sim.in_flight().len() - 1;
        sim.deliver(i, Fault::Applied);
    }
    panic!("not done after 50 deliveries: {:?}", sim.manager_outputs(0));
}

/// Goal (issue 19, bug 3): a slow store call on one lease delays no other lease. With the
/// first claim's call stuck in flight, a claim on another lease, a check that needs a refresh
/// and the expiry of a third lease all complete; two calls on one lease still run in turn.
#[test]
fn a_slow_lease_delays_no_other_lease() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "old", "u", Duration::from_secs(1));
    sim.settle();
    claim(&mut sim, m, 2, "slow", "u", D);
    assert_eq!(
        sim.in_flight().len(),
        1,
        "the slow claim's call is in flight"
    );

    claim(&mut sim, m, 3, "fast", "u", D);
    claim(&mut sim, m, 4, "slow", "v", D);
    let claimed = |req| {
        move |s: &Sim| {
            s.manager_outputs(0)
                .iter()
                .any(|o| matches!(o, ManagerOutput::Claimed { req: r, .. } if *r == req))
        }
    };
    deliver_newest_until(&mut sim, 1, claimed(RequestId(3)));
    assert_eq!(sim.in_flight().len(), 1, "only the slow call is left");

    check(&mut sim, m, 5, "elsewhere", "u");
    deliver_newest_until(&mut sim, 1, |s| {
        s.manager_outputs(0).contains(&ManagerOutput::Checked {
            req: RequestId(5),
            held: None,
            refreshed: true,
        })
    });

    set_global(&mut sim, secs(10));
    sim.real = secs(10);
    sim.fire(m);
    deliver_newest_until(&mut sim, 1, |s| {
        s.manager_outputs(0)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Expired { lease, .. } if lease == "old"))
    });
    assert!(
        !sim.manager_outputs(m).iter().any(|o| matches!(
            o,
            ManagerOutput::Claimed {
                req: RequestId(2) | RequestId(4),
                ..
            } | ManagerOutput::Denied {
                req: RequestId(2) | RequestId(4),
                ..
            }
        )),
        "the slow lease's calls wait for its store call, in turn"
    );

    sim.settle();
    let outs = sim.manager_outputs(m);
    assert!(claimed(RequestId(2))(&sim), "{outs:?}");
    assert!(
        outs.contains(&ManagerOutput::Denied {
            req: RequestId(4),
            lease: "slow".into(),
            holder: "u".into()
        }),
        "{outs:?}"
    );
}

/// Goal: `calls_max` bounds the store calls one manager runs at once; 1 serialises them all,
/// as Juju's 2016 manager did, and 0 is refused.
#[test]
fn calls_max_bounds_concurrent_store_calls() {
    let mut sim = Sim::new();
    let mut one = cfg("ctl-0");
    one.calls_max = 1;
    let m = manager(&mut sim, one, Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "a", "u", D);
    claim(&mut sim, m, 2, "b", "u", D);
    assert_eq!(sim.in_flight().len(), 1);
    sim.settle();
    assert_eq!(
        sim.manager_outputs(m)
            .iter()
            .filter(|o| matches!(o, ManagerOutput::Claimed { .. }))
            .count(),
        2
    );

    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    for (i, lease) in ["a", "b", "c"].into_iter().enumerate() {
        claim(&mut sim, m, i as u64, lease, "u", D);
    }
    assert_eq!(
        sim.in_flight().len(),
        3,
        "three leases, three calls at once"
    );

    let mut zero = cfg("ctl-0");
    zero.calls_max = 0;
    let err = tenure::lease::LeaseManager::new(zero).unwrap_err();
    assert!(err.to_string().contains("calls_max"), "{err}");
}

/// Goal: a tick skips a lease while that lease's own call runs; when the call ends without
/// renewing it, the lease is expired soon after, not a `max_sleep` later (M6; the model found
/// this when calls on different leases first ran at once).
#[test]
fn a_lease_skipped_by_a_tick_is_expired_once_its_call_ends() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "db", "u", Duration::from_secs(1));
    sim.settle();
    set_global(&mut sim, secs(10));
    sim.real = secs(10);
    // The tick is due too: its refresh (a find) starts first, then the extension's read.
    claim(&mut sim, m, 2, "db", "u", D);
    assert!(
        matches!(sim.in_flight()[..], [ref find, ref read]
            if matches!(find.req.op, Op::Find { .. }) && matches!(read.req.op, Op::Read { .. })),
        "{:?}",
        sim.in_flight()
    );
    sim.deliver(0, Fault::Applied);
    deliver_newest_until(&mut sim, 1, |s| s.in_flight().len() == 1);
    sim.deliver(0, Fault::Lost);
    assert!(sim.manager_outputs(m).contains(&ManagerOutput::Failed {
        req: RequestId(2),
        error: ManagerError::OutcomeUnknown("db".into())
    }));
    let next = sim.manager(m).next_deadline().expect("a tick is scheduled");
    assert!(
        next <= sim.now(m).after(Duration::from_secs(1)),
        "the due lease is looked at again soon, not at max_sleep: {next}"
    );
    sim.run_until(secs(12));
    assert!(
        sim.manager_outputs(m)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Expired { lease, .. } if lease == "db")),
        "{:?}",
        sim.manager_outputs(m)
    );
}

/// Goal: a refresh never undoes what a call learnt while the refresh ran. The tick's refresh
/// reads the namespace before a claim inserts the lease and answers after the claim is
/// granted: the cache must still show the lease held, so a wait does not end and a check
/// answers from the cache (a cache moved back to "absent" did both, on a live server).
#[test]
fn a_refresh_never_undoes_what_a_call_learnt() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    assert!(
        matches!(sim.in_flight()[..], [ref r] if matches!(r.req.op, Op::Find { .. })),
        "the first tick's refresh: {:?}",
        sim.in_flight()
    );
    sim.deliver(0, Fault::Applied);
    claim(&mut sim, m, 1, "db", "u", D);
    deliver_newest_until(&mut sim, 1, |s| {
        s.manager_outputs(0)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Claimed { .. }))
    });
    sim.deliver(0, Fault::Applied);
    assert!(sim.in_flight().is_empty(), "{:?}", sim.in_flight());

    wait(&mut sim, m, 2, "db");
    check(&mut sim, m, 3, "db", "u");
    let outs = sim.manager_outputs(m);
    assert!(
        !outs.contains(&ManagerOutput::WaitEnded { req: RequestId(2) }),
        "{outs:?}"
    );
    assert!(
        outs.contains(&ManagerOutput::Checked {
            req: RequestId(3),
            held: Some(Epoch(1)),
            refreshed: false
        }),
        "{outs:?}"
    );
}

/// Goal: the same when the lease is both learnt about and busy as the refresh answers (granted,
/// then extended, during one refresh): its entry is kept once, not kept and then dropped (the
/// simulator's M5 check found that).
#[test]
fn a_refresh_keeps_a_lease_learnt_about_and_still_busy() {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.deliver(0, Fault::Applied);
    claim(&mut sim, m, 1, "db", "u", D);
    deliver_newest_until(&mut sim, 1, |s| {
        s.manager_outputs(0)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Claimed { .. }))
    });
    claim(&mut sim, m, 2, "db", "u", D);
    assert_eq!(
        sim.in_flight().len(),
        2,
        "the refresh's read, the extension's"
    );
    sim.deliver(0, Fault::Applied);

    wait(&mut sim, m, 3, "db");
    let outs = sim.manager_outputs(m);
    assert!(
        !outs.contains(&ManagerOutput::WaitEnded { req: RequestId(3) }),
        "{outs:?}"
    );
    sim.settle();
    assert!(
        sim.manager_outputs(m).iter().any(|o| matches!(
            o,
            ManagerOutput::Claimed {
                req: RequestId(2),
                epoch: Epoch(1),
                ..
            }
        )),
        "{:?}",
        sim.manager_outputs(m)
    );
}

/// Goal: past a lease's local expiry the cache no longer answers "held": another manager may
/// have expired it already, so the check reads the store first (M4's "held" half: held in the
/// store's view while the check ran; found live, where a check raced this manager's own expiry).
#[test]
fn a_check_past_the_local_expiry_reads_the_store_before_held() {
    let mut sim = Sim::new();
    let a = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    let b = manager(&mut sim, cfg("ctl-1"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, a, 1, "db", "u", D);
    sim.settle();
    set_global(&mut sim, secs(61));
    sim.real = secs(61);
    sim.set_paused(a, true);
    sim.settle();
    sim.set_paused(a, false);
    assert_eq!(stored(&sim, "db").term, None);
    assert!(
        sim.manager_outputs(b)
            .iter()
            .any(|o| matches!(o, ManagerOutput::Expired { .. })),
        "b expired the lease while a was paused"
    );

    check(&mut sim, a, 2, "db", "u");
    sim.settle();
    assert_eq!(
        last(&sim, a),
        ManagerOutput::Checked {
            req: RequestId(2),
            held: None,
            refreshed: true
        }
    );
}

/// A manager past the expiry of lease "db" (held by "u"), its tick's refresh sent and not yet
/// answered, and a check of "db" by "v" (request 2) just made.
fn check_during_a_tick_refresh() -> (Sim, usize) {
    let mut sim = Sim::new();
    let m = manager(&mut sim, cfg("ctl-0"), Clock::EXACT);
    sim.settle();
    claim(&mut sim, m, 1, "db", "u", D);
    sim.settle();
    sim.real = secs(61);
    sim.fire(m);
    assert_eq!(sim.in_flight().len(), 1, "the tick's refresh");
    check(&mut sim, m, 2, "db", "v");
    (sim, m)
}

/// Goal: while the store refuses every read, a check the cache cannot answer gets the store's
/// error, not queued behind the ticks' retried refreshes for ever (issue 20: a check never
/// answered with the server down).
#[test]
fn a_check_is_answered_while_the_store_refuses_every_read() {
    let (mut sim, m) = check_during_a_tick_refresh();
    for _ in 0..10 {
        if sim.in_flight().is_empty() {
            break;
        }
        // Each refusal takes a store timeout: by then the tick's retry is due.
        sim.real += secs(2);
        sim.deliver(0, Fault::Refused);
    }
    let answered = sim.manager_outputs(m).into_iter().find(|o| {
        matches!(
            o,
            ManagerOutput::Failed {
                req: RequestId(2),
                ..
            } | ManagerOutput::Checked {
                req: RequestId(2),
                ..
            }
        )
    });
    assert!(
        matches!(
            answered,
            Some(ManagerOutput::Failed {
                error: ManagerError::Unavailable(_),
                ..
            })
        ),
        "{:?}",
        sim.manager_outputs(m)
    );
}

/// Goal: a check the cache cannot answer reads its own lease at once, beside a refresh in
/// flight, so a slow refresh never doubles a check's time (issue 20: every call bounded by one
/// store timeout).
#[test]
fn a_check_never_waits_for_a_refresh() {
    let (mut sim, m) = check_during_a_tick_refresh();
    assert_eq!(sim.in_flight().len(), 2, "the check's own read");
    sim.deliver(1, Fault::Applied);
    assert_eq!(
        last(&sim, m),
        ManagerOutput::Checked {
            req: RequestId(2),
            held: None,
            refreshed: true
        }
    );
}
