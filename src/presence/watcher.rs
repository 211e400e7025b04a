//! The presence watcher (PROTOCOLS.md §5.4).
//!
//! Every sync reads the current and previous slot documents, unions their `alive` and `dead`
//! bits, looks up the beings of sequences it does not know (in batches of at most
//! [`super::BATCH_MAX`]), tracks the newest sequence per key, and queues events: `alive` when a
//! key becomes tracked, `dead` when its tracked sequence is dead or no longer pinged. Each watch
//! starts with the key's current state, then alternates (P4).

use super::{
    decode_being, OffsetProbe, PresenceConfig, ProbeStep, Seq, SlotBits, SlotClock, BATCH_MAX,
};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::mutant::Mutant;
use crate::substrate::{Collection, CorruptDocument, Op, OpResult, ReadConcern, Reply, Selector};
use crate::time::LocalTime;
use crate::validate::{check_name, InputError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Identifies one watch registration; handed out by the watcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WatchId(pub u64);

/// What the watcher reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatcherOutput {
    /// A key's liveness, for one watch.
    Change {
        /// The watch.
        watch: WatchId,
        /// The key.
        key: String,
        /// Alive or dead.
        alive: bool,
    },
    /// A sync finished; `slot` is the current slot it read.
    Synced {
        /// The slot, in seconds.
        slot: i64,
    },
    /// A sync failed; the next one is still scheduled.
    SyncFailed(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    Measuring(OffsetProbe),
    ReadingSlots {
        slot: i64,
    },
    ReadingBeings {
        slot: i64,
        bits: SlotBitsKey,
        todo: Vec<Seq>,
        found: Vec<(Seq, String)>,
    },
}

/// [`SlotBits`] kept in a hashable form inside the phase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SlotBitsKey {
    alive: BTreeSet<Seq>,
    dead: BTreeSet<Seq>,
}

/// The presence watcher actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PresenceWatcher {
    config: PresenceConfig,
    mutant: Option<Mutant>,
    ids: OpIds,
    clock: Option<SlotClock>,
    being_key: BTreeMap<Seq, String>,
    being_seq: BTreeMap<String, Seq>,
    watches: BTreeMap<WatchId, String>,
    /// The same watches by key, so a change costs its watchers, not every watch.
    watchers: BTreeMap<String, BTreeSet<WatchId>>,
    next_watch: u64,
    phase: Option<(OpId, Phase)>,
    next_sync: Option<LocalTime>,
    sync_requested: bool,
    /// Whether a sync has completed: until then the watcher does not know any key's state.
    synced: bool,
    /// Watches registered before the first sync: their first event waits for it, so that a
    /// (re)started watcher never reports a live key dead merely because it has not looked yet.
    awaiting_first: BTreeSet<WatchId>,
}

impl Renumber for PresenceWatcher {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.phase.as_ref().map(|(id, _)| *id))
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.ids.lower(by, self.phase.as_mut().map(|(id, _)| id));
    }
}

impl Actor for PresenceWatcher {
    type Output = WatcherOutput;

    /// It only reads.
    fn may_write(&self, _coll: Collection) -> bool {
        false
    }

    /// When the watcher next wants [`PresenceWatcher::handle_timeout`].
    fn next_deadline(&self) -> Option<LocalTime> {
        if self.phase.is_some() {
            None
        } else {
            self.next_sync
        }
    }

    /// Syncs if due (or requested); early calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<WatcherOutput> {
        if self.phase.is_some()
            || !(self.sync_requested || self.next_sync.is_some_and(|t| t <= now))
        {
            return Effects::none();
        }
        self.sync_requested = false;
        self.next_sync = None;
        let Some(clock) = self.clock else {
            return self.send(Op::ServerTime, Phase::Measuring(OffsetProbe::start(now)));
        };
        self.read_slots(clock, now)
    }

    /// Takes the result of the outstanding request.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<WatcherOutput> {
        let phase = match self.phase.take() {
            Some((want, p)) if want == id => p,
            other => {
                self.phase = other;
                return Effects::none();
            }
        };
        match self.advance(phase, result, now) {
            Ok(fx) => fx,
            Err(why) => {
                self.phase = None;
                self.next_sync = Some(now.after(self.config.period));
                let mut fx = Effects::none();
                fx.notify(WatcherOutput::SyncFailed(why));
                fx
            }
        }
    }
}

impl PresenceWatcher {
    /// A watcher that measures its clock offset and syncs at its first timeout.
    pub fn new(
        config: PresenceConfig,
        mutant: Option<Mutant>,
    ) -> Result<PresenceWatcher, InputError> {
        config.validate()?;
        Ok(PresenceWatcher {
            config,
            mutant,
            ids: OpIds::default(),
            clock: None,
            being_key: BTreeMap::new(),
            being_seq: BTreeMap::new(),
            watches: BTreeMap::new(),
            watchers: BTreeMap::new(),
            next_watch: 0,
            phase: None,
            next_sync: Some(LocalTime(0)),
            sync_requested: false,
            synced: false,
            awaiting_first: BTreeSet::new(),
        })
    }

    /// Whether `key` is alive as of the last sync.
    pub fn alive(&self, key: &str) -> bool {
        self.being_seq.contains_key(key)
    }

    /// The tracked sequence of `key`.
    pub fn tracked(&self, key: &str) -> Option<Seq> {
        self.being_seq.get(key).copied()
    }

    /// Every alive key.
    pub fn alive_keys(&self) -> impl Iterator<Item = &str> {
        self.being_seq.keys().map(String::as_str)
    }

    /// The slot clock, once measured.
    pub fn slot_clock(&self) -> Option<SlotClock> {
        self.clock
    }

    /// Registers a watch on `key`. Its first event (the current state) is in the effects, or,
    /// before the watcher's first sync, in that sync's effects.
    pub fn handle_watch(
        &mut self,
        key: &str,
        _now: LocalTime,
    ) -> Result<(WatchId, Effects<WatcherOutput>), InputError> {
        check_name("presence key", key)?;
        let watch = WatchId(self.next_watch);
        self.next_watch += 1;
        self.watches.insert(watch, key.to_owned());
        self.watchers
            .entry(key.to_owned())
            .or_default()
            .insert(watch);
        let mut fx = Effects::none();
        if self.synced {
            fx.notify(WatcherOutput::Change {
                watch,
                key: key.to_owned(),
                alive: self.alive(key),
            });
        } else {
            self.awaiting_first.insert(watch);
        }
        Ok((watch, fx))
    }

    /// Removes a watch; no further events for it.
    pub fn handle_unwatch(&mut self, watch: WatchId, _now: LocalTime) {
        self.awaiting_first.remove(&watch);
        if let Some(key) = self.watches.remove(&watch) {
            if let Some(ws) = self.watchers.get_mut(&key) {
                ws.remove(&watch);
                if ws.is_empty() {
                    self.watchers.remove(&key);
                }
            }
        }
    }

    /// Asks for a sync as soon as possible (Juju's StartSync).
    pub fn handle_start_sync(&mut self, now: LocalTime) -> Effects<WatcherOutput> {
        self.sync_requested = true;
        self.handle_timeout(now)
    }

    fn send(&mut self, op: Op, phase: Phase) -> Effects<WatcherOutput> {
        let req = self.ids.request(op);
        self.phase = Some((req.id, phase));
        Effects {
            requests: vec![req],
            notifications: Vec::new(),
        }
    }

    fn read_slots(&mut self, clock: SlotClock, now: LocalTime) -> Effects<WatcherOutput> {
        let period = self.config.period_secs();
        let slot = clock.slot(now, period);
        let mut ids = vec![self.config.ping_id(slot)];
        if self.mutant != Some(Mutant::PresenceOneSlotWindow) {
            ids.insert(0, self.config.ping_id(slot - period));
        }
        let op = Op::Find {
            coll: Collection::PresencePings,
            selector: Selector::Ids(ids),
            concern: ReadConcern::Majority,
        };
        self.send(op, Phase::ReadingSlots { slot })
    }

    fn advance(
        &mut self,
        phase: Phase,
        result: OpResult,
        now: LocalTime,
    ) -> Result<Effects<WatcherOutput>, String> {
        match (phase, result) {
            (Phase::Measuring(probe), result) => match probe.handle(&result, now) {
                ProbeStep::Measured(clock) => {
                    self.clock = Some(clock);
                    Ok(self.read_slots(clock, now))
                }
                ProbeStep::Retry(probe) => Ok(self.send(Op::ServerTime, Phase::Measuring(probe))),
                ProbeStep::Failed(why) => Err(why),
            },
            (Phase::ReadingSlots { slot }, OpResult::Ok(Reply::Docs(docs))) => {
                let SlotBits { alive, dead } =
                    SlotBits::gather(&docs).map_err(|e: CorruptDocument| e.to_string())?;
                let todo: Vec<Seq> = alive
                    .iter()
                    .copied()
                    .filter(|s| !self.being_key.contains_key(s))
                    .collect();
                Ok(self.lookup(slot, SlotBitsKey { alive, dead }, todo, Vec::new(), now))
            }
            (
                Phase::ReadingBeings {
                    slot,
                    bits,
                    todo,
                    mut found,
                },
                OpResult::Ok(Reply::Docs(docs)),
            ) => {
                for d in &docs {
                    found.push(decode_being(d).map_err(|e| e.to_string())?);
                }
                Ok(self.lookup(slot, bits, todo, found, now))
            }
            (phase, other) => Err(format!("presence sync ({}): {other}", phase_name(&phase))),
        }
    }

    fn lookup(
        &mut self,
        slot: i64,
        bits: SlotBitsKey,
        mut todo: Vec<Seq>,
        found: Vec<(Seq, String)>,
        now: LocalTime,
    ) -> Effects<WatcherOutput> {
        if todo.is_empty() {
            return self.apply(slot, &bits, found, now);
        }
        let rest = todo.split_off(todo.len().min(BATCH_MAX));
        let ids = todo.iter().map(|s| self.config.being_id(*s)).collect();
        let op = Op::Find {
            coll: Collection::PresenceBeings,
            selector: Selector::Ids(ids),
            concern: ReadConcern::Majority,
        };
        self.send(
            op,
            Phase::ReadingBeings {
                slot,
                bits,
                todo: rest,
                found,
            },
        )
    }

    fn apply(
        &mut self,
        slot: i64,
        bits: &SlotBitsKey,
        found: Vec<(Seq, String)>,
        now: LocalTime,
    ) -> Effects<WatcherOutput> {
        let mut fx = Effects::none();
        // Sequences with no being are unowned (pruned, or another era's) and ignored.
        for (seq, key) in found {
            let previous = self.being_seq.get(&key).copied();
            if previous.is_some_and(|p| p > seq) {
                continue;
            }
            // A dead sequence of an untracked key never becomes alive; a dead newer sequence of a
            // tracked key replaces the older one and is untracked below, so the key goes dead.
            if bits.dead.contains(&seq) && previous.is_none() {
                continue;
            }
            if let Some(p) = previous {
                self.being_key.remove(&p);
            }
            self.being_key.insert(seq, key.clone());
            self.being_seq.insert(key.clone(), seq);
            if previous.is_none() {
                self.queue(&mut fx, &key, true);
            }
        }
        let gone: Vec<Seq> = self
            .being_key
            .keys()
            .copied()
            .filter(|s| bits.dead.contains(s) || !bits.alive.contains(s))
            .collect();
        for seq in gone {
            if let Some(key) = self.being_key.remove(&seq) {
                self.being_seq.remove(&key);
                self.queue(&mut fx, &key, false);
            }
        }
        debug_assert_eq!(
            self.being_key.len(),
            self.being_seq.len(),
            "one tracked sequence per key"
        );
        // Watches that waited for this first sync start with the state it found.
        for watch in std::mem::take(&mut self.awaiting_first) {
            if let Some(key) = self.watches.get(&watch) {
                fx.notify(WatcherOutput::Change {
                    watch,
                    key: key.clone(),
                    alive: self.alive(key),
                });
            }
        }
        self.synced = true;
        self.next_sync = Some(now.after(self.config.period));
        fx.notify(WatcherOutput::Synced { slot });
        fx
    }

    fn queue(&self, fx: &mut Effects<WatcherOutput>, key: &str, alive: bool) {
        let started = |w: &&WatchId| !self.awaiting_first.contains(w);
        for watch in self.watchers.get(key).into_iter().flatten().filter(started) {
            fx.notify(WatcherOutput::Change {
                watch: *watch,
                key: key.to_owned(),
                alive,
            });
        }
    }
}

fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Measuring(_) => "measuring clock offset",
        Phase::ReadingSlots { .. } => "reading slots",
        Phase::ReadingBeings { .. } => "reading beings",
    }
}
