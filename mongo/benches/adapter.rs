//! The adapter against the floor: lease claims and extensions through `Leases` versus the same
//! sequence of raw driver operations (a linearizable read of the clock, then the conditional
//! write), side by side in one run on one server. Plus one presence watcher sync over 10,000 live
//! keys.
//!
//! ```sh
//! scripts/substrate start secantus
//! TENURE_TEST_URI='mongodb://127.0.0.1:27117/?directConnection=true' cargo bench -p tenure-mongo --bench adapter
//! ```
//! Without `TENURE_TEST_URI` the bench starts SecantusDB through `scripts/substrate`. Besides
//! criterion's estimates it prints p50/p99 latencies and the adapter's overhead over the floor.

use criterion::{criterion_group, criterion_main, Criterion};
use mongodb::bson::{doc, Document as BsonDocument};
use mongodb::options::{Acknowledgment, ReadConcern, WriteConcern};
use std::time::{Duration, Instant};
use tenure::presence::{encode_seq, PresenceConfig};
use tenure::substrate::Collection;
use tenure::time::SkewBounds;
use tenure_mongo::{Leases, Presence, Substrate};
use tokio::runtime::Runtime;

fn uri() -> String {
    if let Ok(u) = std::env::var("TENURE_TEST_URI") {
        return u;
    }
    let out =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/substrate"))
            .args(["start", "secantus"])
            .output()
            .expect("run scripts/substrate");
    assert!(
        out.status.success(),
        "scripts/substrate start secantus failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn connect(db: &str) -> Substrate {
    // Room for the first sync over 10,000 new keys, which exceeds the default 5 s + 1 s call
    // bound in the unoptimised smoke run of `scripts/test` (the timed runs are far below it).
    Substrate::builder(uri())
        .database(db)
        .op_timeout(Duration::from_secs(60))
        .connect()
        .await
        .expect("connect to the bench server")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Latencies of the last measured batch, per variant, for the p50/p99 summary.
#[derive(Default)]
struct Latencies(Vec<Duration>);

impl Latencies {
    fn summary(&mut self) -> (Duration, Duration, f64) {
        self.0.sort();
        let total: Duration = self.0.iter().sum();
        let per_sec = self.0.len() as f64 / total.as_secs_f64().max(1e-9);
        (percentile(&self.0, 0.5), percentile(&self.0, 0.99), per_sec)
    }
}

/// The raw floor of one extension or claim: what the manager sends, spelled with the driver.
struct Raw {
    clock: mongodb::Collection<BsonDocument>,
    leases: mongodb::Collection<BsonDocument>,
}

impl Raw {
    fn new(s: &Substrate) -> Raw {
        let wc = WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .w_timeout(Duration::from_secs(5))
            .build();
        let db = s.database();
        let with = |name: &str| {
            db.collection_with_options::<BsonDocument>(
                name,
                mongodb::options::CollectionOptions::builder()
                    .read_concern(ReadConcern::linearizable())
                    .write_concern(wc.clone())
                    .build(),
            )
        };
        Raw {
            clock: with(s.collection_name(Collection::Clock)),
            leases: with(s.collection_name(Collection::Leases)),
        }
    }

    async fn global(&self) -> i64 {
        self.clock
            .find_one(doc! { "_id": "g" })
            .max_time(Duration::from_secs(5))
            .await
            .expect("read clock")
            .and_then(|d| d.get_i64("time").ok())
            .unwrap_or(0)
    }
}

/// The two ways of doing one lease operation, spelled out once for both the interleaved
/// comparison and criterion's separate runs.
struct Ops {
    leases: Leases,
    raw: Raw,
    base: Duration,
    /// Grows by one per extension so every extension writes (one that would not lengthen the
    /// term writes nothing, and the clock does not tick here).
    n: u64,
    fresh: u64,
    raw_version: (i64, i64),
}

const RAW_ID: &str = "bench#raw#";

impl Ops {
    async fn extend_adapter(&mut self) {
        self.n += 1;
        let d = self.base + Duration::from_nanos(self.n);
        self.leases.claim("ext", "h", d).await.expect("extend");
    }

    async fn extend_raw(&mut self) {
        self.n += 1;
        let g = self.raw.global().await;
        let duration = self.base.as_nanos() as i64 + self.n as i64;
        let (start, old) = self.raw_version;
        let r = self
            .raw
            .leases
            .update_one(
                doc! { "_id": RAW_ID, "epoch": 1_i64, "writer": "w", "holder": "h",
                "start": start, "duration": old },
                doc! { "$set": { "epoch": 1_i64, "writer": "w", "holder": "h",
                "start": g, "duration": duration } },
            )
            .await
            .expect("compare-and-swap");
        assert_eq!(r.modified_count, 1, "the raw extension must write");
        self.raw_version = (g, duration);
    }

    async fn claim_adapter(&mut self) {
        self.fresh += 1;
        let name = format!("c{}", self.fresh);
        self.leases
            .claim(&name, "h", self.base)
            .await
            .expect("claim");
    }

    async fn claim_raw(&mut self) {
        self.fresh += 1;
        let g = self.raw.global().await;
        let f = self.fresh;
        self.raw
            .leases
            .insert_one(doc! { "_id": format!("bench#r{f}#"), "namespace": "bench",
            "name": format!("r{f}"), "epoch": 1_i64, "writer": "w",
            "holder": "h", "start": g, "duration": self.base.as_nanos() as i64 })
            .await
            .expect("insert");
    }
}

/// Alternates adapter and raw operations so both meet the same server conditions (a Python
/// server's pauses and growth would otherwise favour whichever ran first), and prints
/// throughput, p50 and p99 of each and the adapter's overhead.
fn interleaved(rt: &Runtime, ops: &mut Ops, rounds: usize) {
    for what in ["extend", "claim"] {
        let (mut a, mut r) = (Latencies::default(), Latencies::default());
        rt.block_on(async {
            for _ in 0..rounds {
                let t = Instant::now();
                match what {
                    "extend" => ops.extend_adapter().await,
                    _ => ops.claim_adapter().await,
                }
                a.0.push(t.elapsed());
                let t = Instant::now();
                match what {
                    "extend" => ops.extend_raw().await,
                    _ => ops.claim_raw().await,
                }
                r.0.push(t.elapsed());
            }
        });
        let (a50, a99, aps) = a.summary();
        let (r50, r99, rps) = r.summary();
        eprintln!(
            "lease {what}, {rounds} interleaved rounds: adapter {aps:.0}/s p50 {a50:.2?} p99 {a99:.2?} | raw driver {rps:.0}/s p50 {r50:.2?} p99 {r99:.2?} | adapter overhead {:+.1}% (mean), {:+.1}% (p50)",
            (rps / aps - 1.0) * 100.0,
            (a50.as_secs_f64() / r50.as_secs_f64() - 1.0) * 100.0
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let s = rt.block_on(connect("tenure_bench_adapter"));
    rt.block_on(async {
        let _ = s.database().drop().await;
    });
    let skew = SkewBounds {
        rate_error_ppm: 500,
        clock_step_max: Duration::from_millis(100),
    };
    let leases = rt.block_on(async {
        Leases::builder("bench")
            .writer("bench-writer")
            .skew(skew)
            .max_sleep(Duration::from_secs(3600))
            .build(&s)
            .expect("manager")
    });
    let mut ops = Ops {
        leases,
        raw: Raw::new(&s),
        base: Duration::from_secs(600),
        n: 0,
        fresh: 0,
        raw_version: (0, 1),
    };
    rt.block_on(async {
        ops.leases
            .claim("ext", "h", ops.base)
            .await
            .expect("first claim");
        ops.raw
            .leases
            .insert_one(
                doc! { "_id": RAW_ID, "namespace": "bench", "name": "raw", "epoch": 1_i64,
                "writer": "w", "holder": "h", "start": 0_i64, "duration": 1_i64 },
            )
            .await
            .expect("seed the raw lease");
    });
    // Smoke runs (`cargo test --benches`) pass `--bench` too; a short comparison is enough there.
    // `cargo bench` passes `--bench`; a smoke run (`cargo test --benches`) does not, and a short
    // comparison is enough there.
    let rounds = if std::env::args().any(|a| a == "--bench") {
        500
    } else {
        5
    };
    interleaved(&rt, &mut ops, rounds);

    let mut group = c.benchmark_group("lease");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("extend/adapter", |b| {
        b.iter(|| rt.block_on(ops.extend_adapter()))
    });
    group.bench_function("extend/raw", |b| b.iter(|| rt.block_on(ops.extend_raw())));
    group.bench_function("claim/adapter", |b| {
        b.iter(|| rt.block_on(ops.claim_adapter()))
    });
    group.bench_function("claim/raw", |b| b.iter(|| rt.block_on(ops.claim_raw())));
    group.finish();
    rt.block_on(ops.leases.shutdown());

    watcher_sync(c, &rt, &s);
    pinger_flushes(&rt);
    rt.block_on(async {
        let _ = s.database().drop().await;
    });
}

/// One sync of a presence watcher over 10,000 live keys: beings and a slot document with every
/// sequence's bit are written in bulk first (as 10,000 pingers would have), then timed.
fn watcher_sync(c: &mut Criterion, rt: &Runtime, s: &Substrate) {
    const KEYS: u64 = 10_000;
    let period = Duration::from_secs(30);
    // Workers start on the current tokio runtime.
    let _runtime = rt.enter();
    let presence = Presence::builder("bench")
        .period(period)
        .build(s)
        .expect("presence");
    let config = PresenceConfig {
        period,
        ..PresenceConfig::new("bench")
    };
    rt.block_on(async {
        let db = s.database();
        let beings: Vec<BsonDocument> = (1..=KEYS)
            .map(|seq| doc! { "_id": config.being_id(seq), "seq": seq as i64, "key": format!("agent-{seq}") })
            .collect();
        db.collection::<BsonDocument>(s.collection_name(Collection::PresenceBeings))
            .insert_many(beings)
            .await
            .expect("beings");
        let mut alive = BsonDocument::new();
        for seq in 1..=KEYS {
            let (field, bit) = encode_seq(seq);
            let cur = alive.get_i64(&field).unwrap_or(0);
            alive.insert(field, cur | bit);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        let slot = now / 30 * 30;
        let pings = db.collection::<BsonDocument>(s.collection_name(Collection::PresencePings));
        for slot in [slot - 30, slot, slot + 30] {
            pings
                .insert_one(doc! { "_id": config.ping_id(slot), "slot": slot, "alive": alive.clone() })
                .await
                .expect("pings");
        }
    });
    let watch = rt.block_on(async { presence.watcher() }).expect("watcher");
    rt.block_on(watch.sync()).expect("first sync");
    assert!(rt.block_on(watch.alive("agent-1")).expect("alive?"));
    assert!(rt
        .block_on(watch.alive(&format!("agent-{KEYS}")))
        .expect("alive?"));
    let mut group = c.benchmark_group("presence");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    group.bench_function("watcher sync, 10,000 live keys", |b| {
        b.iter(|| rt.block_on(watch.sync()).expect("sync"))
    });
    group.finish();
    rt.block_on(watch.shutdown());
    rt.block_on(presence.shutdown());
}

/// Many pingers of one model in one process: every ping goes through the process's one batcher,
/// which writes at most one bulk upsert per flush interval (per 1,000 slot documents). Counts the
/// bulk writes over a window covering two ping intervals.
fn pinger_flushes(rt: &Runtime) {
    let pingers: usize = if std::env::args().any(|a| a == "--bench") {
        10_000
    } else {
        100
    };
    let (period, flush) = (Duration::from_secs(4), Duration::from_secs(1));
    let recorder = tenure_mongo::Recorder::new(0);
    rt.block_on(async {
        let s = Substrate::builder(uri())
            .database("tenure_bench_pingers")
            .recorder(recorder.clone())
            .connect()
            .await
            .expect("connect");
        let _ = s.database().drop().await;
        let presence = Presence::builder("fleet")
            .period(period)
            .flush_interval(flush)
            .build(&s)
            .expect("presence");
        let started = Instant::now();
        let mut running = Vec::with_capacity(pingers);
        for chunk in (0..pingers).collect::<Vec<_>>().chunks(200) {
            let starts = chunk.iter().map(|i| {
                let p = presence.clone();
                                async move {
                    // A start can end "outcome unknown" (SecantusDB drops some racing upsert
                    // replies); starting again takes a fresh sequence, which is harmless.
                    let mut tries = 0;
                    loop {
                        match p.pinger(&format!("agent-{i}")).await {
                            Ok(pinger) => break pinger,
                            Err(e) if tries < 5 => {
                                tries += 1;
                                eprintln!("pinger agent-{i}: {e}; starting again");
                            }
                            Err(e) => panic!("pinger agent-{i}: {e}"),
                        }
                    }
                }
            });
            running.extend(futures_util::future::join_all(starts).await);
        }
        let start_time = started.elapsed();
        let from = recorder.history().entries.len();
        let window = Instant::now();
        tokio::time::sleep(period * 2).await;
        let elapsed = window.elapsed();
        let bulks = recorder.history().entries[from..]
            .iter()
            .filter(|e| {
                e.phase == tenure::history::Phase::Invoke
                    && matches!(&e.operation, tenure::history::Operation::Store { verb, .. } if verb == "bulk-upsert")
            })
            .count();
        let bound = (elapsed.as_secs_f64() / flush.as_secs_f64()).ceil() as usize + 1;
        eprintln!(
            "presence: {pingers} pingers (started in {start_time:.1?}) wrote {bulks} bulk upserts in {elapsed:.1?} with a {flush:?} flush interval (bound {bound})"
        );
        assert!(bulks <= bound, "{bulks} bulk writes exceed one per flush interval");
        assert!(bulks >= 1, "no pings were written at all");
        for p in running {
            p.stop().await;
        }
        presence.shutdown().await;
        let _ = s.database().drop().await;
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
