//! Recording: every store operation and every protocol-level outcome of a process, in the core's
//! history format ([`tenure::history`]), so a live run can be checked against the same
//! properties as the models and the simulator.
//!
//! Attach a [`Recorder`] with [`crate::SubstrateBuilder::recorder`]; every worker built on that
//! substrate records into it. Real time is the host's monotonic clock, one origin per process,
//! so histories from several recorders in one process compare; local time is the substrate's
//! [`crate::LocalClock`], which a live check may skew.

use crate::runtime::{real_now, LocalClock};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tenure::history::{Entry, History, Operation, Phase};

/// Entries kept before recording stops (and counts what it drops): a bound on memory for a
/// recorder left on by mistake. About 2 GB of entries at the most.
pub const ENTRIES_MAX: usize = 10_000_000;

#[derive(Debug)]
struct Inner {
    process: u32,
    /// The recording process's local clock (the substrate's, once attached).
    clock: LocalClock,
    next_call: u64,
    entries: Vec<Entry>,
    dropped: u64,
    /// Where each entry is also written as it is recorded (a client process that may be
    /// killed leaves its history up to the kill).
    sink: Option<std::fs::File>,
}

/// A shared, in-memory history of one recording process; cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
}

/// Pairs an invocation with its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CallId(u64);

impl Recorder {
    /// A recorder whose entries carry `process` (distinct per recording client of one history).
    pub fn new(process: u32) -> Recorder {
        Recorder {
            inner: Arc::new(Mutex::new(Inner {
                process,
                clock: LocalClock::SYSTEM,
                next_call: 0,
                entries: Vec::new(),
                dropped: 0,
                sink: None,
            })),
        }
    }

    /// A recorder that also appends each entry to `path` (created or truncated) as one JSON
    /// line the moment it is recorded, so the file holds the history up to a crash or a kill.
    pub fn streaming(process: u32, path: impl AsRef<Path>) -> std::io::Result<Recorder> {
        let file = std::fs::File::create(path)?;
        let r = Recorder::new(process);
        r.with(|inner| inner.sink = Some(file));
        Ok(r)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock cannot leave the entries inconsistent: keep recording.
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records with `clock` as the local clock (the substrate's it is attached to).
    pub(crate) fn set_clock(&self, clock: LocalClock) {
        self.with(|r| r.clock = clock);
    }

    fn push(&self, call: u64, phase: Phase, operation: Operation) {
        let real_ns = real_now();
        self.with(|r| {
            if r.entries.len() >= ENTRIES_MAX {
                r.dropped += 1;
                return;
            }
            let entry = Entry {
                process: r.process,
                call,
                phase,
                real_ns,
                local_ns: r.clock.now().0,
                operation,
            };
            if let Some(file) = &mut r.sink {
                // One write per line: a kill cuts at most the line being written.
                if let Ok(mut line) = serde_json::to_string(&entry) {
                    line.push('\n');
                    if let Err(e) = std::io::Write::write_all(file, line.as_bytes()) {
                        tracing::warn!(error = %e, "the history file cannot be written; recording in memory only");
                        r.sink = None;
                    }
                }
            }
            r.entries.push(entry);
        });
    }

    /// A number never handed out before by this recorder (call ids, ticket ids).
    pub(crate) fn unique(&self) -> u64 {
        self.with(|r| {
            r.next_call += 1;
            r.next_call
        })
    }

    /// Records the start of a call.
    pub(crate) fn invoke(&self, operation: Operation) -> CallId {
        let call = self.unique();
        self.push(call, Phase::Invoke, operation);
        CallId(call)
    }

    /// Records the definite end of a call.
    pub(crate) fn complete(&self, call: CallId, operation: Operation) {
        self.push(call.0, Phase::Complete, operation);
    }

    /// Records the end of a call whose outcome is unknown.
    pub(crate) fn unknown(&self, call: CallId, operation: Operation) {
        self.push(call.0, Phase::Unknown, operation);
    }

    /// Records something that happened at one instant: one completed entry, no invocation
    /// (the checkers read events such as emitted values from every entry, so one each).
    pub(crate) fn event(&self, operation: Operation) {
        let call = self.unique();
        self.push(call, Phase::Complete, operation);
    }

    /// Records something that may or may not have happened (a write whose reply was lost).
    pub(crate) fn unsure(&self, operation: Operation) {
        let call = self.unique();
        self.push(call, Phase::Unknown, operation);
    }

    /// A copy of the history so far.
    pub fn history(&self) -> History {
        History {
            entries: self.with(|r| r.entries.clone()),
        }
    }

    /// Entries not recorded because [`ENTRIES_MAX`] was reached.
    pub fn dropped(&self) -> u64 {
        self.with(|r| r.dropped)
    }

    /// Writes the history so far as JSON lines (the format `tenure::history::History::from_jsonl`
    /// reads).
    pub fn write_jsonl(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.history().to_jsonl())
    }
}

/// Records through an optional recorder; a no-op without one.
pub(crate) fn invoke(rec: Option<&Recorder>, op: impl FnOnce() -> Operation) -> Option<CallId> {
    rec.map(|r| r.invoke(op()))
}

/// Ends a call started with [`invoke`].
pub(crate) fn complete(
    rec: Option<&Recorder>,
    call: Option<CallId>,
    unknown: bool,
    op: impl FnOnce() -> Operation,
) {
    if let (Some(r), Some(call)) = (rec, call) {
        if unknown {
            r.unknown(call, op());
        } else {
            r.complete(call, op());
        }
    }
}

/// Records an instantaneous event.
pub(crate) fn event(rec: Option<&Recorder>, op: impl FnOnce() -> Operation) {
    if let Some(r) = rec {
        r.event(op());
    }
}

/// Records an event that may or may not have happened.
pub(crate) fn unsure(rec: Option<&Recorder>, op: impl FnOnce() -> Operation) {
    if let Some(r) = rec {
        r.unsure(op());
    }
}
