//! Presence (PROTOCOLS.md §5): which agents (keys) are alive, from periodic pings into
//! 30-second slot documents.
//!
//! A pinger takes a new **sequence** per start and records the being `{seq → key}`; each slot it
//! sets its sequence's bit in the slot document's `alive` map. A watcher reads the current and
//! previous slots: a key is alive iff its newest known sequence is alive there and not dead.
//!
//! # Layout
//! - this module: schema, slot arithmetic, sequence encoding;
//! - [`pinger`]: one key's pinger (start, ping once per slot, stop, kill);
//! - [`batcher`]: merges pings and flushes them as bulk `$bit or` upserts;
//! - [`watcher`]: syncs, tracks sequences, emits alternating alive/dead events per watch;
//! - [`pruner`]: removes old slots and superseded beings;
//! - [`agent`]: one process's batcher and the pingers it flushes for, wired together.
//!
//! # Where Tenure goes further than the reference
//! Bits are set with `$bit: {or}` rather than `$inc`, so a flush whose outcome is unknown can be
//! sent again without corrupting a neighbouring sequence (lp:1699678).

pub mod agent;
pub mod batcher;
pub mod pinger;
pub mod pruner;
pub mod watcher;

pub use agent::{Agent, AgentOutput};
pub use batcher::{Batcher, BatcherConfig};
pub use pinger::{Ping, Pinger, PingerOutput};
pub use pruner::{PruneTrigger, Pruner};
pub use watcher::{PresenceWatcher, WatchId, WatcherOutput};

use crate::substrate::{
    fields, Collection, CorruptDocument, Document, Fields, Op, OpResult, Reply, Selector, Update,
    Value,
};
use crate::time::LocalTime;
use crate::validate::{check_duration, check_name, InputError};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// Sequences per `alive`/`dead` field: 63 bits keeps every value a positive int64.
pub const BITS_PER_FIELD: u64 = 63;

/// Largest `_id` list in one look-up or delete (mgo's bulk limit in Juju).
pub const BATCH_MAX: usize = 1000;

/// A presence sequence: unique per model, one per pinger start.
pub type Seq = u64;

/// Presence configuration shared by every presence actor of one model: its name and its
/// timing (slot length and flush interval), from which the ping interval follows
/// ([`PresenceConfig::ping_interval`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PresenceConfig {
    /// The model (namespace) every id is prefixed with; models never see each other (P7).
    pub model: String,
    /// Slot length (Juju: 30 s).
    pub period: Duration,
    /// Mean time between a batcher's flushes (Juju: 1 s). Pingers need it: a ping must be
    /// early enough in its slot to be flushed before the slot ends.
    pub flush_interval: Duration,
}

/// Longest flush interval: pings wait in memory until the next flush.
pub const FLUSH_INTERVAL_MAX: Duration = Duration::from_secs(60);

impl PresenceConfig {
    /// Juju's timing for `model`: 30 s slots, a flush every second.
    pub fn new(model: impl Into<String>) -> PresenceConfig {
        PresenceConfig {
            model: model.into(),
            period: Duration::from_secs(30),
            flush_interval: Duration::from_secs(1),
        }
    }

    /// Checks the model name, that the period is whole seconds between 1 s and 1 h, the flush
    /// interval between 0 and [`FLUSH_INTERVAL_MAX`], and that the two leave room for the
    /// timing rule of [`PresenceConfig::ping_interval`].
    pub fn validate(&self) -> Result<(), InputError> {
        check_name("model", &self.model)?;
        check_duration("presence period", self.period, Duration::from_secs(3600))?;
        if self.period.subsec_nanos() != 0 {
            return Err(InputError::InvalidConfig(format!(
                "presence period {:?} must be whole seconds",
                self.period
            )));
        }
        check_duration("flush interval", self.flush_interval, FLUSH_INTERVAL_MAX)?;
        if self.ping_interval_bound() < self.flush_interval {
            return Err(InputError::InvalidConfig(format!(
                "a presence period of {:?} is too short for a flush interval of {:?}: a ping \
                 must reach the store (one flush, and one resend) before its slot ends, so the \
                 period must be at least 3.9 × the flush interval; lengthen the period or \
                 shorten the flush interval",
                self.period, self.flush_interval
            )));
        }
        Ok(())
    }

    /// How often a pinger pings: Juju's `0.75 × (period + 1 s)`, but never longer than
    /// `period − 2 × the longest flush delay − half a flush interval`.
    ///
    /// Why: a watcher syncing at a slot boundary reads the slot that just ended and the new
    /// one; a steadily pinging key is alive to it only if the ended slot's ping is stored by
    /// then. The first ping of a slot comes at most one interval after the slot begins, waits
    /// at most [`batcher::flush_delay_max`] for its flush, and as long again if that flush's
    /// outcome was unknown and it is resent; half a flush interval more covers late timers
    /// and store round trips. Juju's interval breaks this for short periods (for 3 s and less
    /// it is a slot or longer, so some slots get no ping at all). A pinger never pings twice
    /// in one slot, so a shorter interval costs timer wake-ups, not writes. Juju's 30 s slots
    /// with a 1 s flush keep Juju's interval (23.25 s).
    pub fn ping_interval(&self) -> Duration {
        self.juju_ping_interval().min(self.ping_interval_bound())
    }

    /// Juju's ping interval, `0.75 × (period + 1 s)` (the `presence-juju-ping-interval` mutant
    /// keeps it whatever the flush interval).
    pub fn juju_ping_interval(&self) -> Duration {
        (self.period + Duration::from_secs(1)) * 3 / 4
    }

    fn ping_interval_bound(&self) -> Duration {
        let flushes = batcher::flush_delay_max(self.flush_interval) * 2;
        self.period
            .saturating_sub(flushes + self.flush_interval / 2)
    }

    /// How long a key must have been pinging before a watcher's sync for that sync to report
    /// it alive (P5), at most: the two slots the watcher reads. The ping rule above guarantees
    /// that the older slot's ping is stored by the time the newer slot begins.
    pub fn alive_window(&self) -> Duration {
        self.period * 2
    }

    /// [`PresenceConfig::alive_window`] for a sync made `phase` into its slot: the slot before
    /// and this one up to the sync. A key pinging since the previous slot began is alive to
    /// every sync, even one made the instant a slot begins.
    pub fn alive_window_at(&self, phase: Duration) -> Duration {
        self.period + phase.min(self.period)
    }

    /// The batcher configuration for this model's timing (no jitter seed, no mutant).
    pub fn batcher_config(&self) -> BatcherConfig {
        BatcherConfig {
            flush_interval: self.flush_interval,
            jitter_seed: None,
            mutant: None,
        }
    }

    /// Slot length in seconds.
    pub fn period_secs(&self) -> i64 {
        i64::try_from(self.period.as_secs()).unwrap_or(i64::MAX)
    }

    /// `"<model>:beings"`, the sequence counter.
    pub fn seqs_id(&self) -> String {
        format!("{}:beings", self.model)
    }
    /// Draws the next being sequence number: an upserted `$inc` of the counter, returning the
    /// new value, so concurrent pingers of one model never share a number.
    pub fn next_seq_op(&self) -> Op {
        Op::Update {
            coll: Collection::PresenceSeqs,
            id: self.seqs_id(),
            expect: Fields::new(),
            update: Update {
                inc: fields([("seq", Value::Int(1))]),
                ..Update::default()
            },
            upsert: true,
            return_new: true,
        }
    }
    /// `"<model>:<seq>"`, a being.
    pub fn being_id(&self, seq: Seq) -> String {
        format!("{}:{seq}", self.model)
    }
    /// `"<model>:<slot>"`, a ping slot document.
    pub fn ping_id(&self, slot: i64) -> String {
        format!("{}:{slot}", self.model)
    }
    /// The `_id` prefix of every document of this model.
    pub fn prefix(&self) -> String {
        format!("{}:", self.model)
    }

    /// The operations that remove every presence document of this model and no other.
    pub fn remove_model_ops(&self) -> Vec<Op> {
        [
            Collection::PresenceSeqs,
            Collection::PresenceBeings,
            Collection::PresencePings,
        ]
        .into_iter()
        .map(|coll| Op::DeleteMany {
            coll,
            selector: Selector::IdPrefix(self.prefix()),
        })
        .collect()
    }
}

/// The oldest slot a prune pass relative to `current_slot` keeps (seconds): four slots, the two
/// a watcher reads and two spare (PROTOCOLS.md §5.6).
pub fn oldest_kept_slot(current_slot: i64, period_secs: i64) -> i64 {
    current_slot.saturating_sub(period_secs.saturating_mul(3))
}

/// The slot (seconds) a ping document's `_id`, `"<model>:<slot>"`, names; `None` for an id of
/// another shape.
pub fn slot_of_ping_id(id: &str) -> Option<i64> {
    id.rsplit_once(':')?.1.parse().ok()
}

/// The field key and bit of a sequence: `hex(seq / 63)` and `1 << (seq % 63)`.
pub fn encode_seq(seq: Seq) -> (String, i64) {
    (
        format!("{:x}", seq / BITS_PER_FIELD),
        1i64 << (seq % BITS_PER_FIELD),
    )
}

/// Every sequence whose bit is set in a decoded `alive` or `dead` map.
pub fn decode_bits(doc: &Document, field: &str) -> Result<BTreeSet<Seq>, CorruptDocument> {
    let mut out = BTreeSet::new();
    for (k, v) in doc.map(Collection::PresencePings, field)? {
        let bad = |r: String| doc.corrupt_because(Collection::PresencePings, r);
        let idx = u64::from_str_radix(&k, 16)
            .map_err(|_| bad(format!("{field}.{k} is not a hex field key")))?;
        let crate::substrate::Value::Int(bits) = v else {
            return Err(bad(format!("{field}.{k} is not an integer")));
        };
        if bits < 0 {
            return Err(bad(format!(
                "{field}.{k} is negative: a bit was counted twice"
            )));
        }
        for b in 0..BITS_PER_FIELD {
            if bits & (1 << b) != 0 {
                out.insert(idx * BITS_PER_FIELD + b);
            }
        }
    }
    Ok(out)
}

/// Maps a process's local time to presence slots, through the offset to the server's clock
/// measured once at start (PROTOCOLS.md §5.2). Constant skew is harmless; the offset is never
/// re-measured, as in Juju.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SlotClock {
    /// Server time minus local time, in nanoseconds.
    pub offset: i128,
}

impl SlotClock {
    /// The clock whose offset is `server - local_before`, measured by a call that started at
    /// `local_before`.
    pub fn measured(server_nanos: u64, local_before: LocalTime) -> SlotClock {
        SlotClock {
            offset: i128::from(server_nanos) - i128::from(local_before.0),
        }
    }

    /// The local time at which `slot` (in seconds) begins; 0 if before local time 0.
    pub fn slot_start(&self, slot: i64) -> LocalTime {
        let nanos = i128::from(slot) * 1_000_000_000 - self.offset;
        LocalTime(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
    }

    /// `floor((now + offset) / period) × period`, in seconds.
    pub fn slot(&self, now: LocalTime, period_secs: i64) -> i64 {
        let secs = (i128::from(now.0) + self.offset).div_euclid(1_000_000_000);
        let secs = i64::try_from(secs).unwrap_or(i64::MAX);
        secs.div_euclid(period_secs) * period_secs
    }
}

/// Server-time measurements slower than this are discarded: their offset error could shift slots.
pub const CLOCK_SYNC_CALL_MAX: Duration = Duration::from_secs(5);
/// Measurement attempts before giving up (Juju: 10).
pub const CLOCK_SYNC_ATTEMPTS_MAX: u32 = 10;

/// One measurement of the offset to the server clock (PROTOCOLS.md §5.2), shared by pingers and
/// watchers: a call slower than [`CLOCK_SYNC_CALL_MAX`] is discarded and retried, up to
/// [`CLOCK_SYNC_ATTEMPTS_MAX`] attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OffsetProbe {
    before: LocalTime,
    attempts: u32,
}

/// What an [`OffsetProbe`] concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeStep {
    /// The offset is known.
    Measured(SlotClock),
    /// Try again: send [`Op::ServerTime`] and give its result to this probe.
    Retry(OffsetProbe),
    /// Every attempt failed.
    Failed(String),
}

impl OffsetProbe {
    /// A first attempt starting at `now`; send [`Op::ServerTime`].
    pub fn start(now: LocalTime) -> OffsetProbe {
        OffsetProbe {
            before: now,
            attempts: 1,
        }
    }

    /// Takes the result of the `ServerTime` call.
    pub fn handle(self, result: &OpResult, now: LocalTime) -> ProbeStep {
        match result {
            OpResult::Ok(Reply::Time(server)) if now.since(self.before) <= CLOCK_SYNC_CALL_MAX => {
                ProbeStep::Measured(SlotClock::measured(*server, self.before))
            }
            _ if self.attempts < CLOCK_SYNC_ATTEMPTS_MAX => ProbeStep::Retry(OffsetProbe {
                before: now,
                attempts: self.attempts + 1,
            }),
            _ => ProbeStep::Failed("cannot synchronize clock with database server".to_owned()),
        }
    }
}

/// Alive and dead sequences gathered from slot documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotBits {
    /// Union of the `alive` bits.
    pub alive: BTreeSet<Seq>,
    /// Union of the `dead` bits.
    pub dead: BTreeSet<Seq>,
}

impl SlotBits {
    /// Unions the bits of every document.
    pub fn gather<'a>(
        docs: impl IntoIterator<Item = &'a Document>,
    ) -> Result<SlotBits, CorruptDocument> {
        let mut out = SlotBits::default();
        for d in docs {
            out.alive.extend(decode_bits(d, "alive")?);
            out.dead.extend(decode_bits(d, "dead")?);
        }
        Ok(out)
    }
}

/// Decodes a being document into `(seq, key)`.
pub fn decode_being(doc: &Document) -> Result<(Seq, String), CorruptDocument> {
    let seq = doc.uint(Collection::PresenceBeings, "seq")?;
    let key = doc.str(Collection::PresenceBeings, "key")?.to_owned();
    Ok((seq, key))
}

/// Groups beings by key: `key → sorted sequences`.
pub fn beings_by_key(beings: &[(Seq, String)]) -> BTreeMap<&str, Vec<Seq>> {
    let mut m: BTreeMap<&str, Vec<Seq>> = BTreeMap::new();
    for (seq, key) in beings {
        m.entry(key.as_str()).or_default().push(*seq);
    }
    for v in m.values_mut() {
        v.sort_unstable();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substrate::{fields, Value};

    #[test]
    fn seq_encoding_round_trips() {
        for seq in [0, 1, 62, 63, 64, 1000, 123_456] {
            let (k, bit) = encode_seq(seq);
            let doc = Document::new(
                "m:30",
                fields([("alive", Value::Map([(k, Value::Int(bit))].into()))]),
            );
            assert_eq!(decode_bits(&doc, "alive").unwrap(), BTreeSet::from([seq]));
        }
        assert_eq!(encode_seq(63), ("1".to_owned(), 1));
    }

    #[test]
    fn slots_floor_to_period() {
        let c = SlotClock { offset: 0 };
        assert_eq!(c.slot(LocalTime(59_999_999_999), 30), 30);
        assert_eq!(c.slot(LocalTime(60_000_000_000), 30), 60);
        let c = SlotClock::measured(100_000_000_000, LocalTime(40_000_000_000));
        assert_eq!(c.slot(LocalTime(40_000_000_000), 30), 90);
    }

    #[test]
    fn corrupt_bits_name_the_document() {
        let doc = Document::new(
            "m:30",
            fields([(
                "alive",
                Value::Map([("zz".to_owned(), Value::Int(1))].into()),
            )]),
        );
        assert!(decode_bits(&doc, "alive")
            .unwrap_err()
            .to_string()
            .contains("m:30"));
    }
}
