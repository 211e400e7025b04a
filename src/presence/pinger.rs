//! One key's pinger (PROTOCOLS.md §5.3).
//!
//! `start` measures the offset to the server clock, takes a new sequence (find-and-modify `$inc`
//! with upsert), inserts the being `{seq, key}`, then pings once per slot: every
//! [`PresenceConfig::ping_interval`], and never twice in one slot. Pings are handed to a
//! [`super::Batcher`] as [`PingerOutput::Ping`]. `kill` marks the sequence dead in its last slot.

use super::{encode_seq, OffsetProbe, PresenceConfig, ProbeStep, Seq, SlotClock};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::mutant::Mutant;
use crate::substrate::{fields, Collection, Document, Op, OpResult, Reply, Update};
use crate::time::LocalTime;
use crate::validate::{check_name, InputError};
use std::time::Duration;

/// One ping: sequence `seq`'s bit in one slot document, as a batcher merges it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Ping {
    /// The model.
    pub model: String,
    /// The slot, in seconds.
    pub slot: i64,
    /// The field key, `hex(seq / 63)`.
    pub field: String,
    /// The bit, `1 << (seq % 63)`.
    pub bit: i64,
}

/// What the pinger asks for or reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PingerOutput {
    /// Started with this sequence.
    Started {
        /// The new sequence.
        seq: Seq,
    },
    /// Record this ping: hand it to the batcher ([`super::Batcher::handle_ping`]).
    Ping(Ping),
    /// The dead marker was written (or its outcome is unknown).
    Killed,
    /// Starting failed; the pinger is stopped.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Idle,
    Measuring(OffsetProbe),
    Sequencing,
    Registering,
    Running,
    Killing,
}

/// The pinger actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pinger {
    config: PresenceConfig,
    mutant: Option<Mutant>,
    key: String,
    ids: OpIds,
    phase: Phase,
    in_flight: Option<OpId>,
    clock: Option<SlotClock>,
    seq: Option<Seq>,
    last_slot: Option<i64>,
    next_ping: Option<LocalTime>,
}

impl Renumber for Pinger {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.in_flight)
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.ids.lower(by, self.in_flight.as_mut());
    }
}

impl Actor for Pinger {
    type Output = PingerOutput;

    /// Sequences and beings at start; its dead marker goes straight to the pings.
    fn may_write(&self, coll: Collection) -> bool {
        matches!(
            coll,
            Collection::PresenceSeqs | Collection::PresenceBeings | Collection::PresencePings
        )
    }

    /// When the pinger next wants [`Pinger::handle_timeout`].
    fn next_deadline(&self) -> Option<LocalTime> {
        if self.phase == Phase::Running {
            self.next_ping
        } else {
            None
        }
    }

    /// Pings if due; early calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<PingerOutput> {
        match self.next_deadline() {
            Some(t) if t <= now => {
                self.next_ping = Some(now.after(self.interval()));
                self.ping(now)
            }
            _ => Effects::none(),
        }
    }

    /// Takes the result of the outstanding request.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<PingerOutput> {
        if self.in_flight != Some(id) {
            return Effects::none();
        }
        self.in_flight = None;
        let mut fx = Effects::none();
        match (self.phase.clone(), result) {
            (Phase::Measuring(probe), result) => match probe.handle(&result, now) {
                ProbeStep::Measured(clock) => {
                    self.clock = Some(clock);
                    self.phase = Phase::Sequencing;
                    return self.send(self.config.next_seq_op());
                }
                ProbeStep::Retry(probe) => {
                    self.phase = Phase::Measuring(probe);
                    return self.send(Op::ServerTime);
                }
                ProbeStep::Failed(why) => {
                    self.phase = Phase::Idle;
                    fx.notify(PingerOutput::Failed(why));
                }
            },
            (Phase::Sequencing, OpResult::Ok(Reply::Doc(Some(doc)))) => {
                match doc.uint(Collection::PresenceSeqs, "seq") {
                    Ok(seq) => {
                        self.seq = Some(seq);
                        self.last_slot = None;
                        self.phase = Phase::Registering;
                        let being = Document::new(
                            self.config.being_id(seq),
                            fields([("seq", seq.into()), ("key", self.key.as_str().into())]),
                        );
                        return self.send(Op::Insert {
                            coll: Collection::PresenceBeings,
                            doc: being,
                        });
                    }
                    Err(e) => {
                        self.phase = Phase::Idle;
                        fx.notify(PingerOutput::Failed(e.to_string()));
                    }
                }
            }
            (Phase::Registering, OpResult::Ok(_)) => {
                self.phase = Phase::Running;
                self.next_ping = Some(now.after(self.interval()));
                if let Some(seq) = self.seq {
                    fx.notify(PingerOutput::Started { seq });
                }
                fx.extend(self.ping(now));
            }
            (Phase::Killing, _) => {
                self.phase = Phase::Idle;
                fx.notify(PingerOutput::Killed);
            }
            (phase, other) => {
                self.phase = Phase::Idle;
                fx.notify(PingerOutput::Failed(format!(
                    "starting pinger for {:?} ({phase:?}): {other}",
                    self.key
                )));
            }
        }
        fx
    }
}

impl Pinger {
    /// A stopped pinger for `key`.
    pub fn new(
        config: PresenceConfig,
        key: &str,
        mutant: Option<Mutant>,
    ) -> Result<Pinger, InputError> {
        config.validate()?;
        check_name("presence key", key)?;
        Ok(Pinger {
            config,
            mutant,
            key: key.to_owned(),
            ids: OpIds::default(),
            phase: Phase::Idle,
            in_flight: None,
            clock: None,
            seq: None,
            last_slot: None,
            next_ping: None,
        })
    }

    /// The current sequence, once started.
    pub fn seq(&self) -> Option<Seq> {
        self.seq
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether the pinger is pinging.
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The ping interval ([`PresenceConfig::ping_interval`]).
    pub fn interval(&self) -> Duration {
        if self.mutant == Some(Mutant::PresenceJujuPingInterval) {
            return self.config.juju_ping_interval();
        }
        self.config.ping_interval()
    }

    fn send(&mut self, op: Op) -> Effects<PingerOutput> {
        let req = self.ids.request(op);
        self.in_flight = Some(req.id);
        Effects {
            requests: vec![req],
            notifications: Vec::new(),
        }
    }

    /// Starts with a new sequence. Refused (as `Failed`) if already started.
    pub fn handle_start(&mut self, now: LocalTime) -> Effects<PingerOutput> {
        if self.phase != Phase::Idle {
            let mut fx = Effects::none();
            fx.notify(PingerOutput::Failed("pinger already started".into()));
            return fx;
        }
        self.phase = Phase::Measuring(OffsetProbe::start(now));
        self.send(Op::ServerTime)
    }

    fn ping(&mut self, now: LocalTime) -> Effects<PingerOutput> {
        let mut fx = Effects::none();
        let (Some(clock), Some(seq)) = (self.clock, self.seq) else {
            return fx;
        };
        let slot = clock.slot(now, self.config.period_secs());
        // Never the same slot twice: harmless with `$bit or`, fatal with `$inc`.
        if self.last_slot == Some(slot) {
            return fx;
        }
        self.last_slot = Some(slot);
        let (field, bit) = encode_seq(seq);
        fx.notify(PingerOutput::Ping(Ping {
            model: self.config.model.clone(),
            slot,
            field,
            bit,
        }));
        fx
    }

    /// Stops pinging. Watchers notice once the last ping ages out of the two-slot window.
    pub fn handle_stop(&mut self, _now: LocalTime) -> Effects<PingerOutput> {
        if self.phase == Phase::Running {
            self.phase = Phase::Idle;
            self.next_ping = None;
        }
        Effects::none()
    }

    /// Stops and marks the sequence dead in its last slot, so watchers report it dead at their
    /// next sync.
    pub fn handle_kill(&mut self, now: LocalTime) -> Effects<PingerOutput> {
        let (Some(seq), Some(slot)) = (self.seq, self.last_slot) else {
            return self.handle_stop(now);
        };
        self.phase = Phase::Killing;
        self.next_ping = None;
        let (field, bit) = encode_seq(seq);
        let update = Update {
            set: fields([("slot", slot.into())]),
            bit_or: fields([(&format!("dead.{field}"), bit.into())]),
            ..Update::default()
        };
        self.send(Op::BulkUpsert {
            coll: Collection::PresencePings,
            updates: vec![(self.config.ping_id(slot), update)],
        })
    }
}
