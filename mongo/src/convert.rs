//! The core's documents, filters and updates as BSON, and back.
//!
//! Tenure stores only int64, string, null and embedded documents. Anything else found in a
//! Tenure collection (a double, an array, a non-string `_id`) is someone else's data or damage:
//! it is reported as a [`CorruptDocument`] naming its `_id` and never rewritten.

use mongodb::bson::{doc, Bson, Document as BsonDocument};
use tenure::substrate::{Collection, CorruptDocument, Document, Fields, Selector, Update, Value};

/// A core value as BSON.
pub(crate) fn to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Int(i) => Bson::Int64(*i),
        Value::Str(s) => Bson::String(s.clone()),
        Value::Map(m) => Bson::Document(fields_to_bson(m)),
        Value::Foreign(t) => {
            // Unreachable: actors build every value they write from typed fields.
            debug_assert!(false, "a foreign value ({t}) was about to be written");
            Bson::Null
        }
    }
}

fn fields_to_bson(f: &Fields) -> BsonDocument {
    f.iter().map(|(k, v)| (k.clone(), to_bson(v))).collect()
}

/// A core document as BSON, `_id` first.
pub(crate) fn doc_to_bson(d: &Document) -> BsonDocument {
    let mut out = doc! { "_id": d.id.clone() };
    out.extend(fields_to_bson(&d.fields));
    out
}

/// A BSON value as a core value; a type Tenure never writes becomes [`Value::Foreign`], which
/// the core's decoders report as corrupt, naming the document.
fn from_bson(b: &Bson) -> Value {
    match b {
        Bson::Null => Value::Null,
        Bson::Int64(i) => Value::Int(*i),
        // Other drivers or the shell may write small integers as int32; the value is the same.
        Bson::Int32(i) => Value::Int(i64::from(*i)),
        Bson::String(s) => Value::Str(s.clone()),
        Bson::Document(d) => Value::Map(d.iter().map(|(k, v)| (k.clone(), from_bson(v))).collect()),
        other => Value::Foreign(format!("BSON {:?}", other.element_type())),
    }
}

/// A stored BSON document as a core document (values of foreign types as [`Value::Foreign`]),
/// or a [`CorruptDocument`] if its `_id` is not a string (no Tenure document's is).
pub(crate) fn doc_from_bson(
    coll: Collection,
    mut d: BsonDocument,
) -> Result<Document, CorruptDocument> {
    let corrupt = |id: String, reason: String| CorruptDocument {
        collection: coll,
        id,
        reason,
    };
    let id = match d.remove("_id") {
        Some(Bson::String(s)) => s,
        Some(other) => {
            return Err(corrupt(
                other.to_string(),
                format!(
                    "_id is a BSON {:?}, Tenure's ids are strings",
                    other.element_type()
                ),
            ))
        }
        None => return Err(corrupt("?".into(), "no _id".into())),
    };
    let fields = d.iter().map(|(k, v)| (k.clone(), from_bson(v))).collect();
    Ok(Document { id, fields })
}

/// `{_id: id, <expect>...}`: the filter of a compare-and-swap. `null` matches a missing field,
/// as in the core's reference store.
pub(crate) fn cas_filter(id: &str, expect: &Fields) -> BsonDocument {
    let mut f = doc! { "_id": id };
    f.extend(fields_to_bson(expect));
    f
}

/// The update operators of `u`. An empty update becomes `$set` of the `_id` to itself (a no-op
/// MongoDB accepts), since MongoDB refuses an update document with no operator.
pub(crate) fn update_to_bson(id: &str, u: &Update) -> BsonDocument {
    let mut out = BsonDocument::new();
    if !u.set.is_empty() {
        out.insert("$set", fields_to_bson(&u.set));
    }
    if !u.unset.is_empty() {
        let unset: BsonDocument = u
            .unset
            .iter()
            .map(|k| (k.clone(), Bson::from("")))
            .collect();
        out.insert("$unset", unset);
    }
    if !u.inc.is_empty() {
        out.insert("$inc", fields_to_bson(&u.inc));
    }
    if !u.bit_or.is_empty() {
        let bit: BsonDocument = u
            .bit_or
            .iter()
            .map(|(k, v)| (k.clone(), Bson::Document(doc! { "or": to_bson(v) })))
            .collect();
        out.insert("$bit", bit);
    }
    if out.is_empty() {
        out.insert("$set", doc! { "_id": id });
    }
    out
}

/// The smallest string above every string starting with `prefix` (ids are valid UTF-8 and
/// compared bytewise without a collation): `prefix` followed by the largest code point.
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}{}", char::MAX)
}

/// The filter selecting what `s` selects. Prefixes become `_id` ranges, which use the `_id`
/// index on every server (a regex may not).
pub(crate) fn selector_filter(s: &Selector) -> BsonDocument {
    match s {
        Selector::Ids(ids) => doc! { "_id": { "$in": ids.clone() } },
        Selector::IdPrefix(p) => doc! { "_id": { "$gte": p.clone(), "$lt": prefix_end(p) } },
        Selector::FieldEq(f, v) => doc! { f.clone(): to_bson(v) },
        Selector::IdPrefixFieldBelow {
            prefix,
            field,
            below,
        } => doc! {
            "_id": { "$gte": prefix.clone(), "$lt": prefix_end(prefix) },
            field.clone(): { "$lt": *below },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure::substrate::fields;

    #[test]
    fn documents_round_trip() {
        let d = Document::new(
            "a#b#",
            fields([
                ("epoch", Value::Int(3)),
                ("holder", "u0".into()),
                ("gone", Value::Null),
                ("alive", Value::Map(fields([("1f", Value::Int(5))]))),
            ]),
        );
        let b = doc_to_bson(&d);
        assert_eq!(b.keys().next().map(String::as_str), Some("_id"));
        assert_eq!(doc_from_bson(Collection::Leases, b), Ok(d));
    }

    /// Goal: a value of a type Tenure never writes reaches the core as `Foreign`, whose
    /// decoders then name the document; only a non-string `_id` is refused here.
    #[test]
    fn foreign_types_reach_the_core_and_are_named_there() {
        let d = doc_from_bson(Collection::Leases, doc! { "_id": "x", "epoch": 1.5 }).unwrap();
        assert_eq!(d.get("epoch"), Some(&Value::Foreign("BSON Double".into())));
        let e = d.int(Collection::Leases, "epoch").unwrap_err();
        assert_eq!(e.id, "x");
        assert!(e.to_string().contains("Double"), "{e}");
        let d = doc_from_bson(Collection::Clock, doc! { "_id": "g", "m": { "k": [1] } }).unwrap();
        let e = d.map(Collection::Clock, "m").unwrap()["k"].clone();
        assert_eq!(e, Value::Foreign("BSON Array".into()));
        let e = doc_from_bson(Collection::Clock, doc! { "_id": 7_i32 }).unwrap_err();
        assert!(e.reason.contains("strings"), "{e}");
    }

    #[test]
    fn updates_map_to_operators() {
        let u = Update {
            set: fields([("a", Value::Int(1))]),
            unset: vec!["b".into()],
            inc: fields([("c", Value::Int(2))]),
            bit_or: fields([("d.e", Value::Int(4))]),
        };
        assert_eq!(
            update_to_bson("x", &u),
            doc! { "$set": {"a": 1_i64}, "$unset": {"b": ""}, "$inc": {"c": 2_i64},
            "$bit": {"d.e": {"or": 4_i64}} }
        );
        assert_eq!(
            update_to_bson("x", &Update::default()),
            doc! { "$set": {"_id": "x"} }
        );
    }

    #[test]
    fn prefix_ranges_cover_exactly_the_prefix() {
        let end = prefix_end("m#");
        for inside in ["m#", "m#a", "m#\u{FFFF}zz"] {
            assert!(inside >= "m#" && inside < end.as_str(), "{inside}");
        }
        for outside in ["m", "m$", "n#", "m\""] {
            assert!(!(outside >= "m#" && outside < end.as_str()), "{outside}");
        }
    }
}
