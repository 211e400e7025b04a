//! Ambiguous outcomes injected the MongoDB way (`configureFailPoint: "failCommand"` on a
//! SecantusDB started with test commands): a write whose reply says replication failed has been
//! applied, so the adapter must call it *unknown* and the protocol must resolve it by re-reading;
//! a write refused before it ran is a plain failure.

mod common;

use mongodb::bson::{doc, Document as BsonDocument};
use std::time::Duration;
use tenure::substrate::{fields, Collection, Document, Op, OpResult, ReadConcern, Reply, Value};
use tenure::time::SkewBounds;
use tenure_mongo::{ClockUpdater, Leadership, Leases, Presence, Substrate};

const PORT: &str = "27147";
const APP: &str = "tenure-failpoints";

/// Failpoints are server-wide and match this file's app name, so its tests take turns: one
/// test's armed failpoint must never hit the other's commands.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The failpoint test server (own port, test commands on), shared by this file's tests.
async fn server(test: &str) -> Option<Substrate> {
    let uri = common::own_server(test, &["secantus", "--port", PORT, "--test-commands"])?;
    // A "not primary" refusal marks the server unknown until the driver's monitor looks again;
    // look soon, or the next operation's server selection outlasts its timeout.
    let uri = format!("{uri}&heartbeatFrequencyMS=500");
    let s = Substrate::builder(uri)
        .database(common::fresh_db(test))
        .app_name(APP)
        .connect()
        .await
        .expect("connect");
    disarm(&s).await; // a failed earlier test may have left it armed
    Some(s)
}

/// Arms `failCommand` for the next `times` of `commands` from this test's client.
async fn arm(s: &Substrate, commands: &[&str], times: i32, data: BsonDocument) {
    let mut data = data;
    data.insert("failCommands", commands.to_vec());
    data.insert("appName", APP);
    s.client()
        .database("admin")
        .run_command(doc! {
            "configureFailPoint": "failCommand",
            "mode": { "times": times },
            "data": data,
        })
        .await
        .expect("configureFailPoint (is the server started with --test-commands?)");
}

async fn disarm(s: &Substrate) {
    s.client()
        .database("admin")
        .run_command(doc! { "configureFailPoint": "failCommand", "mode": "off" })
        .await
        .expect("failpoint off");
}

/// A lease manager on `s`, and a fast clock updater on a client of its own (the failpoints
/// are scoped to the manager's appName, so they never hit the updater).
async fn leases_on(s: &Substrate, test: &str) -> (Leases, ClockUpdater) {
    let uri = common::own_server(test, &["secantus", "--port", PORT, "--test-commands"]);
    let clock_client = Substrate::builder(uri.expect("running"))
        .database(s.database().name())
        .connect()
        .await
        .expect("connect");
    let updater = ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(&clock_client)
        .expect("updater");
    let leases = Leases::builder("app")
        .skew(SkewBounds {
            rate_error_ppm: 500,
            clock_step_max: Duration::from_millis(100),
        })
        .build(s)
        .expect("manager");
    (leases, updater)
}

fn write_concern_error() -> BsonDocument {
    doc! { "writeConcernError": { "code": 64, "codeName": "WriteConcernFailed", "errmsg": "injected: replication failed" } }
}

/// Compare-and-swap of document `x`'s `v` from `from` to `to`.
fn swap(from: i64, to: i64) -> Op {
    Op::Update {
        coll: Collection::Leases,
        id: "x".into(),
        expect: fields([("v", Value::Int(from))]),
        update: tenure::substrate::Update {
            set: fields([("v", Value::Int(to))]),
            ..Default::default()
        },
        upsert: false,
        return_new: false,
    }
}

/// The document `read` names. After a "not primary" refusal the driver holds the server unknown
/// until its monitor looks again, so a read may end "outcome unknown"; like any caller, read again.
async fn read_doc(s: &Substrate, read: &Op) -> Document {
    for _ in 0..5 {
        match s.execute(read).await {
            OpResult::Ok(Reply::Doc(Some(d))) => return d,
            OpResult::Unknown => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("the read answered {other:?}"),
        }
    }
    panic!("the read's outcome stayed unknown after 5 tries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_concern_errors_are_unknown_and_refusals_are_failures() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(s) = server("failpoint_ops").await else {
        return;
    };
    let insert = Op::Insert {
        coll: Collection::Leases,
        doc: Document::new("x", fields([("v", Value::Int(1))])),
    };
    arm(&s, &["insert"], 1, write_concern_error()).await;
    assert_eq!(s.execute(&insert).await, OpResult::Unknown);
    let read = Op::Read {
        coll: Collection::Leases,
        id: "x".into(),
        concern: ReadConcern::Linearizable,
    };
    assert!(
        matches!(s.execute(&read).await, OpResult::Ok(Reply::Doc(Some(_)))),
        "the ambiguous insert was applied: calling it a failure would have been wrong"
    );

    // Refused before running, and not retryable: a failure, and nothing was written.
    arm(&s, &["update"], 1, doc! { "errorCode": 13 }).await;
    let refused = s.execute(&swap(1, 2)).await;
    assert!(matches!(refused, OpResult::Failed(_)), "{refused:?}");
    assert_eq!(read_doc(&s, &read).await.get("v"), Some(&Value::Int(1)));

    // Refused as "not primary" (a failover): the driver selects the primary again and retries
    // the write once (retryable writes), which applies it exactly once.
    arm(&s, &["update"], 1, doc! { "errorCode": 10107 }).await;
    assert_eq!(s.execute(&swap(1, 2)).await, OpResult::Ok(Reply::Done));
    assert_eq!(read_doc(&s, &read).await.get("v"), Some(&Value::Int(2)));

    // A dropped connection before the command ran: retried the same way, applied once.
    arm(&s, &["update"], 1, doc! { "closeConnection": true }).await;
    assert_eq!(s.execute(&swap(2, 3)).await, OpResult::Ok(Reply::Done));
    assert_eq!(read_doc(&s, &read).await.get("v"), Some(&Value::Int(3)));
    disarm(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_whose_write_reply_is_lost_is_resolved_by_rereading() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(s) = server("failpoint_claim").await else {
        return;
    };
    let (m, updater) = leases_on(&s, "failpoint_claim").await;
    // The first claim inserts the lease document: its reply reports a write concern error.
    arm(&s, &["insert"], 1, write_concern_error()).await;
    let token = m
        .claim("db", "unit-0", Duration::from_secs(5))
        .await
        .expect("the re-read finds the claim applied");
    assert_eq!(token.epoch().0, 1);
    // The extension replaces the document: same, through findAndModify or update.
    arm(&s, &["update", "findAndModify"], 1, write_concern_error()).await;
    let extended = m
        .claim("db", "unit-0", Duration::from_secs(10))
        .await
        .expect("the re-read finds the extension applied");
    assert_eq!(extended.epoch(), token.epoch());
    assert!(extended.global_expiry() > token.global_expiry());
    // The extension consumed the failpoint (nothing else uses this client): a further update goes
    // through untouched.
    for return_new in [false, true] {
        let probe = Op::Update {
            coll: Collection::Leases,
            id: "probe".into(),
            expect: Default::default(),
            update: Default::default(),
            upsert: true,
            return_new,
        };
        assert!(matches!(s.execute(&probe).await, OpResult::Ok(_)));
    }
    disarm(&s).await;
    m.shutdown().await;
    updater.shutdown().await;
}

/// Issue 19, item 10: a claim whose store call the server refuses answers with the driver's
/// error as its source, so the caller can tell a refusal for good (unauthorized) from a
/// failover that the next call may outlive (not primary, refused twice so the driver's own
/// retry fails too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_claim_keeps_the_drivers_error() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(s) = server("failpoint_source").await else {
        return;
    };
    let (m, updater) = leases_on(&s, "failpoint_source").await;
    let code = |e: &tenure_mongo::Error| match e.driver_error().map(|d| d.kind.as_ref()) {
        Some(mongodb::error::ErrorKind::Command(c)) => c.code,
        other => panic!("{e}: no command error as the source, found {other:?}"),
    };

    arm(&s, &["insert"], 1, doc! { "errorCode": 13 }).await;
    let refused = m
        .claim("db", "unit-0", Duration::from_secs(5))
        .await
        .expect_err("the server refused the insert");
    assert_eq!(code(&refused), 13, "{refused}");
    assert!(!refused.is_transient(), "unauthorized is not transient");

    arm(&s, &["insert"], 2, doc! { "errorCode": 10107 }).await;
    let failover = m
        .claim("db", "unit-0", Duration::from_secs(5))
        .await
        .expect_err("the insert and its retry were refused");
    assert_eq!(code(&failover), 10107, "{failover}");
    assert!(failover.is_transient(), "not primary is transient");

    // The manager kept serving: with the failpoint spent, the same claim is granted.
    let token = m
        .claim("db", "unit-0", Duration::from_secs(5))
        .await
        .expect("granted once the server accepts writes");
    assert_eq!(token.epoch().0, 1);
    disarm(&s).await;
    m.shutdown().await;
    updater.shutdown().await;
}

/// Issue 19, bug 3: a slow store call on one lease delays no other. The first lease's insert is
/// held 3 s by the server (`blockConnection`); a claim of another lease, made meanwhile, is
/// granted while the first is still waiting, and then the first is granted too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_claim_delays_no_other_lease() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(s) = server("failpoint_slow").await else {
        return;
    };
    let (m, updater) = leases_on(&s, "failpoint_slow").await;
    arm(
        &s,
        &["insert"],
        1,
        doc! { "blockConnection": true, "blockTimeMS": 3000 },
    )
    .await;
    let slow = {
        let m = m.clone();
        tokio::spawn(async move { m.claim("slow", "unit-0", Duration::from_secs(30)).await })
    };
    // Real time, not a paused clock: the server must have taken the slow insert (and with it
    // the failpoint's one firing) before the other lease's insert arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fast = tokio::time::timeout(
        Duration::from_millis(2000),
        m.claim("fast", "unit-0", Duration::from_secs(30)),
    )
    .await
    .expect("the other lease's claim is not held up by the slow one");
    assert!(fast.is_ok(), "{fast:?}");
    assert!(!slow.is_finished(), "the slow claim is still blocked");
    let slow = slow.await.expect("task");
    assert!(slow.is_ok(), "{slow:?}");
    disarm(&s).await;
    m.shutdown().await;
    updater.shutdown().await;
}

/// Issue 20, item 2: on a server that answers every write from the adapter's client only after
/// 4 s (slow, not down), every public call still answers within `op_timeout` + 1 s, however
/// many store calls it would need (a claim retried its unknown writes for 36 s before), and the
/// handles serve again once the server is quick again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answers_within_its_bound_on_a_slow_server() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(s) = server("failpoint_bound").await else {
        return;
    };
    let op_timeout = Duration::from_secs(1);
    let uri = common::own_server(
        "failpoint_bound",
        &["secantus", "--port", PORT, "--test-commands"],
    );
    let slow = Substrate::builder(format!(
        "{}&heartbeatFrequencyMS=500",
        uri.expect("running")
    ))
    .database(s.database().name())
    .app_name(APP)
    .op_timeout(op_timeout)
    .connect()
    .await
    .expect("connect");
    let (_, updater) = leases_on(&s, "failpoint_bound").await;
    let m = Leases::builder("app").build(&slow).expect("manager");
    let held = m
        .claim("held", "unit-0", Duration::from_secs(60))
        .await
        .expect("claim while the server is quick");
    let unit = Leadership::builder("app", "unit-0")
        .build(&slow)
        .expect("leadership");
    let presence = Presence::builder("m").build(&slow).expect("presence");
    let _pinger = presence.pinger("k").await.expect("pinger");
    arm(
        &s,
        &["insert", "update", "findAndModify", "delete"],
        1_000,
        doc! { "blockConnection": true, "blockTimeMS": 4000 },
    )
    .await;
    let bound = op_timeout + Duration::from_secs(1);
    let margin = Duration::from_millis(500);
    macro_rules! bounded {
        ($what:literal, $call:expr) => {{
            let started = tokio::time::Instant::now();
            let answer = $call.await;
            let took = started.elapsed();
            assert!(
                took <= bound + margin,
                "{} answered after {took:?}, past op_timeout + 1 s: {answer:?}",
                $what
            );
            answer
        }};
    }
    let fresh = bounded!(
        "a claim of a new lease",
        m.claim("new", "unit-0", Duration::from_secs(60))
    );
    assert!(
        fresh.is_err(),
        "a blocked claim cannot be granted in time: {fresh:?}"
    );
    let _ = bounded!(
        "an extension",
        m.claim("held", "unit-0", Duration::from_secs(60))
    );
    let _ = bounded!("a check", m.check("new", "unit-0"));
    let _ = bounded!("a token check", held.check());
    let _ = bounded!("a leadership claim", unit.claim_leader());
    let flushed = bounded!("a presence flush", presence.flush());
    assert!(
        flushed.is_err(),
        "a blocked flush cannot land in time: {flushed:?}"
    );
    disarm(&s).await;
    let mut served = false;
    for _ in 0..20 {
        if m.claim("new", "unit-0", Duration::from_secs(60))
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        served,
        "the same handle claims again once the server is quick"
    );
    presence
        .flush()
        .await
        .expect("the requeued pings land once the server is quick");
    presence.shutdown().await;
    unit.shutdown().await;
    m.shutdown().await;
    updater.shutdown().await;
}
