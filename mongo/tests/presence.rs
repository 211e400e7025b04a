//! Presence end to end on a live server (PROTOCOLS.md §5): alive while pinging, dead after a
//! kill or once pings stop, model isolation and removal, pruning.

mod common;

use futures_util::StreamExt;
use mongodb::bson::{doc, Document as BsonDocument};
use std::time::Duration;
use tenure::substrate::Collection;
use tenure_mongo::{Presence, PresenceBuilder, Substrate};
use tokio::time::{sleep, timeout};

const PERIOD: Duration = Duration::from_secs(1);

fn builder(model: &str) -> PresenceBuilder {
    Presence::builder(model)
        .period(PERIOD)
        .flush_interval(Duration::from_millis(100))
}

fn presence(s: &Substrate, model: &str) -> Presence {
    builder(model).build(s).expect("valid presence")
}

async fn count(s: &Substrate, coll: Collection, prefix: &str) -> u64 {
    s.database()
        .collection::<BsonDocument>(s.collection_name(coll))
        .count_documents(doc! { "_id": { "$regex": format!("^{prefix}:") } })
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_alive_while_it_pings_and_dead_after_a_kill() {
    let s = live!("presence_alive_dead");
    let p = presence(&s, "m1");
    let w = p.watcher().expect("watcher");
    let mut states = Box::pin(w.watch("agent-0").await.expect("watch"));
    assert_eq!(
        timeout(Duration::from_secs(10), states.next())
            .await
            .expect("first state"),
        Some(false),
        "nobody pings yet"
    );
    let pinger = p.pinger("agent-0").await.expect("pinger starts");
    p.flush().await.expect("flush");
    sleep(Duration::from_millis(200)).await;
    w.sync().await.expect("sync");
    assert!(w.alive("agent-0").await.expect("alive?"));
    assert_eq!(
        timeout(Duration::from_secs(10), states.next())
            .await
            .expect("alive"),
        Some(true)
    );
    pinger.kill().await.expect("kill");
    w.sync().await.expect("sync");
    assert_eq!(
        timeout(Duration::from_secs(10), states.next())
            .await
            .expect("dead"),
        Some(false)
    );
    assert!(!w.alive("agent-0").await.expect("alive?"));

    // A new start takes a new sequence and is alive again.
    let again = p.pinger("agent-0").await.expect("restart");
    p.flush().await.expect("flush");
    sleep(Duration::from_millis(200)).await;
    w.sync().await.expect("sync");
    assert_eq!(
        timeout(Duration::from_secs(10), states.next())
            .await
            .expect("alive again"),
        Some(true)
    );
    // A pinger that just stops is noticed once its pings leave the two-slot window.
    again.stop().await;
    let dead = timeout(PERIOD * 6, async {
        loop {
            w.sync().await.expect("sync");
            if !w.alive("agent-0").await.expect("alive?") {
                break;
            }
            sleep(PERIOD / 4).await;
        }
    })
    .await;
    assert!(
        dead.is_ok(),
        "a stopped pinger's key must go dead within a few periods"
    );
    w.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_isolated_and_removed_alone() {
    let s = live!("presence_models");
    let (a, b) = (presence(&s, "ma"), presence(&s, "mb"));
    let pa = a.pinger("k").await.expect("pinger in ma");
    let pb = b.pinger("other").await.expect("pinger in mb");
    a.flush().await.expect("flush");
    b.flush().await.expect("flush");
    sleep(Duration::from_millis(200)).await;
    let wa = a.watcher().expect("watcher");
    let wb = b.watcher().expect("watcher");
    wa.sync().await.expect("sync");
    wb.sync().await.expect("sync");
    assert!(wa.alive("k").await.expect("alive?"));
    assert!(
        !wb.alive("k").await.expect("alive?"),
        "mb must not see ma's key"
    );
    assert!(wb.alive("other").await.expect("alive?"));

    pa.stop().await;
    wa.shutdown().await;
    let removed = a.remove_model().await.expect("remove ma");
    assert!(removed >= 3, "counter, being and pings: {removed}");
    for coll in [
        Collection::PresenceSeqs,
        Collection::PresenceBeings,
        Collection::PresencePings,
    ] {
        assert_eq!(count(&s, coll, "ma").await, 0, "{coll:?} of ma left");
        assert!(count(&s, coll, "mb").await > 0, "{coll:?} of mb removed");
    }
    wb.sync().await.expect("sync");
    assert!(wb.alive("other").await.expect("alive?"));
    pb.stop().await;
    wb.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_four_slots_and_every_live_keys_being() {
    let s = live!("presence_prune");
    // Only the passes this test starts: a pass the watcher started by itself (about one run in
    // seven, after eight syncs) would remove what the test expects its own pass to remove.
    let p = builder("mp")
        .prune_automatically(false)
        .build(&s)
        .expect("valid presence");
    let w = p.watcher().expect("watcher");
    let old = p.pinger("gone").await.expect("pinger");
    let live = p.pinger("here").await.expect("pinger");
    old.kill().await.expect("kill");
    // Restarting "here" supersedes its first being.
    let live2 = p.pinger("here").await.expect("restart");
    live.stop().await;
    // Ping through several slots (every 0.75 × (period + 1 s) = 1.5 s here).
    for _ in 0..8 {
        p.flush().await.expect("flush");
        sleep(PERIOD).await;
    }
    let before = count(&s, Collection::PresencePings, "mp").await;
    assert!(before >= 5, "{before} slot documents");
    w.sync().await.expect("sync");
    let pruned = w.prune().await.expect("prune");
    assert!(pruned.pings >= 1 && pruned.beings >= 1, "{pruned:?}");
    assert!(count(&s, Collection::PresencePings, "mp").await <= 4);
    w.sync().await.expect("sync");
    assert!(
        w.alive("here").await.expect("alive?"),
        "the live key keeps its being"
    );
    assert!(!w.alive("gone").await.expect("alive?"));
    live2.stop().await;
    w.shutdown().await;
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_presence_input_is_refused() {
    let s = live!("presence_bad_input");
    assert!(Presence::builder("a:b c").build(&s).is_err());
    assert!(Presence::builder("m")
        .period(Duration::from_millis(1500))
        .build(&s)
        .is_err());
    assert!(Presence::builder("m")
        .period(Duration::from_secs(1))
        .flush_interval(Duration::from_secs(2))
        .build(&s)
        .is_err());
    // A ping must be stored, even resent once, before its slot ends: 1 s slots leave no room
    // for 300 ms flushes.
    let e = Presence::builder("m")
        .period(Duration::from_secs(1))
        .flush_interval(Duration::from_millis(300))
        .build(&s)
        .unwrap_err();
    assert!(e.to_string().contains("too short"), "{e}");
    let p = presence(&s, "m");
    assert!(p.pinger("bad key").await.is_err());
    let w = p.watcher().expect("watcher");
    assert!(w.watch("").await.is_err());
    w.shutdown().await;
    p.shutdown().await;
}

/// Issue 19, item 10: one cancellation token stops a presence's batcher and every pinger and
/// watcher it started, as it stops the other handles' workers; later calls fail fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_presence_stops_every_worker_it_started() {
    let s = live!("presence_cancel");
    let cancel = tokio_util::sync::CancellationToken::new();
    let p = builder("mc")
        .cancellation(cancel.clone())
        .build(&s)
        .expect("valid presence");
    let _pinger = p.pinger("k").await.expect("pinger");
    let w = p.watcher().expect("watcher");
    w.sync().await.expect("sync while running");
    cancel.cancel();
    let stopped =
        |r: Result<(), tenure_mongo::Error>| matches!(r, Err(tenure_mongo::Error::Stopped(_)));
    let sync = timeout(Duration::from_secs(5), w.sync()).await;
    assert!(
        stopped(sync.expect("answered at once")),
        "the watcher stopped"
    );
    let flush = timeout(Duration::from_secs(5), p.flush()).await;
    assert!(
        stopped(flush.expect("answered at once")),
        "the batcher stopped"
    );
}
