//! Lists every mutant: its name, protocol, the property it breaks, and what it gets wrong.
//!
//! Run: `cargo run --example mutants`. (`tenure check --list-mutants` will print the same list.)

use tenure::mutant::Mutant;

fn main() {
    let width = Mutant::ALL
        .iter()
        .map(|m| m.name().len())
        .max()
        .unwrap_or(0);
    for m in Mutant::ALL {
        println!(
            "{:width$}  {:10}  {:?}  {}",
            m.name(),
            m.protocol().name(),
            m.breaks(),
            m.description()
        );
    }
}
