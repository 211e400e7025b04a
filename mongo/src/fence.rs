//! Fenced writes: a holder's writes to the user's own documents, refused once a later epoch
//! has written them. Shared by a lease's [`crate::Token`] and a leader's [`crate::Tenure`].

use crate::error::Error;
use crate::record;
use crate::substrate::Substrate;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use tenure::history::Operation;
use tenure::lease::{fence_admits, Epoch};

/// What a fenced write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fenced {
    /// The document matched and was written, stamped with this token's epoch.
    Written,
    /// A write from a later epoch got there first: this holder has been superseded.
    Superseded,
    /// No document matched the filter.
    NotFound,
    /// The document changed between the guarded write and the look that followed it (the
    /// fence now admits this epoch, but the write did not match): nothing was written; read
    /// and try again.
    Changed,
}

/// One holder's fence: its lease and the epoch of its term.
pub(crate) struct Fence<'a> {
    pub(crate) substrate: &'a Substrate,
    pub(crate) lease: &'a str,
    pub(crate) epoch: Epoch,
}

impl Fence<'_> {
    /// The fenced update of [`crate::Token::fenced_update_one`]; `valid` says whether the
    /// holder may still act (checked after the field name, before any I/O). Recorded, and
    /// bounded by the substrate's call bound.
    pub(crate) async fn update_one(
        &self,
        valid: bool,
        collection: &mongodb::Collection<BsonDocument>,
        fence_field: &str,
        filter: BsonDocument,
        update: BsonDocument,
    ) -> Result<Fenced, Error> {
        tenure::validate::check_name("fence field", fence_field)?;
        if !valid {
            return Ok(Fenced::Superseded);
        }
        let rec = self.substrate.recorder();
        let fenced_write = |accepted| Operation::FencedWrite {
            lease: self.lease.to_owned(),
            epoch: self.epoch,
            accepted,
        };
        let call = record::invoke(rec, || fenced_write(None));
        let result = self
            .substrate
            .bounded(
                "fenced_update_one",
                self.write(collection, fence_field, filter, update),
            )
            .await;
        let accepted = match &result {
            Ok(Fenced::Written) => Some(true),
            Ok(_) => Some(false),
            Err(_) => None,
        };
        record::complete(rec, call, accepted.is_none(), || fenced_write(accepted));
        result
    }

    async fn write(
        &self,
        collection: &mongodb::Collection<BsonDocument>,
        fence_field: &str,
        filter: BsonDocument,
        mut update: BsonDocument,
    ) -> Result<Fenced, Error> {
        let epoch = i64::try_from(self.epoch.0).unwrap_or(i64::MAX);
        let mut fenced = filter.clone();
        fenced.insert(fence_field, doc! { "$not": { "$gt": epoch } });
        let set = match update.get_document_mut("$set") {
            Ok(set) => set,
            Err(_) => {
                update.insert("$set", BsonDocument::new());
                update.get_document_mut("$set").map_err(|e| {
                    Error::Store(format!("the update's $set is not a document: {e}"))
                })?
            }
        };
        set.insert(fence_field, epoch);
        let written = collection
            .update_one(fenced, update)
            .await
            .map_err(|source| Error::Driver {
                context: "fenced update",
                source,
            })?;
        if written.matched_count > 0 {
            return Ok(Fenced::Written);
        }
        // Nothing matched: tell "a later epoch wrote it" from "no such document". The filter
        // above is the core's fencing rule (`tenure::lease::fence_admits`); a document that
        // matches the user's filter and is fenced against this epoch was superseded, and one
        // the rule admits changed between the two calls (so it is no longer what was meant).
        let exists = collection
            .find_one(filter)
            .await
            .map_err(|source| Error::Driver {
                context: "reading the document a fenced update did not match",
                source,
            })?;
        let fenced_with = |d: &BsonDocument| {
            let e = match d.get(fence_field)? {
                Bson::Int64(e) => *e,
                Bson::Int32(e) => i64::from(*e),
                _ => return None,
            };
            Some(Epoch(u64::try_from(e).unwrap_or(0)))
        };
        Ok(if let Some(d) = exists {
            if !fence_admits(fenced_with(&d), self.epoch) {
                Fenced::Superseded
            } else {
                Fenced::Changed
            }
        } else {
            Fenced::NotFound
        })
    }
}
