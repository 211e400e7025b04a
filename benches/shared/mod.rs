//! Benchmark code shared with the simulator's benchmark. (`register.rs`, register histories
//! for S1, is included by path where needed: the register bench, its tests and example.)

pub mod lease;
