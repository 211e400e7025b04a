//! The global clock (PROTOCOLS.md §1): one document `{_id: "g", time}` that updaters advance by
//! compare-and-swap, adding the local monotonic time elapsed since they last observed it.
//!
//! # Layout
//! - [`updater`]: the updater worker: ensure the document, advance on an interval, back off on
//!   conflict, start over after any other error;
//! - [`reader`]: one read of global time (a missing document reads as the epoch);
//! - [`watcher`]: polls and emits only strictly later values.

pub mod reader;
pub mod updater;
pub mod watcher;

pub use reader::Reader;
pub use updater::{Updater, UpdaterConfig, UpdaterOutput};
pub use watcher::{stall_threshold, ClockWatcher, WatcherConfig};

use crate::substrate::{Collection, CorruptDocument, Document, StoreFailure};
use crate::time::GlobalTime;
use thiserror::Error;

/// The `_id` of the clock document.
pub const CLOCK_ID: &str = "g";

/// The field holding global time in nanoseconds.
pub const TIME_FIELD: &str = "time";

/// Decodes the clock document.
pub fn decode(doc: &Document) -> Result<GlobalTime, CorruptDocument> {
    if doc.id != CLOCK_ID {
        return Err(doc.corrupt_because(Collection::Clock, format!("expected _id {CLOCK_ID:?}")));
    }
    Ok(GlobalTime(doc.uint(Collection::Clock, TIME_FIELD)?))
}

/// Global time as the stored clock document says: a missing document reads as the epoch, the
/// value it will have once created.
pub fn decode_stored(doc: Option<&Document>) -> Result<GlobalTime, CorruptDocument> {
    doc.map_or(Ok(GlobalTime(0)), decode)
}

/// Why a clock operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClockError {
    /// Another updater moved the clock first; the base was refreshed and the caller should retry
    /// after its backoff.
    #[error("clock was updated concurrently, retry")]
    ConcurrentUpdate,
    /// The store's answer is unknown or a failure; the updater was discarded and will be rebuilt.
    #[error("{context}: {cause}")]
    Store {
        /// What the updater was doing ("adding 1.000s to current time 5.000s").
        context: String,
        /// What the store said (the driver's error as its source, from a real store).
        #[source]
        cause: StoreFailure,
    },
    /// The clock document has the wrong shape.
    #[error(transparent)]
    Corrupt(#[from] CorruptDocument),
}
