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
use tenure::time::LocalTime;

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

    /// Records an entry stamped now, or at local time `at` if that was earlier.
    fn push(&self, call: u64, phase: Phase, operation: Operation, at: Option<LocalTime>) {
        let real_ns = real_now();
        self.with(|r| {
            if r.entries.len() >= ENTRIES_MAX {
                r.dropped += 1;
                return;
            }
            let now = r.clock.now();
            let (real_ns, local) = match at.filter(|t| *t < now) {
                Some(t) => {
                    let ago = r.clock.instant_of(now) - r.clock.instant_of(t);
                    let ago = u64::try_from(ago.as_nanos()).unwrap_or(u64::MAX);
                    (real_ns.saturating_sub(ago), t)
                }
                None => (real_ns, now),
            };
            let entry = Entry {
                process: r.process,
                call,
                phase,
                real_ns,
                local_ns: local.0,
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
        self.push(call, Phase::Invoke, operation, None);
        CallId(call)
    }

    /// Records the start of a call that began at local time `at`, reported only at its end (a
    /// claim a leadership tracker made): its recorded interval must cover the whole call, or a
    /// holder paused mid-call would seem to have been granted an old epoch after a newer one.
    pub(crate) fn invoke_at(&self, operation: Operation, at: LocalTime) -> CallId {
        let call = self.unique();
        self.push(call, Phase::Invoke, operation, Some(at));
        CallId(call)
    }

    /// Records the definite end of a call.
    pub(crate) fn complete(&self, call: CallId, operation: Operation) {
        self.push(call.0, Phase::Complete, operation, None);
    }

    /// Records the end of a call whose outcome is unknown.
    pub(crate) fn unknown(&self, call: CallId, operation: Operation) {
        self.push(call.0, Phase::Unknown, operation, None);
    }

    /// Records something that happened at one instant: one completed entry, no invocation
    /// (the checkers read events such as emitted values from every entry, so one each).
    pub(crate) fn event(&self, operation: Operation) {
        let call = self.unique();
        self.push(call, Phase::Complete, operation, None);
    }

    /// Records something that may or may not have happened (a write whose reply was lost).
    pub(crate) fn unsure(&self, operation: Operation) {
        let call = self.unique();
        self.push(call, Phase::Unknown, operation, None);
    }

    /// A copy of the history so far, in real-time order (a claim's invocation is recorded when
    /// it ends, see [`Recorder::invoke_at`]).
    pub fn history(&self) -> History {
        History::merge([History {
            entries: self.with(|r| r.entries.clone()),
        }])
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_call_reported_at_its_end_is_recorded_from_its_start() {
        let rec = Recorder::new(3);
        let start = rec.with(|r| r.clock.now());
        tokio::time::advance(Duration::from_secs(2)).await;
        let op = || Operation::TrackerStopped {
            application: "app".into(),
            unit: "unit-0".into(),
        };
        rec.event(op());
        let call = rec.invoke_at(op(), start);
        rec.complete(call, op());
        let h = rec.history();
        let find = |call: u64, phase| {
            h.entries
                .iter()
                .find(|e| e.call == call && e.phase == phase)
                .unwrap_or_else(|| panic!("{call} {phase:?} in {h:?}"))
        };
        let (invoked, event) = (find(call.0, Phase::Invoke), find(1, Phase::Complete));
        // The invocation is stamped two seconds back, in local and in real time (saturating at
        // the real time's origin), and the history is in real-time order.
        assert_eq!(invoked.local_ns, start.0);
        assert_eq!(event.local_ns - invoked.local_ns, 2_000_000_000);
        assert!(invoked.real_ns <= event.real_ns);
        assert!(h.entries.windows(2).all(|w| w[0].real_ns <= w[1].real_ns));
        find(call.0, Phase::Complete);
        // A time not in the past stamps now.
        let later = rec.invoke_at(op(), LocalTime(u64::MAX));
        let h = rec.history();
        let last = h.entries.iter().find(|e| e.call == later.0).unwrap();
        assert_eq!(last.local_ns, event.local_ns);
    }
}
