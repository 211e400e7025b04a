//! Leases (PROTOCOLS.md §2-§3): named, time-bounded exclusive ownership stored as one document
//! per (namespace, name), with start and duration in global time.
//!
//! # Layout
//! - this module: the lease document schema ([`LeaseDoc`]) and vocabulary ([`Epoch`], [`Term`]);
//! - [`store`]: the store client: cache, refresh, claim, extend, expire (§2.3-§2.4);
//! - [`keep`]: when a holder renews and what a renewal's answer means (leadership, kept leases);
//! - [`manager`]: the manager actor over one store client: claim-or-extend, tokens,
//!   wait-until-expired, expiry scheduling (§3).
//!
//! # Where Tenure goes further than the reference
//! Every lease carries a **fencing epoch**. Expiry does not delete the document: it clears the
//! term and keeps the epoch (a *vacant* document), and the next claim swaps the vacant version for
//! a held one with `epoch + 1`. So epochs strictly increase across holders and are never reused,
//! even for a claim delayed in flight. A holder may also **release** its term early: a
//! compare-and-swap from the exact version it holds to a vacant one marked `released_by` (the
//! holder), so a release never ends another holder's term, nor a later term of its own.
//! Ownership moves only through a vacant document (L2): expired, or released by its holder.

pub mod keep;
pub mod manager;
pub mod store;

pub use manager::{
    LeaseManager, ManagerConfig, ManagerError, ManagerOutput, RequestId, RetryConfig,
};
pub use store::{CallOn, LeaseInfo, LeaseStore, StoreError};

use crate::substrate::{fields, Collection, CorruptDocument, Document, Fields, Value};
use crate::time::GlobalTime;
use crate::validate::check_name;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A fencing epoch: strictly increases every time a lease changes holder.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}

/// One holder's term: who holds the lease, from when, for how long (all in global time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Term {
    /// The holder.
    pub holder: String,
    /// Global time written by the last claim or extension.
    pub start: GlobalTime,
    /// The lease is valid until global time `start + duration`.
    pub duration: Duration,
    /// The store client that last wrote the term.
    pub writer: String,
}

impl Term {
    /// The global expiry `start + duration`: the lease may be expired once global time is
    /// strictly later.
    pub fn expiry(&self) -> GlobalTime {
        self.start.after(self.duration)
    }
}

/// A decoded lease document.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseDoc {
    /// The lease name.
    pub name: String,
    /// The epoch of the current (or, if vacant, the last) term.
    pub epoch: Epoch,
    /// The current term; `None` once expired or released (a vacant document).
    pub term: Option<Term>,
    /// The last writer (the expirer or releaser, when vacant).
    pub writer: String,
    /// On a vacant document whose last term its holder released: that holder (the term ended
    /// before its expiry, by its holder's choice). `None` on held and expired documents.
    pub released_by: Option<String>,
}

/// The fencing rule of guarded writes: a write guarded by `epoch` may change a document last
/// fenced with `stored` only if no later epoch has written it (`stored ≤ epoch`; a document
/// never fenced admits any epoch). The adapter's guarded update is this rule as a filter
/// (`{field: {$not: {$gt: epoch}}}`), and F1 checks that it held.
pub fn fence_admits(stored: Option<Epoch>, epoch: Epoch) -> bool {
    stored.is_none_or(|s| s <= epoch)
}

/// The `_id` of the lease `name` in `namespace`: `"<namespace>#<name>#"`. Valid names contain
/// no `#`, so ids cannot collide.
pub fn lease_id(namespace: &str, name: &str) -> String {
    format!("{namespace}#{name}#")
}

/// The lease name an `_id` stands for (its last `#`-separated part; names contain no `#`),
/// or `None` for an `_id` that is no lease's.
pub fn lease_name_of(id: &str) -> Option<&str> {
    let (_, name) = id.strip_suffix('#')?.rsplit_once('#')?;
    check_name("lease name", name).ok().map(|()| name)
}

const C: Collection = Collection::Leases;

impl LeaseDoc {
    /// Decodes and strictly validates a document of `namespace` (PROTOCOLS.md §2.1): the id
    /// must match, names valid, `duration > 0`, epoch positive.
    pub fn decode(doc: &Document, namespace: &str) -> Result<LeaseDoc, CorruptDocument> {
        let bad = |r: String| doc.corrupt_because(C, r);
        let ns = doc.str(C, "namespace")?;
        if ns != namespace {
            return Err(bad(format!("namespace {ns:?} is not {namespace:?}")));
        }
        let name = doc.str(C, "name")?.to_owned();
        check_name("lease name", &name).map_err(|e| bad(e.to_string()))?;
        if !doc.id.ends_with(&lease_id(namespace, &name)) {
            return Err(bad(format!(
                "_id does not end with {:?}",
                lease_id(namespace, &name)
            )));
        }
        let epoch = Epoch(doc.uint(C, "epoch")?);
        if epoch.0 == 0 {
            return Err(bad("epoch must be positive".to_owned()));
        }
        let writer = doc.str(C, "writer")?.to_owned();
        check_name("writer", &writer).map_err(|e| bad(e.to_string()))?;
        let released_by = match doc.get("released_by") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let by = doc.str(C, "released_by")?.to_owned();
                check_name("released_by", &by).map_err(|e| bad(e.to_string()))?;
                Some(by)
            }
        };
        let term = match doc.get("holder") {
            None | Some(Value::Null) => None,
            Some(_) => {
                let holder = doc.str(C, "holder")?.to_owned();
                check_name("holder", &holder).map_err(|e| bad(e.to_string()))?;
                let start = GlobalTime(doc.uint(C, "start")?);
                let duration = doc.uint(C, "duration")?;
                if duration == 0 {
                    return Err(bad("duration must be positive".to_owned()));
                }
                Some(Term {
                    holder,
                    start,
                    duration: Duration::from_nanos(duration),
                    writer: writer.clone(),
                })
            }
        };
        if term.is_some() && released_by.is_some() {
            return Err(bad("a held lease cannot be released_by anyone".to_owned()));
        }
        Ok(LeaseDoc {
            name,
            epoch,
            term,
            writer,
            released_by,
        })
    }

    /// The document for this lease in `namespace`.
    pub fn encode(&self, namespace: &str) -> Document {
        let mut f = fields([
            ("namespace", namespace.into()),
            ("name", self.name.as_str().into()),
            ("epoch", Value::from(self.epoch.0)),
            ("writer", self.writer.as_str().into()),
        ]);
        if let Some(t) = &self.term {
            f.extend(term_fields(t));
        }
        if let Some(by) = &self.released_by {
            f.insert("released_by".to_owned(), by.as_str().into());
        }
        Document::new(lease_id(namespace, &self.name), f)
    }

    /// The fields that identify this exact version, asserted by every write that replaces it.
    pub fn version(&self) -> Fields {
        let mut f = fields([
            ("epoch", Value::from(self.epoch.0)),
            ("writer", self.writer.as_str().into()),
        ]);
        match &self.term {
            Some(t) => f.extend(term_fields(t)),
            None => {
                f.insert("holder".to_owned(), Value::Null);
            }
        }
        f
    }

    /// The holder, if held.
    pub fn holder(&self) -> Option<&str> {
        self.term.as_ref().map(|t| t.holder.as_str())
    }

    /// Whether this is `holder`'s term of `epoch`: what a release of that term must find to
    /// vacate it.
    pub fn is_term_of(&self, holder: &str, epoch: Epoch) -> bool {
        self.epoch == epoch && self.holder() == Some(holder)
    }

    /// Whether `holder`'s term of `epoch` is over in this document: a later epoch, or that
    /// epoch vacant. (A document of an earlier epoch says nothing: it is stale.)
    pub fn has_ended(&self, epoch: Epoch) -> bool {
        self.epoch > epoch || (self.epoch == epoch && self.term.is_none())
    }
}

fn term_fields(t: &Term) -> Fields {
    fields([
        ("holder", t.holder.as_str().into()),
        ("start", Value::from(t.start.0)),
        ("duration", Value::from(crate::time::nanos(t.duration))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> LeaseDoc {
        LeaseDoc {
            name: "mysql".into(),
            epoch: Epoch(3),
            term: Some(Term {
                holder: "mysql-0".into(),
                start: GlobalTime(10),
                duration: Duration::from_secs(60),
                writer: "ctl-0".into(),
            }),
            writer: "ctl-0".into(),
            released_by: None,
        }
    }

    #[test]
    fn round_trip_held_vacant_and_released() {
        let d = held();
        assert_eq!(LeaseDoc::decode(&d.encode("app"), "app"), Ok(d.clone()));
        let v = LeaseDoc {
            term: None,
            ..d.clone()
        };
        assert_eq!(LeaseDoc::decode(&v.encode("app"), "app"), Ok(v.clone()));
        let r = LeaseDoc {
            released_by: Some("mysql-0".into()),
            ..v
        };
        assert_eq!(LeaseDoc::decode(&r.encode("app"), "app"), Ok(r));
        let held_and_released = LeaseDoc {
            released_by: Some("mysql-0".into()),
            ..d
        };
        let e = LeaseDoc::decode(&held_and_released.encode("app"), "app").unwrap_err();
        assert!(e.to_string().contains("released_by"), "{e}");
    }

    #[test]
    fn corrupt_documents_name_their_id() {
        let mut doc = held().encode("app");
        doc.fields.insert("duration".into(), Value::Int(0));
        let e = LeaseDoc::decode(&doc, "app").unwrap_err();
        assert_eq!(e.id, "app#mysql#");
        assert!(
            e.to_string().contains("app#mysql#") && e.to_string().contains("duration"),
            "{e}"
        );
        let mut doc = held().encode("app");
        doc.fields.insert("holder".into(), Value::Str("a b".into()));
        assert!(LeaseDoc::decode(&doc, "app").is_err());
        let foreign = Document::new("app#x#", fields([("hello", "world".into())]));
        assert!(LeaseDoc::decode(&foreign, "app")
            .unwrap_err()
            .to_string()
            .contains("namespace"));
        assert!(LeaseDoc::decode(&held().encode("other"), "app").is_err());
    }
}
