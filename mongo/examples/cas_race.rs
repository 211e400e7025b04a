//! Does the server's compare-and-swap hold under concurrency?
//!
//! Many tasks race read-then-`update({_id, ver: v}, {$set: {ver: v+1}})` on one document through
//! Tenure's executor. On an atomic server each version is won at most once; on FerretDB 1.24
//! (which checks the filter, then writes by `_id` only, SUBSTRATES.md) two tasks may both win
//! the same version, which is exactly the fault that breaks lease exclusion. `--history FILE`
//! saves every read and swap as a register history, for `tenure history check FILE` (S1).
//!
//! ```sh
//! scripts/substrate start ferretdb
//! cargo run -p tenure-mongo --example cas_race -- mongodb://127.0.0.1:27217/?directConnection=true --allow-standalone --history race.jsonl
//! cargo run -p tenure-cli -- history check race.jsonl
//! ```

use std::time::Duration;
use tenure_mongo::race::{cas_race, RaceConfig};
use tenure_mongo::Substrate;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut uri = None;
    let mut config = RaceConfig::default();
    let mut allow_standalone = false;
    let mut history = None;
    while let Some(a) = args.next() {
        let mut number = |name: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{name} needs a number")))
        };
        match a.as_str() {
            "--tasks" => config.tasks = number("--tasks"),
            "--attempts" => config.attempts = number("--attempts"),
            "--allow-standalone" => allow_standalone = true,
            "--history" => {
                history = Some(
                    args.next()
                        .unwrap_or_else(|| usage("--history needs a file")),
                )
            }
            "-h" | "--help" => usage(""),
            _ if uri.is_none() && !a.starts_with('-') => uri = Some(a),
            _ => usage(&format!("unexpected argument {a:?}")),
        }
    }
    let uri = uri.unwrap_or_else(|| usage("the server's URI is required"));
    let substrate = match Substrate::builder(uri)
        .database("tenure_cas_race")
        .op_timeout(Duration::from_secs(10))
        .allow_standalone_unsafe(allow_standalone)
        .connect()
        .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cas_race: {e}");
            std::process::exit(1);
        }
    };
    match cas_race(&substrate, &config).await {
        Ok(report) => {
            println!("{}", report.summary(substrate.hosts()));
            if let Some(file) = history {
                if let Err(e) = std::fs::write(&file, &report.history) {
                    eprintln!("cas_race: cannot write {file}: {e}");
                    std::process::exit(1);
                }
                println!("history: {file} (check it: tenure history check {file})");
            }
        }
        Err(e) => {
            eprintln!("cas_race: {e}");
            std::process::exit(1);
        }
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("cas_race: {problem}");
    }
    eprintln!("usage: cas_race URI [--tasks N (default 8)] [--attempts N per task (default 300)] [--allow-standalone] [--history FILE]");
    std::process::exit(if problem.is_empty() { 0 } else { 64 });
}
