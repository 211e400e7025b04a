//! A probe of the server's compare-and-swap under concurrency (SUBSTRATES.md, "Not atomic").
//!
//! Tasks race read-then-`update({_id, ver: v, w: t}, {$set: {ver: v + 1, w: t'}})` on one
//! scratch document, each swap writing a tag `t'` of its own. An atomic server lets each version
//! be won once, and the final version equals the number of wins. A server that checks the
//! filter and then writes by `_id` alone lets two tasks win the same version (and loses
//! updates): the fault under which lease exclusion breaks.
//!
//! Every read and swap is also recorded as a register history ([`RaceReport::history`], the
//! format of `tenure::history::register`), so S1 (`tenure history check`) judges the server's
//! linearizability from the same run, unknown outcomes included.
//!
//! Public on purpose: run it against a server before trusting Tenure to it (`cargo run -p
//! tenure-mongo --example cas_race`).

use crate::error::Error;
use crate::substrate::Substrate;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use tenure::history::register::{OpKind, RegisterLine};
use tenure::substrate::{fields, Collection, Op, OpResult, ReadConcern, Reply, Update, Value};
use tokio::time::Instant;

/// How hard to race.
#[derive(Clone, Debug)]
pub struct RaceConfig {
    /// Concurrent tasks (default 8).
    pub tasks: usize,
    /// Read-then-swap attempts per task (default 300).
    pub attempts: usize,
}

impl Default for RaceConfig {
    fn default() -> Self {
        RaceConfig {
            tasks: 8,
            attempts: 300,
        }
    }
}

/// What the race showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaceReport {
    /// Swaps attempted.
    pub attempts: u64,
    /// Swaps the server reported as applied.
    pub wins: u64,
    /// Versions that more than one task won: each is a broken compare-and-swap.
    pub double_wins: u64,
    /// Wins that left no trace in the final version (`wins - final version`).
    pub lost_updates: u64,
    /// Swaps whose outcome was unknown (not counted as wins).
    pub unknown: u64,
    /// How long the race took.
    pub elapsed: Duration,
    /// Every read and swap as a register history (JSON lines; values `[ver, tag]`, times
    /// from the race's start): check it with `tenure history check`.
    pub history: String,
}

impl RaceReport {
    /// Whether every version was won at most once and no win was lost.
    pub fn is_atomic(&self) -> bool {
        self.double_wins == 0 && self.lost_updates == 0
    }

    /// One line for people.
    pub fn summary(&self, server: &str) -> String {
        format!(
            "{server}: {} read+swap attempts, {} wins, {} versions won twice or more, {} lost updates, {} unknown, {:.0} attempts/s: compare-and-swap {}",
            self.attempts,
            self.wins,
            self.double_wins,
            self.lost_updates,
            self.unknown,
            self.attempts as f64 / self.elapsed.as_secs_f64().max(1e-9),
            if self.is_atomic() { "held" } else { "is NOT atomic" }
        )
    }
}

/// Runs the race on a fresh scratch document in Tenure's clock collection (an `_id` no protocol
/// uses), and deletes it afterwards.
pub async fn cas_race(substrate: &Substrate, config: &RaceConfig) -> Result<RaceReport, Error> {
    if config.tasks == 0
        || config.tasks > 1024
        || config.attempts == 0
        || config.attempts > 1_000_000
    {
        return Err(Error::Input(tenure::validate::InputError::InvalidConfig(
            "the race needs 1 to 1024 tasks and 1 to 1,000,000 attempts each".into(),
        )));
    }
    let id = format!("cas-race-{:016x}", rand::random::<u64>());
    let started = Instant::now();
    let mut history = Recording::new(started, "setup");
    let first = Version(0, "init".into());
    let call = history.now();
    let created = substrate
        .execute(&Op::Insert {
            coll: Collection::Clock,
            doc: tenure::substrate::Document::new(&id, first.fields()),
        })
        .await;
    if !matches!(created, OpResult::Ok(_)) {
        return Err(Error::Store(format!(
            "creating the race document: {created}"
        )));
    }
    history.cas(call, None, &first, &created);
    let tasks: Vec<_> = (0..config.tasks)
        .map(|task| {
            let (s, id, attempts) = (substrate.clone(), id.clone(), config.attempts);
            tokio::spawn(async move { race_task(&s, &id, task, attempts, started).await })
        })
        .collect();
    let mut won: BTreeMap<i64, u64> = BTreeMap::new();
    let (mut attempts, mut unknown) = (0, 0);
    for t in tasks {
        let r = t
            .await
            .map_err(|e| Error::Store(format!("race task failed: {e}")))??;
        attempts += r.attempts;
        unknown += r.unknown;
        for v in r.won {
            *won.entry(v).or_default() += 1;
        }
        history.lines.extend(r.history.lines);
    }
    let elapsed = started.elapsed();
    let final_version = read_version(substrate, &id).await?.0;
    let _ = substrate
        .execute(&Op::Delete {
            coll: Collection::Clock,
            id: id.clone(),
            expect: tenure::substrate::Fields::new(),
        })
        .await;
    let wins: u64 = won.values().sum();
    Ok(RaceReport {
        attempts,
        wins,
        double_wins: won.values().filter(|n| **n > 1).count() as u64,
        lost_updates: wins.saturating_sub(u64::try_from(final_version).unwrap_or(0)),
        unknown,
        elapsed,
        history: history.to_jsonl(),
    })
}

struct TaskResult {
    attempts: u64,
    unknown: u64,
    won: Vec<i64>,
    history: Recording,
}

/// The race document's state: its version and the tag of the swap that wrote it (unique, so
/// the history's values are).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version(i64, String);

impl Version {
    fn fields(&self) -> tenure::substrate::Fields {
        fields([
            ("ver", Value::Int(self.0)),
            ("w", Value::Str(self.1.clone())),
        ])
    }

    fn json(&self) -> serde_json::Value {
        json!([self.0, self.1])
    }
}

/// One task's reads and swaps, as register history lines.
struct Recording {
    started: Instant,
    client: String,
    lines: Vec<RegisterLine>,
}

impl Recording {
    fn new(started: Instant, client: &str) -> Recording {
        Recording {
            started,
            client: client.to_owned(),
            lines: Vec::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(
        &mut self,
        op: OpKind,
        args: Vec<serde_json::Value>,
        result: serde_json::Value,
        call: u64,
    ) {
        let return_ns = Some(self.now());
        self.lines.push(RegisterLine {
            client: json!(self.client),
            key: None,
            op,
            args,
            result,
            call_ns: call,
            return_ns,
        });
    }

    /// A swap from `from` (`None`: no document) to `to`, and what the store answered.
    fn cas(&mut self, call: u64, from: Option<&Version>, to: &Version, answer: &OpResult) {
        let result = match answer {
            OpResult::Ok(_) => json!(true),
            OpResult::Unknown => json!("unknown"),
            _ => json!(false),
        };
        let from = from.map_or(serde_json::Value::Null, Version::json);
        self.push(OpKind::Cas, vec![from, to.json()], result, call);
    }

    fn to_jsonl(&self) -> String {
        let mut lines = self.lines.clone();
        lines.sort_by_key(|l| l.call_ns);
        lines
            .iter()
            .filter_map(|l| serde_json::to_string(l).ok())
            .map(|l| l + "\n")
            .collect()
    }
}

async fn read_version(s: &Substrate, id: &str) -> Result<Version, Error> {
    let read = Op::Read {
        coll: Collection::Clock,
        id: id.to_owned(),
        concern: ReadConcern::Linearizable,
    };
    match s.execute(&read).await {
        OpResult::Ok(Reply::Doc(Some(d))) => Ok(Version(
            d.int(Collection::Clock, "ver")?,
            d.str(Collection::Clock, "w")?.to_owned(),
        )),
        other => Err(Error::Store(format!("reading the race document: {other}"))),
    }
}

async fn race_task(
    s: &Substrate,
    id: &str,
    task: usize,
    attempts: usize,
    started: Instant,
) -> Result<TaskResult, Error> {
    let mut r = TaskResult {
        attempts: 0,
        unknown: 0,
        won: Vec::new(),
        history: Recording::new(started, &format!("task-{task}")),
    };
    for attempt in 0..attempts {
        let call = r.history.now();
        let read = read_version(s, id).await?;
        r.history.push(OpKind::Read, Vec::new(), read.json(), call);
        let next = Version(read.0 + 1, format!("{task}-{attempt}"));
        let swap = Op::Update {
            coll: Collection::Clock,
            id: id.to_owned(),
            expect: read.fields(),
            update: Update {
                set: next.fields(),
                ..Update::default()
            },
            upsert: false,
            return_new: false,
        };
        r.attempts += 1;
        let call = r.history.now();
        let answer = s.execute(&swap).await;
        r.history.cas(call, Some(&read), &next, &answer);
        match answer {
            OpResult::Ok(_) => r.won.push(read.0),
            OpResult::Unknown => r.unknown += 1,
            _ => {}
        }
    }
    Ok(r)
}

/// How a lease race runs.
#[derive(Clone, Debug)]
pub struct LeaseRaceConfig {
    /// Managers (each its own writer) racing for one lease (default 8).
    pub managers: usize,
    /// Rounds: every manager claims at once, then all wait for the lease to expire (default 5).
    pub rounds: usize,
    /// The lease duration asked for (default 400 ms).
    pub duration: std::time::Duration,
    /// Clock bounds the managers assume (the updaters this race starts step at most 100 ms).
    pub skew: tenure::time::SkewBounds,
}

impl Default for LeaseRaceConfig {
    fn default() -> Self {
        LeaseRaceConfig {
            managers: 8,
            rounds: 5,
            duration: Duration::from_millis(400),
            skew: tenure::time::SkewBounds {
                rate_error_ppm: 500,
                clock_step_max: Duration::from_millis(100),
            },
        }
    }
}

/// What a lease race saw: each round's number of managers told they hold the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRaceReport {
    /// Grants per round (exclusion means at most 1).
    pub granted_per_round: Vec<usize>,
    /// Claims that failed with an error other than a denial.
    pub errors: usize,
}

/// Races `config.managers` lease managers for one lease, with a clock updater running, through
/// `substrate` (attach a [`crate::Recorder`] to it to check the run afterwards).
pub async fn lease_race(
    substrate: &Substrate,
    config: &LeaseRaceConfig,
) -> Result<LeaseRaceReport, Error> {
    if config.managers == 0 || config.managers > 256 || config.rounds == 0 || config.rounds > 10_000
    {
        return Err(Error::Input(tenure::validate::InputError::InvalidConfig(
            "a lease race needs 1 to 256 managers and 1 to 10,000 rounds".into(),
        )));
    }
    let updater = crate::ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(substrate)?;
    let managers = (0..config.managers)
        .map(|i| {
            crate::Leases::builder("race")
                .writer(format!("racer-{i}"))
                .skew(config.skew)
                .max_sleep(config.duration)
                .build(substrate)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = LeaseRaceReport {
        granted_per_round: Vec::new(),
        errors: 0,
    };
    for _ in 0..config.rounds {
        let claims: Vec<_> = managers
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (m, d) = (m.clone(), config.duration);
                tokio::spawn(async move { m.claim("hot", &format!("holder-{i}"), d).await })
            })
            .collect();
        let mut granted = 0;
        for c in claims {
            match c.await {
                Ok(Ok(_)) => granted += 1,
                Ok(Err(Error::ClaimDenied { .. })) => {}
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "lease race claim failed");
                    report.errors += 1;
                }
                Err(e) => return Err(Error::Store(format!("race task failed: {e}"))),
            }
        }
        report.granted_per_round.push(granted);
        let wait = config.duration * 20 + Duration::from_secs(2);
        if tokio::time::timeout(wait, managers[0].wait_until_expired("hot"))
            .await
            .is_err()
        {
            tracing::warn!("the raced lease did not expire within {wait:?}");
        }
    }
    for m in &managers {
        m.shutdown().await;
    }
    updater.shutdown().await;
    Ok(report)
}
