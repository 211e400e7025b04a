//! Reference behaviours of the leadership tracker (PROTOCOLS.md §4), on real lease managers
//! over the reference store.

mod common;

use common::leadership::{self, answer, outputs, stop, ticket, unit};
use common::lease::set_global;
use common::{secs, Clock, Sim};
use std::time::Duration;
use tenure::leadership::{TicketKind, TrackerConfig, TrackerOutput};
use tenure::lease::{ManagerConfig, ManagerOutput, RequestId};
use tenure::time::LocalTime;

const D: Duration = Duration::from_secs(30);

fn tracker(unit: &str) -> TrackerConfig {
    TrackerConfig {
        application: "mysql".into(),
        unit: unit.into(),
        claim_duration: D,
        mutant: None,
    }
}

fn sim() -> Sim {
    let mut sim = Sim::new();
    set_global(&mut sim, 0);
    sim
}

fn claims(sim: &Sim, u: usize) -> usize {
    outputs(sim, u)
        .iter()
        .filter(|o| matches!(o, TrackerOutput::Claim { .. }))
        .count()
}

/// Goal: the first claim asks for 2 × duration (T5); a granted claim makes the unit leader with
/// renewal due `duration` after the claim started, and `claim_leader` answers true.
#[test]
fn claims_twice_the_duration_and_renews_after_one() {
    let mut sim = sim();
    let u = unit(&mut sim, 0, tracker("mysql-0"));
    assert!(
        matches!(&outputs(&sim, u)[0], TrackerOutput::Claim { duration, .. } if *duration == D * 2)
    );
    assert!(leadership::tracker(&sim, u).is_leader());
    assert_eq!(
        leadership::tracker(&sim, u).next_deadline(),
        Some(LocalTime(secs(30)))
    );
    let t = ticket(&mut sim, u, TicketKind::ClaimLeader);
    assert_eq!(answer(&sim, u, t), Some(true));
    // The renewal happens on time and keeps leadership (global time advances with real time).
    for s in [20, 40, 60, 80] {
        set_global(&mut sim, secs(s));
        sim.run_until(secs(s));
    }
    assert!(claims(&sim, u) >= 3, "{:?}", outputs(&sim, u));
    assert!(leadership::tracker(&sim, u).is_leader());
}

/// Goal: a `claim_leader` ticket issued after the renewal fell due waits for the renewal, so a
/// true answer is always backed by `duration` of tenure (T1).
#[test]
fn overdue_renewal_runs_before_answering() {
    let mut sim = sim();
    let u = unit(&mut sim, 0, tracker("mysql-0"));
    // Pretend the renewal timer did not fire: jump past it without running timers.
    sim.real = secs(31);
    let claims_before = claims(&sim, u);
    let t = ticket(&mut sim, u, TicketKind::ClaimLeader);
    assert_eq!(
        claims(&sim, u),
        claims_before + 1,
        "an overdue ticket triggers a renewal"
    );
    assert_eq!(answer(&sim, u, t), Some(true));
    let until = leadership::tracker(&sim, u).leader_until().unwrap();
    assert!(until >= LocalTime(secs(31) + secs(30)));
}

/// Goal: a denied unit becomes a minion with exactly one release-waiter (T3), `wait_minion`
/// resolves, `wait_leader` waits, and when the leader's lease expires the minion claims and
/// its `wait_leader` resolves true.
#[test]
fn minion_waits_for_release_then_leads() {
    let mut sim = sim();
    let a = unit(&mut sim, 0, tracker("mysql-0"));
    let b = unit(&mut sim, 1, tracker("mysql-1"));
    assert!(!leadership::tracker(&sim, b).is_leader());
    assert!(leadership::tracker(&sim, b).is_waiting_release());
    let waiters = outputs(&sim, b)
        .iter()
        .filter(|o| matches!(o, TrackerOutput::WaitReleased { .. }))
        .count();
    assert_eq!(waiters, 1);
    let minion = ticket(&mut sim, b, TicketKind::WaitMinion);
    assert_eq!(answer(&sim, b, minion), Some(true));
    let claim = ticket(&mut sim, b, TicketKind::ClaimLeader);
    assert_eq!(answer(&sim, b, claim), Some(false));
    let lead = ticket(&mut sim, b, TicketKind::WaitLeader);
    assert_eq!(answer(&sim, b, lead), None);
    // The leader stops renewing; once global time passes its expiry the lease is expired.
    stop(&mut sim, a);
    set_global(&mut sim, secs(61));
    sim.run_until(secs(120));
    assert_eq!(answer(&sim, b, lead), Some(true));
    assert!(leadership::tracker(&sim, b).is_leader());
    // Each leader learns its term's fencing epoch; the next leader's is larger.
    let epochs = |u: usize| -> Vec<u64> {
        outputs(&sim, u)
            .iter()
            .filter_map(|o| match o {
                TrackerOutput::BecameLeader { epoch, .. } => Some(epoch.0),
                _ => None,
            })
            .collect()
    };
    assert_eq!(epochs(a).first(), Some(&1), "{:?}", epochs(a));
    assert_eq!(epochs(b).first(), Some(&2), "{:?}", epochs(b));
}

/// Goal: stopping resolves every pending ticket false (T4), and later tickets answer false.
#[test]
fn stop_resolves_all_tickets_false() {
    let mut sim = sim();
    let a = unit(&mut sim, 0, tracker("mysql-0"));
    let b = unit(&mut sim, 1, tracker("mysql-1"));
    let lead = ticket(&mut sim, b, TicketKind::WaitLeader);
    stop(&mut sim, b);
    assert_eq!(answer(&sim, b, lead), Some(false));
    let later = ticket(&mut sim, b, TicketKind::WaitMinion);
    assert_eq!(answer(&sim, b, later), Some(false));
    assert!(leadership::tracker(&sim, a).is_leader());
}

/// Goal: invalid tracker configuration is refused with a message naming the field.
#[test]
fn invalid_tracker_config() {
    let e = tenure::leadership::Tracker::new(TrackerConfig {
        unit: "my unit".into(),
        ..tracker("x")
    })
    .unwrap_err();
    assert!(e.to_string().contains("invalid unit"), "{e}");
    let e = tenure::leadership::Tracker::new(TrackerConfig {
        claim_duration: Duration::ZERO,
        ..tracker("x")
    })
    .unwrap_err();
    assert!(e.to_string().contains("claim duration"), "{e}");
}

/// Goal: a `Unit` (tracker wired to its own manager) is driven like any store actor: the first
/// unit to claim leads, the second becomes a minion with one release-waiter and is told of the
/// denial, and their tickets answer accordingly.
#[test]
fn units_route_tracker_claims_through_their_managers() {
    let short = |unit: &str| TrackerConfig {
        application: "db".into(),
        claim_duration: Duration::from_secs(10),
        ..tracker(unit)
    };
    let mut sim = sim();
    let a = unit(&mut sim, 0, short("db-0"));
    let b = unit(&mut sim, 1, short("db-1"));
    assert!(leadership::tracker(&sim, a).is_leader());
    let minion = leadership::tracker(&sim, b);
    assert!(!minion.is_leader() && minion.is_waiting_release());
    assert!(sim
        .manager_outputs(b)
        .iter()
        .any(|o| matches!(o, ManagerOutput::Denied { .. })));
    let yes = ticket(&mut sim, a, TicketKind::ClaimLeader);
    assert_eq!(answer(&sim, a, yes), Some(true));
    let no = ticket(&mut sim, b, TicketKind::ClaimLeader);
    assert_eq!(answer(&sim, b, no), Some(false));
}

/// Goal: a unit's request ids only pair its tracker's requests with the manager's answers, so
/// once none is outstanding numbering starts again: a leader's renewals are all request 0.
/// Method: two units on one store (the second waits for a release); the leader renews for a
/// minute while global time follows real time.
#[test]
fn a_units_request_ids_start_again_once_none_is_outstanding() {
    let short = |unit: &str| TrackerConfig {
        claim_duration: Duration::from_secs(10),
        ..tracker(unit)
    };
    let mut sim = sim();
    let a = unit(&mut sim, 0, short("db-0"));
    let b = unit(&mut sim, 1, short("db-1"));
    assert!(leadership::tracker(&sim, b).is_waiting_release());
    for s in 1..=60 {
        set_global(&mut sim, secs(s));
        sim.run_until(secs(s));
    }
    let grants: Vec<RequestId> = sim
        .manager_outputs(a)
        .iter()
        .filter_map(|o| match o {
            ManagerOutput::Claimed { req, .. } => Some(*req),
            _ => None,
        })
        .collect();
    assert!(grants.len() >= 5, "the leader renewed: {grants:?}");
    assert!(grants.iter().all(|r| *r == RequestId(0)), "{grants:?}");
    assert!(leadership::tracker(&sim, a).is_leader());
    assert!(leadership::tracker(&sim, b).is_waiting_release());
}

/// Goal: the tracker itself decides when a leader's tenure lapses: a renewal still unanswered
/// when the guarantee runs out reports `Lapsed` at exactly its end, after which the unit is not
/// leader and `WaitLeader` waits for the renewal's answer; a unit paused through its renewal
/// time lapses and claims at once.
#[test]
fn a_renewal_unanswered_by_the_end_of_the_guarantee_lapses() {
    use tenure::leadership::{ClaimResult, Tracker};
    let at = |s: u64| LocalTime(secs(s));
    let granted = ClaimResult::Granted {
        local_deadline: None,
        epoch: tenure::lease::Epoch(1),
    };
    let mut t = Tracker::new(tracker("mysql-0")).unwrap();
    let _ = t.handle_start(at(0));
    let _ = t.handle_claim_result(granted.clone(), at(0));
    assert_eq!(t.leader_until(), Some(at(60)));
    // The renewal at half-time is sent and not answered.
    let fx = t.handle_timeout(at(30));
    assert!(matches!(
        fx.notifications[..],
        [TrackerOutput::Claim { .. }]
    ));
    assert_eq!(t.next_deadline(), Some(at(60)), "the end of the guarantee");
    assert!(t.handle_timeout(LocalTime(secs(60) - 1)).is_empty());
    let fx = t.handle_timeout(at(60));
    assert_eq!(fx.notifications, [TrackerOutput::Lapsed { until: at(60) }]);
    assert!(!t.is_leader());
    let (ticket, fx) = t.handle_ticket(TicketKind::WaitLeader, at(61));
    assert!(fx.is_empty(), "no answer while the renewal is out");
    let fx = t.handle_claim_result(granted.clone(), at(62));
    assert!(fx.notifications.contains(&TrackerOutput::Ticket {
        id: ticket,
        kind: TicketKind::WaitLeader,
        value: true
    }));

    // Paused through the renewal time: the first timeout after the guarantee lapses and claims.
    let mut t = Tracker::new(tracker("mysql-0")).unwrap();
    let _ = t.handle_start(at(0));
    let _ = t.handle_claim_result(granted, at(0));
    let fx = t.handle_timeout(at(90));
    assert!(matches!(
        fx.notifications[..],
        [TrackerOutput::Lapsed { .. }, TrackerOutput::Claim { .. }]
    ));
}

/// Goal: a claim the store could not answer is retried after a quarter of the claim duration,
/// not fatal (issue 20: a server restart stopped leadership for good). A leader keeps leading
/// until its guarantee lapses, a `claim_leader` ticket waiting on the failed renewal is answered
/// false, and a first claim that failed is tried again.
#[test]
fn a_claim_the_store_could_not_answer_is_retried() {
    use tenure::leadership::{ClaimResult, Tracker};
    let at = |s: u64| LocalTime(secs(s));
    let down = || ClaimResult::Unavailable("store unreachable".into());
    let granted = ClaimResult::Granted {
        local_deadline: None,
        epoch: tenure::lease::Epoch(1),
    };
    let claims = |fx: &tenure::effects::Effects<TrackerOutput>| {
        fx.notifications
            .iter()
            .filter(|n| matches!(n, TrackerOutput::Claim { .. }))
            .count()
    };
    let mut t = Tracker::new(tracker("mysql-0")).unwrap();
    let _ = t.handle_start(at(0));
    assert!(t.handle_claim_result(down(), at(2)).is_empty());
    assert!(!t.is_stopped());
    assert_eq!(t.next_deadline(), Some(LocalTime(secs(2) + secs(30) / 4)));
    let (ticket, fx) = t.handle_ticket(TicketKind::ClaimLeader, at(3));
    assert_eq!(
        fx.notifications,
        [TrackerOutput::Ticket {
            id: ticket,
            kind: TicketKind::ClaimLeader,
            value: false
        }]
    );
    assert_eq!(claims(&t.handle_timeout(at(10))), 1, "the retry");
    let _ = t.handle_claim_result(granted, at(10));
    assert_eq!(t.leader_until(), Some(at(70)));

    // The renewal at 40 s fails; a ticket waiting for it is answered false; the leader still
    // leads, retries at 47.5 s, and lapses at 70 s if the store never answers.
    assert_eq!(claims(&t.handle_timeout(at(40))), 1);
    let (ticket, fx) = t.handle_ticket(TicketKind::ClaimLeader, at(41));
    assert!(fx.is_empty(), "waits for the renewal");
    let fx = t.handle_claim_result(down(), at(42));
    assert!(fx.notifications.contains(&TrackerOutput::Ticket {
        id: ticket,
        kind: TicketKind::ClaimLeader,
        value: false
    }));
    assert!(t.is_leader());
    assert_eq!(t.next_deadline(), Some(LocalTime(secs(42) + secs(30) / 4)));
    assert_eq!(
        claims(&t.handle_timeout(LocalTime(secs(42) + secs(30) / 4))),
        1
    );
    let _ = t.handle_claim_result(down(), at(60));
    assert_eq!(t.next_deadline(), Some(LocalTime(secs(67) + 500_000_000)));
    let fx = t.handle_timeout(at(70));
    assert!(matches!(
        fx.notifications[..],
        [TrackerOutput::Lapsed { .. }, TrackerOutput::Claim { .. }]
    ));
}

/// Goal: a leader that resigns ends its tenure at once and releases its lease, so the waiting
/// unit leads at its manager's next sweep although the old term has not expired (global time
/// stands still here: only the release can free the lease); a unit holding nothing resigns
/// without a write.
#[test]
fn a_resigning_leader_hands_over_without_waiting_for_expiry() {
    use common::{split, Node, Note};
    use tenure::leadership::Unit;
    let mut sim = Sim::new();
    set_global(&mut sim, secs(100));
    let start = |sim: &mut Sim, i: usize| {
        let mut m = ManagerConfig::new("app", format!("ctl-{i}"));
        m.max_sleep = D;
        let unit = Unit::new(m, tracker(&format!("mysql-{i}"))).unwrap();
        let n = sim.add(Node::Unit(Box::new(unit)), Clock::EXACT);
        sim.call(n, |node, now| match node {
            Node::Unit(u) => split(u.handle_start(now), Note::from),
            _ => unreachable!("a unit"),
        });
        sim.settle();
        n
    };
    let leads = |sim: &Sim, n: usize| matches!(&sim.procs[n].node, Node::Unit(u) if u.tracker().is_leader());
    let resign = |sim: &mut Sim, n: usize| {
        sim.call(n, |node, now| match node {
            Node::Unit(u) => split(u.handle_resign(now), Note::from),
            _ => unreachable!("a unit"),
        });
        sim.settle();
    };
    let (a, b) = (start(&mut sim, 0), start(&mut sim, 1));
    assert!(leads(&sim, a) && !leads(&sim, b));
    sim.real = secs(1);
    resign(&mut sim, a);
    assert!(!leads(&sim, a), "the tenure ends at once");
    assert!(sim.notes_of(a).contains(&Note::Resigned(Ok(true))));
    sim.run_until(secs(35));
    assert!(leads(&sim, b), "the waiting unit leads within one sweep");
    let doc = tenure::lease::LeaseDoc::decode(
        sim.store
            .get(tenure::substrate::Collection::Leases, "app#mysql#")
            .unwrap(),
        "app",
    )
    .unwrap();
    assert_eq!((doc.holder(), doc.epoch.0), (Some("mysql-1"), 2));
    assert_eq!(sim.global().0, secs(100), "global time never moved");
    // A minion holds no term: it resigns without a write.
    let c = start(&mut sim, 2);
    let writes = sim
        .log()
        .delivered
        .iter()
        .filter(|(n, op)| *n == c && op.is_write())
        .count();
    resign(&mut sim, c);
    assert!(sim.notes_of(c).contains(&Note::Resigned(Ok(false))));
    let after = sim
        .log()
        .delivered
        .iter()
        .filter(|(n, op)| *n == c && op.is_write())
        .count();
    assert_eq!(writes, after, "nothing to release, nothing written");
}
