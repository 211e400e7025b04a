//! The executor against a live server: every store operation must answer exactly as the core's
//! reference store does (`MemoryStore`, which the model checker and the simulator trust), and
//! connecting must refuse what is unsafe with an actionable error.

mod common;

use rand::{Rng, SeedableRng};
use std::time::Duration;
use tenure::presence::PresenceConfig;
use tenure::substrate::{
    fields, Collection, Document, Fields, MemoryStore, Op, OpResult, ReadConcern, Reply, Selector,
    Update, Value,
};
use tenure_mongo::{Error, Substrate};

/// Results compared up to the wording of failure messages.
fn same(a: &OpResult, b: &OpResult) -> bool {
    match (a, b) {
        (OpResult::Failed(_), OpResult::Failed(_)) => true,
        _ => a == b,
    }
}

/// A random operation over a handful of ids and fields, so that collisions (present documents,
/// matching and mismatching expectations, type errors) are frequent.
fn random_op(rng: &mut impl Rng) -> Op {
    const IDS: [&str; 4] = ["m#a", "m#b", "m#c", "n#a"];
    const COLLS: [Collection; 2] = [Collection::Leases, Collection::PresencePings];
    let coll = COLLS[rng.random_range(0..COLLS.len())];
    let id = IDS[rng.random_range(0..IDS.len())].to_owned();
    let value = |rng: &mut rand::rngs::StdRng| match rng.random_range(0..6) {
        0 => Value::Null,
        1 => Value::Str(["x", "y"][rng.random_range(0..2)].into()),
        2 => Value::Map(fields([("k", Value::Int(rng.random_range(0..3)))])),
        _ => Value::Int(rng.random_range(0..3)),
    };
    let mut rng2 = rand::rngs::StdRng::seed_from_u64(rng.random());
    let some_fields = |rng: &mut rand::rngs::StdRng, n: usize| -> Fields {
        (0..n)
            .map(|_| {
                (
                    ["f", "g", "h.k"][rng.random_range(0..3)].to_owned(),
                    value(rng),
                )
            })
            .filter(|(k, v)| !(k.contains('.') && matches!(v, Value::Map(_))))
            .collect()
    };
    let ints = |rng: &mut rand::rngs::StdRng| -> Fields {
        fields([(
            ["f", "g", "h.k"][rng.random_range(0..3)],
            Value::Int(rng.random_range(1..4)),
        )])
    };
    let r = &mut rng2;
    match r.random_range(0..9) {
        0 => Op::Read {
            coll,
            id,
            concern: ReadConcern::Linearizable,
        },
        1 => Op::Find {
            coll,
            selector: match r.random_range(0..4) {
                0 => Selector::Ids(vec![id, "m#c".into(), "zz".into()]),
                1 => Selector::IdPrefix("m#".into()),
                2 => Selector::FieldEq("f".into(), Value::Int(1)),
                _ => Selector::IdPrefixFieldBelow {
                    prefix: "m#".into(),
                    field: "g".into(),
                    below: 2,
                },
            },
            concern: ReadConcern::Majority,
        },
        2 => Op::Insert {
            coll,
            // Inserted documents spell fields, not paths.
            doc: Document::new(
                id,
                some_fields(r, 2)
                    .into_iter()
                    .filter(|(k, _)| !k.contains('.'))
                    .collect(),
            ),
        },
        3..=5 => {
            let expect = if r.random_bool(0.3) {
                Fields::new()
            } else {
                some_fields(r, 1)
            };
            let upsert = expect.is_empty() && r.random_bool(0.5);
            let mut update = Update::default();
            match r.random_range(0..4) {
                0 => update.set = some_fields(r, 2),
                1 => update.unset = vec!["f".into(), "h.k".into()],
                2 => update.inc = ints(r),
                _ => update.bit_or = ints(r),
            }
            Op::Update {
                coll,
                id,
                expect,
                update,
                upsert,
                return_new: r.random_bool(0.5),
            }
        }
        6 => Op::Delete {
            coll,
            id,
            expect: some_fields(r, 1),
        },
        7 => Op::DeleteMany {
            coll,
            selector: Selector::IdPrefixFieldBelow {
                prefix: "m#".into(),
                field: "f".into(),
                below: 1,
            },
        },
        // Bulk upserts touch only `n`, which nothing else writes: a bulk that meets a type error
        // is partly applied on a server (unknown) but refused whole by the reference store.
        _ => Op::BulkUpsert {
            coll,
            updates: vec![
                (
                    id,
                    Update {
                        bit_or: fields([("n", Value::Int(r.random_range(1..4)))]),
                        ..Update::default()
                    },
                ),
                (
                    "m#c".into(),
                    Update {
                        inc: fields([("n", Value::Int(1))]),
                        ..Update::default()
                    },
                ),
            ],
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_the_reference_store_does() {
    let s = live!("differential");
    let mut reference = MemoryStore::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261125);
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for step in 0..400 {
        let op = random_op(&mut rng);
        let want = reference.apply(&op);
        let got = s.execute(&op).await;
        assert!(
            same(&want, &got),
            "step {step}: {op:?}\n reference: {want:?}\n server:    {got:?}"
        );
        let outcome = match &want {
            OpResult::Ok(_) => "ok",
            OpResult::PreconditionFailed => "precondition",
            OpResult::DuplicateKey => "duplicate",
            OpResult::Failed(_) => "failed",
            OpResult::Unknown => "unknown",
        };
        *kinds.entry(format!("{} {outcome}", op.verb())).or_default() += 1;
    }
    // The sequence must exercise the interesting outcomes, or the comparison proves little.
    for must in [
        "update ok",
        "update precondition",
        "insert duplicate",
        "delete ok",
        "delete precondition",
        "update failed",
        "bulk-upsert ok",
    ] {
        assert!(kinds.contains_key(must), "never saw {must}: {kinds:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_time_is_the_servers_wall_clock() {
    let s = live!("server_time");
    let OpResult::Ok(Reply::Time(t)) = s.execute(&Op::ServerTime).await else {
        panic!("no server time");
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    assert!(
        t.abs_diff(now) < 60_000_000_000,
        "server {t} vs local {now}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_documents_are_reported_by_id_and_left_alone() {
    let s = live!("foreign");
    let coll = s
        .database()
        .collection::<mongodb::bson::Document>(s.collection_name(Collection::Leases));
    coll.insert_one(mongodb::bson::doc! { "_id": "ns#x#", "epoch": 1.5, "tags": ["a"] })
        .await
        .expect("plant");
    let read = Op::Read {
        coll: Collection::Leases,
        id: "ns#x#".into(),
        concern: ReadConcern::Linearizable,
    };
    // Read as it is (foreign values kept by type), and named by the core's decoder.
    match s.execute(&read).await {
        OpResult::Ok(Reply::Doc(Some(d))) => {
            assert_eq!(d.get("epoch"), Some(&Value::Foreign("BSON Double".into())));
            let e = tenure::lease::LeaseDoc::decode(&d, "ns").unwrap_err();
            assert_eq!(e.id, "ns#x#");
        }
        other => panic!("{other:?}"),
    }
    // A write conditioned on Tenure's schema does not match it, so nothing is overwritten.
    let cas = Op::Update {
        coll: Collection::Leases,
        id: "ns#x#".into(),
        expect: fields([("epoch", Value::Int(1))]),
        update: Update {
            set: fields([("holder", "me".into())]),
            ..Update::default()
        },
        upsert: false,
        return_new: false,
    };
    assert_eq!(s.execute(&cas).await, OpResult::PreconditionFailed);
    let still = coll
        .find_one(mongodb::bson::doc! { "_id": "ns#x#" })
        .await
        .expect("read")
        .expect("still there");
    assert_eq!(still.get_f64("epoch"), Ok(1.5));
    assert!(still.get("holder").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_connections_get_actionable_errors() {
    let Some(_) = common::server("bad_connections") else {
        return;
    };
    let e = Substrate::builder("postgres://alice:s3cret@h/db")
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidUri(_)), "{e:?}");
    assert!(!e.to_string().contains("s3cret"), "{e}");

    // Nothing listens on port 1.
    let e = Substrate::builder("mongodb://bob:hunter2@127.0.0.1:1/?directConnection=true")
        .op_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:1") && !text.contains("hunter2"),
        "{text}"
    );
    assert!(text.contains("scripts/substrate"), "{text}");

    let e = Substrate::builder("mongodb://127.0.0.1:1/")
        .op_timeout(Duration::ZERO)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Input(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_is_refused_without_the_unsafe_opt_in() {
    let port = "27127";
    let Some(uri) = common::own_server("standalone", &["secantus", "--port", port, "--standalone"])
    else {
        return;
    };
    let refused = Substrate::builder(&uri).connect().await;
    let accepted = Substrate::builder(&uri)
        .allow_standalone_unsafe(true)
        .connect()
        .await;
    let _ = common::substrate_script(&["stop", "secantus", "--port", port]);
    let e = refused.unwrap_err();
    assert!(matches!(e, Error::Standalone { .. }), "{e:?}");
    assert!(e.to_string().contains("allow_standalone_unsafe"), "{e}");
    let s = accepted.expect("the opt-in connects");
    assert!(!s.is_replica_set());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_and_swap_has_one_winner_per_version() {
    let s = live!("cas_race");
    let config = tenure_mongo::race::RaceConfig {
        tasks: 8,
        attempts: 100,
    };
    let report = tenure_mongo::race::cas_race(&s, &config)
        .await
        .expect("race");
    eprintln!("{}", report.summary(s.hosts()));
    assert_eq!(report.attempts, 800);
    assert!(report.wins > 0 && report.wins <= report.attempts);
    // S1 on the same run: the reads and swaps as a register history.
    let s1 = tenure::history::register::RegisterHistory::from_jsonl(&report.history)
        .expect("the race's history reads back")
        .check()
        .expect("every swap writes a value of its own");
    assert_eq!(s1.operations, 1 + 2 * 800);
    if s.is_replica_set() {
        assert!(report.is_atomic(), "{report:?}");
        assert_eq!(s1.verdict, Ok(()));
    } else if !report.is_atomic() {
        // A version won twice is a lost update to S1 too.
        assert!(s1.verdict.is_err(), "{report:?}");
    }
    // On a standalone (FerretDB under the unsafe opt-in) the outcome is the finding itself:
    // scripts/test prints it, docs/perf-log.md records it.
    eprintln!("S1: {:?}", s1.verdict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_of_a_missing_document_all_apply() {
    let s = live!("upsert_race");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.execute(&PresenceConfig::new("m").next_seq_op()).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            OpResult::Ok(Reply::Doc(Some(d))) => {
                seqs.push(d.int(Collection::PresenceSeqs, "seq").expect("seq"))
            }
            // SecantusDB 0.7.0b3 sometimes answers a racing upsert with no document although it
            // applied it: unknown is the honest answer. "Not applied" would be a lie.
            OpResult::Unknown => {}
            other => panic!("a racing upsert must apply: {other:?}"),
        }
    }
    seqs.sort();
    seqs.dedup();
    let read = Op::Read {
        coll: Collection::PresenceSeqs,
        id: "m:beings".into(),
        concern: ReadConcern::Linearizable,
    };
    let OpResult::Ok(Reply::Doc(Some(d))) = s.execute(&read).await else {
        panic!("the counter exists");
    };
    // On an atomic server every increment applied once and every answer is distinct.
    if s.is_replica_set() {
        assert_eq!(d.int(Collection::PresenceSeqs, "seq"), Ok(16));
        assert!(seqs.iter().all(|v| (1..=16).contains(v)), "{seqs:?}");
    }
}

/// Issue 19, item 10: a service that already has a driver client (its pool, its auth) builds
/// the substrate on it; the same checks run, and leases work through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_substrate_is_built_on_a_client_the_service_already_has() {
    // Skipped locally (with a message) where no server can be started; fails in CI.
    if common::server("with_client").is_none() {
        return;
    }
    let uri = common::uri().expect("a server");
    let db = common::fresh_db("with_client");
    let client = tenure_mongo::mongodb::Client::with_uri_str(&uri)
        .await
        .expect("the service's own client");
    let s = Substrate::with_client(client.clone())
        .database(db.clone())
        .allow_standalone_unsafe(common::allow_standalone())
        .connect()
        .await
        .expect("connects through the given client");
    let updater = tenure_mongo::ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(&s)
        .expect("updater");
    let leases = tenure_mongo::Leases::builder("app")
        .skew(tenure_mongo::SkewBounds {
            rate_error_ppm: 500,
            clock_step_max: Duration::from_millis(100),
        })
        .build(&s)
        .expect("manager");
    let token = leases
        .claim("db", "u0", Duration::from_secs(5))
        .await
        .expect("claim through the given client");
    assert_eq!(token.epoch(), tenure_mongo::Epoch(1));
    // The service's client sees Tenure's document: one pool, one deployment.
    let stored = client
        .database(&db)
        .collection::<tenure_mongo::mongodb::bson::Document>("tenure.leases")
        .find_one(tenure_mongo::mongodb::bson::doc! { "_id": "app#db#" })
        .await
        .expect("read");
    assert!(stored.is_some());
    leases.shutdown().await;
    updater.shutdown().await;
}
