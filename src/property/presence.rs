//! Presence properties (PROTOCOLS.md §5.7).

use super::{PropertyId, Verdict, Violation};
use crate::presence::{beings_by_key, decode_being, oldest_kept_slot, Seq, SlotBits};
use crate::substrate::{Collection, Document, MemoryStore, Op, Selector, Value};
use crate::time::Secs;
use std::collections::{BTreeMap, BTreeSet};

/// P1: sequences are unique within a model, and each pinger's successive starts get strictly
/// increasing ones. `per_pinger` lists each pinger's sequences in the order it started.
pub fn p1_sequences(per_pinger: &[Vec<Seq>]) -> Verdict {
    let mut all = BTreeSet::new();
    for seqs in per_pinger {
        if let Some(w) = seqs.windows(2).find(|w| w[1] <= w[0]) {
            return Err(Violation::new(
                PropertyId::P1,
                format!("a pinger got sequence {} after {}", w[1], w[0]),
            ));
        }
        if let Some(s) = seqs.iter().find(|s| !all.insert(**s)) {
            return Err(Violation::new(
                PropertyId::P1,
                format!("sequence {s} was handed out twice"),
            ));
        }
    }
    Ok(())
}

/// P2: for each (slot document, field), the stored bits equal the OR of the bits sent.
/// Both maps are keyed by (document `_id`, field key).
pub fn p2_or_of_sent(
    sent: &BTreeMap<(String, String), i64>,
    stored: &BTreeMap<(String, String), i64>,
) -> Verdict {
    for key in sent.keys().chain(stored.keys()) {
        let (s, t) = (
            sent.get(key).copied().unwrap_or(0),
            stored.get(key).copied().unwrap_or(0),
        );
        if s != t {
            return Err(Violation::new(
                PropertyId::P2,
                format!(
                    "{}.alive.{} holds {t:#x} but the pings sent OR to {s:#x}",
                    key.0, key.1
                ),
            ));
        }
    }
    Ok(())
}

/// P4: per watch, events alternate alive/dead after the first.
pub fn p4_alternate(events: &[(u64, String, bool)]) -> Verdict {
    let mut last: BTreeMap<u64, bool> = BTreeMap::new();
    for (watch, key, alive) in events {
        if last.insert(*watch, *alive) == Some(*alive) {
            return Err(Violation::new(
                PropertyId::P4,
                format!(
                    "watch {watch} on {key:?} got {} twice in a row",
                    if *alive { "alive" } else { "dead" }
                ),
            ));
        }
    }
    Ok(())
}

/// One liveness report from a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The key.
    pub key: String,
    /// Real time of the report.
    pub real: u64,
    /// Alive or dead.
    pub alive: bool,
}

/// P5 (safety half): a key reported dead at real `t` must not have been pinging without a gap
/// throughout `[t - window, t]`, where `window` is what the watcher reads (two slots) plus one
/// ping interval. `pinging` holds each key's real intervals of a running pinger.
pub fn p5_pinging_never_dead(
    pinging: &BTreeMap<String, Vec<(u64, u64)>>,
    reports: &[Report],
    window: u64,
) -> Verdict {
    for r in reports.iter().filter(|r| !r.alive) {
        // Only reports late enough for a whole window of pinging to precede them count.
        let Some(from) = r.real.checked_sub(window) else {
            continue;
        };
        let covered = pinging
            .get(&r.key)
            .is_some_and(|iv| iv.iter().any(|(a, b)| *a <= from && *b > r.real));
        if covered {
            return Err(Violation::new(
                PropertyId::P5,
                format!(
                    "{:?} was reported dead at real {} while pinging since real {} or earlier",
                    r.key,
                    Secs(r.real),
                    Secs(from)
                ),
            ));
        }
    }
    Ok(())
}

/// What a presence store holds, reduced to what pruning must keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceSnapshot {
    /// Ping slot documents present, by slot.
    pub slots: BTreeSet<i64>,
    /// Beings present: `(seq, key)`.
    pub beings: Vec<(Seq, String)>,
    /// Every sequence with a bit in a remaining ping document.
    pub referenced: BTreeSet<Seq>,
}

impl PresenceSnapshot {
    /// The presence documents of `model` in `store` (documents that do not decode are left out:
    /// the actors report those).
    pub fn of(store: &MemoryStore, model: &str) -> PresenceSnapshot {
        let prefix = format!("{model}:");
        let pings: Vec<Document> = store
            .documents(Collection::PresencePings)
            .filter(|d| d.id.starts_with(&prefix))
            .cloned()
            .collect();
        let bits = SlotBits::gather(&pings).unwrap_or_default();
        PresenceSnapshot {
            slots: pings
                .iter()
                .filter_map(|d| match d.get("slot") {
                    Some(Value::Int(s)) => Some(*s),
                    _ => None,
                })
                .collect(),
            beings: store
                .documents(Collection::PresenceBeings)
                .filter(|d| d.id.starts_with(&prefix))
                .filter_map(|d| decode_being(d).ok())
                .collect(),
            referenced: bits.alive.union(&bits.dead).copied().collect(),
        }
    }
}

/// The sequences a prune pass relative to `current_slot` must keep the beings of: those with a
/// bit in a ping document of the slots it keeps ([`crate::presence::oldest_kept_slot`]), as the
/// store is when the pass begins. A ping landing later may reference a being the pass already
/// judged superseded; P6 holds the pass to what it could see.
pub fn kept_references(
    store: &MemoryStore,
    model: &str,
    current_slot: i64,
    period_secs: i64,
) -> BTreeSet<Seq> {
    let keep_from = oldest_kept_slot(current_slot, period_secs);
    let prefix = format!("{model}:");
    let kept: Vec<Document> = store
        .documents(Collection::PresencePings)
        .filter(|d| d.id.starts_with(&prefix))
        .filter(|d| matches!(d.get("slot"), Some(Value::Int(s)) if *s >= keep_from))
        .cloned()
        .collect();
    let bits = SlotBits::gather(&kept).unwrap_or_default();
    bits.alive.union(&bits.dead).copied().collect()
}

/// The alive bits stored in every ping document, keyed `(document _id, field key)`: the
/// `stored` side of [`p2_or_of_sent`].
pub fn stored_alive_bits(store: &MemoryStore) -> BTreeMap<(String, String), i64> {
    let mut stored = BTreeMap::new();
    for d in store.documents(Collection::PresencePings) {
        if let Ok(m) = d.map(Collection::PresencePings, "alive") {
            for (f, v) in m {
                if let Value::Int(v) = v {
                    stored.insert((d.id.clone(), f), v);
                }
            }
        }
    }
    stored
}

/// P6: comparing the store before and after a prune relative to `current_slot`, the pings of the
/// last four slots, the newest being of each key, and every being referenced by a remaining
/// ping all survive.
pub fn p6_prune_keeps(
    before: &PresenceSnapshot,
    after: &PresenceSnapshot,
    current_slot: i64,
    period: i64,
) -> Verdict {
    let keep_from = oldest_kept_slot(current_slot, period);
    if let Some(s) = before
        .slots
        .iter()
        .find(|s| **s >= keep_from && !after.slots.contains(s))
    {
        return Err(Violation::new(
            PropertyId::P6,
            format!("slot {s} (current {current_slot}) was pruned"),
        ));
    }
    let remaining: BTreeSet<Seq> = after.beings.iter().map(|(s, _)| *s).collect();
    for (key, seqs) in beings_by_key(&before.beings) {
        if let Some(newest) = seqs.last().filter(|n| !remaining.contains(n)) {
            return Err(Violation::new(
                PropertyId::P6,
                format!("the newest being of {key:?} (sequence {newest}) was pruned"),
            ));
        }
    }
    let present: BTreeSet<Seq> = before.beings.iter().map(|(s, _)| *s).collect();
    if let Some(s) = after
        .referenced
        .iter()
        .find(|s| present.contains(s) && !remaining.contains(s))
    {
        return Err(Violation::new(
            PropertyId::P6,
            format!("being {s} was pruned although a remaining ping references it"),
        ));
    }
    Ok(())
}

/// P7: every operation issued for `model` addresses only that model's documents.
pub fn p7_isolated(model: &str, ops: &[Op]) -> Verdict {
    let prefix = format!("{model}:");
    let ok_id = |id: &str| id.starts_with(&prefix);
    for op in ops {
        let fine = match op {
            Op::Read { id, .. } | Op::Update { id, .. } | Op::Delete { id, .. } => ok_id(id),
            Op::Insert { doc, .. } => ok_id(&doc.id),
            Op::BulkUpsert { updates, .. } => updates.iter().all(|(id, _)| ok_id(id)),
            Op::Find { selector, .. } | Op::DeleteMany { selector, .. } => match selector {
                Selector::Ids(ids) => ids.iter().all(|i| ok_id(i)),
                Selector::IdPrefix(p) | Selector::IdPrefixFieldBelow { prefix: p, .. } => {
                    p.starts_with(&prefix)
                }
                Selector::FieldEq(..) => false,
            },
            Op::ServerTime => true,
        };
        if !fine {
            return Err(Violation::new(
                PropertyId::P7,
                format!(
                    "model {model:?} issued {} outside its prefix: {op:?}",
                    op.verb()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternation() {
        assert!(p4_alternate(&[
            (0, "k".into(), false),
            (0, "k".into(), true),
            (1, "k".into(), true),
            (0, "k".into(), false)
        ])
        .is_ok());
        assert!(p4_alternate(&[(0, "k".into(), true), (0, "k".into(), true)]).is_err());
    }

    #[test]
    fn or_of_sent() {
        let m = |v: i64| BTreeMap::from([(("m:30".to_owned(), "0".to_owned()), v)]);
        assert!(p2_or_of_sent(&m(5), &m(5)).is_ok());
        assert!(p2_or_of_sent(&m(5), &m(10)).is_err());
    }
}
