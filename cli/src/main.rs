//! `tenure`: check Tenure's protocols.
//!
//! `tenure check` explores every interleaving of a small configuration of each protocol under
//! the fault model and prints one verdict per property, with the shortest counterexample of
//! each failure as a timeline and the command that reproduces it. `tenure sim` runs the
//! deterministic simulator over many seeds at real sizes, and `tenure replay` reruns one seed
//! and tells it as a timeline. `tenure history check` and `tenure live` judge what really
//! happened on a server by the same properties. See `tenure <command> --help`.

mod beside;
mod check;
mod history;
mod live;
mod render;
mod sim;
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
    about = "Check Tenure's coordination protocols (global clock, leases, leadership, presence): exhaustively, by seeded simulation, and on recorded histories",
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
    /// Simulate many seeds of a workload at real sizes, under every fault, and check every
    /// property on each; print the replay command of each failure and of its shrunk run.
    ///
    /// Exit status: 0 every seed passed, 1 a property failed, 2 a run did not finish, 64 usage
    /// or configuration error.
    Sim(SimArgs),
    /// Rerun one seed of the simulator and print its last steps as a timeline (and an SVG).
    ///
    /// Exit status as `tenure sim`'s.
    Replay(ReplayArgs),
    /// Check a recorded history (the JSON lines a `tenure_mongo::Recorder` writes) against
    /// the same properties.
    History(history::HistoryArgs),
    /// Drive the MongoDB adapter against a real server with a workload, record every call,
    /// and check the recorded history against the same properties, under injected faults.
    ///
    /// Exit status: 0 every property holds, 1 a property failed, 2 no property had data,
    /// 64 usage error or an unreachable or unsuitable server.
    Live(live::LiveArgs),
    /// One client process of `tenure live --processes` (its spec as JSON on standard input).
    #[command(hide = true)]
    LiveClient,
}

/// What a simulated run runs; `sim` and `replay` share them.
#[derive(Args, Debug, Clone, Default)]
pub struct SimConfigArgs {
    /// Which protocols: clock, lease, leadership, presence, or all of them at once [default:
    /// all, or the mutant's protocol].
    #[arg(long, value_name = "NAME")]
    pub protocol: Option<String>,
    /// A named configuration: lease-goal (3 managers, 2 leases, a fast and a slow updater,
    /// ambiguous writes, pauses, crashes), lease-scale (100 managers, 1,000 leases),
    /// lease-bench (100 managers each keeping its own lease, 20 calls/s, no faults),
    /// presence-scale (10,000 keys on 30 s slots). Flags given too override it.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Faults and their rates: `survivable` (every fault the protocols must survive), `all`
    /// (rollback and non-atomic-cas too, which break leases by design), `none`, or a list of
    /// `name` or `name=ppm` (ambiguous, lost, delay, rollback, stale-read, non-atomic-cas,
    /// pause, crash) [default: survivable].
    #[arg(long, value_name = "LIST")]
    pub faults: Option<String>,
    /// Use the fault rates as given for every seed, instead of letting each seed draw which
    /// faults are on and how often (swarm testing, the default).
    #[arg(long)]
    pub no_swarm: bool,
    /// Run a deliberately broken variant (see `tenure check --list-mutants`).
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
    /// Clock updaters.
    #[arg(long, value_name = "N")]
    pub updaters: Option<u32>,
    /// Lease managers, one holder each.
    #[arg(long, value_name = "N")]
    pub managers: Option<u32>,
    /// Leases the holders use.
    #[arg(long, value_name = "N")]
    pub leases: Option<u32>,
    /// Each holder keeps only its own lease (holder i, lease i mod --leases), claiming and
    /// extending it: no contention.
    #[arg(long)]
    pub own_leases: bool,
    /// Calls each lease holder makes per second, on average [default: 1].
    #[arg(long, value_name = "N")]
    pub holder_calls_per_sec: Option<u32>,
    /// Leadership units.
    #[arg(long, value_name = "N")]
    pub units: Option<u32>,
    /// Presence agents (processes).
    #[arg(long, value_name = "N")]
    pub agents: Option<u32>,
    /// Presence keys, spread over the agents.
    #[arg(long, value_name = "N")]
    pub keys: Option<u32>,
    /// Presence slot length (`6s`, `30s`: whole seconds, at least 4 s) [default: 6s].
    #[arg(long, value_name = "DURATION")]
    pub presence_period: Option<String>,
    /// Presence slots between the pruner's passes [default: 3].
    #[arg(long, value_name = "N")]
    pub prune_every: Option<u32>,
    /// Length of the faulty phase (`30s`, `2m`, `1h`) [default: 60s]; a 40 s quiet phase
    /// follows, in which the bounded-liveness properties are checked.
    #[arg(long, value_name = "DURATION")]
    pub sim_time: Option<String>,
    /// Local clock rate error bound ρ in ppm [default: 10000].
    #[arg(long, value_name = "PPM")]
    pub rate_error_ppm: Option<u32>,
}

#[derive(Args, Debug)]
pub struct SimArgs {
    #[command(flatten)]
    pub config: SimConfigArgs,
    /// Seeds to run, `A..B` [default: 0..100].
    #[arg(long, value_name = "A..B", conflicts_with = "seed")]
    pub seeds: Option<String>,
    /// One seed.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Seeds run at once [default: the number of cores]; results do not depend on it.
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not shrink failures (shrinking reruns a failing seed up to 60 times).
    #[arg(long)]
    pub no_shrink: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Directory for reports (`<DIR>/sim/<run>/summary.json`).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub reports: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The seed to rerun.
    #[arg(long, value_name = "S")]
    pub seed: u64,
    #[command(flatten)]
    pub config: SimConfigArgs,
    /// Print the run as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Directory for reports (`<DIR>/sim/replay-<protocol>-<seed>.svg`).
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub reports: PathBuf,
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
    /// Token checks holder h0 may make of lease l0 (lease model) [default: 1].
    #[arg(long, value_name = "N")]
    pub checks: Option<u8>,
    /// Releases holder h0 may make of lease l0, each giving up the token of its first grant
    /// (lease model), or resignations of unit h0 (leadership model) [default: 0; 1 in the
    /// lease-release and leadership-service runs of the default check].
    #[arg(long, value_name = "N")]
    pub releases: Option<u8>,
    /// Claims ask for this many seconds (lease model); in the leadership model, the claim
    /// duration (units claim for twice it) [default: 3 lease, 2 leadership, 3 in the
    /// leadership-service run].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=60))]
    pub duration: Option<u64>,
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
    /// (claimed, changed, expired, denied, release, advance, emitted, leader, moved, minion, alive, died,
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

/// Whether long runs draw progress: on a terminal, and not in CI (`CI` set and not `false`).
pub(crate) fn progress_wanted() -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    !ci && std::io::IsTerminal::is_terminal(&std::io::stderr())
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
        Command::Sim(args) => sim::run(&args),
        Command::Replay(args) => sim::replay(&args),
        Command::History(args) => history::run(&args),
        Command::Live(args) => live::run(&args),
        Command::LiveClient => live::client_process(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tenure: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
