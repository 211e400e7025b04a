//! The reference store: linearizable and single-document atomic, in memory.
//!
//! Every [`Op`] is applied in one step, so a model or simulator that calls [`MemoryStore::apply`]
//! gets exactly the guarantees the protocols assume of MongoDB with majority writes and
//! linearizable reads. Faults (lost replies, stale reads, non-atomic compare-and-swap, rollback)
//! are the executors' business, layered on top.

use super::{Collection, Document, Fields, Op, OpResult, Reply, Selector, Update, Value};
use std::collections::BTreeMap;

/// Documents by (collection, `_id`), plus the server's wall clock for [`Op::ServerTime`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MemoryStore {
    docs: BTreeMap<(Collection, String), Document>,
    server_time: u64,
}

impl MemoryStore {
    /// An empty store whose server clock reads 0.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Sets what [`Op::ServerTime`] answers (the executor owns real time).
    pub fn set_server_time(&mut self, nanos: u64) {
        self.server_time = nanos;
    }

    /// The document at (`coll`, `id`), if any.
    pub fn get(&self, coll: Collection, id: &str) -> Option<&Document> {
        self.docs.get(&(coll, id.to_owned()))
    }

    /// Every document of `coll`, ordered by `_id` (a range of the map: documents are keyed by
    /// collection first, so other collections are never visited).
    pub fn documents(&self, coll: Collection) -> impl Iterator<Item = &Document> {
        self.docs
            .range((coll, String::new())..)
            .take_while(move |((c, _), _)| *c == coll)
            .map(|(_, d)| d)
    }

    /// Stores `doc` unconditionally: for tests that plant foreign or corrupt documents.
    pub fn put(&mut self, coll: Collection, doc: Document) {
        self.docs.insert((coll, doc.id.clone()), doc);
    }

    /// Whether the `expect` fields of a conditional operation currently match. Executors that
    /// model a non-atomic compare-and-swap call this, then [`MemoryStore::apply_unchecked`] later.
    pub fn expect_holds(&self, op: &Op) -> bool {
        match op {
            Op::Update {
                coll,
                id,
                expect,
                upsert,
                ..
            } => match self.get(*coll, id) {
                Some(doc) => expect_matches(doc, expect),
                None => *upsert,
            },
            Op::Delete { coll, id, expect } => self
                .get(*coll, id)
                .is_some_and(|d| expect_matches(d, expect)),
            _ => true,
        }
    }

    /// Applies a conditional write without re-checking its `expect` fields: the second half of a
    /// non-atomic compare-and-swap (FerretDB's update, findAndModify and delete, SUBSTRATES.md).
    pub fn apply_unchecked(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Update {
                coll,
                id,
                update,
                upsert,
                return_new,
                ..
            } => self.update(
                *coll,
                id,
                &Fields::new(),
                update,
                *upsert || self.get(*coll, id).is_some(),
                *return_new,
            ),
            Op::Delete { coll, id, .. } => {
                self.docs.remove(&(*coll, id.clone()));
                OpResult::Ok(Reply::Done)
            }
            other => self.apply(other),
        }
    }

    /// Answers a read-only operation (read, find, server time) through `&self`, so executors
    /// that share one store between many states need not copy it to read. `None` for writes.
    pub fn query(&self, op: &Op) -> Option<OpResult> {
        Some(match op {
            Op::Read { coll, id, .. } => OpResult::Ok(Reply::Doc(self.get(*coll, id).cloned())),
            // By `_id` when the selector names them (a watcher asks for 1,000 beings at a time),
            // otherwise a scan; either way in `_id` order.
            Op::Find {
                coll,
                selector: Selector::Ids(ids),
                ..
            } => {
                let mut docs: Vec<Document> = ids
                    .iter()
                    .filter_map(|id| self.get(*coll, id))
                    .cloned()
                    .collect();
                docs.sort_by(|a, b| a.id.cmp(&b.id));
                docs.dedup_by(|a, b| a.id == b.id);
                OpResult::Ok(Reply::Docs(docs))
            }
            Op::Find { coll, selector, .. } => OpResult::Ok(Reply::Docs(
                self.documents(*coll)
                    .filter(|d| selector.matches(d))
                    .cloned()
                    .collect(),
            )),
            Op::ServerTime => OpResult::Ok(Reply::Time(self.server_time)),
            Op::Insert { .. }
            | Op::Update { .. }
            | Op::Delete { .. }
            | Op::DeleteMany { .. }
            | Op::BulkUpsert { .. } => return None,
        })
    }

    /// Applies `op` atomically and answers it.
    pub fn apply(&mut self, op: &Op) -> OpResult {
        if let Some(answer) = self.query(op) {
            return answer;
        }
        match op {
            Op::Insert { coll, doc } => {
                let key = (*coll, doc.id.clone());
                if self.docs.contains_key(&key) {
                    return OpResult::DuplicateKey;
                }
                self.docs.insert(key, doc.clone());
                OpResult::Ok(Reply::Done)
            }
            Op::Update {
                coll,
                id,
                expect,
                update,
                upsert,
                return_new,
            } => self.update(*coll, id, expect, update, *upsert, *return_new),
            Op::Delete { coll, id, expect } => {
                let key = (*coll, id.clone());
                match self.docs.get(&key) {
                    Some(doc) if expect_matches(doc, expect) => {
                        self.docs.remove(&key);
                        OpResult::Ok(Reply::Done)
                    }
                    _ => OpResult::PreconditionFailed,
                }
            }
            Op::DeleteMany { coll, selector } => {
                // Only `coll`'s documents are visited (by `_id` when the selector names them).
                let doomed: Vec<(Collection, String)> = match selector {
                    Selector::Ids(ids) => ids
                        .iter()
                        .map(|id| (*coll, id.clone()))
                        .filter(|k| self.docs.contains_key(k))
                        .collect(),
                    _ => self
                        .documents(*coll)
                        .filter(|d| selector.matches(d))
                        .map(|d| (*coll, d.id.clone()))
                        .collect(),
                };
                let mut count = 0;
                for key in doomed {
                    count += u64::from(self.docs.remove(&key).is_some());
                }
                OpResult::Ok(Reply::Count(count))
            }
            Op::BulkUpsert { coll, updates } => {
                // Each update applies to a copy of its document; the copies are stored only
                // once every one succeeded, so a type error leaves the store untouched (without
                // copying the store: a bulk touches a few documents of many).
                let mut staged: BTreeMap<&str, Document> = BTreeMap::new();
                for (id, update) in updates {
                    let mut doc = match staged.remove(id.as_str()) {
                        Some(d) => d,
                        None => self
                            .docs
                            .get(&(*coll, id.clone()))
                            .cloned()
                            .unwrap_or_else(|| Document::new(id.as_str(), Fields::new())),
                    };
                    if let Err(m) = apply_update(&mut doc, update) {
                        return OpResult::Failed(m.into());
                    }
                    staged.insert(id.as_str(), doc);
                }
                for (id, doc) in staged {
                    self.docs.insert((*coll, id.to_owned()), doc);
                }
                OpResult::Ok(Reply::Count(updates.len() as u64))
            }
            // Answered by `query` above.
            Op::Read { .. } | Op::Find { .. } | Op::ServerTime => OpResult::Unknown,
        }
    }

    fn update(
        &mut self,
        coll: Collection,
        id: &str,
        expect: &Fields,
        update: &Update,
        upsert: bool,
        return_new: bool,
    ) -> OpResult {
        let key = (coll, id.to_owned());
        let mut doc = match self.docs.get(&key) {
            Some(doc) if expect_matches(doc, expect) => doc.clone(),
            Some(_) => return OpResult::PreconditionFailed,
            None if upsert => {
                // MongoDB seeds an upserted document with the filter's equality fields.
                let seed = expect
                    .iter()
                    .filter(|(_, v)| **v != Value::Null)
                    .map(|(k, v)| (k.clone(), v.clone()));
                let mut d = Document::new(id, Fields::new());
                for (k, v) in seed {
                    if let Err(m) = set_path(&mut d, &k, v) {
                        return OpResult::Failed(m.into());
                    }
                }
                d
            }
            None => return OpResult::PreconditionFailed,
        };
        if let Err(m) = apply_update(&mut doc, update) {
            return OpResult::Failed(m.into());
        }
        self.docs.insert(key, doc.clone());
        OpResult::Ok(if return_new {
            Reply::Doc(Some(doc))
        } else {
            Reply::Done
        })
    }
}

/// Whether every expected field of `doc` has the expected value (`Null` also matches absence).
pub(crate) fn expect_matches(doc: &Document, expect: &Fields) -> bool {
    expect
        .iter()
        .all(|(path, want)| match (doc.get(path), want) {
            (None, Value::Null) => true,
            (got, want) => got == Some(want),
        })
}

fn set_path(doc: &mut Document, path: &str, v: Value) -> Result<(), String> {
    match path.split_once('.') {
        None => {
            doc.fields.insert(path.to_owned(), v);
        }
        Some((outer, inner)) => {
            let slot = doc
                .fields
                .entry(outer.to_owned())
                .or_insert_with(|| Value::Map(BTreeMap::new()));
            let Value::Map(m) = slot else {
                return Err(format!(
                    "cannot set {path:?} in document {:?}: {outer:?} is not a document",
                    doc.id
                ));
            };
            m.insert(inner.to_owned(), v);
        }
    }
    Ok(())
}

fn unset_path(doc: &mut Document, path: &str) {
    match path.split_once('.') {
        None => {
            doc.fields.remove(path);
        }
        Some((outer, inner)) => {
            if let Some(Value::Map(m)) = doc.fields.get_mut(outer) {
                m.remove(inner);
            }
        }
    }
}

fn combine(
    doc: &mut Document,
    path: &str,
    by: &Value,
    op: &str,
    f: fn(i64, i64) -> i64,
) -> Result<(), String> {
    let Value::Int(by) = by else {
        return Err(format!("{op} of {path:?} by a non-integer"));
    };
    let cur = match doc.get(path) {
        None => 0,
        Some(Value::Int(v)) => *v,
        Some(other) => {
            return Err(format!(
                "{op} of {path:?} in document {:?}: field is {other:?}",
                doc.id
            ))
        }
    };
    set_path(doc, path, Value::Int(f(cur, *by)))
}

fn apply_update(doc: &mut Document, update: &Update) -> Result<(), String> {
    for (path, v) in &update.set {
        set_path(doc, path, v.clone())?;
    }
    for path in &update.unset {
        unset_path(doc, path);
    }
    for (path, by) in &update.inc {
        combine(doc, path, by, "$inc", i64::wrapping_add)?;
    }
    for (path, by) in &update.bit_or {
        combine(doc, path, by, "$bit or", |a, b| a | b)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substrate::{fields, ReadConcern};

    fn read(s: &mut MemoryStore, id: &str) -> Option<Document> {
        match s.apply(&Op::Read {
            coll: Collection::Clock,
            id: id.into(),
            concern: ReadConcern::Linearizable,
        }) {
            OpResult::Ok(Reply::Doc(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn insert_is_insert_if_absent() {
        let mut s = MemoryStore::new();
        let doc = Document::new("a", fields([("x", Value::Int(1))]));
        let op = Op::Insert {
            coll: Collection::Clock,
            doc,
        };
        assert_eq!(s.apply(&op), OpResult::Ok(Reply::Done));
        assert_eq!(s.apply(&op), OpResult::DuplicateKey);
    }

    #[test]
    fn update_is_compare_and_swap() {
        let mut s = MemoryStore::new();
        s.put(
            Collection::Clock,
            Document::new("g", fields([("time", Value::Int(5))])),
        );
        let cas = |base: i64, to: i64| Op::Update {
            coll: Collection::Clock,
            id: "g".into(),
            expect: fields([("time", base.into())]),
            update: Update {
                set: fields([("time", to.into())]),
                ..Update::default()
            },
            upsert: false,
            return_new: false,
        };
        assert_eq!(s.apply(&cas(5, 7)), OpResult::Ok(Reply::Done));
        assert_eq!(s.apply(&cas(5, 9)), OpResult::PreconditionFailed);
        assert_eq!(read(&mut s, "g").unwrap().get("time"), Some(&Value::Int(7)));
        assert!(!s.expect_holds(&cas(5, 9)));
        // The non-atomic half writes regardless of the filter.
        assert_eq!(s.apply_unchecked(&cas(5, 9)), OpResult::Ok(Reply::Done));
        assert_eq!(read(&mut s, "g").unwrap().get("time"), Some(&Value::Int(9)));
    }

    #[test]
    fn bit_or_is_idempotent_and_inc_is_not() {
        let mut s = MemoryStore::new();
        let up = |u: Update| Op::BulkUpsert {
            coll: Collection::PresencePings,
            updates: vec![("m:30".into(), u)],
        };
        let or = Update {
            bit_or: fields([("alive.0", Value::Int(4))]),
            ..Update::default()
        };
        s.apply(&up(or.clone()));
        s.apply(&up(or));
        assert_eq!(
            s.get(Collection::PresencePings, "m:30")
                .unwrap()
                .get("alive.0"),
            Some(&Value::Int(4))
        );
        let inc = Update {
            inc: fields([("alive.0", Value::Int(4))]),
            ..Update::default()
        };
        s.apply(&up(inc));
        assert_eq!(
            s.get(Collection::PresencePings, "m:30")
                .unwrap()
                .get("alive.0"),
            Some(&Value::Int(8))
        );
    }

    #[test]
    fn upsert_seeds_from_filter_and_type_errors_change_nothing() {
        let mut s = MemoryStore::new();
        let op = crate::presence::PresenceConfig::new("m").next_seq_op();
        let OpResult::Ok(Reply::Doc(Some(d))) = s.apply(&op) else {
            panic!()
        };
        assert_eq!(d.get("seq"), Some(&Value::Int(1)));
        s.put(
            Collection::PresencePings,
            Document::new("x", fields([("alive", "oops".into())])),
        );
        let bad = Op::BulkUpsert {
            coll: Collection::PresencePings,
            updates: vec![
                (
                    "y".into(),
                    Update {
                        bit_or: fields([("alive.0", Value::Int(1))]),
                        ..Update::default()
                    },
                ),
                (
                    "x".into(),
                    Update {
                        bit_or: fields([("alive.0", Value::Int(1))]),
                        ..Update::default()
                    },
                ),
            ],
        };
        assert!(matches!(s.apply(&bad), OpResult::Failed(_)));
        assert!(s.get(Collection::PresencePings, "y").is_none());
    }

    #[test]
    fn selectors() {
        let mut s = MemoryStore::new();
        for (id, slot) in [("a:30", 30i64), ("a:60", 60), ("b:30", 30)] {
            s.put(
                Collection::PresencePings,
                Document::new(id, fields([("slot", Value::Int(slot))])),
            );
        }
        let del = Op::DeleteMany {
            coll: Collection::PresencePings,
            selector: Selector::IdPrefixFieldBelow {
                prefix: "a:".into(),
                field: "slot".into(),
                below: 60,
            },
        };
        assert_eq!(s.apply(&del), OpResult::Ok(Reply::Count(1)));
        let ids: Vec<_> = s
            .documents(Collection::PresencePings)
            .map(|d| d.id.clone())
            .collect();
        assert_eq!(ids, ["a:60", "b:30"]);
        // Find by ids: the present ones, in `_id` order, once each.
        let find = Op::Find {
            coll: Collection::PresencePings,
            selector: Selector::Ids(vec![
                "b:30".into(),
                "zz".into(),
                "a:60".into(),
                "b:30".into(),
            ]),
            concern: ReadConcern::Majority,
        };
        let OpResult::Ok(Reply::Docs(docs)) = s.apply(&find) else {
            panic!("find failed")
        };
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a:60", "b:30"]);
    }
}
