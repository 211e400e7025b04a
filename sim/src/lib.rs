//! # tenure-sim: Tenure's deterministic simulator
//!
//! The core's actors (`tenure`), driven through the one driver interface
//! ([`tenure::actor::Actor`]) by a discrete-event executor: simulated real time in
//! nanoseconds, per-process local clocks that drift within ±ρ, the reference store behind a
//! layer that injects every fault of DESIGN.md, and workloads at real sizes (thousands of
//! presence keys, a thousand leases, a hundred managers). One seed determines the whole run
//! (ChaCha8, no wall clock, no thread, no hash-map order), so every failure replays from its
//! seed, and shrinks. The properties are the core's (`tenure::property`), checked as the run
//! goes, and bounded liveness in a quiet phase after the faults stop.
//!
//! ```
//! use tenure_sim::{simulate, SimConfig, Workload};
//!
//! let config = SimConfig::default_for(Workload::Lease);
//! let report = simulate(&config, 7, false);
//! assert!(!report.failed(), "{:?}", report.found);
//! assert_eq!(report.trace_hash, simulate(&config, 7, false).trace_hash);
//! ```
//!
//! # Layout
//! - [`config`]: what a run runs (workload, sizes, time, faults, mutant) and the presets;
//! - [`faults`]: each fault's rate, and swarm testing;
//! - [`world`]: the executor: the event queue, the processes, the store and its faults;
//! - [`workload`]: the processes each workload has, and the drivers that call them;
//! - [`observe`]: what the properties read, handed to the core's property functions;
//! - [`trace`]: counts, the trace hash, and a replay's timeline;
//! - [`run`]: one seed, many seeds, their summary;
//! - [`shrink`]: a failing run made smaller while it still fails;
//! - [`script`]: the same world driven step by step, for tests that pin one interleaving down;
//! - [`clock`] and [`rng`]: simulated local clocks and the seeded random stream.

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod faults;
pub mod observe;
pub mod rng;
pub mod run;
pub mod script;
pub mod shrink;
pub mod trace;
pub mod workload;
pub mod world;

pub use config::{SimConfig, Workload};
pub use run::{run_seeds, simulate, Report, Summary};
