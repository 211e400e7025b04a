//! `tenure sim` and `tenure replay`: the deterministic simulator from the command line.
//!
//! A configuration comes from flags (or a preset, or a mutant's default run); `sim` runs many
//! seeds on several threads and prints what they came to, with the exact `replay` command of
//! each failure and of its shrunk run; `replay` reruns one seed and prints the timeline up to
//! its end, in `tenure check`'s counterexample format, with the same kind of picture.

use crate::render::{frame_line, svg};
use crate::SimConfigArgs;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tenure::mutant::Mutant;
use tenure_sim::faults::FaultRates;
use tenure_sim::run::{property_name, Summary};
use tenure_sim::shrink::shrink;
use tenure_sim::{run_seeds, simulate, Report, SimConfig, Workload};

/// Bumped on any incompatible change to the summary's shape.
pub const SCHEMA_VERSION: u32 = 1;

/// Failures per run whose replay commands are printed (and shrunk): the first per property.
const FAILURES_SHOWN: usize = 5;

/// The configuration the flags describe, validated.
pub fn config(args: &SimConfigArgs) -> Result<SimConfig, String> {
    let mutant = args
        .mutant
        .as_deref()
        .map(|n| n.parse::<Mutant>().map_err(|e| e.to_string()))
        .transpose()?;
    let workload = args
        .protocol
        .as_deref()
        .map(|p| p.parse::<Workload>().map_err(|e| e.to_string()))
        .transpose()?;
    let mut c = match (&args.preset, mutant, workload) {
        (Some(p), _, _) => SimConfig::preset(p).map_err(|e| e.to_string())?,
        (None, Some(m), None) => SimConfig::for_mutant(m),
        (None, _, Some(w)) => SimConfig::default_for(w),
        (None, None, None) => SimConfig::default_for(Workload::All),
    };
    if let Some(w) = workload {
        c.workload = w;
    }
    c.mutant = mutant.or(c.mutant);
    let sizes: [(&Option<u32>, &mut u32); 6] = [
        (&args.updaters, &mut c.updaters),
        (&args.managers, &mut c.managers),
        (&args.leases, &mut c.leases),
        (&args.units, &mut c.units),
        (&args.agents, &mut c.agents),
        (&args.keys, &mut c.keys),
    ];
    for (flag, field) in sizes {
        if let Some(n) = flag {
            *field = *n;
        }
    }
    if let Some(t) = &args.sim_time {
        c.sim_time = humantime::parse_duration(t)
            .map_err(|e| format!("--sim-time {t:?}: {e} (try 30s, 2m, 1h)"))?;
    }
    if let Some(t) = &args.presence_period {
        c.presence_period = humantime::parse_duration(t)
            .map_err(|e| format!("--presence-period {t:?}: {e} (try 6s, 30s)"))?;
    }
    if let Some(n) = args.prune_every {
        c.prune_every = n;
    }
    if let Some(f) = &args.faults {
        c.faults = FaultRates::parse(f).map_err(|e| format!("--faults: {e}"))?;
    }
    if args.no_swarm {
        c.swarm = false;
    }
    if args.own_leases {
        c.own_leases = true;
    }
    if let Some(n) = args.holder_calls_per_sec {
        c.holder_calls_per_sec = n;
    }
    if let Some(ppm) = args.rate_error_ppm {
        c.rate_error_ppm = ppm;
    }
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// The exact command that reruns `seed` of `c`.
pub fn replay_command(c: &SimConfig, seed: u64) -> String {
    let mut cmd = format!(
        "cargo run --release -p tenure-cli -- replay --seed {seed} --protocol {} --updaters {} --managers {} --leases {} --units {} --agents {} --keys {} --presence-period {}s --prune-every {} --sim-time {}s --rate-error-ppm {} --faults {}",
        c.workload,
        c.updaters,
        c.managers,
        c.leases,
        c.units,
        c.agents,
        c.keys,
        c.presence_period.as_secs(),
        c.prune_every,
        c.sim_time.as_secs(),
        c.rate_error_ppm,
        c.faults.to_arg()
    );
    if !c.swarm {
        cmd.push_str(" --no-swarm");
    }
    if c.own_leases {
        cmd.push_str(" --own-leases");
    }
    if c.holder_calls_per_sec != 1 {
        let _ = write!(cmd, " --holder-calls-per-sec {}", c.holder_calls_per_sec);
    }
    if let Some(m) = c.mutant {
        let _ = write!(cmd, " --mutant {m}");
    }
    cmd
}

/// A seed range `A..B`, or one seed.
fn seeds(spec: &Option<String>, one: Option<u64>) -> Result<std::ops::Range<u64>, String> {
    if let Some(s) = one {
        return Ok(s..s.saturating_add(1));
    }
    let Some(spec) = spec else {
        return Ok(0..100);
    };
    let bad = || format!("--seeds {spec:?}: expected A..B (for example 0..500), with A < B");
    let (a, b) = spec.split_once("..").ok_or_else(bad)?;
    let (a, b): (u64, u64) = (
        a.trim().parse().map_err(|_| bad())?,
        b.trim().parse().map_err(|_| bad())?,
    );
    if a >= b {
        return Err(bad());
    }
    Ok(a..b)
}

fn progress_bar(len: u64) -> Option<ProgressBar> {
    if !crate::progress_wanted() {
        return None;
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} seeds, {elapsed} ({eta} left) {msg}")
            .ok()?,
    );
    Some(bar)
}

/// A failure as `summary.json` records it.
#[derive(Serialize)]
struct FailureSummary {
    seed: u64,
    property: String,
    detail: String,
    at_real_secs: f64,
    replay: String,
    shrunk: Option<ShrunkSummary>,
}

#[derive(Serialize)]
struct ShrunkSummary {
    replay: String,
    tries: usize,
    /// What shrank: "faults 6 -> 2 kinds, processes 5 -> 3, faulty phase 60 s -> 30 s".
    shrank: String,
}

/// How much smaller `after` is than `before`.
fn shrank(before: &SimConfig, after: &SimConfig) -> String {
    let procs = |c: &SimConfig| c.updaters + c.managers + c.units + c.agents;
    let mut parts = vec![format!(
        "faults {} -> {} kinds",
        before.faults.set_of().iter().count(),
        after.faults.set_of().iter().count()
    )];
    if procs(before) != procs(after) {
        parts.push(format!("processes {} -> {}", procs(before), procs(after)));
    }
    if (before.leases, before.keys) != (after.leases, after.keys) {
        parts.push(format!(
            "leases {} -> {}, keys {} -> {}",
            before.leases, after.leases, before.keys, after.keys
        ));
    }
    if before.sim_time != after.sim_time {
        parts.push(format!(
            "faulty phase {} s -> {} s",
            before.sim_time.as_secs(),
            after.sim_time.as_secs()
        ));
    }
    parts.join(", ")
}

#[derive(Serialize)]
struct SimSummary<'a> {
    schema_version: u32,
    run: String,
    config: &'a SimConfig,
    seeds: [u64; 2],
    jobs: usize,
    wall_secs: f64,
    events_per_sec: f64,
    outcome: &'static str,
    summary: &'a Summary,
    failures: Vec<FailureSummary>,
}

/// Runs `tenure sim`.
pub fn run(args: &crate::SimArgs) -> Result<ExitCode, String> {
    let c = config(&args.config)?;
    let range = seeds(&args.seeds, args.seed)?;
    let jobs = match args.jobs {
        Some(0) => return Err("--jobs must be at least 1".into()),
        Some(j) => j,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let bar = progress_bar(range.end - range.start);
    let started = Instant::now();
    let reports = run_seeds(&c, range.clone(), jobs, &|r: &Report| {
        if let Some(bar) = &bar {
            bar.inc(1);
            if r.failed() {
                bar.set_message(format!("seed {} failed", r.seed));
            }
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let wall = started.elapsed();
    let summary = Summary::of(&reports);
    let failures = failures(&reports, !args.no_shrink);
    let run_name = run_name(&args.config, &c);
    let outcome = outcome(&summary);
    let doc = SimSummary {
        schema_version: SCHEMA_VERSION,
        run: run_name.clone(),
        config: &c,
        seeds: [range.start, range.end],
        jobs,
        wall_secs: wall.as_secs_f64(),
        events_per_sec: summary.events as f64 / wall.as_secs_f64().max(1e-9),
        outcome: outcome.0,
        summary: &summary,
        failures,
    };
    let path = write_json(&args.reports, &run_name, &doc)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
    } else {
        print_summary(&c, &doc, wall, &path);
    }
    Ok(outcome.1)
}

fn run_name(args: &SimConfigArgs, c: &SimConfig) -> String {
    match (&args.preset, c.mutant) {
        (Some(p), _) => p.clone(),
        (None, Some(m)) => m.name().to_owned(),
        (None, None) => c.workload.name().to_owned(),
    }
}

/// Verdict and exit status, as `tenure check`'s: 0 pass, 1 a property failed, 2 unknown.
fn outcome(s: &Summary) -> (&'static str, ExitCode) {
    if !s.violations.is_empty() {
        ("fail", ExitCode::from(1))
    } else if !s.unfinished.is_empty() {
        ("unknown", ExitCode::from(2))
    } else {
        ("pass", ExitCode::SUCCESS)
    }
}

/// The first failure of each property (at most [`FAILURES_SHOWN`]), each shrunk if asked.
fn failures(reports: &[Report], shrinking: bool) -> Vec<FailureSummary> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for r in reports {
        let Some(f) = r.first() else { continue };
        if !seen.insert(f.violation.property) || out.len() >= FAILURES_SHOWN {
            continue;
        }
        let shrunk = shrinking
            .then(|| shrink(r))
            .flatten()
            .map(|s| ShrunkSummary {
                replay: replay_command(&s.config, r.seed),
                tries: s.tries,
                shrank: shrank(&r.config, &s.config),
            });
        out.push(FailureSummary {
            seed: r.seed,
            property: property_name(f.violation.property),
            detail: f.violation.detail.clone(),
            at_real_secs: f.real as f64 / 1e9,
            replay: replay_command(&r.config, r.seed),
            shrunk,
        });
    }
    out
}

fn write_json(dir: &Path, run: &str, doc: &impl Serialize) -> Result<PathBuf, String> {
    let dir = dir.join("sim").join(run);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join("summary.json");
    let text = serde_json::to_string_pretty(doc).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(path)
}

fn print_summary(c: &SimConfig, doc: &SimSummary, wall: Duration, path: &Path) {
    let s = doc.summary;
    println!("{c}");
    println!(
        "  {} seeds ({}..{}), {} events, {:.0} s simulated, {:.1} s on {} thread(s): {:.0} events/s, {:.0}x real time",
        s.seeds,
        doc.seeds[0],
        doc.seeds[1],
        s.events,
        s.sim_secs,
        wall.as_secs_f64(),
        doc.jobs,
        doc.events_per_sec,
        s.sim_secs / wall.as_secs_f64().max(1e-9)
    );
    if s.violations.is_empty() {
        println!("  PASS    every property, every seed");
    }
    for (p, seeds) in &s.violations {
        let shown: Vec<String> = seeds.iter().take(8).map(u64::to_string).collect();
        println!(
            "  FAIL    {p}: {} seed(s) ({}{})",
            seeds.len(),
            shown.join(", "),
            if seeds.len() > 8 { ", ..." } else { "" }
        );
    }
    if !s.unfinished.is_empty() {
        println!(
            "  UNKNOWN {} seed(s) did not finish: {:?}",
            s.unfinished.len(),
            s.unfinished
        );
    }
    let counts = |m: &std::collections::BTreeMap<&str, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  faults struck: {}", counts(&s.faults));
    println!("  paths taken:   {}", counts(&s.paths));
    let reached: Vec<String> = s.reached.iter().map(|m| format!("{m:?}")).collect();
    println!("  milestones:    {}", reached.join(", "));
    for f in &doc.failures {
        println!(
            "\n  seed {} broke {} at real {:.3}s: {}",
            f.seed, f.property, f.at_real_secs, f.detail
        );
        println!("  replay: {}", f.replay);
        if let Some(sh) = &f.shrunk {
            println!(
                "  shrunk ({}; {} runs tried): {}",
                sh.shrank, sh.tries, sh.replay
            );
        }
    }
    println!("  summary: {}", path.display());
}

#[derive(Serialize)]
struct ReplaySummary<'a> {
    schema_version: u32,
    seed: u64,
    config: &'a SimConfig,
    faults: &'a FaultRates,
    outcome: &'static str,
    report: &'a Report,
    picture: Option<String>,
}

/// Runs `tenure replay`.
pub fn replay(args: &crate::ReplayArgs) -> Result<ExitCode, String> {
    let c = config(&args.config)?;
    let r = simulate(&c, args.seed, true);
    let title = format!(
        "{} seed {}: {}",
        c.workload,
        args.seed,
        r.first().map_or("every property holds".to_owned(), |f| f
            .violation
            .to_string())
    );
    let dir = args.reports.join("sim");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let picture = dir.join(format!("replay-{}-{}.svg", c.workload, args.seed));
    std::fs::write(&picture, svg(&title, &r.frames))
        .map_err(|e| format!("writing {}: {e}", picture.display()))?;
    let summary = Summary::of(std::slice::from_ref(&r));
    let (verdict, code) = outcome(&summary);
    let doc = ReplaySummary {
        schema_version: SCHEMA_VERSION,
        seed: args.seed,
        config: &c,
        faults: &r.faults,
        outcome: verdict,
        report: &r,
        picture: Some(picture.display().to_string()),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        );
        return Ok(code);
    }
    println!("{c}");
    println!(
        "  seed {}: faults this run {}; {} events, {:.1} s simulated, trace {}",
        args.seed,
        r.faults,
        r.stats.events,
        r.sim_ns as f64 / 1e9,
        r.trace_hash
    );
    println!("\n  the last {} steps:", r.frames.len());
    for f in &r.frames {
        println!("{}", frame_line(f));
        for v in &f.violations {
            println!("        !! {v}");
        }
    }
    match r.first() {
        Some(f) => println!("\n  FAIL    {}", f.violation),
        None if r.unfinished.is_some() => {
            println!("\n  UNKNOWN {}", r.unfinished.as_deref().unwrap_or(""))
        }
        None => println!("\n  PASS    every property"),
    }
    println!("  picture: {}", picture.display());
    Ok(code)
}
