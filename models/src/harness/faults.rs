//! The fault model of DESIGN.md, as the model checker injects it: the switches are the core's
//! ([`tenure::fault`]).

pub use tenure::fault::{is_conditional_write, tolerates_stale, Fault, FaultSet, UnknownFault};
