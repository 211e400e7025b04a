//! `tenure`: model-check Tenure's protocols.
//!
//! `tenure check` explores every interleaving of a small configuration of each protocol under
//! the fault model and prints one verdict per property, with the shortest counterexample of
//! each failure as a timeline and the command that reproduces it. See `tenure check --help`.

mod check;
mod render;
mod summary;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for a command line or configuration the user must fix (BSD's EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

#[derive(Parser, Debug)]
#[command(
    name = "tenure",
    version,
    about = "Model-check Tenure's coordination protocols: global clock, leases, leadership, presence",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check every property over every interleaving of a small configuration.
    ///
    /// Exit status: 0 every property holds, 1 a property failed, 2 unknown (the search
    /// stopped early), 64 usage or configuration error.
    Check(CheckArgs),
    /// Serve stateright's Explorer for one protocol's model on 127.0.0.1 (until interrupted).
    Explore(ExploreArgs),
}

/// A protocol, or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolArg {
    /// The global clock.
    Clock,
    /// Lease store and manager, on the clock.
    Lease,
    /// Leadership tracker, on leases.
    Leadership,
    /// Presence pingers, batcher, watcher and pruner.
    Presence,
    /// Every protocol that has a model.
    All,
}

/// The size and fault flags shared by `check` and `explore`.
#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Faults to inject: a comma-separated list, `all`, or `none` [default: the protocol's
    /// default set]. Known: ambiguous, lost, delay, rollback, stale-read, non-atomic-cas,
    /// pause, crash.
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
    /// Fault events allowed in one run [default: 1].
    #[arg(long, value_name = "N")]
    pub fault_budget: Option<u8>,
    /// Clock updaters.
    #[arg(long, value_name = "N")]
    pub updaters: Option<u8>,
    /// Lease managers (one holder each).
    #[arg(long, value_name = "N")]
    pub managers: Option<u8>,
    /// Leases.
    #[arg(long, value_name = "N")]
    pub leases: Option<u8>,
    /// Presence pingers (keys).
    #[arg(long, value_name = "N")]
    pub pingers: Option<u8>,
    /// Leadership tickets (claim_leader, wait_leader, wait_minion) each unit may be given
    /// [default: 1]; with 0 the units only claim and wait by themselves.
    #[arg(long, value_name = "N")]
    pub tickets: Option<u8>,
    /// Ticks of real time (one second each) to explore.
    #[arg(long, value_name = "TICKS")]
    pub horizon: Option<u32>,
    /// Run a deliberately broken variant (implies its protocol); see --list-mutants.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// Local clock rate error ρ in ppm: updaters run fast, slow, exact, fast, ... by ρ, and
    /// managers slow, fast, exact, ... [default: 100000]. With 0 every clock is exact, and
    /// updaters become interchangeable.
    #[arg(long, value_name = "PPM")]
    pub rate_error_ppm: Option<u32>,
    /// Treat interchangeable processes (updaters on the same clock rate) as one: fewer states,
    /// a depth-first search, counterexamples not necessarily shortest.
    #[arg(long)]
    pub symmetry: bool,
    /// Explore every order of steps that commute (a due timer of a process with nothing in
    /// flight, a read no other process can change before the next tick), to cross-check the
    /// partial-order reduction: more states, same verdicts.
    #[arg(long)]
    pub no_partial_order: bool,
    /// Keep each process's operation ids as issued instead of renumbering them from 0, to
    /// cross-check the renumbering: more states, same verdicts.
    #[arg(long)]
    pub no_renumbering: bool,
    /// Check only these properties, by key: property ids (L6, G1, ...) and milestones
    /// (claimed, changed, expired, denied, advance, emitted, leader, moved, minion, alive, died,
    /// pruned), comma-separated. Less work per state (what only the others need is not
    /// observed, so states that differ only in it are one); needs one --protocol.
    #[arg(long, value_name = "KEYS")]
    pub only: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Which protocol to check.
    #[arg(long, value_enum, default_value_t = ProtocolArg::All)]
    pub protocol: ProtocolArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// List the mutants (name, protocol, property it breaks) and exit.
    #[arg(long)]
    pub list_mutants: bool,
    /// Checker threads [default: the number of cores].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Give up after this many seconds per protocol (unsettled properties are UNKNOWN).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
    /// Give up once the checker holds this many GiB (unsettled properties are UNKNOWN)
    /// [default: 80% of the memory available at start]. A breadth-first search keeps its whole
    /// frontier in memory; without a limit the system would kill it.
    #[arg(long, value_name = "GIB")]
    pub max_memory: Option<f64>,
    /// Print the summaries as JSON on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Directory for reports (`<DIR>/check/<protocol>/summary.json` and SVG timelines).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub reports: PathBuf,
}

#[derive(Args, Debug)]
pub struct ExploreArgs {
    /// Which protocol's model to explore.
    #[arg(long, value_enum)]
    pub protocol: ProtocolArg,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            // Help and version go to stdout and succeed; real usage errors exit 64.
            let _ = e.print();
            return if usage {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Explore(args) => check::explore(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
