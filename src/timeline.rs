//! A run as a timeline a person can read: after each step, real time, every process's local
//! time, global time, every lease's holder and epoch, and every holder's belief. The model
//! checker's counterexamples and the simulator's replays are both told as [`Frame`]s, so the
//! CLI prints and draws them alike.

use serde::Serialize;

use crate::lease::LeaseDoc;
use crate::substrate::Document;

/// One process after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProcFrame {
    /// "updater-0", "watcher", "manager-1 (h1)".
    pub name: String,
    /// Its local time (ns).
    pub local: u64,
    /// Whether it is paused.
    pub paused: bool,
}

/// One lease document after a step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseFrame {
    /// The lease name.
    pub lease: String,
    /// The stored holder, if held.
    pub holder: Option<String>,
    /// The stored epoch (0: no document yet).
    pub epoch: u64,
    /// The stored global expiry (ns), if held.
    pub expiry: Option<u64>,
}

impl LeaseFrame {
    /// The frame of `lease` as `doc` (its stored document, if any) shows it; a document that
    /// does not decode as a lease of `namespace` shows as no document.
    pub fn stored(lease: impl Into<String>, doc: Option<&Document>, namespace: &str) -> Self {
        let doc = doc.and_then(|d| LeaseDoc::decode(d, namespace).ok());
        LeaseFrame {
            lease: lease.into(),
            holder: doc.as_ref().and_then(|d| d.holder().map(str::to_owned)),
            epoch: doc.as_ref().map_or(0, |d| d.epoch.0),
            expiry: doc
                .as_ref()
                .and_then(|d| d.term.as_ref())
                .map(|t| t.expiry().0),
        }
    }
}

/// A holder's belief that it holds a lease, live at this step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BeliefFrame {
    /// The holder.
    pub holder: String,
    /// The lease.
    pub lease: String,
    /// The epoch it was granted.
    pub epoch: u64,
    /// Real time (ns) the belief ends.
    pub until: u64,
}

/// The world after one step (step 0: the initial state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// 0 for the initial state, then 1, 2, ...
    pub step: usize,
    /// What happened ("h1 claims l0"); empty for the initial state.
    pub action: String,
    /// Real time (ns).
    pub real: u64,
    /// Global time (ns): the clock document's value.
    pub global: u64,
    /// Every process.
    pub procs: Vec<ProcFrame>,
    /// Every lease document.
    pub leases: Vec<LeaseFrame>,
    /// Live beliefs.
    pub beliefs: Vec<BeliefFrame>,
    /// Properties this step violated, with the core's account of why.
    pub violations: Vec<String>,
}
