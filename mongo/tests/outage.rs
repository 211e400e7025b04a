//! The adapter survives its server (issue 20): SecantusDB on a directory store is killed
//! (SIGKILL) under load and restarted on the same directory. Every call made while it is down
//! resolves within the op timeout plus a margin (not the driver's 30 s server-selection
//! default), no handle stops, the same handles serve again once it is back, and the recorded
//! history passes every property it has data for.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;
use tenure::history::CheckParams;
use tenure::time::SkewBounds;
use tenure_mongo::clock::global_time;
use tenure_mongo::{ClockUpdater, Error, Leadership, Leases, Presence, Recorder, Substrate};
use tokio::time::{sleep, Instant};

const PORT: &str = "27157";
const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// What a call may take past the op timeout: the adapter's own bound adds 1 s.
const MARGIN: Duration = Duration::from_secs(2);
const SKEW: SkewBounds = SkewBounds {
    rate_error_ppm: 500,
    clock_step_max: Duration::from_millis(100),
};

fn leases(s: &Substrate, writer: &str) -> Leases {
    Leases::builder("app")
        .writer(writer)
        .skew(SKEW)
        .build(s)
        .expect("manager")
}

/// Runs `call`, asserting it resolves within the op timeout plus [`MARGIN`]; returns its result.
async fn bounded<T>(what: &str, call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let started = Instant::now();
    let out = tokio::time::timeout(OP_TIMEOUT * 10, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {:?}", OP_TIMEOUT * 10));
    let took = started.elapsed();
    assert!(
        took <= OP_TIMEOUT + MARGIN,
        "{what} took {took:?} with the server down (op timeout {OP_TIMEOUT:?})"
    );
    if let Err(Error::Stopped(w)) = &out {
        panic!("{what}: {w} stopped during the outage; it must survive it");
    }
    out
}

/// Retries `claim` until it is granted (the server is back), for at most 30 s.
async fn until_granted(m: &Leases, lease: &str, holder: &str) -> tenure_mongo::Token {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match m.claim(lease, holder, Duration::from_secs(3)).await {
            Ok(t) => return t,
            Err(Error::Stopped(w)) => panic!("{w} stopped: a handle must serve again unrebuilt"),
            Err(e) if Instant::now() > deadline => {
                panic!("{holder} never got {lease} after the restart: {e}")
            }
            Err(_) => sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_survive_a_server_restart_and_calls_stay_bounded_meanwhile() {
    // A server left behind by an earlier failed run would keep the directory open.
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);
    let dir = common::root().join("target/substrates/outage-data");
    let _ = std::fs::remove_dir_all(&dir);
    let dir = dir.to_string_lossy().into_owned();
    let server = ["secantus", "--port", PORT, "--dir", dir.as_str()];
    let Some(uri) = common::own_server("outage", &server) else {
        return;
    };
    let rec = Recorder::new(0);
    let s = Substrate::builder(&uri)
        .database(common::fresh_db("outage"))
        .op_timeout(OP_TIMEOUT)
        .recorder(rec.clone())
        .connect()
        .await
        .expect("connect");
    let updater = ClockUpdater::builder()
        .update_interval(Duration::from_millis(50))
        .backoff_delay(Duration::from_millis(200))
        .spawn(&s)
        .expect("updater");
    let (a, b) = (leases(&s, "ctl-a"), leases(&s, "ctl-b"));
    let first = until_granted(&a, "db", "unit-a").await;
    until_granted(&b, "web", "unit-b").await;
    let unit = Leadership::builder("app", "unit-0")
        .claim_duration(Duration::from_secs(6))
        .skew(SKEW)
        .build(&s)
        .expect("leadership");
    tokio::time::timeout(Duration::from_secs(20), unit.wait_leader())
        .await
        .expect("leads")
        .expect("leads");
    let presence = Presence::builder("m")
        .period(Duration::from_secs(4))
        .flush_interval(Duration::from_millis(200))
        .build(&s)
        .expect("presence");
    let _pinger = presence.pinger("k").await.expect("pinger");
    let watch = presence.watcher().expect("watcher");

    common::substrate_script(&["stop", "secantus", "--port", PORT, "--kill"]).expect("kill");
    let down = [
        bounded("a claim", a.claim("db", "unit-a", Duration::from_secs(3)))
            .await
            .err(),
        bounded("a check", b.check("web", "unit-b")).await.err(),
        bounded("a token check", first.check()).await.err(),
        bounded("a clock read", global_time(&s)).await.err(),
        bounded("a presence sync", watch.sync()).await.err(),
    ];
    // A flush only hands the pings to the batcher, which requeues what the store refuses.
    let _ = bounded("a presence flush", presence.flush()).await;
    assert!(
        down.iter().all(Option::is_some),
        "calls succeeded with the server down: {down:?}"
    );
    assert!(
        updater.is_running(),
        "the clock updater stopped in the outage"
    );

    let uri_again = common::own_server("outage", &server).expect("restart on the same directory");
    assert_eq!(uri_again, uri);
    let again = until_granted(&a, "db", "unit-a").await;
    until_granted(&b, "web", "unit-b").await;
    assert!(again.epoch() >= first.epoch(), "epochs survive the crash");
    tokio::time::timeout(Duration::from_secs(30), unit.wait_leader())
        .await
        .expect("the unit leads again after the restart")
        .expect("leads");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(watch.sync().await.is_ok() && watch.alive("k").await.expect("alive")) {
        assert!(
            Instant::now() < deadline,
            "the pinging key never showed alive after the restart"
        );
        sleep(Duration::from_millis(500)).await;
    }
    assert!(
        bounded("a check after the restart", b.check("web", "unit-b"))
            .await
            .expect("check")
            .is_some(),
        "b's manager serves again"
    );

    a.shutdown().await;
    b.shutdown().await;
    unit.shutdown().await;
    watch.shutdown().await;
    presence.shutdown().await;
    updater.shutdown().await;
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);
    let verdicts: BTreeMap<_, _> = rec
        .history()
        .check(CheckParams {
            rate_error_ppm: SKEW.rate_error_ppm,
        })
        .into_iter()
        .collect();
    assert!(!verdicts.is_empty());
    for (id, v) in &verdicts {
        assert!(v.is_ok(), "{id:?} violated across the restart: {v:?}");
    }
}
