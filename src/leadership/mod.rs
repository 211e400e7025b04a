//! Leadership (PROTOCOLS.md §4): one unit's view of whether it leads its application, built on
//! a lease named after the application and held by the unit.
//!
//! - [`tracker`]: the tracker, which decides when to claim and what tickets answer;
//! - [`unit`](mod@unit): a tracker wired to the lease manager it claims through, driven as one store actor
//!   (what the model checker and the adapter run for a unit whose manager is in-process).

pub mod tracker;
pub mod unit;

pub use tracker::{ClaimResult, TicketId, TicketKind, Tracker, TrackerConfig, TrackerOutput};
pub use unit::{Unit, UnitOutput};
