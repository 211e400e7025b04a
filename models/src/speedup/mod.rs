//! What makes the search faster without changing a verdict. Each is checked against the plain
//! search in the model tests (the same verdicts with and without it).

pub mod memo;
pub mod reduction;
pub mod shared;
pub mod symmetry;
