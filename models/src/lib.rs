//! # tenure-models: exhaustive model checking of Tenure's protocols
//!
//! The core's actors (`tenure`) executed by [`stateright`] over every interleaving of a small
//! configuration, under the fault model of DESIGN.md. The model owns what the actors do not:
//! real time (a tick action), each process's drifting local clock, the store, requests in
//! flight, and the faults. It executes effects and never re-implements protocol logic; the
//! properties are the core's `tenure::property` functions, evaluated on every transition.
//!
//! # Layout
//! - [`config`]: what a run checks (protocol, sizes, faults, horizon) and its limits;
//! - [`faults`]: the fault switches;
//! - [`state`]: processes, flights and the ghost observations properties need;
//! - [`model`]: the stateright [`Model`](stateright::Model): which actions are enabled in a
//!   state and what each does, over real time, the processes and the store;
//! - [`observe`]: transitions handed to the core's property functions;
//! - [`properties`]: what a check checks, under the short keys stateright knows;
//! - [`presence`]: the presence model's routing and observations;
//! - [`run`]: running a check and reading its verdicts;
//! - [`memory`]: the memory a check may use and uses;
//! - [`shared`]: copy-on-write state parts, interned (kept, and then not reference-counted),
//!   whose hash is computed once per version;
//! - [`memo`]: the actors', the store's and the requests in flight's transitions, each computed
//!   once;
//! - [`symmetry`]: interchangeable processes put in a canonical order;
//! - [`reduction`]: partial-order reduction, a step that commutes with the rest taken alone;
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
//! memory. `model/actions.rs` is the place to change any of these. Within a tick, a timer or a
//! read that commutes with every other step is taken before them rather than in every
//! position among them ([`reduction`]; `ModelConfig::partial_order`).
//!
//! # Compact state
//! Parts are interned ([`shared`]), and a state keeps no history a property does not read (nor
//! any a chosen property does not read: `ModelConfig::only`): of the clock document's changes
//! only what G2, G3 and G6 compare with, and each process's
//! operation ids renumbered from 0 whenever nothing outside it refers to them
//! (`tenure::effects::Renumber`, `TenureModel::alone`; `ModelConfig::renumber`), so that runs
//! differing only in how many operations came before are one state.

pub mod config;
pub mod faults;
pub mod memo;
pub mod memory;
pub mod model;
pub mod observe;
pub mod presence;
pub mod properties;
pub mod reduction;
pub mod run;
pub mod shared;
pub mod state;
pub mod symmetry;
pub mod timeline;

pub use config::ModelConfig;
pub use faults::{Fault, FaultSet};
pub use model::{Action, TenureModel};
pub use observe::Milestone;
pub use properties::CheckedProperty;
pub use stateright;
