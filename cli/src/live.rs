//! `tenure live`: the adapter driven by a workload against a real server, every call recorded,
//! and the recorded history judged by the same properties as the models and the simulator.
//! `tenure live --check FILE` judges a saved history again.
//!
//! The clock, lease, leadership and presence workloads, alone or all at once, under the network
//! faults of a seeded proxy, the server's failpoints and step-downs, a kill and restart of a
//! server the run owns, and skewed client clocks; with `--processes`, each client a process of
//! its own, paused and killed; every protocol's mutants and their score; a timeline picture
//! per violation.

use crate::history::{report_verdicts, verdict_json};
use crate::render::svg;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::Duration;
use tenure::history::{CheckParams, History};
use tenure::mutant::Mutant;
use tenure::mutant::Protocol;
use tenure::property::{PropertyId, Verdict, Violation};
use tenure_mongo::live::faults::{LiveFault, Restart};
use tenure_mongo::live::processes::{serve, ClientCommand, ClientFault, ClientSpec};
use tenure_mongo::live::{
    check_mutant, faults_for_mutant, live_mutants, LiveRun, LiveTarget, Workload, CLIENTS_MAX, SKEW,
};

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
    /// Which protocol's workload (global time is kept and read in every one).
    #[arg(long, value_enum, default_value = "lease")]
    pub protocol: LiveProtocol,
    /// Concurrent clients per protocol, each its own connection, recorder and clock.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=CLIENTS_MAX as i64))]
    pub clients: u16,
    /// Leases the lease clients contend for; also the applications the leadership clients are
    /// units of.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub leases: u16,
    /// How long the clients run (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Faults to inject: `none`, `all` (every fault the target allows: `restart` only with
    /// --server), or a list of lost, ambiguous, delay, sever (a fault proxy between clients and
    /// server), failpoint (needs test commands on the server; --server enables them),
    /// step-down, skew (each client's clock its own), restart, pause and crash (client
    /// processes: --processes). The schedule comes from --seed.
    #[arg(long, default_value = "none")]
    pub faults: String,
    /// Seeds the workload's random choices (which lease, how long to hold, release or lapse).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run a deliberately broken lease or clock protocol (a name `tenure check --list-mutants`
    /// prints), to see the live check catch it.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// Accept a standalone server (FerretDB): its writes are not majority-acknowledged and its
    /// compare-and-swap may not be atomic, so expect violations. Implied by `--server ferretdb`.
    #[arg(long)]
    pub allow_standalone: bool,
    /// Let the driver retry writes after a network error (`retryWrites`, the production
    /// default). Off by default here: on a server that deduplicates retries only per connection
    /// (SecantusDB) a retried compare-and-swap that had applied reports "not applied", and the
    /// history would be wrong about it.
    #[arg(long)]
    pub driver_retries: bool,
    /// Run each mutant of --protocol (`all`: of every protocol) whose broken property a live
    /// history shows, in its protocol's workload for --duration under --faults (a P5 mutant
    /// under skew alone, the only runs that judge P5), and report which were caught
    /// (`reports/live/mutants.json`; exit 1 if one was missed).
    #[arg(long, conflicts_with_all = ["mutant", "check"])]
    pub mutation_score: bool,
    /// Also check the model of --protocol under these model faults (the names `tenure check
    /// --faults` takes) and put its counterexample beside the live violations in
    /// `reports/live/<protocol>/beside-model.html`: on FerretDB, `non-atomic-cas`.
    #[arg(long, value_name = "FAULTS", conflicts_with_all = ["check", "mutation_score"])]
    pub beside_model: Option<String>,
    /// Run every client in a process of its own (this binary's hidden `live-client`), so that
    /// the `pause` (SIGSTOP past a lease, then SIGCONT) and `crash` (SIGKILL, then a new
    /// process) faults can strike them.
    #[arg(long, conflicts_with = "check")]
    pub processes: bool,
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
    /// Clock updaters racing, watchers and readers (G1, G2, G5).
    Clock,
    /// Leases contended by the clients (G1, G2, L6, F1).
    Lease,
    /// Units of a few applications claiming, waiting, resigning (T1, T4, L6, F1).
    Leadership,
    /// Agents pinging, stopping and killed, every key watched (P4).
    Presence,
    /// Every protocol at once, each with --clients clients.
    All,
}

impl LiveProtocol {
    /// The protocols whose clients run.
    fn protocols(self) -> BTreeSet<Protocol> {
        match self {
            LiveProtocol::Clock => BTreeSet::from([Protocol::Clock]),
            LiveProtocol::Lease => BTreeSet::from([Protocol::Lease]),
            LiveProtocol::Leadership => BTreeSet::from([Protocol::Leadership]),
            LiveProtocol::Presence => BTreeSet::from([Protocol::Presence]),
            LiveProtocol::All => Protocol::ALL.into_iter().collect(),
        }
    }

    /// The name on the command line, and of the run's report directory.
    fn name(self) -> &'static str {
        match self {
            LiveProtocol::Clock => "clock",
            LiveProtocol::Lease => "lease",
            LiveProtocol::Leadership => "leadership",
            LiveProtocol::Presence => "presence",
            LiveProtocol::All => "all",
        }
    }
}

/// The port `--server` starts its server on (away from the test servers' ports).
const OWN_PORT: &str = "27317";

/// A violation's picture shows the history from this long before it broke...
const PICTURE_BEFORE: u64 = 2_000_000_000;
/// ... to this long after.
const PICTURE_AFTER: u64 = 1_000_000_000;

/// The history checks' parameters: the workloads' clock bounds.
const PARAMS: CheckParams = CheckParams {
    rate_error_ppm: SKEW.rate_error_ppm,
};

/// Every verdict a live history can have: the history's own checks, G3 with the workloads'
/// clock bounds, and P5 when the run says no fault held a ping up (`presence_window`).
fn verdicts(history: &History, presence_window: Option<Duration>) -> Vec<(PropertyId, Verdict)> {
    let mut verdicts = history.check(PARAMS);
    verdicts.extend(
        history
            .check_clock_rate(SKEW.rate_error_ppm, SKEW.clock_step_max)
            .map(|v| (PropertyId::G3, v)),
    );
    verdicts.extend(
        presence_window
            .and_then(|w| history.check_pinging_keys_stay_alive(w))
            .map(|v| (PropertyId::P5, v)),
    );
    verdicts
}

/// Runs `tenure live`.
pub fn run(args: &LiveArgs) -> Result<ExitCode, String> {
    if let Some(file) = &args.check {
        return recheck(file, args.json);
    }
    if let Some(f) = &args.beside_model {
        crate::beside::validate(f)?;
        if args.protocol == LiveProtocol::All {
            return Err("--beside-model compares one protocol: name it with --protocol".into());
        }
    }
    let faults = faults_for(args)?;
    let mutant = mutant_of(args)?;
    let server = OwnServer::start(args, &faults)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    if args.mutation_score {
        return mutation_score(args, &server, &runtime, &faults);
    }
    let names = fault_names(&faults);
    let protocols = args.protocol.protocols();
    let outcome = runtime.block_on(run_workload(args, &server, protocols, faults, mutant));
    drop(server);
    finish(args, &outcome?, names)
}

/// The faults asked for, checked against what the target allows: `all` leaves out what it
/// cannot do; a fault named explicitly that it cannot do is an error.
fn faults_for(args: &LiveArgs) -> Result<BTreeSet<LiveFault>, String> {
    let mut faults = LiveFault::parse_set(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let all = args.faults.trim() == "all";
    let mut cannot = |fault: LiveFault, why: &str| -> Result<(), String> {
        if faults.remove(&fault) && !all {
            return Err(format!("--faults {fault}: {why}"));
        }
        Ok(())
    };
    if args.server.is_none() {
        cannot(
            LiveFault::Restart,
            "killing and restarting the server needs a server the run owns: use --server \
             secantusdb instead of --uri",
        )?;
    }
    if !args.processes {
        let why = "pausing and crashing clients needs clients in processes: add --processes";
        cannot(LiveFault::Pause, why)?;
        cannot(LiveFault::Crash, why)?;
    }
    if args.server == Some(Server::Ferretdb) {
        let why = "FerretDB has no failpoints and no replica set to step down";
        cannot(LiveFault::Failpoint, why)?;
        cannot(LiveFault::StepDown, why)?;
    }
    Ok(faults)
}

/// Runs the workload and returns what it did and what was recorded.
async fn run_workload(
    args: &LiveArgs,
    server: &OwnServer,
    protocols: BTreeSet<Protocol>,
    faults: BTreeSet<LiveFault>,
    mutant: Option<Mutant>,
) -> Result<LiveRun, String> {
    let target = LiveTarget {
        uri: server.uri.clone(),
        // A database of its own: nothing left by another run is mistaken for this one's.
        database: format!("tenure_live_{}_{:x}", std::process::id(), args.seed),
        allow_standalone: args.allow_standalone || args.server == Some(Server::Ferretdb),
        restart: server.restart(),
        driver_retries: args.driver_retries,
        client_command: args.processes.then(client_command).transpose()?,
    };
    let workload = Workload {
        protocols,
        clients: usize::from(args.clients),
        leases: usize::from(args.leases),
        duration: args.duration,
        seed: args.seed,
        faults,
        mutant,
        ..Workload::default()
    };
    if !args.json {
        eprintln!(
            "tenure live: {} workload, {} client(s) each, {} lease(s), for {}, seed {}, faults {}{}",
            workload_name(&workload.protocols),
            workload.clients,
            workload.leases,
            humantime::format_duration(workload.duration),
            workload.seed,
            fault_names(&workload.faults),
            mutant.map(|m| format!(", mutant {m}")).unwrap_or_default(),
        );
    }
    let bar = progress_bar(args.duration, args.json);
    let tick = bar.clone();
    let run = workload
        .run(&target, move |elapsed| {
            if let Some(b) = &tick {
                b.set_position(elapsed.as_secs());
            }
        })
        .await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    run.map_err(|e| format!("the workload failed: {e}"))
}

/// Starts a client process: this binary's `live-client`.
fn client_command() -> Result<ClientCommand, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("--processes: cannot find this program to start clients: {e}"))?;
    Ok(Arc::new(move || {
        let mut c = tokio::process::Command::new(&exe);
        c.arg("live-client");
        c
    }))
}

/// `tenure live-client`: one client of a `tenure live --processes` run, its spec on standard
/// input; prints what it did as JSON.
pub fn client_process() -> Result<ExitCode, String> {
    let mut json = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut json)
        .map_err(|e| format!("live-client: cannot read the spec: {e}"))?;
    let spec: ClientSpec = serde_json::from_str(&json).map_err(|e| {
        format!(
            "live-client runs one client of `tenure live --processes`, which writes its spec: {e}"
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let counts = runtime
        .block_on(serve(spec))
        .map_err(|e| format!("live-client: {e}"))?;
    let text = serde_json::to_string(&counts).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// The mutant asked for, if it is one the lease workload runs.
fn mutant_of(args: &LiveArgs) -> Result<Option<Mutant>, String> {
    let Some(name) = &args.mutant else {
        return Ok(None);
    };
    let m: Mutant = name.parse().map_err(|e| format!("--mutant: {e}"))?;
    check_mutant(m, &args.protocol.protocols()).map_err(|e| format!("--mutant: {e}"))?;
    Ok(Some(m))
}

fn fault_names(faults: &BTreeSet<LiveFault>) -> String {
    if faults.is_empty() {
        return "none".into();
    }
    faults
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(",")
}

fn progress_bar(duration: Duration, json: bool) -> Option<ProgressBar> {
    if json || !crate::progress_wanted() {
        return None;
    }
    let bar = ProgressBar::new(duration.as_secs().max(1));
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} s, {elapsed}").ok()?);
    Some(bar)
}

/// What `reports/live/<protocol>/summary.json` holds.
#[derive(Serialize)]
struct Summary {
    schema_version: u32,
    protocol: &'static str,
    clients: u16,
    leases: u16,
    duration_secs: f64,
    seed: u64,
    faults: String,
    mutant: Option<String>,
    /// Per protocol: what its clients did, and the store operations they made.
    protocols: BTreeMap<&'static str, serde_json::Value>,
    entries: usize,
    operations: usize,
    dropped: u64,
    processes: Vec<serde_json::Value>,
    proxy: std::collections::BTreeMap<&'static str, u64>,
    fault_schedule: Vec<serde_json::Value>,
    client_faults: Vec<serde_json::Value>,
    pictures: Vec<String>,
    outcome: &'static str,
    properties: Vec<serde_json::Value>,
    history: String,
    recheck: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    beside_model: Option<serde_json::Value>,
}

/// The server faults as scheduled, with when and how each fired.
fn schedule_json(run: &LiveRun) -> Vec<serde_json::Value> {
    run.fired
        .iter()
        .map(|f| {
            serde_json::json!({
                "at_secs": f.event.at.as_secs_f64(),
                "fault": f.event.fault.to_string(),
                "fired_at_secs": f.fired_at.as_secs_f64(),
                "error": f.result.as_ref().err(),
            })
        })
        .collect()
}

/// Writes the history and the summary, prints the verdicts.
fn finish(args: &LiveArgs, run: &LiveRun, faults: String) -> Result<ExitCode, String> {
    let dir = PathBuf::from(format!("reports/live/{}", args.protocol.name()));
    let dir = dir.as_path();
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join("history.jsonl");
    std::fs::write(&path, run.history.to_jsonl())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let history = &run.history;
    // P5 needs to know that no fault held a ping up: only the run knows that.
    let verdicts = verdicts(history, run.presence_window);
    let recheck = format!("tenure live --check {}", path.display());
    let pictures = draw(history, &verdicts, dir)?;
    let beside = beside_model(args, dir, &verdicts, &pictures)?;
    let summary = Summary {
        schema_version: 3,
        protocol: args.protocol.name(),
        clients: args.clients,
        leases: args.leases,
        duration_secs: args.duration.as_secs_f64(),
        seed: args.seed,
        faults,
        mutant: args.mutant.clone(),
        protocols: run
            .counts
            .iter()
            .map(|(p, counts)| {
                let counts: BTreeMap<&str, u64> = counts.iter().collect();
                let v = serde_json::json!({"operations": run.operations(*p), "counts": counts});
                (p.name(), v)
            })
            .collect(),
        entries: history.entries.len(),
        operations: history.store_operations(),
        dropped: run.dropped,
        processes: run
            .processes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "process": p.process,
                    "protocol": p.protocol.name(),
                    "rate_ppm": p.rate_ppm,
                    "offset_secs": p.offset.as_secs_f64(),
                })
            })
            .collect(),
        proxy: run.proxy.clone(),
        fault_schedule: schedule_json(run),
        client_faults: run
            .client_faults
            .iter()
            .map(|f| {
                let (fault, secs) = match f.event.fault {
                    ClientFault::Pause(d) => ("pause", Some(d.as_secs_f64())),
                    _ => ("crash", None),
                };
                serde_json::json!({
                    "at_secs": f.event.at.as_secs_f64(),
                    "fault": fault,
                    "pause_secs": secs,
                    "process": f.process,
                    "error": f.result.as_ref().err(),
                })
            })
            .collect(),
        pictures: pictures.iter().map(|p| p.display().to_string()).collect(),
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
        beside_model: beside.as_ref().map(|(model, page)| {
            serde_json::json!({
                "faults": model.faults,
                "failed": model.failed.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                "complete": model.complete,
                "reproduce": model.reproduce,
                "page": page.display().to_string(),
            })
        }),
    };
    let file = dir.join("summary.json");
    let text = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
    std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    if !args.json {
        print_run(run);
    }
    let code = report_verdicts(
        &path.display().to_string(),
        history.entries.len(),
        &verdicts,
        args.json,
    );
    if !args.json {
        print_pictures(&pictures);
        if let Some((model, page)) = &beside {
            let failed: Vec<&str> = model.failed.iter().map(|(n, _)| n.as_str()).collect();
            println!(
                "  the model under {}: {}; side by side: {}",
                model.faults,
                match failed.is_empty() {
                    true => "no counterexample".to_owned(),
                    false => format!("FAIL {}", failed.join(", ")),
                },
                page.display()
            );
        }
        println!("  summary: {}\n  check again: {recheck}", file.display());
    }
    Ok(code)
}

/// `--beside-model`: the model's verdict under the faults asked for, and the page that shows
/// it beside the live run's.
fn beside_model(
    args: &LiveArgs,
    dir: &Path,
    verdicts: &[(PropertyId, Verdict)],
    pictures: &[PathBuf],
) -> Result<Option<(crate::beside::ModelVerdict, PathBuf)>, String> {
    let protocols = Vec::from_iter(args.protocol.protocols());
    let (Some(faults), [protocol]) = (&args.beside_model, protocols.as_slice()) else {
        return Ok(None);
    };
    if !args.json {
        eprintln!("tenure live: checking the {protocol} model under {faults}");
    }
    let model = crate::beside::check_model(*protocol, faults)?;
    let title = format!(
        "{} workload, {} client(s), {}",
        args.protocol.name(),
        args.clients,
        match args.server {
            Some(Server::Ferretdb) => "FerretDB",
            Some(Server::Secantusdb) => "SecantusDB",
            None => "--uri",
        }
    );
    let page = crate::beside::write_page(dir, &title, verdicts, pictures, &model)?;
    Ok(Some((model, page)))
}

/// Around each violation whose time the check knows, the history as a timeline picture (the
/// look of `tenure check`'s counterexamples): `DIR/violation-<property>.svg`.
fn draw(
    history: &History,
    verdicts: &[(PropertyId, Verdict)],
    dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let params = PARAMS;
    let mut written = Vec::new();
    for (id, v) in verdicts {
        let Err(Violation {
            at_real: Some(at), ..
        }) = v
        else {
            continue;
        };
        let (from, to) = (at.saturating_sub(PICTURE_BEFORE), at + PICTURE_AFTER);
        let mut frames = history.frames(params, from, to, *at);
        let broke = frames
            .iter()
            .position(|f| f.real >= *at)
            .or(frames.len().checked_sub(1));
        let (Some(i), Err(violation)) = (broke, v) else {
            continue;
        };
        frames[i].violations.push(violation.to_string());
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let file = dir.join(format!("violation-{}.svg", id.code()));
        let title = format!("tenure live: {violation}");
        std::fs::write(&file, svg(&title, &frames))
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

fn print_pictures(pictures: &[PathBuf]) {
    for p in pictures {
        println!("  picture: {}", p.display());
    }
}

/// What the clients did and which faults struck.
fn print_run(run: &LiveRun) {
    for (protocol, counts) in &run.counts {
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "{protocol}: {} store operations; {}",
            run.operations(*protocol),
            counts.join(", ")
        );
    }
    if !run.proxy.is_empty() {
        let counts: Vec<String> = run.proxy.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  proxy: {}", counts.join(", "));
    }
    if !run.client_faults.is_empty() {
        let struck = run.client_faults.iter().filter(|f| f.result.is_ok());
        let paused = struck
            .clone()
            .filter(|f| matches!(f.event.fault, ClientFault::Pause(_)))
            .count();
        println!(
            "  client faults: {paused} paused, {} crashed (see the summary)",
            struck.count() - paused
        );
    }
    if !run.fired.is_empty() {
        let refused = run.fired.iter().filter(|f| f.result.is_err()).count();
        println!(
            "  server faults: {} fired, {refused} refused by the server (see the summary)",
            run.fired.len() - refused
        );
    }
}

/// The name a workload of `protocols` goes by.
fn workload_name(protocols: &BTreeSet<Protocol>) -> String {
    if *protocols == LiveProtocol::All.protocols() {
        return "all".into();
    }
    let names: Vec<&str> = protocols.iter().map(|p| p.name()).collect();
    names.join(",")
}

/// `tenure live --mutation-score`: each mutant of `--protocol` (every protocol's with `all`)
/// that a live history can show broken, run in its own protocol's workload and judged. A
/// mutant that breaks P5 runs under `skew` alone (or no fault), the only runs that judge P5.
fn mutation_score(
    args: &LiveArgs,
    server: &OwnServer,
    runtime: &tokio::runtime::Runtime,
    faults: &BTreeSet<LiveFault>,
) -> Result<ExitCode, String> {
    let mut rows = Vec::new();
    let chosen = args.protocol.protocols();
    for m in live_mutants().filter(|m| chosen.contains(&m.protocol())) {
        let faults = faults_for_mutant(m, faults);
        let protocols = BTreeSet::from([m.protocol()]);
        let fault_list = fault_names(&faults);
        let run = runtime.block_on(run_workload(args, server, protocols, faults, Some(m)))?;
        let failed: Vec<String> = verdicts(&run.history, run.presence_window)
            .iter()
            .filter(|(_, v)| v.is_err())
            .map(|(p, _)| p.code().to_owned())
            .collect();
        if !args.json {
            let verdict = if failed.is_empty() {
                "MISSED"
            } else {
                "caught"
            };
            println!(
                "  {verdict:<7} {:<34} breaks {}; failed: {}",
                m.name(),
                m.breaks().code(),
                if failed.is_empty() {
                    "none".to_owned()
                } else {
                    failed.join(", ")
                }
            );
        }
        rows.push(serde_json::json!({
            "mutant": m.name(),
            "breaks": m.breaks().code(),
            "caught": !failed.is_empty(),
            "failed": failed,
            "faults": fault_list,
            "operations": run.history.store_operations(),
        }));
    }
    let caught = rows.iter().filter(|r| r["caught"] == true).count();
    let unseen: Vec<serde_json::Value> = Mutant::ALL
        .iter()
        .filter(|m| chosen.contains(&m.protocol()))
        .filter(|m| !live_mutants().any(|l| l == **m))
        .map(|m| serde_json::json!({"mutant": m.name(), "breaks": m.breaks().code()}))
        .collect();
    let report = serde_json::json!({
        "schema_version": 2,
        "protocol": args.protocol.name(),
        "duration_secs": args.duration.as_secs_f64(),
        "clients": args.clients,
        "leases": args.leases,
        "seed": args.seed,
        "faults": fault_names(faults),
        "score": format!("{caught}/{}", rows.len()),
        "mutants": rows,
        "not_observable": unseen,
    });
    let dir = Path::new("reports/live");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join("mutants.json");
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    if args.json {
        println!("{text}");
    } else {
        println!(
            "mutation score {caught}/{} ({} more mutants break properties a live history does \
             not show); report: {}",
            report["mutants"].as_array().map_or(0, Vec::len),
            unseen.len(),
            file.display()
        );
    }
    Ok(
        match caught == report["mutants"].as_array().map_or(0, Vec::len) {
            true => ExitCode::SUCCESS,
            false => ExitCode::from(1),
        },
    )
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
    let verdicts = verdicts(&history, None);
    let pictures = draw(&history, &verdicts, Path::new("reports/live/check"))?;
    let code = report_verdicts(
        &file.display().to_string(),
        history.entries.len(),
        &verdicts,
        json,
    );
    if !json {
        print_pictures(&pictures);
    }
    Ok(code)
}

/// The server the run uses: given by `--uri`, or started by `--server` and stopped on drop.
struct OwnServer {
    uri: String,
    /// The `scripts/substrate start` arguments, when the run started it.
    started: Option<Vec<String>>,
}

impl OwnServer {
    fn start(args: &LiveArgs, faults: &BTreeSet<LiveFault>) -> Result<OwnServer, String> {
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
        if !Path::new(SCRIPT).exists() {
            return Err(
                "--server starts servers with scripts/substrate: run tenure live from \
                        the repository's root, or give --uri"
                    .into(),
            );
        }
        let mut start: Vec<String> = ["start", name, "--port", OWN_PORT]
            .map(String::from)
            .to_vec();
        if faults.contains(&LiveFault::Failpoint) {
            start.push("--test-commands".into());
        }
        if faults.contains(&LiveFault::Restart) {
            // A store that survives the kill.
            let dir = Path::new("target/live-store");
            let _ = std::fs::remove_dir_all(dir);
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            start.extend(["--dir".into(), dir.display().to_string()]);
        }
        let uri = substrate(&start)?;
        Ok(OwnServer {
            uri,
            started: Some(start),
        })
    }

    /// Kills the server and starts it again on its store (only a server the run started).
    fn restart(&self) -> Option<Restart> {
        let start = self.started.clone()?;
        Some(Arc::new(move || {
            substrate(&["stop", &start[1], "--port", OWN_PORT, "--kill"].map(String::from))?;
            substrate(&start).map(|_| ())
        }))
    }
}

const SCRIPT: &str = "scripts/substrate";

/// Runs `scripts/substrate ARGS`; its standard output on success.
fn substrate(args: &[String]) -> Result<String, String> {
    let out = Command::new(SCRIPT)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {SCRIPT}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{SCRIPT} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(start) = &self.started {
            let _ = substrate(&["stop", &start[1], "--port", OWN_PORT].map(String::from));
        }
    }
}
