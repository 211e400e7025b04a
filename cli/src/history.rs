//! `tenure history check FILE`: the core's properties on a recorded history, the JSON lines a
//! `tenure_mongo::Recorder` writes (`Recorder::write_jsonl`). The same checks the live tests
//! run, for a history recorded anywhere: a service's own run, a test, a saved live run.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tenure::history::{CheckParams, History};
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
    /// presence), as the live tests do.
    ///
    /// Exit status: 0 every property holds, 1 a property failed, 2 no property had data,
    /// 64 an unreadable or malformed file.
    Check(CheckHistoryArgs),
}

/// `tenure history check`.
#[derive(Args, Debug)]
pub struct CheckHistoryArgs {
    /// The history: JSON lines, one entry each, as `Recorder::write_jsonl` writes them.
    pub file: PathBuf,
    /// ρ, the bound on the recording processes' clock rate error, in ppm: maps a local
    /// deadline past a process's last sample to real time at the slowest allowed rate.
    #[arg(long, default_value_t = 500)]
    pub rate_error_ppm: u32,
    /// Print one JSON object (verdicts, violations) instead of text.
    #[arg(long)]
    pub json: bool,
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
    let history = History::from_jsonl(&text).map_err(|e| {
        format!("{path} is not a Tenure history (JSON lines as Recorder::write_jsonl writes): {e}")
    })?;
    let verdicts = history.check(CheckParams {
        rate_error_ppm: args.rate_error_ppm,
    });
    let failed = verdicts.iter().any(|(_, v)| v.is_err());
    if args.json {
        let verdicts: Vec<_> = verdicts
            .iter()
            .map(|(id, v)| {
                serde_json::json!({
                    "property": id.code(),
                    "promise": id.promise(),
                    "outcome": if v.is_ok() { "pass" } else { "fail" },
                    "violation": v.as_ref().err().map(|e| e.detail.clone()),
                })
            })
            .collect();
        let out = serde_json::json!({
            "schema_version": 1,
            "file": path.to_string(),
            "entries": history.entries.len(),
            "verdicts": verdicts,
        });
        println!("{out}");
    } else {
        println!("{path}: {} entries", history.entries.len());
        for (id, v) in &verdicts {
            match v {
                Ok(()) => println!("  PASS    {id}"),
                Err(e) => println!("  FAIL    {id}\n          {}", e.detail),
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else if verdicts.is_empty() {
        eprintln!("tenure: {path} holds nothing any property checks (no clock reads, grants, tickets or presence answers)");
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
