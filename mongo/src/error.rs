//! The adapter's error type. Every message says what to do next; none contains credentials.

use std::time::Duration;
use tenure::clock::ClockError;
use tenure::lease::ManagerError;
use tenure::substrate::CorruptDocument;
use tenure::validate::InputError;
use thiserror::Error;

/// Everything that can go wrong in the adapter.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection string could not be parsed.
    #[error("invalid MongoDB URI: {0} (credentials are never shown)")]
    InvalidUri(String),
    /// No server answered.
    #[error("cannot reach MongoDB at {hosts}: {reason}; is the server running? (for the live tests, `scripts/substrate start secantus` starts one)")]
    Unreachable {
        /// The hosts tried, without credentials.
        hosts: String,
        /// The driver's explanation, redacted.
        reason: String,
    },
    /// The server is not a replica-set member and the unsafe opt-in is not set.
    #[error("{hosts} is a standalone server: it offers neither majority writes nor linearizable reads, so leases would not be exclusive across a crash or failover; use a replica set (a one-node replica set is enough), or call SubstrateBuilder::allow_standalone_unsafe(true) if you accept that")]
    Standalone {
        /// The hosts connected to.
        hosts: String,
    },
    /// A name, duration or configuration was refused before any I/O.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A store operation failed and the protocol could not continue.
    #[error("store error: {0}")]
    Store(String),
    /// The driver failed a call the adapter made on a collection of the caller's (a fenced
    /// write). The driver's error is the [`std::error::Error::source`]: match on its kind and
    /// labels, or ask [`Error::is_transient`].
    #[error("{context}: {}", redact(&source.to_string()))]
    Driver {
        /// What the adapter was doing.
        context: &'static str,
        /// The driver's error.
        #[source]
        source: mongodb::error::Error,
    },
    /// A document in one of Tenure's collections is not Tenure's (or was damaged).
    #[error(transparent)]
    Corrupt(#[from] CorruptDocument),
    /// The lease manager refused or failed a request.
    #[error(transparent)]
    Lease(#[from] ManagerError),
    /// Another holder holds the lease: the caller is guaranteed not to hold it.
    #[error("lease {lease:?} is held by {holder:?}")]
    ClaimDenied {
        /// The lease.
        lease: String,
        /// Its current holder.
        holder: String,
    },
    /// The global clock could not be read or advanced.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// Global time has not advanced for longer than the stall threshold: no clock updater is
    /// running against this deployment, so no lease expires.
    #[error("global time has stood at {global_time} for {stalled_for:?}: no clock updater is advancing it, so no lease will expire; start a ClockUpdater (one per process is the usual setup)")]
    ClockStalled {
        /// The value global time is stuck at.
        global_time: tenure::time::GlobalTime,
        /// How long it had stood still when the stall was detected.
        stalled_for: Duration,
    },
    /// The worker behind this handle has stopped (after shutdown, or a fatal error it logged).
    #[error("{0} has stopped")]
    Stopped(&'static str),
    /// A worker was started outside a tokio runtime.
    #[error("Tenure's workers run on tokio: build them from inside a tokio runtime (for example in an async fn under #[tokio::main])")]
    NoRuntime,
    /// A wait ran past its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A call got no answer within [`crate::Substrate::call_bound`]: the store is slow or
    /// unreachable. Its outcome is unknown (a claim may yet be granted); call again to learn.
    #[error("{call} got no answer within {after:?} (op_timeout + CALL_MARGIN): the store is slow or unreachable, so the outcome is unknown; call again to learn it")]
    Unanswered {
        /// The call, for example `"claim"`.
        call: &'static str,
        /// How long the caller waited.
        after: Duration,
    },
}

impl Error {
    /// Whether the same call may succeed later without anyone changing anything: the store was
    /// unreachable or slow, the outcome unknown, the lease contended or the manager busy. The
    /// others (bad input, a corrupt document, a standalone server, a stopped handle, a denial, a
    /// command the server refused for good, such as an unauthorized one) need a person, a
    /// different call, or the holder to go.
    pub fn is_transient(&self) -> bool {
        if let Some(driver) = self.driver_error() {
            return driver_error_is_transient(driver);
        }
        match self {
            Error::Unreachable { .. } | Error::Unanswered { .. } => true,
            Error::Lease(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The MongoDB driver's error behind this one, if a driver call failed: a fenced write, or
    /// the store call of a claim, check, release or clock read that the server refused. Match on
    /// its kind, code and labels where [`Error::is_transient`] is too coarse.
    pub fn driver_error(&self) -> Option<&mongodb::error::Error> {
        let mut cause = std::error::Error::source(self);
        while let Some(e) = cause {
            if let Some(driver) = e.downcast_ref::<mongodb::error::Error>() {
                return Some(driver);
            }
            cause = e.source();
        }
        None
    }
}

/// Server codes the retryable-writes specification retries on (a failover, a shutdown, a
/// network failure the server saw): the same call may succeed once a primary answers.
const RETRYABLE_CODES: [i32; 12] = [
    6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436,
];

/// A network error, no server to select, a cleared pool, a retryable server code or a
/// server-labelled retryable error: the same call may succeed once the server is back.
fn driver_error_is_transient(e: &mongodb::error::Error) -> bool {
    use mongodb::error::ErrorKind;
    matches!(
        *e.kind,
        ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
    ) || server_code(e).is_some_and(|c| RETRYABLE_CODES.contains(&c))
        || [
            "RetryableWriteError",
            "RetryableReadError",
            "TransientTransactionError",
        ]
        .iter()
        .any(|l| e.contains_label(l))
}

/// The server's error code in a command or write error, if the server answered with one.
pub(crate) fn server_code(e: &mongodb::error::Error) -> Option<i32> {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*e.kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        _ => None,
    }
}

/// A driver error in one line a person can read: credentials hidden, and without the labels,
/// source and raw server reply the driver appends (the error itself stays attached as the
/// `source` of ours, for code that matches on its kind).
pub fn describe(e: &mongodb::error::Error) -> String {
    let text = redact(&e.to_string());
    let text = text.split(", labels: ").next().unwrap_or_default();
    text.strip_prefix("Kind: ").unwrap_or(text).to_owned()
}

/// `text` with the password (and user) of any `scheme://user:pass@host` removed.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<credentials>");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_credentials_and_keeps_hosts() {
        assert_eq!(
            redact("failed: mongodb://alice:s3cret@db1:27017,db2/x?tls=true oops"),
            "failed: mongodb://<credentials>@db1:27017,db2/x?tls=true oops"
        );
        assert_eq!(
            redact("mongodb+srv://u:p@h"),
            "mongodb+srv://<credentials>@h"
        );
        assert_eq!(redact("mongodb://h:1/"), "mongodb://h:1/");
        assert_eq!(redact("no uri here"), "no uri here");
        assert!(!redact("x mongodb://a:b@c y mongodb://d:e@f").contains(":b@"));
    }
}
