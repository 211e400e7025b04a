//! Benchmark code shared with the simulator's benchmark.

pub mod lease;
