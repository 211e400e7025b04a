//! A crash of the server: SecantusDB on a directory store is killed (SIGKILL) and restarted;
//! every acknowledged write (`w:"majority", j:true`) must survive, so leases and the clock carry on
//! where they were.

mod common;

use std::time::Duration;
use tenure::time::SkewBounds;
use tenure_mongo::clock::global_time;
use tenure_mongo::{ClockUpdater, Error, Leases, Substrate};
use tokio::time::sleep;

const PORT: &str = "27137";

async fn connect(uri: &str, db: &str) -> Substrate {
    Substrate::builder(uri)
        .database(db)
        .connect()
        .await
        .expect("connect")
}

fn leases(s: &Substrate, writer: &str) -> Leases {
    Leases::builder("app")
        .writer(writer)
        .skew(SkewBounds {
            rate_error_ppm: 500,
            clock_step_max: Duration::from_millis(100),
        })
        .build(s)
        .expect("manager")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_the_clock_survive_a_server_kill_and_restart() {
    // A server left behind by an earlier failed run would keep the directory open.
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);
    let dir = common::root().join("target/substrates/durability-data");
    let _ = std::fs::remove_dir_all(&dir);
    let dir = dir.to_string_lossy().into_owned();
    let server = ["secantus", "--port", PORT, "--dir", dir.as_str()];
    let Some(uri) = common::own_server("durability", &server) else {
        return;
    };
    let db = common::fresh_db("durability");

    let s = connect(&uri, &db).await;
    let updater = ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(&s)
        .expect("updater");
    let m = leases(&s, "before");
    let token = m
        .claim("db", "unit-0", Duration::from_secs(600))
        .await
        .expect("claim");
    sleep(Duration::from_millis(300)).await;
    let before = global_time(&s).await.expect("read");
    assert!(before.0 > 0, "the clock moved before the crash");
    m.shutdown().await;
    updater.shutdown().await;
    drop(s);

    common::substrate_script(&["stop", "secantus", "--port", PORT, "--kill"]).expect("kill");
    let uri = common::own_server("durability", &server).expect("restart on the same directory");
    let s = connect(&uri, &db).await;
    let after = global_time(&s).await.expect("read after restart");
    let m = leases(&s, "after");
    let denied = m.claim("db", "unit-1", Duration::from_secs(1)).await;
    let extended = m.claim("db", "unit-0", Duration::from_secs(600)).await;
    m.shutdown().await;
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);

    assert!(
        after >= before,
        "global time went back across the crash: {before:?} -> {after:?}"
    );
    match denied {
        Err(Error::ClaimDenied { holder, .. }) => assert_eq!(holder, "unit-0"),
        other => panic!("the lease was lost in the crash: {other:?}"),
    }
    let extended = extended.expect("the holder extends after the restart");
    assert_eq!(extended.epoch(), token.epoch(), "same term, same epoch");
}
