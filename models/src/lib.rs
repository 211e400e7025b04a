//! # tenure-models: exhaustive model checking of Tenure's protocols
//!
//! The core's actors (`tenure`) executed by [`stateright`] over every interleaving of a small
//! configuration, under the fault model of DESIGN.md. The model owns what the actors do not:
//! real time (a tick action), each process's drifting local clock, the store, requests in
//! flight, and the faults. It executes effects and never re-implements protocol logic; the
//! properties are the core's `tenure::property` functions, evaluated on every transition.
//!
//! # Layout
//! - [`protocol`]: each protocol's model, read top to bottom: what its processes report and
//!   change, handed to the core's property functions, and the milestones that show a run is
//!   not vacuous ([`protocol::clock`], [`protocol::lease`], [`protocol::leadership`],
//!   [`protocol::presence`]);
//! - [`harness`]: what every protocol's model shares: the stateright [`Model`](stateright::Model)
//!   ([`harness::TenureModel`]), real time and drifting local clocks, the processes, the store
//!   and the requests in flight, the faults, and the state that holds them;
//! - [`speedup`]: what makes the search faster without changing a verdict: interned state parts
//!   ([`speedup::shared`]), transitions computed once ([`speedup::memo`]), partial-order
//!   reduction ([`speedup::reduction`]) and symmetry ([`speedup::symmetry`]);
//! - [`config`]: what a run checks (protocol, sizes, faults, horizon) and its limits;
//! - [`properties`]: what a check checks, under the short keys stateright knows;
//! - [`run`]: running a check and reading its verdicts; [`memory`]: the memory it may use;
//! - [`timeline`]: a counterexample as frames a person can read.
//!
//! # Time
//! Real time advances in ticks. A due timer of a running process must fire before the next tick
//! (a process that does not is *paused*, which is a fault of its own), and without the `delay`
//! fault every request completes before the next tick. A timer due between ticks fires at the
//! next one: a legal, slightly late schedule. With `exact_timers` (the presence model, whose
//! timing margins are smaller than a tick) time instead advances to the next deadline, at most
//! a tick, so timers fire on time. The horizon bounds real time and so the state space.
//!
//! # Bounds on the interleavings explored
//! Holders call, units get tickets, pingers stop or start, the pruner runs, and processes pause
//! or crash only at the start of a time step (their requests still interleave with everything
//! else); each of those has a budget per run; a crash restarts the process at once with empty
//! memory. `harness/actions.rs` is the place to change any of these. Within a tick, a timer or a
//! read that commutes with every other step is taken before them rather than in every
//! position among them ([`speedup::reduction`]; `ModelConfig::partial_order`).
//!
//! # Compact state
//! Parts are interned ([`speedup::shared`]), and a state keeps no history a property does not read (nor
//! any a chosen property does not read: `ModelConfig::only`): of the clock document's changes
//! only what G2, G3 and G6 compare with, and each process's
//! operation ids renumbered from 0 whenever nothing outside it refers to them
//! (`tenure::effects::Renumber`, `TenureModel::alone`; `ModelConfig::renumber`), so that runs
//! differing only in how many operations came before are one state.

pub mod config;
pub mod harness;
pub mod memory;
pub mod properties;
pub mod protocol;
pub mod run;
pub mod speedup;
pub mod timeline;

pub use config::ModelConfig;
pub use harness::faults::{Fault, FaultSet};
pub use harness::{Action, TenureModel};
pub use properties::CheckedProperty;
pub use protocol::Milestone;
pub use stateright;
