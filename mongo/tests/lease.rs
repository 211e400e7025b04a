//! The global clock and leases, end to end on a live server (PROTOCOLS.md §1-§3): the reference
//! behaviours, races between managers, fencing, bad input and foreign documents.

mod common;

use futures_util::StreamExt;
use mongodb::bson::{doc, Document as BsonDocument};
use std::time::Duration;
use tenure::clock::{ClockError, CLOCK_ID};
use tenure::lease::{lease_id, ManagerError};
use tenure::substrate::Collection;
use tenure::time::SkewBounds;
use tenure::validate::InputError;
use tenure_mongo::clock::global_time;
use tenure_mongo::{ClockUpdater, ClockWatch, Error, Fenced, Leases, Substrate};
use tokio::time::{sleep, timeout, Instant};

/// Fast clocks for tests: a 20 ms interval and a 100 ms backoff, so the clock step bound is
/// 100 ms and leases of a second or two keep most of their guarantee.
const INTERVAL: Duration = Duration::from_millis(20);
const BACKOFF: Duration = Duration::from_millis(100);
const SKEW: SkewBounds = SkewBounds {
    rate_error_ppm: 500,
    clock_step_max: BACKOFF,
};

fn updater(s: &Substrate) -> ClockUpdater {
    ClockUpdater::builder()
        .update_interval(INTERVAL)
        .backoff_delay(BACKOFF)
        .spawn(s)
        .expect("valid updater")
}

fn leases(s: &Substrate, writer: &str) -> Leases {
    Leases::builder("app")
        .writer(writer)
        .skew(SKEW)
        .max_sleep(Duration::from_millis(500))
        .build(s)
        .expect("valid manager")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updaters_create_and_advance_one_clock_at_the_pace_of_real_time() {
    let s = live!("clock_advance");
    assert_eq!(
        global_time(&s).await.expect("read"),
        tenure::time::GlobalTime(0)
    );
    let watch = ClockWatch::spawn(&s, Duration::from_millis(10)).expect("watch");
    let mut seen = Box::pin(watch.stream());
    let updaters: Vec<_> = (0..3).map(|_| updater(&s)).collect();
    let first = timeout(Duration::from_secs(10), seen.next())
        .await
        .expect("the clock moves")
        .expect("a value");
    let started = Instant::now();
    let mut last = first;
    let mut values = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        let t = timeout(Duration::from_secs(5), seen.next())
            .await
            .expect("keeps moving")
            .expect("a value");
        assert!(
            t > last,
            "the watch emits strictly later times: {t:?} after {last:?}"
        );
        last = t;
        values += 1;
    }
    let real = started.elapsed();
    let global = last.since(first);
    // Three updaters race every interval but only one compare-and-swap wins per value, so global
    // time tracks real time instead of running three times as fast.
    assert!(values >= 10, "only {values} distinct values in {real:?}");
    assert!(
        global <= real + BACKOFF && global >= real / 2,
        "global time moved {global:?} in {real:?} of real time"
    );
    for u in updaters {
        u.shutdown().await;
    }
    watch.shutdown().await;
    let stored = global_time(&s).await.expect("read");
    sleep(Duration::from_millis(200)).await;
    assert_eq!(
        global_time(&s).await.expect("read"),
        stored,
        "stopped updaters stop the clock"
    );
}

/// `start + duration` of the stored lease `name` in namespace `app`.
async fn stored_term_end(s: &Substrate, name: &str) -> u64 {
    let doc = s
        .database()
        .collection::<BsonDocument>(s.collection_name(Collection::Leases))
        .find_one(doc! { "_id": lease_id("app", name) })
        .await
        .expect("read")
        .expect("stored");
    let field = |f| u64::try_from(doc.get_i64(f).expect(f)).expect("positive");
    field("start") + field("duration")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_extend_deny_expire_and_reclaim_with_a_larger_epoch() {
    let s = live!("lease_lifecycle");
    let clock = updater(&s);
    let a = leases(&s, "manager-a");
    let b = leases(&s, "manager-b");
    let d = Duration::from_millis(1500);

    let t1 = a
        .claim("db", "unit-0", d)
        .await
        .expect("claim an absent lease");
    assert_eq!(t1.epoch().0, 1);
    assert!(t1.is_valid() && t1.local_deadline() <= Instant::now() + d);
    assert!(t1.check().await.expect("check"));

    match b.claim("db", "unit-1", d).await {
        Err(Error::ClaimDenied { lease, holder }) => {
            assert_eq!((lease.as_str(), holder.as_str()), ("db", "unit-0"));
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(b.check("db", "unit-1").await.expect("check"), None);

    // Extending through another manager is still the same term: same epoch, never shorter.
    sleep(Duration::from_millis(100)).await;
    let t2 = b.claim("db", "unit-0", d).await.expect("extend");
    assert_eq!(t2.epoch(), t1.epoch());
    assert!(t2.global_expiry() >= t1.global_expiry());
    a.claim("db", "unit-0", Duration::from_millis(200))
        .await
        .expect("a shorter extension succeeds");
    let stored = stored_term_end(&s, "db").await;
    assert!(
        stored >= t2.global_expiry().0,
        "an extension never shortens"
    );

    let waited = Instant::now();
    timeout(Duration::from_secs(10), b.wait_until_expired("db"))
        .await
        .expect("the lease expires")
        .expect("wait");
    let held_for = waited.elapsed();
    assert!(
        held_for >= Duration::from_millis(1000),
        "expired after only {held_for:?}"
    );
    assert!(!t1.check().await.expect("check"));

    let t3 = b
        .claim("db", "unit-1", d)
        .await
        .expect("claim after expiry");
    assert_eq!(t3.epoch().0, 2, "a new holder gets a larger epoch");
    a.shutdown().await;
    b.shutdown().await;
    clock.shutdown().await;
}

/// Goal: a manager waiting on a lease wakes soon after it expires (M6: within the clock step
/// bound and the skew margin), not at its `max_sleep` (60 s by default; issue 20 saw 56 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_manager_notices_an_expiry_promptly() {
    let s = live!("prompt_expiry");
    let clock = updater(&s);
    let manager = |w: &str| {
        Leases::builder("app")
            .writer(w)
            .skew(SKEW)
            .build(&s)
            .expect("valid manager")
    };
    let (a, b) = (manager("manager-a"), manager("manager-b"));
    let d = Duration::from_secs(2);
    a.claim("db", "unit-0", d).await.expect("claim");
    // b learns of the lease by being denied it; a then extends it and stops.
    assert!(matches!(
        b.claim("db", "unit-1", d).await,
        Err(Error::ClaimDenied { .. })
    ));
    sleep(Duration::from_millis(700)).await;
    a.claim("db", "unit-0", d).await.expect("extend");
    a.shutdown().await;
    let end = stored_term_end(&s, "db").await;

    timeout(Duration::from_secs(30), b.wait_until_expired("db"))
        .await
        .expect("the wait ends")
        .expect("wait");
    let late = global_time(&s).await.expect("read").0.saturating_sub(end);
    assert!(
        late < 1_500_000_000,
        "the expiry was noticed {:?} late",
        Duration::from_nanos(late)
    );
    b.shutdown().await;
    clock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_managers_racing_for_one_lease_make_exactly_one_holder_per_round() {
    let s = live!("lease_race");
    let clock = updater(&s);
    let managers: Vec<Leases> = (0..16).map(|i| leases(&s, &format!("m{i}"))).collect();
    let mut epochs = Vec::new();
    for round in 0..5 {
        let claims = managers.iter().enumerate().map(|(i, m)| {
            let m = m.clone();
            tokio::spawn(async move {
                m.claim("hot", &format!("unit-{i}"), Duration::from_millis(400))
                    .await
            })
        });
        let mut winners = Vec::new();
        for (i, c) in claims.collect::<Vec<_>>().into_iter().enumerate() {
            match c.await.expect("task") {
                Ok(token) => winners.push((i, token.epoch())),
                Err(Error::ClaimDenied { .. }) => {}
                Err(e) => panic!("round {round}: unit-{i}: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: holders {winners:?}");
        epochs.push(winners[0].1);
        let waited = Instant::now();
        timeout(
            Duration::from_secs(10),
            managers[0].wait_until_expired("hot"),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: not expired after {:?}", waited.elapsed()))
        .expect("wait");
    }
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "epochs strictly increase: {epochs:?}"
    );
    for m in &managers {
        m.shutdown().await;
    }
    clock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_is_cancelled_by_dropping_it() {
    let s = live!("lease_wait_cancel");
    let clock = updater(&s);
    let m = leases(&s, "m");
    m.claim("slow", "u", Duration::from_secs(30))
        .await
        .expect("claim");
    assert!(
        timeout(Duration::from_millis(200), m.wait_until_expired("slow"))
            .await
            .is_err()
    );
    // The manager goes on serving.
    let t = m
        .claim("other", "u", Duration::from_secs(2))
        .await
        .expect("claim");
    assert!(t.check().await.expect("check"));
    m.shutdown().await;
    match m.claim("x", "u", Duration::from_secs(1)).await {
        Err(Error::Stopped(_)) | Err(Error::Lease(ManagerError::Stopped(_))) => {}
        other => panic!("a stopped manager must refuse: {other:?}"),
    }
    clock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_writes_refuse_a_superseded_epoch() {
    let s = live!("lease_fence");
    let clock = updater(&s);
    let m = leases(&s, "m");
    let token = m
        .claim("db", "u", Duration::from_secs(5))
        .await
        .expect("claim");
    let data = s.database().collection::<BsonDocument>("user.data");
    data.insert_one(doc! { "_id": "row", "v": 0 })
        .await
        .expect("insert");
    let write = |v: i32| {
        let (token, data) = (token.clone(), data.clone());
        async move {
            token
                .fenced_update_one(
                    &data,
                    "fence",
                    doc! { "_id": "row" },
                    doc! { "$set": { "v": v } },
                )
                .await
                .expect("fenced write")
        }
    };
    assert_eq!(write(1).await, Fenced::Written);
    let row = data
        .find_one(doc! { "_id": "row" })
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.get_i64("fence"), Ok(token.epoch().0 as i64));
    // A later holder (epoch + 1) writes; this token's writes must no longer land.
    data.update_one(
        doc! { "_id": "row" },
        doc! { "$set": { "fence": token.epoch().0 as i64 + 1, "v": 9 } },
    )
    .await
    .expect("later holder");
    assert_eq!(write(2).await, Fenced::Superseded);
    let row = data
        .find_one(doc! { "_id": "row" })
        .await
        .expect("read")
        .expect("row");
    assert_eq!(row.get_i32("v"), Ok(9));
    let missing = token
        .fenced_update_one(
            &data,
            "fence",
            doc! { "_id": "nope" },
            doc! { "$set": { "v": 1 } },
        )
        .await
        .expect("fenced write");
    assert_eq!(missing, Fenced::NotFound);
    // An update the server refuses: the driver's error is the source, and it is not transient.
    let refused = token
        .fenced_update_one(
            &data,
            "fence",
            doc! { "_id": "row" },
            doc! { "$inc": { "name": 1 }, "$set": { "name": "text" } },
        )
        .await
        .expect_err("conflicting update operators are refused");
    let source = std::error::Error::source(&refused).expect("the driver's error as source");
    assert!(
        source
            .downcast_ref::<tenure_mongo::mongodb::error::Error>()
            .is_some(),
        "{refused}"
    );
    assert!(!refused.is_transient(), "{refused}");
    m.shutdown().await;
    clock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_any_write() {
    let s = live!("lease_bad_input");
    let m = leases(&s, "m");
    for (lease, holder, d) in [
        ("a.b", "u", Duration::from_secs(1)),
        ("a", "", Duration::from_secs(1)),
        ("a", "u u", Duration::from_secs(1)),
        ("a", "u", Duration::ZERO),
        ("a", "u", Duration::from_secs(30 * 24 * 3600)),
    ] {
        match m.claim(lease, holder, d).await {
            Err(Error::Lease(ManagerError::Input(_))) => {}
            other => panic!("claim({lease:?}, {holder:?}, {d:?}): {other:?}"),
        }
    }
    let zero = ClockUpdater::builder()
        .update_interval(Duration::ZERO)
        .spawn(&s);
    assert!(matches!(
        zero,
        Err(Error::Input(InputError::InvalidDuration { .. }))
    ));
    let bad_ns = Leases::builder("a#b").build(&s);
    assert!(matches!(
        bad_ns,
        Err(Error::Input(InputError::InvalidName { .. }))
    ));
    let leases = s
        .database()
        .collection::<BsonDocument>(s.collection_name(Collection::Leases));
    assert_eq!(leases.count_documents(doc! {}).await.expect("count"), 0);
    m.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_documents_are_named_and_never_overwritten() {
    let s = live!("lease_corrupt");
    let db = s.database();
    let clock = db.collection::<BsonDocument>(s.collection_name(Collection::Clock));
    clock
        .insert_one(doc! { "_id": CLOCK_ID, "time": "noon" })
        .await
        .expect("plant");
    match global_time(&s).await {
        Err(Error::Clock(ClockError::Corrupt(c))) => assert_eq!(c.id, CLOCK_ID),
        Err(Error::Clock(ClockError::Store { cause, .. })) => {
            assert!(cause.message().contains("\"g\""), "{cause}")
        }
        other => panic!("{other:?}"),
    }
    clock
        .delete_one(doc! { "_id": CLOCK_ID })
        .await
        .expect("repair");
    let updater = updater(&s);

    let id = lease_id("app", "db");
    let leases_coll = db.collection::<BsonDocument>(s.collection_name(Collection::Leases));
    let foreign = doc! { "_id": &id, "namespace": "app", "owner": "someone else", "epoch": 2.5 };
    leases_coll
        .insert_one(foreign.clone())
        .await
        .expect("plant");
    let m = leases(&s, "m");
    let e = m
        .claim("db", "u", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains(&id),
        "the error names the document: {e}"
    );
    // Every call on the corrupt lease is answered (a check used to hang), with the error that
    // names it; every other lease keeps working, in this handle and in a new one.
    let bound = Duration::from_secs(10);
    for e in [
        timeout(bound, m.check("db", "u"))
            .await
            .map(|r| r.map(|_| ())),
        timeout(bound, m.wait_until_expired("db")).await,
        timeout(bound, m.claim("db", "u", Duration::from_secs(2)))
            .await
            .map(|r| r.map(|_| ())),
    ] {
        let e = e.expect("answered").unwrap_err();
        assert!(
            matches!(&e, Error::Lease(ManagerError::Corrupt(c)) if c.id == id),
            "{e}"
        );
    }
    let healthy = timeout(bound, m.claim("web", "u", Duration::from_secs(2)))
        .await
        .expect("answered")
        .expect("another lease is served");
    assert_eq!(healthy.lease(), "web");
    let fresh = leases(&s, "m2");
    timeout(bound, fresh.claim("api", "u", Duration::from_secs(2)))
        .await
        .expect("answered")
        .expect("a new handle on the namespace is served");
    let after = leases_coll
        .find_one(doc! { "_id": &id })
        .await
        .expect("read");
    assert_eq!(after, Some(foreign), "never overwritten");
    m.shutdown().await;
    fresh.shutdown().await;
    updater.shutdown().await;
}

/// Issue 19, item 4: a holder releases its lease and a holder on another manager claims it at
/// once, with the next epoch, long before the released term would have expired; an old token
/// releases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_claimed_elsewhere_at_once() {
    let s = live!("lease_release");
    let clock = updater(&s);
    let (a, b) = (leases(&s, "ctl-a"), leases(&s, "ctl-b"));
    let long = Duration::from_secs(60);
    let first = a.claim("db", "u0", long).await.expect("claim");
    let stale = first.clone();
    match b.claim("db", "u1", long).await {
        Err(Error::ClaimDenied { holder, .. }) => assert_eq!(holder, "u0"),
        other => panic!("{other:?}"),
    }
    let released = Instant::now();
    assert!(first.release().await.expect("release"), "vacated");
    let next = b
        .claim("db", "u1", long)
        .await
        .expect("claimed at once, without waiting for the old term");
    assert!(
        released.elapsed() < Duration::from_secs(5),
        "{:?}",
        released.elapsed()
    );
    assert_eq!(next.epoch(), tenure::lease::Epoch(stale.epoch().0 + 1));
    // The old token's term is over: releasing it again ends nothing, u1 keeps the lease.
    assert!(!stale.release().await.expect("release"), "already ended");
    assert_eq!(
        b.check("db", "u1").await.expect("check"),
        Some(next.epoch())
    );
    assert_eq!(
        a.check("db", "u1").await.expect("check"),
        Some(next.epoch())
    );
    a.shutdown().await;
    b.shutdown().await;
    clock.shutdown().await;
}

/// Issue 19, item 7: `acquire` gives up at its deadline while another holds the lease; when the
/// holder releases it, one of two waiters on other managers gets it at once and the loser of
/// that race keeps waiting and gets it when the winner's short term expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_waits_for_the_term_to_end_and_gives_up_at_its_deadline() {
    let s = live!("lease_acquire");
    let clock = updater(&s);
    let (a, b, c) = (
        leases(&s, "ctl-a"),
        leases(&s, "ctl-b"),
        leases(&s, "ctl-c"),
    );
    let held = a
        .claim("db", "u0", Duration::from_secs(60))
        .await
        .expect("claim");
    let started = Instant::now();
    let patience = Duration::from_millis(1500);
    match b
        .acquire("db", "u1", Duration::from_secs(60), patience)
        .await
    {
        Err(Error::Timeout(t)) => assert_eq!(t, patience),
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= patience && took < Duration::from_secs(5),
        "{took:?}"
    );
    let short = Duration::from_secs(2);
    let waiter = |l: &Leases, holder: &'static str| {
        let l = l.clone();
        tokio::spawn(async move {
            l.acquire("db", holder, short, Duration::from_secs(20))
                .await
        })
    };
    let (wb, wc) = (waiter(&b, "u1"), waiter(&c, "u2"));
    sleep(Duration::from_millis(300)).await;
    let (released, held_epoch) = (Instant::now(), held.epoch());
    assert!(held.release().await.expect("release"));
    let (tb, tc) = (
        wb.await.expect("task").expect("acquired"),
        wc.await.expect("task").expect("acquired"),
    );
    let (first, second) = if tb.epoch() < tc.epoch() {
        (tb, tc)
    } else {
        (tc, tb)
    };
    assert_eq!(
        first.epoch().0,
        held_epoch.0 + 1,
        "the winner's term follows the release"
    );
    assert_eq!(
        second.epoch().0,
        first.epoch().0 + 1,
        "one term after the other"
    );
    assert!(
        released.elapsed() >= short && released.elapsed() < Duration::from_secs(10),
        "the loser waited for the winner's term: {:?}",
        released.elapsed()
    );
    for l in [a, b, c] {
        l.shutdown().await;
    }
    clock.shutdown().await;
}

/// Issue 19, item 5: a kept lease is renewed past many of its durations with the same epoch
/// while no one else can claim it; released, another claims it at once; and when renewals stop
/// being granted (its manager shut down) `lost` fires by the local deadline, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_lease_is_renewed_and_lost_only_when_renewals_stop() {
    let s = live!("lease_keep_alive");
    let clock = updater(&s);
    let (a, b) = (leases(&s, "ctl-a"), leases(&s, "ctl-b"));
    let d = Duration::from_millis(1200);
    let first = a.claim("db", "u0", d).await.expect("claim");
    let kept = first.clone().keep_alive(d).expect("keep");
    sleep(d * 3).await;
    let now = kept.token();
    assert!(!kept.lost().is_cancelled(), "kept through three durations");
    assert_eq!(now.epoch(), first.epoch(), "renewals keep the epoch");
    assert!(now.local_deadline() > first.local_deadline() + d, "renewed");
    assert!(now.is_valid());
    assert!(matches!(
        b.claim("db", "u1", d).await,
        Err(Error::ClaimDenied { .. })
    ));
    assert!(kept.release().await.expect("release"), "released");
    let next = b.claim("db", "u1", d).await.expect("claimed at once");
    let kept = next.keep_alive(d).expect("keep");
    let lost = kept.lost();
    let deadline = kept.token().local_deadline();
    b.shutdown().await;
    timeout(d * 2, lost.cancelled())
        .await
        .expect("lost once renewals stop");
    assert!(
        Instant::now() >= deadline,
        "lost no earlier than the deadline"
    );
    assert!(!kept.token().is_valid());
    a.shutdown().await;
    clock.shutdown().await;
}

/// Issue 19, item 6: a manager lists the leases it knows held (its own claims at once, another
/// manager's after its next sweep), and a released lease leaves the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holders_lists_who_holds_what() {
    let s = live!("lease_holders");
    let clock = updater(&s);
    let (a, b) = (leases(&s, "ctl-a"), leases(&s, "ctl-b"));
    let long = Duration::from_secs(60);
    let db = a.claim("db", "u0", long).await.expect("claim db");
    let cache = b.claim("cache", "u1", long).await.expect("claim cache");
    let own = a.holders().await.expect("holders");
    let held = own.get("db").expect("its own claim is known at once");
    assert_eq!((held.holder.as_str(), held.epoch), ("u0", db.epoch()));
    // b's claim reaches a's cache at a's next sweep (max_sleep 500 ms here).
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let all = a.holders().await.expect("holders");
        if all.contains_key("cache") || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let other = all
        .get("cache")
        .expect("another manager's claim, after a sweep");
    assert_eq!((other.holder.as_str(), other.epoch), ("u1", cache.epoch()));
    assert!(db.release().await.expect("release"));
    let after = a.holders().await.expect("holders");
    assert!(!after.contains_key("db"), "released: {after:?}");
    a.shutdown().await;
    b.shutdown().await;
    clock.shutdown().await;
}

type Holders = std::collections::BTreeMap<String, tenure_mongo::Holding>;

/// The first view of `rx` for which `f` holds, within 10 s.
async fn until(
    rx: &tokio::sync::watch::Receiver<Holders>,
    what: &str,
    f: fn(&Holders) -> bool,
) -> Holders {
    let mut rx = rx.clone();
    let seen = timeout(Duration::from_secs(10), rx.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("never saw {what}"))
        .expect("manager running")
        .clone();
    seen
}

/// Issue 19, item 6: the holders as a stream of changes: a claim, another manager's claim
/// (after a sweep) and a release each show up without asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holder_changes_follow_claims_and_releases() {
    let s = live!("lease_holder_changes");
    let clock = updater(&s);
    let (a, b) = (leases(&s, "ctl-a"), leases(&s, "ctl-b"));
    let mut changes = a.holder_changes().await.expect("subscribe");
    assert!(changes.borrow_and_update().is_empty(), "nothing held yet");
    let long = Duration::from_secs(60);
    let db = a.claim("db", "u0", long).await.expect("claim");
    let seen = until(&changes, "its own claim", |h| h.contains_key("db")).await;
    assert_eq!(seen["db"].epoch, db.epoch());
    b.claim("cache", "u1", long).await.expect("claim");
    let seen = until(&changes, "the other manager's claim", |h| {
        h.contains_key("cache")
    })
    .await;
    assert_eq!(seen["cache"].holder, "u1");
    db.release().await.expect("release");
    until(&changes, "the release", |h| !h.contains_key("db")).await;
    a.shutdown().await;
    b.shutdown().await;
    clock.shutdown().await;
}
