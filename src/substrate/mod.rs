//! The substrate: the store as the protocols see it.
//!
//! Documents are keyed by `_id` within a [`Collection`]; operations are plain data ([`Op`]) that
//! an executor runs and answers with an [`OpResult`]. Each operation maps to exactly one MongoDB
//! command in the adapter, and to one atomic step of [`MemoryStore`], the reference
//! implementation (linearizable, single-document atomic) used by tests, models and the simulator.
//!
//! Field paths in filters and updates may be dotted one level deep (`alive.1f`), as in MongoDB.

mod memory;

pub use memory::MemoryStore;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use thiserror::Error;

/// The logical collections Tenure uses. The adapter maps each to a configured MongoDB
/// collection name; the core never spells collection names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Collection {
    /// The global clock: one document `{_id: "g", time}` (PROTOCOLS.md §1.1).
    Clock,
    /// Lease documents, one per (namespace, name) (PROTOCOLS.md §2.1).
    Leases,
    /// Presence sequence counters, one per model (PROTOCOLS.md §5.1, `B.seqs`).
    PresenceSeqs,
    /// Presence beings: sequence to key (`B.beings`).
    PresenceBeings,
    /// Presence ping slots (`B.pings`).
    PresencePings,
}

impl Collection {
    /// Every collection, for executors that set them all up.
    pub const ALL: [Collection; 5] = [
        Collection::Clock,
        Collection::Leases,
        Collection::PresenceSeqs,
        Collection::PresenceBeings,
        Collection::PresencePings,
    ];
}

/// A field value: the small subset of BSON the protocols store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Value {
    /// BSON null. In a filter, it matches a missing field too (MongoDB semantics).
    Null,
    /// BSON int64.
    Int(i64),
    /// BSON string.
    Str(String),
    /// An embedded document.
    Map(BTreeMap<String, Value>),
    /// A stored value of a type Tenure never writes (a double, an array, ...), by its type's
    /// name, as an executor read it. Decoders report it as a [`CorruptDocument`] naming the
    /// document, so damage or another application's data costs only that document; no actor
    /// ever writes one.
    Foreign(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    /// Saturates at `i64::MAX`: validated times and counts stay far below it.
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

/// Field name (or one-level dotted path) to value.
pub type Fields = BTreeMap<String, Value>;

/// Builds [`Fields`] from pairs.
pub fn fields<const N: usize>(pairs: [(&str, Value); N]) -> Fields {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A stored document.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Document {
    /// The `_id`, always a string in Tenure's schemas.
    pub id: String,
    /// Every other field.
    pub fields: Fields,
}

/// A document that does not have the shape its collection requires. Never deleted or overwritten
/// by Tenure: it may belong to someone else.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[error("corrupt {collection:?} document {id:?}: {reason}; Tenure will not touch it — remove or repair it by hand if it is not another application's")]
pub struct CorruptDocument {
    /// Where it was found.
    pub collection: Collection,
    /// Its `_id`.
    pub id: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Document {
    /// A document with the given id and fields.
    pub fn new(id: impl Into<String>, fields: Fields) -> Document {
        Document {
            id: id.into(),
            fields,
        }
    }

    /// The value at `path` (one-level dotted paths allowed), if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        match path.split_once('.') {
            None => self.fields.get(path),
            Some((outer, inner)) => match self.fields.get(outer) {
                Some(Value::Map(m)) => m.get(inner),
                _ => None,
            },
        }
    }

    fn corrupt(&self, collection: Collection, reason: String) -> CorruptDocument {
        CorruptDocument {
            collection,
            id: self.id.clone(),
            reason,
        }
    }

    /// The int64 at `field`, or a [`CorruptDocument`] naming this document.
    pub fn int(&self, collection: Collection, field: &str) -> Result<i64, CorruptDocument> {
        match self.get(field) {
            Some(Value::Int(v)) => Ok(*v),
            Some(other) => Err(self.corrupt(
                collection,
                format!("field {field:?} is {other:?}, expected an integer"),
            )),
            None => Err(self.corrupt(collection, format!("field {field:?} is missing"))),
        }
    }

    /// The non-negative int64 at `field` as a `u64`.
    pub fn uint(&self, collection: Collection, field: &str) -> Result<u64, CorruptDocument> {
        let v = self.int(collection, field)?;
        u64::try_from(v)
            .map_err(|_| self.corrupt(collection, format!("field {field:?} is negative ({v})")))
    }

    /// The string at `field`, or a [`CorruptDocument`] naming this document.
    pub fn str(&self, collection: Collection, field: &str) -> Result<&str, CorruptDocument> {
        match self.get(field) {
            Some(Value::Str(v)) => Ok(v),
            Some(other) => Err(self.corrupt(
                collection,
                format!("field {field:?} is {other:?}, expected a string"),
            )),
            None => Err(self.corrupt(collection, format!("field {field:?} is missing"))),
        }
    }

    /// The embedded document at `field`; a missing field reads as empty.
    pub fn map(
        &self,
        collection: Collection,
        field: &str,
    ) -> Result<BTreeMap<String, Value>, CorruptDocument> {
        match self.get(field) {
            Some(Value::Map(m)) => Ok(m.clone()),
            None | Some(Value::Null) => Ok(BTreeMap::new()),
            Some(other) => Err(self.corrupt(
                collection,
                format!("field {field:?} is {other:?}, expected a document"),
            )),
        }
    }

    /// A [`CorruptDocument`] error for this document with a custom reason.
    pub fn corrupt_because(
        &self,
        collection: Collection,
        reason: impl Into<String>,
    ) -> CorruptDocument {
        self.corrupt(collection, reason.into())
    }
}

/// How fresh a read must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadConcern {
    /// Reflects every write acknowledged before the read began. Decision reads use this.
    Linearizable,
    /// Reflects majority-committed writes; may miss the newest ones.
    Majority,
    /// Whatever the node has; may be stale or later rolled back.
    Local,
}

/// Which documents a multi-document read or delete addresses.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Selector {
    /// Exactly these `_id`s (MongoDB `{_id: {$in: [...]}}`).
    Ids(Vec<String>),
    /// Every document whose `_id` starts with the prefix (a model's presence documents).
    IdPrefix(String),
    /// Every document whose `field` equals the value (a lease namespace).
    FieldEq(String, Value),
    /// Every document with the `_id` prefix whose integer `field` is below `below` (old slots).
    IdPrefixFieldBelow {
        /// The `_id` prefix.
        prefix: String,
        /// The integer field compared.
        field: String,
        /// Exclusive upper bound.
        below: i64,
    },
}

impl Selector {
    /// Whether `doc` is selected.
    pub fn matches(&self, doc: &Document) -> bool {
        match self {
            Selector::Ids(ids) => ids.contains(&doc.id),
            Selector::IdPrefix(p) => doc.id.starts_with(p.as_str()),
            Selector::FieldEq(f, v) => doc.get(f) == Some(v),
            Selector::IdPrefixFieldBelow {
                prefix,
                field,
                below,
            } => {
                doc.id.starts_with(prefix.as_str())
                    && matches!(doc.get(field), Some(Value::Int(v)) if v < below)
            }
        }
    }
}

/// The modifications of one update; each part maps to a MongoDB update operator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Update {
    /// `$set`.
    pub set: Fields,
    /// `$unset`.
    pub unset: Vec<String>,
    /// `$inc` (integer values only).
    pub inc: Fields,
    /// `$bit: {or}` (integer values only). Idempotent: re-sending it changes nothing.
    pub bit_or: Fields,
}

/// One store operation, as data. Each maps to a single MongoDB command.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read one document by `_id`. Reply: [`Reply::Doc`].
    Read {
        /// Where.
        coll: Collection,
        /// Which.
        id: String,
        /// How fresh.
        concern: ReadConcern,
    },
    /// Read every selected document, ordered by `_id`. Reply: [`Reply::Docs`].
    Find {
        /// Where.
        coll: Collection,
        /// Which.
        selector: Selector,
        /// How fresh.
        concern: ReadConcern,
    },
    /// Insert if absent. A present `_id` gives [`OpResult::DuplicateKey`]. Reply: [`Reply::Done`].
    Insert {
        /// Where.
        coll: Collection,
        /// What.
        doc: Document,
    },
    /// Update the document if every `expect` field matches (a compare-and-swap).
    /// A mismatch, or a missing document without `upsert`, gives
    /// [`OpResult::PreconditionFailed`]. Reply: [`Reply::Doc`] with the new version if
    /// `return_new` (find-and-modify), else [`Reply::Done`].
    Update {
        /// Where.
        coll: Collection,
        /// Which.
        id: String,
        /// Fields that must equal these values (`Null` matches a missing field).
        expect: Fields,
        /// What to change.
        update: Update,
        /// Create the document (from `expect` and `update`) if it is missing.
        upsert: bool,
        /// Answer with the updated document.
        return_new: bool,
    },
    /// Delete the document if every `expect` field matches; otherwise
    /// [`OpResult::PreconditionFailed`]. Reply: [`Reply::Done`].
    Delete {
        /// Where.
        coll: Collection,
        /// Which.
        id: String,
        /// Fields that must equal these values.
        expect: Fields,
    },
    /// Delete every selected document. Reply: [`Reply::Count`].
    DeleteMany {
        /// Where.
        coll: Collection,
        /// Which.
        selector: Selector,
    },
    /// Unordered bulk of upserts by `_id`, each unconditional. Reply: [`Reply::Count`] of
    /// documents written.
    BulkUpsert {
        /// Where.
        coll: Collection,
        /// `_id` and update of each.
        updates: Vec<(String, Update)>,
    },
    /// The server's wall-clock time, in nanoseconds since the Unix epoch. Presence measures its
    /// offset to local time once with it. Reply: [`Reply::Time`].
    ServerTime,
}

impl Op {
    /// The collection the operation reads or writes; `None` for [`Op::ServerTime`], which
    /// touches no document.
    pub fn collection(&self) -> Option<Collection> {
        match self {
            Op::Read { coll, .. }
            | Op::Find { coll, .. }
            | Op::Insert { coll, .. }
            | Op::Update { coll, .. }
            | Op::Delete { coll, .. }
            | Op::DeleteMany { coll, .. }
            | Op::BulkUpsert { coll, .. } => Some(*coll),
            Op::ServerTime => None,
        }
    }

    /// Whether the operation may change the store (and so be ambiguous when its reply is lost).
    pub fn is_write(&self) -> bool {
        !matches!(self, Op::Read { .. } | Op::Find { .. } | Op::ServerTime)
    }

    /// A short verb for timelines and logs.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Read { .. } => "read",
            Op::Find { .. } => "find",
            Op::Insert { .. } => "insert",
            Op::Update { .. } => "update",
            Op::Delete { .. } => "delete",
            Op::DeleteMany { .. } => "delete-many",
            Op::BulkUpsert { .. } => "bulk-upsert",
            Op::ServerTime => "server-time",
        }
    }
}

/// The answer to a successful operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    /// Applied; nothing to return.
    Done,
    /// One document, or `None` if absent.
    Doc(Option<Document>),
    /// Several documents, ordered by `_id`.
    Docs(Vec<Document>),
    /// How many documents were affected.
    Count(u64),
    /// A server time in nanoseconds.
    Time(u64),
}

/// What became of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpResult {
    /// Applied (or read) exactly once.
    Ok(Reply),
    /// Not applied: an `expect` field did not match, or the document was missing.
    PreconditionFailed,
    /// Not applied: an insert found its `_id` taken.
    DuplicateKey,
    /// The reply was lost (timeout, network error, write concern error after the write): the
    /// operation may or may not have been applied, and the caller must find out by re-reading.
    Unknown,
    /// Not applied, for a reason the caller cannot fix by retrying at once (a type mismatch, an
    /// unavailable server that refused before acting).
    Failed(StoreFailure),
}

/// Why a store refused an operation: a message for people and, from a real store, the driver's
/// own error as the [`std::error::Error::source`], so that a caller several layers up can still
/// match on its kind and labels (retryable or fatal).
///
/// Two failures are equal (and hash alike) when their messages are: models and histories compare
/// what was said, and a driver error is neither comparable nor serializable. Serialized, a
/// failure is its message; read back, it has no source.
#[derive(Clone, Debug)]
pub struct StoreFailure {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl StoreFailure {
    /// A failure with only a message (the reference store, a test, a timeout).
    pub fn new(message: impl Into<String>) -> Self {
        StoreFailure {
            message: message.into(),
            source: None,
        }
    }

    /// A failure that keeps the error which caused it.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreFailure {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The same failure, its message prefixed by what the caller was doing; the source is kept.
    pub fn in_context(&self, context: &str) -> Self {
        StoreFailure {
            message: format!("{context}: {}", self.message),
            source: self.source.clone(),
        }
    }

    /// What the store said.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for StoreFailure {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for StoreFailure {}

impl std::hash::Hash for StoreFailure {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.message.hash(state);
    }
}

impl From<String> for StoreFailure {
    fn from(message: String) -> Self {
        StoreFailure::new(message)
    }
}

impl From<&str> for StoreFailure {
    fn from(message: &str) -> Self {
        StoreFailure::new(message)
    }
}

impl Serialize for StoreFailure {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.message)
    }
}

impl<'de> Deserialize<'de> for StoreFailure {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(StoreFailure::new)
    }
}

impl OpResult {
    /// This result as the cause of a store error: a failure keeps its source (said as
    /// `failed: ...`, as [`fmt::Display`] says it); any other result is said as it is.
    pub fn failure(&self) -> StoreFailure {
        match self {
            OpResult::Failed(f) => f.in_context("failed"),
            other => StoreFailure::new(other.to_string()),
        }
    }
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Ok(_) => f.write_str("ok"),
            OpResult::PreconditionFailed => f.write_str("precondition failed"),
            OpResult::DuplicateKey => f.write_str("duplicate key"),
            OpResult::Unknown => f.write_str("outcome unknown"),
            OpResult::Failed(m) => write!(f, "failed: {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[derive(Debug, Error)]
    #[error("driver says no")]
    struct Driver;

    /// The source survives every layer a store error passes through, while equality, hashing
    /// and serialization see only the message (models compare states; a driver is not data).
    #[test]
    fn a_store_failure_keeps_its_source_through_context() {
        let failed = OpResult::Failed(StoreFailure::caused_by("update: no", Driver));
        let cause = failed.failure().in_context("writing lease \"db\"");
        assert_eq!(
            cause.to_string(),
            "writing lease \"db\": failed: update: no"
        );
        let source = cause.source().expect("the driver's error is kept");
        assert!(source.downcast_ref::<Driver>().is_some());
        assert_eq!(failed, OpResult::Failed(StoreFailure::new("update: no")));
        let json = serde_json::to_string(&failed).expect("serialize");
        let back: OpResult = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, failed);
        assert!(OpResult::Unknown.failure().source().is_none());
    }
}
