//! `tenure history check FILE`: the core's properties on a recorded history. Two formats, told
//! apart by their first line: the JSON lines a `tenure_mongo::Recorder` writes
//! (`Recorder::write_jsonl`: the same checks the live tests run, for a history recorded
//! anywhere), and plain register histories of store operations (`tenure::history::register`:
//! S1, each document a linearizable compare-and-swap register, for histories recorded by any
//! tool).

use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use tenure::history::register::RegisterHistory;
use tenure::history::{CheckParams, History};
use tenure::property::{PropertyId, Verdict};
use tenure::time::RATE_ERROR_PPM_MAX;

/// `tenure history ...`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(subcommand)]
    pub command: HistoryCommand,
}

/// What to do with a history.
#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Check every property the history has data for (clock, leases, fencing, leadership,
    /// presence), as the live tests do; or, for a register history (one store operation per
    /// line: client, key, op read|write|cas, args, result or "unknown", call_ns, return_ns),
    /// that each document behaves as a linearizable register (S1).
    ///
    /// Exit status: 0 every property holds, 1 a property failed, 2 no property had data,
    /// 64 an unreadable or malformed file, or a register history the check cannot decide.
    Check(CheckHistoryArgs),
}

/// `tenure history check`.
#[derive(Args, Debug)]
pub struct CheckHistoryArgs {
    /// The history: JSON lines, one entry each, as `Recorder::write_jsonl` writes them, or one
    /// store operation each (a register history).
    pub file: PathBuf,
    /// Which format the file is in [default: told by its first line].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// ρ, the bound on the recording processes' clock rate error, in ppm: maps a local
    /// deadline past a process's last sample to real time at the slowest allowed rate.
    #[arg(long, default_value_t = 500)]
    pub rate_error_ppm: u32,
    /// Print one JSON object (verdicts, violations) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The formats `tenure history check` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// What a `tenure_mongo::Recorder` writes: calls and beliefs of Tenure's protocols.
    Tenure,
    /// Store operations on documents (read, write, cas), checked for S1.
    Register,
}

/// Runs `tenure history ...`.
pub fn run(args: &HistoryArgs) -> Result<ExitCode, String> {
    match &args.command {
        HistoryCommand::Check(a) => check(a),
    }
}

fn check(args: &CheckHistoryArgs) -> Result<ExitCode, String> {
    if args.rate_error_ppm > RATE_ERROR_PPM_MAX {
        return Err(format!(
            "--rate-error-ppm {} is above {RATE_ERROR_PPM_MAX} (10%): clocks that far off are \
             not clocks; did you mean a value in ppm such as 500?",
            args.rate_error_ppm
        ));
    }
    let path = args.file.display();
    let text =
        std::fs::read_to_string(&args.file).map_err(|e| format!("cannot read {path}: {e}"))?;
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let format = args
        .format
        .unwrap_or(match RegisterHistory::looks_like(first) {
            true => Format::Register,
            false => Format::Tenure,
        });
    if format == Format::Register {
        return check_register(args, &text);
    }
    let history = History::from_jsonl(&text).map_err(|e| {
        format!("{path} is not a Tenure history (JSON lines as Recorder::write_jsonl writes): {e}")
    })?;
    let verdicts = history.check(CheckParams {
        rate_error_ppm: args.rate_error_ppm,
    });
    Ok(report_verdicts(
        &path.to_string(),
        history.entries.len(),
        &verdicts,
        args.json,
    ))
}

/// One property's verdict as the JSON outputs and summaries write it.
pub fn verdict_json(id: PropertyId, v: &Verdict) -> serde_json::Value {
    serde_json::json!({
        "property": id.code(),
        "promise": id.promise(),
        "outcome": if v.is_ok() { "pass" } else { "fail" },
        "violation": v.as_ref().err().map(|e| e.detail.clone()),
    })
}

/// Prints the verdicts on a Tenure history (`what`: the file, for people), as text or as one
/// JSON object, and gives the exit code: 0 every property held, 1 one failed, 2 none had data.
pub fn report_verdicts(
    what: &str,
    entries: usize,
    verdicts: &[(PropertyId, Verdict)],
    json: bool,
) -> ExitCode {
    let failed = verdicts.iter().any(|(_, v)| v.is_err());
    if json {
        let verdicts: Vec<_> = verdicts
            .iter()
            .map(|(id, v)| verdict_json(*id, v))
            .collect();
        let out = serde_json::json!({
            "schema_version": 1,
            "file": what,
            "entries": entries,
            "verdicts": verdicts,
        });
        println!("{out}");
    } else {
        println!("{what}: {entries} entries");
        for (id, v) in verdicts {
            match v {
                Ok(()) => println!("  PASS    {id}"),
                Err(e) => println!("  FAIL    {id}\n          {}", e.detail),
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else if verdicts.is_empty() {
        eprintln!("tenure: {what} holds nothing any property checks (no clock reads, grants, tickets or presence answers)");
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// S1 on a register history.
fn check_register(args: &CheckHistoryArgs, text: &str) -> Result<ExitCode, String> {
    let path = args.file.display();
    let history = RegisterHistory::from_jsonl(text).map_err(|e| {
        format!("{path} is not a register history (one store operation per JSON line): {e}")
    })?;
    let report = history
        .check()
        .map_err(|e| format!("{path}: cannot check S1 on this history: {e}"))?;
    let id = PropertyId::S1;
    if args.json {
        let out = serde_json::json!({
            "schema_version": 1,
            "file": path.to_string(),
            "format": "register",
            "keys": report.keys,
            "operations": report.operations,
            "unknown_outcomes": report.unknown,
            "verdicts": [verdict_json(id, &report.verdict)],
        });
        println!("{out}");
    } else {
        println!(
            "{path}: {} operations on {} key(s), {} with unknown outcomes",
            report.operations, report.keys, report.unknown
        );
        match &report.verdict {
            Ok(()) => println!("  PASS    {id}"),
            Err(e) => println!("  FAIL    {id}\n          {}", e.detail),
        }
    }
    Ok(match report.verdict {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    })
}
