//! Recording a live run and checking it with the core's history checkers: the same properties
//! the models and the property tests check, here on what really happened against a server.

mod common;

use futures_util::StreamExt;
use mongodb::bson::{doc, Document as BsonDocument};
use std::collections::BTreeMap;
use std::time::Duration;
use tenure::history::{CheckParams, History, Operation};
use tenure::property::PropertyId;
use tenure::time::SkewBounds;
use tenure_mongo::clock::global_time;
use tenure_mongo::{ClockUpdater, ClockWatch, Leadership, Leases, Recorder, Substrate};
use tokio::time::{sleep, timeout};

const SKEW: SkewBounds = SkewBounds {
    rate_error_ppm: 500,
    clock_step_max: Duration::from_millis(100),
};

async fn recorded(test: &str, rec: &Recorder) -> Option<Substrate> {
    let builder = common::server(test)?;
    Some(
        builder
            .recorder(rec.clone())
            .connect()
            .await
            .expect("connect"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_live_run_satisfies_every_property_it_has_data_for() {
    let rec = Recorder::new(0);
    let Some(s) = recorded("record_live", &rec).await else {
        return;
    };
    let updaters: Vec<_> = (0..2)
        .map(|_| {
            ClockUpdater::builder()
                .update_interval(Duration::from_millis(20))
                .backoff_delay(Duration::from_millis(100))
                .spawn(&s)
                .expect("updater")
        })
        .collect();
    let watch = ClockWatch::spawn(&s, Duration::from_millis(15)).expect("watch");
    let mut times = Box::pin(watch.stream());
    timeout(Duration::from_secs(5), times.next())
        .await
        .expect("clock moves");
    for _ in 0..5 {
        global_time(&s).await.expect("read");
    }
    let race = tenure_mongo::race::lease_race(
        &s,
        &tenure_mongo::race::LeaseRaceConfig {
            managers: 4,
            rounds: 3,
            duration: Duration::from_millis(300),
            skew: SKEW,
        },
    )
    .await
    .expect("lease race");
    assert_eq!(race.granted_per_round, vec![1, 1, 1], "{race:?}");

    // Leadership: two units, tickets answered, a hand-over.
    let unit = |name: &str| {
        Leadership::builder("web", name)
            .claim_duration(Duration::from_millis(600))
            .skew(SKEW)
            .retry(tenure::lease::RetryConfig {
                attempts_max: 10,
                delay_min: Duration::from_millis(10),
                delay_max: Duration::from_millis(100),
            })
            .build(&s)
            .expect("leadership")
    };
    let (a, b) = (unit("web-0"), unit("web-1"));
    let (leader, minion) = tokio::select! {
        t = a.wait_leader() => { t.expect("lead"); (a.clone(), b.clone()) }
        t = b.wait_leader() => { t.expect("lead"); (b.clone(), a.clone()) }
    };
    for l in [&leader, &minion] {
        l.claim_leader().await.expect("ticket");
    }
    leader.shutdown().await;
    timeout(Duration::from_secs(10), minion.wait_leader())
        .await
        .expect("hand-over")
        .expect("lead");
    minion.claim_leader().await.expect("ticket");
    minion.shutdown().await;

    // A fenced write.
    let m = Leases::builder("app")
        .writer("fencer")
        .skew(SKEW)
        .build(&s)
        .expect("manager");
    let token = m
        .claim("fence", "f", Duration::from_secs(5))
        .await
        .expect("claim");
    let data = s.database().collection::<BsonDocument>("user.data");
    data.insert_one(doc! { "_id": 1 }).await.expect("insert");
    token
        .fenced_update_one(
            &data,
            "fence",
            doc! { "_id": 1 },
            doc! { "$set": { "x": 1 } },
        )
        .await
        .expect("fenced");
    m.shutdown().await;
    watch.shutdown().await;
    for u in updaters {
        u.shutdown().await;
    }
    sleep(Duration::from_millis(50)).await;

    let history = rec.history();
    assert_eq!(rec.dropped(), 0);
    let verdicts: BTreeMap<PropertyId, _> = history
        .check(CheckParams {
            rate_error_ppm: SKEW.rate_error_ppm,
        })
        .into_iter()
        .collect();
    for must in [
        PropertyId::G1,
        PropertyId::G2,
        PropertyId::G5,
        PropertyId::L6,
        PropertyId::F1,
    ] {
        assert!(
            verdicts.contains_key(&must),
            "no data for {must:?}: {verdicts:?}"
        );
    }
    for (id, v) in &verdicts {
        assert!(v.is_ok(), "{id:?} violated on a live run: {v:?}");
    }
    let kinds =
        |f: fn(&Operation) -> bool| history.entries.iter().filter(|e| f(&e.operation)).count();
    assert!(kinds(|o| matches!(o, Operation::Store { .. })) > 100);
    assert!(kinds(|o| matches!(o, Operation::Ticket { .. })) >= 6);

    // The file format round-trips.
    assert_eq!(
        History::from_jsonl(&history.to_jsonl()).expect("parse"),
        history
    );
}
