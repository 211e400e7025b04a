//! The presence pruner (PROTOCOLS.md §5.6): deletes ping documents older than the last four
//! slots, and beings superseded by a newer sequence of the same key that no remaining ping
//! references. It never removes the newest being of a key (P6).

use super::{beings_by_key, decode_being, PresenceConfig, Seq, SlotBits, BATCH_MAX};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::jitter::Jitter;
use crate::mutant::Mutant;
use crate::substrate::{Collection, Op, OpResult, ReadConcern, Reply, Selector};
use crate::time::LocalTime;
use crate::validate::InputError;
use std::collections::BTreeSet;

/// Decides, after each watcher sync, whether to prune: with probability `counter × 0.0038`,
/// and surely once that reaches 1 (every ~20 syncs on average, at most every 264).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PruneTrigger {
    counter: u64,
}

impl PruneTrigger {
    /// Per-sync probability increment, in parts per million (Juju: 0.0038).
    pub const STEP_PPM: u64 = 3_800;

    /// A trigger that has seen no syncs.
    pub fn new() -> PruneTrigger {
        PruneTrigger { counter: 0 }
    }

    /// Records a sync; `true` means prune now (and the counter restarts).
    pub fn after_sync(&mut self, jitter: &mut Jitter) -> bool {
        self.counter += 1;
        let p = self.counter * Self::STEP_PPM;
        let fire = p >= 1_000_000 || jitter.ppm() < p;
        if fire {
            self.counter = 0;
        }
        fire
    }
}

impl Default for PruneTrigger {
    fn default() -> Self {
        Self::new()
    }
}

/// What the pruner reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrunerOutput {
    /// A pass finished.
    Pruned {
        /// Ping documents deleted.
        pings: u64,
        /// Beings deleted.
        beings: u64,
    },
    /// A pass failed part-way; nothing unsafe was deleted.
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    DeletingPings,
    ReadingPings {
        pings: u64,
    },
    ReadingBeings {
        pings: u64,
        active: BTreeSet<Seq>,
    },
    DeletingBeings {
        pings: u64,
        beings: u64,
        rest: Vec<String>,
    },
}

/// The pruner actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pruner {
    config: PresenceConfig,
    mutant: Option<Mutant>,
    ids: OpIds,
    phase: Option<(OpId, Phase)>,
}

impl Renumber for Pruner {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.phase.as_ref().map(|(id, _)| *id))
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.ids.lower(by, self.phase.as_mut().map(|(id, _)| id));
    }
}

impl Actor for Pruner {
    type Output = PrunerOutput;

    /// Old slots and superseded beings.
    fn may_write(&self, coll: Collection) -> bool {
        matches!(coll, Collection::PresenceBeings | Collection::PresencePings)
    }

    /// A pruner has no timer: passes start on [`Pruner::handle_prune`].
    fn next_deadline(&self) -> Option<LocalTime> {
        None
    }

    /// Does nothing: a pruner has no timer.
    fn handle_timeout(&mut self, _now: LocalTime) -> Effects<PrunerOutput> {
        Effects::none()
    }

    /// Takes the result of the outstanding request.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        _now: LocalTime,
    ) -> Effects<PrunerOutput> {
        let phase = match self.phase.take() {
            Some((want, p)) if want == id => p,
            other => {
                self.phase = other;
                return Effects::none();
            }
        };
        let prefix = Selector::IdPrefix(self.config.prefix());
        let mut fx = Effects::none();
        match (phase, result) {
            (Phase::DeletingPings, OpResult::Ok(Reply::Count(pings))) => {
                let op = Op::Find {
                    coll: Collection::PresencePings,
                    selector: prefix,
                    concern: ReadConcern::Majority,
                };
                return self.send(op, Phase::ReadingPings { pings });
            }
            (Phase::ReadingPings { pings }, OpResult::Ok(Reply::Docs(docs))) => {
                match SlotBits::gather(&docs) {
                    Ok(bits) => {
                        let active = bits.alive.union(&bits.dead).copied().collect();
                        let op = Op::Find {
                            coll: Collection::PresenceBeings,
                            selector: prefix,
                            concern: ReadConcern::Majority,
                        };
                        return self.send(op, Phase::ReadingBeings { pings, active });
                    }
                    Err(e) => fx.notify(PrunerOutput::Failed(e.to_string())),
                }
            }
            (Phase::ReadingBeings { pings, active }, OpResult::Ok(Reply::Docs(docs))) => {
                let beings: Result<Vec<_>, _> = docs.iter().map(decode_being).collect();
                match beings {
                    Ok(beings) => {
                        let doomed = self.doomed(&beings, &active);
                        return self.delete_beings(pings, 0, doomed);
                    }
                    Err(e) => fx.notify(PrunerOutput::Failed(e.to_string())),
                }
            }
            (
                Phase::DeletingBeings {
                    pings,
                    beings,
                    rest,
                },
                OpResult::Ok(Reply::Count(n)),
            ) => {
                return self.delete_beings(pings, beings + n, rest);
            }
            (_, other) => fx.notify(PrunerOutput::Failed(format!(
                "pruning presence of {:?}: {other}",
                self.config.model
            ))),
        }
        fx
    }
}

impl Pruner {
    /// An idle pruner.
    pub fn new(config: PresenceConfig, mutant: Option<Mutant>) -> Result<Pruner, InputError> {
        config.validate()?;
        Ok(Pruner {
            config,
            mutant,
            ids: OpIds::default(),
            phase: None,
        })
    }

    /// Whether a pass is running.
    pub fn is_running(&self) -> bool {
        self.phase.is_some()
    }

    fn send(&mut self, op: Op, phase: Phase) -> Effects<PrunerOutput> {
        let req = self.ids.request(op);
        self.phase = Some((req.id, phase));
        Effects {
            requests: vec![req],
            notifications: Vec::new(),
        }
    }

    /// Starts a pass relative to `current_slot` (seconds). Ignored while a pass runs.
    pub fn handle_prune(&mut self, current_slot: i64, _now: LocalTime) -> Effects<PrunerOutput> {
        if self.phase.is_some() {
            return Effects::none();
        }
        let below = if self.mutant == Some(Mutant::PresencePruneRecentSlots) {
            current_slot
        } else {
            super::oldest_kept_slot(current_slot, self.config.period_secs())
        };
        let op = Op::DeleteMany {
            coll: Collection::PresencePings,
            selector: Selector::IdPrefixFieldBelow {
                prefix: self.config.prefix(),
                field: "slot".into(),
                below,
            },
        };
        self.send(op, Phase::DeletingPings)
    }

    /// Superseded, unreferenced beings: below their key's newest sequence and in no ping.
    fn doomed(&self, beings: &[(Seq, String)], active: &BTreeSet<Seq>) -> Vec<String> {
        let keep_newest = self.mutant != Some(Mutant::PresencePruneNewestBeing);
        let mut out = Vec::new();
        for seqs in beings_by_key(beings).values().filter(|s| s.len() >= 2) {
            let newest = seqs.last().copied();
            for s in seqs {
                if (Some(*s) != newest || !keep_newest) && !active.contains(s) {
                    out.push(self.config.being_id(*s));
                }
            }
        }
        out
    }

    fn delete_beings(
        &mut self,
        pings: u64,
        beings: u64,
        mut ids: Vec<String>,
    ) -> Effects<PrunerOutput> {
        if ids.is_empty() {
            let mut fx = Effects::none();
            fx.notify(PrunerOutput::Pruned { pings, beings });
            return fx;
        }
        let rest = ids.split_off(ids.len().min(BATCH_MAX));
        let op = Op::DeleteMany {
            coll: Collection::PresenceBeings,
            selector: Selector::Ids(ids),
        };
        self.send(
            op,
            Phase::DeletingBeings {
                pings,
                beings,
                rest,
            },
        )
    }
}
