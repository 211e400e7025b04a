//! The fault model (DESIGN.md, "Fault model"): every fault is a switch, on or off independently,
//! with the same name in the model checker, the simulator and live runs.

use crate::substrate::{Op, ReadConcern};
use std::fmt;
use std::str::FromStr;

macro_rules! faults {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal; )*) => {
        /// One fault the model may inject.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Fault {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Fault {
            /// Every fault, in a stable order.
            pub const ALL: &'static [Fault] = &[$(Fault::$variant),*];

            /// The kebab-case name used by `--faults` and in reports.
            pub fn name(self) -> &'static str {
                match self { $(Fault::$variant => $name,)* }
            }

            /// What the fault means, in one sentence.
            pub fn description(self) -> String {
                let lines: &[&str] = match self { $(Fault::$variant => &[$($doc),*],)* };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            }
        }
    };
}

faults! {
    /// A write is applied but its reply is lost: the caller sees "outcome unknown".
    Ambiguous = "ambiguous";
    /// A request is dropped before the store: the caller sees "outcome unknown".
    Lost = "lost";
    /// Requests may stay in flight while real time passes, and complete in any order.
    Delay = "delay";
    /// An acknowledged `w:1` write is later rolled back by a replica-set failover.
    Rollback = "rollback";
    /// A non-linearizable read is served from the store as it was before the last write.
    StaleRead = "stale-read";
    /// The server checks an update's filter, then writes by `_id` without re-checking it.
    NonAtomicCas = "non-atomic-cas";
    /// A process stops taking steps (GC, SIGSTOP) while time passes; replies wait for it.
    Pause = "pause";
    /// A process loses its memory and restarts; the store keeps its writes.
    Crash = "crash";
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--faults` value that names no fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {given:?}; known faults: {}", Fault::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownFault {
    /// What was given.
    pub given: String,
}

impl FromStr for Fault {
    type Err = UnknownFault;
    fn from_str(s: &str) -> Result<Fault, UnknownFault> {
        Fault::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFault { given: s.into() })
    }
}

/// A set of faults, as a bitmask (models keep it in their configuration, not their state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultSet(u16);

impl FaultSet {
    /// No faults: only concurrency among correct processes.
    pub const NONE: FaultSet = FaultSet(0);

    /// Every fault.
    pub fn all() -> FaultSet {
        Fault::ALL.iter().copied().collect()
    }

    /// Whether `fault` is on.
    pub fn has(self, fault: Fault) -> bool {
        self.0 & (1 << fault as u16) != 0
    }

    /// This set with `fault` on.
    pub fn with(self, fault: Fault) -> FaultSet {
        FaultSet(self.0 | (1 << fault as u16))
    }

    /// The faults that are on, in order.
    pub fn iter(self) -> impl Iterator<Item = Fault> {
        Fault::ALL.iter().copied().filter(move |f| self.has(*f))
    }

    /// Parses `none`, `all`, or a comma-separated list of fault names.
    pub fn parse(s: &str) -> Result<FaultSet, UnknownFault> {
        match s.trim() {
            "none" | "" => Ok(FaultSet::NONE),
            "all" => Ok(FaultSet::all()),
            list => list.split(',').map(|f| f.trim().parse::<Fault>()).collect(),
        }
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> FaultSet {
        iter.into_iter().fold(FaultSet::NONE, FaultSet::with)
    }
}

impl fmt::Display for FaultSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<_> = self.iter().map(Fault::name).collect();
        f.write_str(&names.join(","))
    }
}

/// Whether a read may be served stale: only reads that did not ask for linearizability.
pub fn tolerates_stale(op: &Op) -> bool {
    match op {
        Op::Read { concern, .. } | Op::Find { concern, .. } => {
            *concern != ReadConcern::Linearizable
        }
        _ => false,
    }
}

/// Whether a write carries a filter a non-atomic server could check apart from the write.
pub fn is_conditional_write(op: &Op) -> bool {
    match op {
        Op::Update { expect, .. } => !expect.is_empty(),
        Op::Delete { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_names_the_unknown() {
        let s = FaultSet::parse("ambiguous, pause").unwrap();
        assert!(s.has(Fault::Ambiguous) && s.has(Fault::Pause) && !s.has(Fault::Crash));
        assert_eq!(FaultSet::parse(&s.to_string()), Ok(s));
        assert_eq!(
            FaultSet::parse("all").unwrap().iter().count(),
            Fault::ALL.len()
        );
        assert_eq!(FaultSet::parse("none"), Ok(FaultSet::NONE));
        let e = FaultSet::parse("ambiguous,rolback").unwrap_err();
        assert!(e.to_string().contains("\"rolback\"") && e.to_string().contains("rollback"));
    }
}
