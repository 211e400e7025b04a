//! Leadership end to end on a live server (PROTOCOLS.md §4): one leader per application, ticket
//! answers, hand-over when the leader goes away, and the tenure token.

mod common;

use mongodb::bson::{doc, Document};
use std::time::Duration;
use tenure::time::SkewBounds;
use tenure_mongo::{ClockUpdater, Error, Fenced, Leadership, LeadershipState, Substrate};
use tokio::time::{timeout, Instant};

const CLAIM: Duration = Duration::from_millis(800);

fn unit(s: &Substrate, name: &str) -> Leadership {
    unit_claiming(s, name, CLAIM)
}

fn unit_claiming(s: &Substrate, name: &str, claim: Duration) -> Leadership {
    Leadership::builder("web", name)
        .claim_duration(claim)
        .skew(SkewBounds {
            rate_error_ppm: 500,
            clock_step_max: Duration::from_millis(100),
        })
        .retry(tenure::lease::RetryConfig {
            attempts_max: 10,
            delay_min: Duration::from_millis(10),
            delay_max: Duration::from_millis(100),
        })
        .build(s)
        .expect("valid leadership")
}

async fn settled(l: &Leadership) -> LeadershipState {
    let mut rx = l.state();
    let state = timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| !matches!(s, LeadershipState::Unknown)),
    )
    .await
    .expect("a first claim answers")
    .expect("tracker running")
    .clone();
    state
}

/// An updater fast enough for sub-second claims.
fn fast_clock(s: &Substrate) -> ClockUpdater {
    ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(s)
        .expect("updater")
}

/// Units `web-0` and `web-1` of one application, once both settled: (leader, its name) and
/// (minion, its name).
async fn two_units(s: &Substrate) -> ((Leadership, &'static str), (Leadership, &'static str)) {
    let a = unit(s, "web-0");
    let b = unit(s, "web-1");
    let (sa, sb) = (settled(&a).await, settled(&b).await);
    match (sa.is_leader(), sb.is_leader()) {
        (true, false) => ((a, "web-0"), (b, "web-1")),
        (false, true) => ((b, "web-1"), (a, "web-0")),
        other => panic!("exactly one leader expected, got {other:?}: {sa:?} {sb:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unit_leads_and_hands_over_when_it_goes_away() {
    let s = live!("leadership_handover");
    let clock = fast_clock(&s);
    let ((leader, _), (minion, _)) = two_units(&s).await;
    let tenure = leader
        .claim_leader()
        .await
        .expect("ticket")
        .expect("the leader's claim_leader is true");
    assert!(!tenure.is_cancelled());
    // Leader-only writes are fenced with the tenure's epoch.
    let jobs = s.database().collection::<Document>("leader_jobs");
    jobs.insert_one(doc! { "_id": "nightly", "runs": 0 })
        .await
        .expect("insert");
    let run = doc! { "$inc": { "runs": 1 } };
    let nightly = || doc! { "_id": "nightly" };
    let wrote = tenure.fenced_update_one(&jobs, "leader_epoch", nightly(), run.clone());
    assert_eq!(wrote.await.expect("fenced write"), Fenced::Written);
    assert!(minion.claim_leader().await.expect("ticket").is_none());
    minion.wait_minion().await.expect("already a minion");

    // Renewals keep the tenure past several claim durations.
    tokio::time::sleep(CLAIM * 3).await;
    assert!(
        !tenure.is_cancelled(),
        "renewed leadership keeps its tenure"
    );
    assert!(matches!(*minion.state().borrow(), LeadershipState::Minion));

    // The leader goes away: its tenure ends at once; the minion leads once the lease expires.
    let gone = Instant::now();
    leader.shutdown().await;
    assert!(tenure.is_cancelled());
    let next = timeout(Duration::from_secs(15), minion.wait_leader())
        .await
        .expect("the minion takes over")
        .expect("leads");
    assert!(!next.is_cancelled());
    assert!(
        next.epoch() > tenure.epoch(),
        "the next leader fences with a larger epoch: {:?} then {:?}",
        tenure.epoch(),
        next.epoch()
    );
    let wrote = next.fenced_update_one(&jobs, "leader_epoch", nightly(), run.clone());
    assert_eq!(wrote.await.expect("fenced write"), Fenced::Written);
    // The deposed leader's write is refused: its tenure ended (a write already on its way
    // would meet the fence, which admits only epochs at least the stored one).
    let late = tenure.fenced_update_one(&jobs, "leader_epoch", nightly(), run.clone());
    assert_eq!(late.await.expect("fenced write"), Fenced::Superseded);
    let job = jobs.find_one(nightly()).await.expect("read").expect("job");
    assert_eq!(job.get_i32("runs"), Ok(2), "{job:?}");
    let fenced_with = job.get_i64("leader_epoch").expect("fenced");
    assert_eq!(u64::try_from(fenced_with), Ok(next.epoch().0), "{job:?}");
    let took = gone.elapsed();
    assert!(
        took >= CLAIM,
        "took over after {took:?}, before the old lease could have expired"
    );
    assert!(
        leader.claim_leader().await.is_err(),
        "a stopped tracker refuses"
    );
    minion.shutdown().await;
    assert!(next.is_cancelled());
    clock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inconsistent_timings_are_refused_at_build() {
    let s = live!("leadership_config");
    let too_short = Leadership::builder("web", "u")
        .claim_duration(Duration::from_secs(1))
        .build(&s);
    match too_short {
        Err(Error::Input(e)) => assert!(e.to_string().contains("clock step bound"), "{e}"),
        other => panic!("{other:?}"),
    }
    let slow_retry = Leadership::builder("web", "u")
        .claim_duration(Duration::from_secs(10))
        .retry(tenure::lease::RetryConfig {
            attempts_max: 3,
            delay_min: Duration::from_secs(1),
            delay_max: Duration::from_secs(20),
        })
        .build(&s);
    match slow_retry {
        Err(Error::Input(e)) => assert!(e.to_string().contains("retry delay"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Leadership::builder("web app", "u").build(&s),
        Err(Error::Input(_))
    ));
}

/// Issue 19, item 4: a leader that resigns (a rolling deploy's shutdown) hands over within a
/// claim duration (the minion's manager sweeps that often), not when its lease would have
/// expired (up to two claim durations after its last renewal), and its tenure ends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resigning_leader_hands_over_before_its_lease_expires() {
    let s = live!("leadership_resign");
    let clock = fast_clock(&s);
    let claim = Duration::from_secs(3);
    let unit = |name: &str| unit_claiming(&s, name, claim);
    let a = unit("web-0");
    let tenure = timeout(Duration::from_secs(10), a.wait_leader())
        .await
        .expect("leads")
        .expect("tenure");
    let led = Instant::now();
    let b = unit("web-1");
    assert!(matches!(settled(&b).await, LeadershipState::Minion));
    let resigned = Instant::now();
    assert!(a.resign().await.expect("resign"), "the lease was released");
    assert!(tenure.is_cancelled(), "the tenure ends at once");
    // Early in a's term: its lease (twice the claim) would outlast the bound below by a second.
    assert!(
        resigned - led < Duration::from_secs(1),
        "setup took {:?}",
        resigned - led
    );
    let next = timeout(claim * 2, b.wait_leader())
        .await
        .expect("the minion leads before the old lease could have expired")
        .expect("tenure");
    let took = resigned.elapsed();
    // One sweep of b's manager and a claim.
    let bound = claim + Duration::from_millis(1500);
    assert!(took < bound, "took over after {took:?}");
    assert!(next.epoch() > tenure.epoch());
    assert!(a.claim_leader().await.is_err(), "a resigned unit refuses");
    b.shutdown().await;
    clock.shutdown().await;
}

/// Issue 19, item 6: a minion learns the leader's name, and its successor's when it changes;
/// a stopped unit knows no leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minion_learns_the_leaders_name_and_its_successors() {
    let s = live!("leadership_leader_name");
    let clock = fast_clock(&s);
    let ((leader, leader_name), (minion, minion_name)) = two_units(&s).await;
    let named = |l: &Leadership, name: &'static str| {
        let mut rx = l.leader();
        async move {
            timeout(
                Duration::from_secs(10),
                rx.wait_for(|n| n.as_deref() == Some(name)),
            )
            .await
            .unwrap_or_else(|_| panic!("never learnt that {name} leads"))
            .expect("tracker running");
        }
    };
    named(&minion, leader_name).await;
    named(&leader, leader_name).await;
    assert!(leader.resign().await.expect("resign"));
    named(&minion, minion_name).await;
    assert_eq!(
        *leader.leader().borrow(),
        None,
        "a stopped unit knows no leader"
    );
    minion.shutdown().await;
    clock.shutdown().await;
}
