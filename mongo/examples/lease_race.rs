//! Races lease managers for one lease on a live server, records everything, and checks the
//! recorded history against Tenure's properties (lease exclusion L6, fencing F1, the clock's G1
//! and G2).
//!
//! ```sh
//! scripts/substrate start secantus
//! cargo run -p tenure-mongo --example lease_race -- mongodb://127.0.0.1:27117/?directConnection=true
//! scripts/substrate start ferretdb
//! cargo run -p tenure-mongo --example lease_race -- mongodb://127.0.0.1:27217/?directConnection=true --allow-standalone --history target/ferretdb-race.jsonl
//! ```
//! Exit status: 0 every property held, 1 a property was violated, 2 the run failed, 64 usage.

use tenure::history::CheckParams;
use tenure_mongo::race::{lease_race, LeaseRaceConfig};
use tenure_mongo::{Recorder, Substrate};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut uri, mut history, mut allow_standalone) = (None, None, false);
    let mut config = LeaseRaceConfig::default();
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match a.as_str() {
            "--managers" => config.managers = number("--managers"),
            "--rounds" => config.rounds = number("--rounds"),
            "--allow-standalone" => allow_standalone = true,
            "--history" => {
                history = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--history needs a path")),
                )
            }
            "-h" | "--help" => usage(""),
            _ if uri.is_none() && !a.starts_with('-') => uri = Some(a),
            _ => usage(&format!("unexpected argument {a:?}")),
        }
    }
    let uri = uri.unwrap_or_else(|| usage("the server's URI is required"));
    let recorder = Recorder::new(0);
    let substrate = Substrate::builder(uri)
        .database(format!("tenure_lease_race_{:x}", std::process::id()))
        .allow_standalone_unsafe(allow_standalone)
        .recorder(recorder.clone())
        .connect()
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let report = lease_race(&substrate, &config)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let _ = substrate.database().drop().await;
    println!(
        "{}: {} managers, {} rounds; holders granted per round: {:?}; {} claim errors",
        substrate.hosts(),
        config.managers,
        config.rounds,
        report.granted_per_round,
        report.errors
    );
    if let Some(path) = &history {
        recorder
            .write_jsonl(path)
            .unwrap_or_else(|e| fail(&format!("writing {path}: {e}")));
        println!(
            "history: {path} ({} entries)",
            recorder.history().entries.len()
        );
    }
    let verdicts = recorder.history().check(CheckParams {
        rate_error_ppm: config.skew.rate_error_ppm,
    });
    let mut failed = false;
    for (id, verdict) in verdicts {
        match verdict {
            Ok(()) => println!("  PASS    {id:?}"),
            Err(v) => {
                failed = true;
                println!("  FAIL    {id:?}: {}", v.detail);
            }
        }
    }
    std::process::exit(i32::from(failed));
}

fn fail(message: &str) -> ! {
    eprintln!("lease_race: {message}");
    std::process::exit(2);
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("lease_race: {problem}");
    }
    eprintln!("usage: lease_race URI [--managers N (default 8)] [--rounds N (default 5)] [--allow-standalone] [--history FILE.jsonl]");
    std::process::exit(if problem.is_empty() { 0 } else { 64 });
}
