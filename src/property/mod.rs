//! The properties every executor checks, stated once (DESIGN.md, "Properties").
//!
//! Each property is a function over plain observations (reads, writes, tenures, tickets, presence
//! events) that returns the first [`Violation`] it finds. The model checker evaluates them on its
//! states, the simulator on its traces, and the live checker on recorded histories
//! ([`crate::history`]), so a property means the same thing everywhere.
//!
//! # Layout
//! - [`clock`] holds G1-G6, the global clock;
//! - [`lease`] holds L1-L7, the M family and fencing (F1);
//! - [`leadership`] holds T1-T6;
//! - [`presence`] holds P1-P7;
//! - [`register`] holds S1, the store assumption: each document a linearizable
//!   compare-and-swap register.

pub mod clock;
pub mod leadership;
pub mod lease;
pub mod presence;
pub mod register;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Bounded liveness, the shape G6, M6 and T6 share: something due since real `due_since` has not
/// happened by real `now`, and no fault struck after real `quiet_since`. A violation of `id`,
/// described by `describe(waited)`, when the wait (from the later of the two) exceeds `window`.
///
/// Checked as a safety property because "eventually" without fairness would accept a process
/// that never runs again; a window that starts only when faults stop states what a protocol can
/// promise.
pub(crate) fn overdue(
    id: PropertyId,
    due_since: u64,
    quiet_since: u64,
    now: u64,
    window: Duration,
    describe: impl FnOnce(u64) -> String,
) -> Verdict {
    let since = due_since.max(quiet_since);
    let window_ns = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
    let waited = now.saturating_sub(since);
    if waited > window_ns {
        Err(Violation::new(id, describe(waited)))
    } else {
        Ok(())
    }
}

macro_rules! properties {
    ($( $(#[$doc:meta])* $id:ident = $name:literal; )*) => {
        /// The identifier of a property, as in PROTOCOLS.md (G, L, M, T, P families) plus F1 for
        /// fencing, G5 for the clock watcher, G6 and T6 for the clock's and leadership's
        /// bounded liveness (DESIGN.md's liveness properties), and S1 for the store itself.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum PropertyId {
            $( $(#[$doc])* $id, )*
        }

        impl PropertyId {
            /// Every property.
            pub const ALL: &'static [PropertyId] = &[$(PropertyId::$id),*];

            /// The identifier as PROTOCOLS.md writes it ("L6").
            pub fn code(self) -> &'static str {
                match self { $(PropertyId::$id => stringify!($id),)* }
            }

            /// The short promise, used as the property's display name ("L6 lease exclusion").
            pub fn promise(self) -> &'static str {
                match self { $(PropertyId::$id => $name,)* }
            }
        }
    };
}

properties! {
    /// Global time read in real-time order never decreases.
    G1 = "clock never goes backwards";
    /// Every stored clock value is the previous value plus one successful advance: none lost, none doubled.
    G2 = "no lost or doubled increment";
    /// Over any real interval Δ, global time advances at most (1+ρ)·Δ + S.
    G3 = "global time no faster than real time";
    /// Without a successful advance, global time stands still.
    G4 = "no update means no progress";
    /// The clock watcher emits only values strictly later than the last one it emitted.
    G5 = "watcher emits strictly later values";
    /// Bounded liveness: once faults stop, global time advances at least once in every window
    /// (the updaters' interval and backoff, stretched by the rate error, plus timer lateness).
    G6 = "global time keeps advancing";
    /// At most one document holds a lease name at any instant.
    L1 = "one document per lease";
    /// A lease document's holder never changes while it is held; ownership moves only through a
    /// vacant document (an expiry, or a release by the holder).
    L2 = "holder changes only through expiry or release";
    /// A held lease's global expiry (start + duration) never decreases.
    L3 = "extension never shortens";
    /// A lease is expired only by a call that read global time strictly past that exact version's
    /// expiry; a term ends earlier only by its holder's release (the vacant document says who).
    L4 = "a term ends before start + duration only by release";
    /// A successful claim or extension lasts at least its duration from global time at the call's start.
    L5 = "claim lasts its duration from the call start";
    /// At every real instant, at most one holder believes it holds a lease.
    L6 = "lease exclusion";
    /// Expiry judgements use global time only.
    L7 = "expiry judged on global time";
    /// A lease whose holder changes gets a strictly larger fencing epoch, and a write guarded by a stale epoch is refused.
    F1 = "fencing epochs strictly increase";
    /// A successful claim is backed by the store at response time.
    M1 = "granted claims are stored";
    /// A denial happens only when a refreshed view shows a different holder.
    M2 = "denial only for a foreign holder";
    /// The store's Invalid signal never reaches a caller.
    M3 = "invalid never escapes the manager";
    /// A token says "not held" only after a refresh showed it not held.
    M4 = "checks agree with the store";
    /// A wait for expiry ends only after the lease was observed not held (expired or released).
    M5 = "wait ends only after the term ended";
    /// An abandoned lease is expired in bounded time once global time passes its expiry
    /// (PROTOCOLS.md: within expiry + max sleep + S; Tenure's manager: within a term on its
    /// own clock plus one clock step, as it wakes at the expiries it knows).
    M6 = "abandoned leases expire in bounded time";
    /// The manager never removes a lease early.
    M7 = "manager never expires early";
    /// A true claim_leader answer is backed by at least ClaimDuration of guaranteed tenure.
    T1 = "leader answer backed by tenure";
    /// While leader, the tracker renews within one ClaimDuration of the last claim's start.
    T2 = "leader renews in time";
    /// At most one release-waiter is outstanding per tracker.
    T3 = "one release waiter";
    /// Every ticket resolves exactly once, and false once the tracker has stopped.
    T4 = "tickets resolve exactly once";
    /// Claims always ask for twice the claim duration.
    T5 = "claims ask for twice the duration";
    /// Bounded liveness: once the leadership lease is free and faults stop, it is claimed again
    /// within a window while a running unit waits to lead (DESIGN.md: "a waiting leader
    /// candidate is served once the lease is free").
    T6 = "a waiting candidate is served";
    /// Presence sequences are unique and strictly increasing per model.
    P1 = "sequences unique and increasing";
    /// Stored presence bits equal the OR of the pings sent: no bit counted twice, no neighbour corrupted.
    P2 = "pings equal the OR of the bits sent";
    /// A key is alive iff its tracked sequence is alive and not dead in the current or previous slot.
    P3 = "alive iff pinged in the window";
    /// Per watch, events start with the current state and then alternate alive/dead.
    P4 = "watch events alternate";
    /// A continuously pinging key is never reported dead; a stopped key is reported dead within the bound.
    P5 = "pinging keys stay alive, stopped keys die";
    /// Pruning never removes the last four slots, the newest being of a key, or a referenced being.
    P6 = "pruning keeps what is live";
    /// Models are isolated: one model's pings and beings never affect another's.
    P7 = "models are isolated";
    /// The store assumption the models make: each document behaves as a linearizable
    /// compare-and-swap register (checked on recorded store operations, unknown outcomes
    /// included).
    S1 = "each document is a linearizable register";
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code(), self.promise())
    }
}

/// A property found false, with a human-readable account of the counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{property} violated: {detail}")]
pub struct Violation {
    /// Which property.
    pub property: PropertyId,
    /// What was observed, with times and values.
    pub detail: String,
    /// The real time (ns) the property broke, when the check knows it (a timeline is drawn
    /// around it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_real: Option<u64>,
}

impl Violation {
    /// A violation of `property` described by `detail`.
    pub fn new(property: PropertyId, detail: impl Into<String>) -> Violation {
        Violation {
            property,
            detail: detail.into(),
            at_real: None,
        }
    }

    /// The same violation, broken at real time `real` (ns).
    pub fn at(mut self, real: u64) -> Violation {
        self.at_real = Some(real);
        self
    }
}

/// The result of checking one property.
pub type Verdict = Result<(), Violation>;
