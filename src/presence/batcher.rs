//! The ping batcher (PROTOCOLS.md §5.5): merges pings in memory and flushes them as bulk
//! upserts, one update per slot document, in bulks of at most [`super::BATCH_MAX`].
//!
//! Flushes happen every `[0.8, 1.2) × flush_interval` (jittered so batchers do not flush in
//! lockstep) or on [`Batcher::handle_flush`]. Bits are set with `$bit or`, which is idempotent,
//! so a bulk whose outcome is unknown or failed is merged back and sent again with the next
//! flush; Juju, using `$inc`, had to drop it (and a resend would corrupt a neighbour, which the
//! `presence-inc-resend` mutant shows).

use super::{Ping, BATCH_MAX};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::jitter::Jitter;
use crate::mutant::Mutant;
use crate::substrate::{fields, Collection, Fields, Op, OpResult, Update, Value};
use crate::time::LocalTime;
use crate::validate::{check_duration, InputError};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most distinct slot documents pending at once; past it pings are refused rather than letting
/// memory grow without bound while the store is down.
pub const PENDING_DOCS_MAX: usize = 100_000;

/// A flush comes `[0.8, 1.2)` flush intervals after the first ping it carries, in parts per
/// million, so batchers of many processes do not flush in lockstep.
pub const FLUSH_JITTER_PPM: (u64, u64) = (800_000, 1_200_000);

/// The longest a ping waits for the flush that sends it: the flush interval, jittered up.
pub fn flush_delay_max(flush_interval: Duration) -> Duration {
    let n = u128::from(crate::time::nanos(flush_interval)) * u128::from(FLUSH_JITTER_PPM.1);
    Duration::from_nanos(u64::try_from(n / 1_000_000).unwrap_or(u64::MAX))
}

/// Batcher configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatcherConfig {
    /// Mean time between flushes (Juju: 1 s); must stay well below the presence period.
    pub flush_interval: Duration,
    /// Jitter seed; `None` flushes exactly every interval (models).
    pub jitter_seed: Option<u64>,
    /// A deliberately broken variant, for checker tests.
    pub mutant: Option<Mutant>,
}

/// What the batcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatcherOutput {
    /// A bulk was acknowledged.
    Flushed {
        /// The bulk's request (see [`Batcher::bulks_in_flight`]).
        bulk: OpId,
        /// Slot documents written.
        docs: usize,
        /// How long the oldest ping in the bulk waited to be acknowledged (the flush lag).
        lag: Duration,
    },
    /// A bulk's outcome was unknown or failed; its bits were merged back for the next flush.
    Requeued {
        /// The bulk's request.
        bulk: OpId,
        /// Slot documents affected.
        docs: usize,
        /// What the store said.
        cause: String,
    },
    /// A ping was refused.
    Refused(String),
}

/// `(model, slot)` → field key → OR of bits.
type Pending = BTreeMap<(String, i64), BTreeMap<String, i64>>;

/// The batcher actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batcher {
    config: BatcherConfig,
    ids: OpIds,
    jitter: Jitter,
    pending: Pending,
    /// When the oldest pending ping arrived; kept for the flush-lag report.
    pending_since: Option<LocalTime>,
    in_flight: BTreeMap<OpId, (Pending, LocalTime)>,
    next_flush: Option<LocalTime>,
    stopped: bool,
}

impl Renumber for Batcher {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.in_flight.keys().copied())
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.in_flight = std::mem::take(&mut self.in_flight)
            .into_iter()
            .map(|(id, v)| (id.lowered(by), v))
            .collect();
        self.ids.lower(by, []);
    }
}

impl Actor for Batcher {
    type Output = BatcherOutput;

    /// Only ping slots.
    fn may_write(&self, coll: Collection) -> bool {
        coll == Collection::PresencePings
    }

    /// When the batcher next wants [`Batcher::handle_timeout`].
    fn next_deadline(&self) -> Option<LocalTime> {
        self.next_flush.filter(|_| !self.pending.is_empty())
    }

    /// Flushes if due; early calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<BatcherOutput> {
        match self.next_deadline() {
            Some(t) if t <= now => self.handle_flush(now),
            _ => Effects::none(),
        }
    }

    /// Takes a bulk's result.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<BatcherOutput> {
        let Some((chunk, since)) = self.in_flight.remove(&id) else {
            return Effects::none();
        };
        let mut fx = Effects::none();
        let docs = chunk.len();
        match result {
            OpResult::Ok(_) => fx.notify(BatcherOutput::Flushed {
                bulk: id,
                docs,
                lag: now.since(since),
            }),
            other => {
                for (key, bits) in chunk {
                    let merged = self.pending.entry(key).or_default();
                    for (f, b) in bits {
                        *merged.entry(f).or_insert(0) |= b;
                    }
                }
                self.arm(since, now);
                fx.notify(BatcherOutput::Requeued {
                    bulk: id,
                    docs,
                    cause: other.to_string(),
                });
            }
        }
        fx
    }
}

impl Batcher {
    /// A batcher whose first flush is one interval after its first ping.
    pub fn new(config: BatcherConfig) -> Result<Batcher, InputError> {
        check_duration(
            "flush interval",
            config.flush_interval,
            super::FLUSH_INTERVAL_MAX,
        )?;
        let jitter = config.jitter_seed.map_or(Jitter::NONE, Jitter::seeded);
        Ok(Batcher {
            config,
            ids: OpIds::default(),
            jitter,
            pending: Pending::new(),
            pending_since: None,
            in_flight: BTreeMap::new(),
            next_flush: None,
            stopped: false,
        })
    }

    /// Distinct slot documents waiting for the next flush.
    pub fn pending_docs(&self) -> usize {
        self.pending.len()
    }

    /// Bulks in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The requests of the bulks in flight: each ends in one `Flushed` or `Requeued` naming it
    /// (unless the batcher stops first), which is how a caller of a flush learns it landed.
    pub fn bulks_in_flight(&self) -> impl Iterator<Item = OpId> + '_ {
        self.in_flight.keys().copied()
    }

    fn arm(&mut self, since: LocalTime, now: LocalTime) {
        self.pending_since = Some(self.pending_since.map_or(since, |t| t.min(since)));
        if self.next_flush.is_none() {
            let (lo, hi) = FLUSH_JITTER_PPM;
            let delay = self.jitter.scale(self.config.flush_interval, lo, hi);
            debug_assert!(delay <= flush_delay_max(self.config.flush_interval));
            self.next_flush = Some(now.after(delay));
        }
    }

    /// Merges one ping: `pending[(model, slot)][field] |= bit`.
    pub fn handle_ping(&mut self, ping: &Ping, now: LocalTime) -> Effects<BatcherOutput> {
        let Ping {
            model,
            slot,
            field,
            bit,
        } = ping;
        let (slot, bit) = (*slot, *bit);
        let key = (model.clone(), slot);
        if self.stopped
            || (!self.pending.contains_key(&key) && self.pending.len() >= PENDING_DOCS_MAX)
        {
            let mut fx = Effects::none();
            let why = if self.stopped {
                "ping batcher is stopped".to_owned()
            } else {
                format!("{PENDING_DOCS_MAX} slot documents pending")
            };
            fx.notify(BatcherOutput::Refused(why));
            return fx;
        }
        *self
            .pending
            .entry(key)
            .or_default()
            .entry(field.to_owned())
            .or_insert(0) |= bit;
        self.arm(now, now);
        Effects::none()
    }

    /// Flushes everything pending now (Juju's ForceFlush / Sync).
    pub fn handle_flush(&mut self, _now: LocalTime) -> Effects<BatcherOutput> {
        self.next_flush = None;
        let Some(since) = self.pending_since.take() else {
            return Effects::none();
        };
        let mut fx = Effects::none();
        let mut all = std::mem::take(&mut self.pending).into_iter().peekable();
        // Bounded by the pending documents: one request per BATCH_MAX of them.
        while all.peek().is_some() {
            let chunk: Pending = all.by_ref().take(BATCH_MAX).collect();
            let updates = chunk
                .iter()
                .map(|((model, slot), bits)| (format!("{model}:{slot}"), self.update(*slot, bits)))
                .collect();
            let req = self.ids.request(Op::BulkUpsert {
                coll: Collection::PresencePings,
                updates,
            });
            self.in_flight.insert(req.id, (chunk, since));
            fx.requests.push(req);
        }
        fx
    }

    fn update(&self, slot: i64, bits: &BTreeMap<String, i64>) -> Update {
        let alive: Fields = bits
            .iter()
            .map(|(f, b)| (format!("alive.{f}"), Value::Int(*b)))
            .collect();
        let set = fields([("slot", Value::Int(slot))]);
        if self.config.mutant == Some(Mutant::PresenceIncResend) {
            Update {
                set,
                inc: alive,
                ..Update::default()
            }
        } else {
            Update {
                set,
                bit_or: alive,
                ..Update::default()
            }
        }
    }

    /// Stops accepting pings; pending ones are dropped (flush first to keep them).
    pub fn handle_stop(&mut self, _now: LocalTime) -> Effects<BatcherOutput> {
        self.stopped = true;
        self.pending.clear();
        self.pending_since = None;
        self.next_flush = None;
        Effects::none()
    }
}
