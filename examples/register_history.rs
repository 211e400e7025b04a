//! Prints a generated register history (JSON lines, the format `tenure history check` reads):
//! 8 clients reading and swapping one register, 20% of the swaps' outcomes unknown (10% of all
//! operations).
//!
//! `cargo run --release --example register_history -- [OPERATIONS] [--stale-read] > h.jsonl`

#[path = "../benches/shared/register.rs"]
mod generated;

use generated::{generate, Shape};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let operations = match args.iter().find(|a| !a.starts_with("--")) {
        None => 10_000,
        Some(n) => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: register_history [OPERATIONS] [--stale-read] (OPERATIONS a number, not {n:?})");
                std::process::exit(64);
            }
        },
    };
    print!(
        "{}",
        generate(Shape {
            operations,
            clients: 8,
            unknown_percent: 20,
            stale_read: args.iter().any(|a| a == "--stale-read"),
            seed: 1,
        })
    );
}
