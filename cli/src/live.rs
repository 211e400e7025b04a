//! `tenure live`: the adapter driven by a workload against a real server, every call recorded,
//! and the recorded history judged by the same properties as the models and the simulator.
//! `tenure live --check FILE` judges a saved history again.
//!
//! This is the first slice of live checking: the lease workload (with the clock) and no
//! injected faults yet; the faults, the other workloads and live mutants are still to come.

use crate::history::{report_verdicts, verdict_json};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;
use tenure::history::{CheckParams, History};
use tenure_mongo::live::{LeaseWorkload, LeaseWorkloadReport, CLIENTS_MAX};
use tenure_mongo::{Recorder, Substrate};

/// `tenure live`.
#[derive(Args, Debug)]
pub struct LiveArgs {
    /// The server's MongoDB URI (a replica set; SecantusDB runs as a one-node one).
    #[arg(long, conflicts_with_all = ["server", "check"])]
    pub uri: Option<String>,
    /// Start a server from this repository's scripts (scripts/substrate; run from the
    /// repository's root), use it, and stop it at the end.
    #[arg(long, value_enum, conflicts_with = "check")]
    pub server: Option<Server>,
    /// Which protocol's workload: lease (leases contended by the clients, with the global
    /// clock kept and read).
    #[arg(long, value_enum, default_value = "lease")]
    pub protocol: LiveProtocol,
    /// Concurrent clients, each with a lease manager of its own.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=CLIENTS_MAX as i64))]
    pub clients: u16,
    /// Leases the clients contend for.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub leases: u16,
    /// How long the clients run (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Faults to inject: only `none` so far (the fault-injecting proxy, failpoints, step-downs,
    /// kills and paused clients are not built yet).
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Seeds the workload's random choices (which lease, how long to hold, release or lapse).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Accept a standalone server (FerretDB): its writes are not majority-acknowledged and its
    /// compare-and-swap may not be atomic, so expect violations. Implied by `--server ferretdb`.
    #[arg(long)]
    pub allow_standalone: bool,
    /// Judge a saved history (a run's `history.jsonl`) instead of running.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Print one JSON object (verdicts) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The servers `tenure live --server` can start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Server {
    /// SecantusDB, a one-node replica set: the primary substrate.
    Secantusdb,
    /// FerretDB 1.24.2 on SQLite: a standalone whose compare-and-swap is not atomic.
    Ferretdb,
}

/// The workloads `tenure live` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LiveProtocol {
    /// Leases contended by the clients, with the global clock kept and read.
    Lease,
}

/// The port `--server` starts its server on (away from the test servers' ports).
const OWN_PORT: &str = "27317";

/// The clock bounds of the workload: its updaters step at most 100 ms; ρ as a host's clock.
const RATE_ERROR_PPM: u32 = 500;

/// Runs `tenure live`.
pub fn run(args: &LiveArgs) -> Result<ExitCode, String> {
    if let Some(file) = &args.check {
        return recheck(file, args.json);
    }
    if args.faults != "none" {
        return Err(format!(
            "--faults {}: live fault injection is not built yet; run with --faults none (the \
             simulator, `tenure sim`, injects every fault)",
            args.faults
        ));
    }
    let server = OwnServer::start(args)?;
    let standalone = args.allow_standalone || args.server == Some(Server::Ferretdb);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let outcome = runtime.block_on(run_workload(args, &server.uri, standalone));
    drop(server);
    let (report, recorder) = outcome?;
    finish(args, &report, &recorder)
}

/// Runs the workload and returns what it did and what was recorded.
async fn run_workload(
    args: &LiveArgs,
    uri: &str,
    standalone: bool,
) -> Result<(LeaseWorkloadReport, Recorder), String> {
    let recorder = Recorder::new(0);
    // A database of its own: nothing left by another run is mistaken for this one's.
    let database = format!("tenure_live_{}_{:x}", std::process::id(), args.seed);
    let substrate = Substrate::builder(uri)
        .database(database)
        .allow_standalone_unsafe(standalone)
        .recorder(recorder.clone())
        .connect()
        .await
        .map_err(|e| format!("cannot use the server: {e}"))?;
    let workload = LeaseWorkload {
        clients: usize::from(args.clients),
        leases: usize::from(args.leases),
        duration: args.duration,
        seed: args.seed,
        ..LeaseWorkload::default()
    };
    if !args.json {
        eprintln!(
            "tenure live: {} client(s) on {} lease(s) for {}, seed {}, on {}",
            workload.clients,
            workload.leases,
            humantime::format_duration(workload.duration),
            workload.seed,
            substrate.hosts()
        );
    }
    let bar = progress_bar(args.duration, args.json);
    let tick = bar.clone();
    let report = workload
        .run(&substrate, move |elapsed| {
            if let Some(b) = &tick {
                b.set_position(elapsed.as_secs());
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let _ = substrate.database().drop().await;
    Ok((
        report.map_err(|e| format!("the workload failed: {e}"))?,
        recorder,
    ))
}

fn progress_bar(duration: Duration, json: bool) -> Option<ProgressBar> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    if json || ci || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} s, {elapsed}").ok()?);
    Some(bar)
}

/// What `reports/live/lease/summary.json` holds.
#[derive(Serialize)]
struct Summary<'a> {
    schema_version: u32,
    protocol: &'static str,
    clients: u16,
    leases: u16,
    duration_secs: f64,
    seed: u64,
    faults: &'a str,
    claims: u64,
    granted: u64,
    denied: u64,
    released: u64,
    errors: u64,
    clock_reads: u64,
    entries: usize,
    outcome: &'static str,
    properties: Vec<serde_json::Value>,
    history: String,
    recheck: String,
}

/// Writes the history and the summary, prints the verdicts.
fn finish(
    args: &LiveArgs,
    report: &LeaseWorkloadReport,
    recorder: &Recorder,
) -> Result<ExitCode, String> {
    let dir = Path::new("reports/live/lease");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("history.jsonl");
    recorder
        .write_jsonl(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let history = recorder.history();
    let verdicts = history.check(CheckParams {
        rate_error_ppm: RATE_ERROR_PPM,
    });
    let recheck = format!("tenure live --check {}", path.display());
    let summary = Summary {
        schema_version: 1,
        protocol: "lease",
        clients: args.clients,
        leases: args.leases,
        duration_secs: args.duration.as_secs_f64(),
        seed: args.seed,
        faults: &args.faults,
        claims: report.claims,
        granted: report.granted,
        denied: report.denied,
        released: report.released,
        errors: report.errors,
        clock_reads: report.clock_reads,
        entries: history.entries.len(),
        outcome: match verdicts.iter().any(|(_, v)| v.is_err()) {
            true => "fail",
            false => "pass",
        },
        properties: verdicts
            .iter()
            .map(|(id, v)| verdict_json(*id, v))
            .collect(),
        history: path.display().to_string(),
        recheck: recheck.clone(),
    };
    let file = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    if !args.json {
        println!(
            "lease: {} claims ({} granted, {} denied), {} released, {} errors, {} clock reads",
            report.claims,
            report.granted,
            report.denied,
            report.released,
            report.errors,
            report.clock_reads
        );
    }
    let code = report_verdicts(
        &path.display().to_string(),
        history.entries.len(),
        &verdicts,
        args.json,
    );
    if !args.json {
        println!("  summary: {}\n  check again: {recheck}", file.display());
    }
    Ok(code)
}

/// `tenure live --check FILE`: the same verdicts on a saved history.
fn recheck(file: &Path, json: bool) -> Result<ExitCode, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let history = History::from_jsonl(&text).map_err(|e| {
        format!(
            "{} is not a Tenure history (a `tenure live` run's history.jsonl): {e}",
            file.display()
        )
    })?;
    let verdicts = history.check(CheckParams {
        rate_error_ppm: RATE_ERROR_PPM,
    });
    Ok(report_verdicts(
        &file.display().to_string(),
        history.entries.len(),
        &verdicts,
        json,
    ))
}

/// The server the run uses: given by `--uri`, or started by `--server` and stopped on drop.
struct OwnServer {
    uri: String,
    started: Option<&'static str>,
}

impl OwnServer {
    fn start(args: &LiveArgs) -> Result<OwnServer, String> {
        let Some(server) = args.server else {
            let uri = args.uri.clone().ok_or(
                "say which server: --uri mongodb://HOST:PORT/?replicaSet=NAME, or --server \
                 secantusdb to start one from this repository's scripts",
            )?;
            return Ok(OwnServer { uri, started: None });
        };
        let name = match server {
            Server::Secantusdb => "secantus",
            Server::Ferretdb => "ferretdb",
        };
        let script = Path::new("scripts/substrate");
        if !script.exists() {
            return Err(
                "--server starts servers with scripts/substrate: run tenure live from \
                        the repository's root, or give --uri"
                    .into(),
            );
        }
        let out = Command::new(script)
            .args(["start", name, "--port", OWN_PORT])
            .output()
            .map_err(|e| format!("cannot run scripts/substrate: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/substrate start {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let uri = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(OwnServer {
            uri,
            started: Some(name),
        })
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(name) = self.started {
            let _ = Command::new("scripts/substrate")
                .args(["stop", name, "--port", OWN_PORT])
                .output();
        }
    }
}
