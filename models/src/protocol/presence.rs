//! The presence model (PROTOCOLS.md §5): pingers (one per key, each stopped and restarted at
//! most a few times), the batcher they hand their pings to, a watcher of every key and a
//! pruner. What the model observes, and the core properties it hands it to:
//!
//! - pingers' sequences: P1 (unique, increasing per pinger); pings sent against the stored
//!   bits once the batcher is idle: P2 (the store holds exactly their OR);
//! - watch events: P4 (they alternate) and P5 (a key pinging since the slot before a sync is
//!   alive to it);
//! - prune passes: P6 (the last four slots, every key's newest being and every referenced
//!   being survive);
//! - milestones: a key alive, a key dead, slots pruned.
//!
//! The pinger and the batcher are separate processes here (in a service they share one, as
//! `tenure::presence::Agent`), so each may pause or crash alone.

use crate::harness::state::State;
use crate::harness::state::{split, Node, Note};
use crate::harness::PresenceRole;
use crate::harness::TenureModel;
use crate::protocol::{reach, record, Milestone};
use crate::speedup::memo::PruneInput;
use crate::speedup::shared::Shared;
use std::collections::BTreeMap;
use std::time::Duration;
use tenure::presence::{
    oldest_kept_slot, slot_of_ping_id, Ping, PingerOutput, PresenceConfig, SlotClock, WatcherOutput,
};
use tenure::presence::{Batcher, BatcherConfig, Pinger, PresenceWatcher, Pruner};
use tenure::property::presence::{
    p1_sequences, p2_or_of_sent, p4_alternate, p5_pinging_never_dead, p6_prune_keeps,
    stored_alive_bits, PresenceSnapshot, Report,
};
use tenure::property::{Verdict, Violation};
use tenure::substrate::{Collection, MemoryStore};
use tenure::time::{nanos, LocalTime};

/// The presence model (namespace) every actor uses.
pub const MODEL: &str = "m";

/// The batcher's flush interval (Juju's).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The presence configuration of `model`.
pub fn config(model: &TenureModel) -> PresenceConfig {
    config_of(&model.config)
}

/// The presence configuration a model configuration runs (validated with it).
pub fn config_of(config: &crate::ModelConfig) -> PresenceConfig {
    PresenceConfig {
        model: MODEL.to_owned(),
        period: config.presence_period,
        flush_interval: FLUSH_INTERVAL,
    }
}

/// Key `i`'s name.
pub fn key(i: usize) -> String {
    format!("k{i}")
}

/// The server's clock as a slot clock over real time (offset: the server time at real zero).
pub fn server_clock(model: &TenureModel) -> SlotClock {
    SlotClock::measured(model.config.server_epoch_secs * 1_000_000_000, LocalTime(0))
}

/// The slot real time `real` is in, by the server's clock.
pub fn current_slot(model: &TenureModel, real: u64) -> i64 {
    server_clock(model).slot(LocalTime(real), config(model).period_secs())
}

/// P5's window for a report at real `real`: the slot before and the current one up to `real`
/// ([`PresenceConfig::alive_window_at`]), and one tick, the model's granularity of time.
pub fn window(model: &TenureModel, real: u64) -> u64 {
    let slot_start = server_clock(model).slot_start(current_slot(model, real)).0;
    let phase = Duration::from_nanos(real.saturating_sub(slot_start));
    nanos(config(model).alive_window_at(phase) + model.config.tick)
}

/// What a pinger reported.
pub(crate) fn pinger_note(
    model: &TenureModel,
    s: &mut State,
    i: usize,
    out: &PingerOutput,
    why: &mut Vec<Violation>,
) {
    match out {
        PingerOutput::Started { seq } => {
            s.ghost.presence_mut().seqs[i].push(*seq);
            record(why, p1_sequences(&s.ghost.presence().seqs));
            s.ghost.presence_mut().pinging_since[i] = Some(model.real(s));
        }
        PingerOutput::Ping(Ping {
            slot, field, bit, ..
        }) => {
            let at = s
                .ghost
                .presence()
                .sent
                .iter()
                .position(|(sl, f, _)| sl == slot && f == field);
            match at {
                Some(j) => s.ghost.presence_mut().sent[j].2 |= bit,
                None => {
                    s.ghost
                        .presence_mut()
                        .sent
                        .push((*slot, field.clone(), *bit));
                    s.ghost.presence_mut().sent.sort();
                }
            }
        }
        PingerOutput::Killed | PingerOutput::Failed(_) => {
            s.ghost.presence_mut().pinging_since[i] = None
        }
    }
}

/// What the watcher reported.
pub(crate) fn watcher_note(
    model: &TenureModel,
    s: &mut State,
    out: &WatcherOutput,
    why: &mut Vec<Violation>,
) {
    let WatcherOutput::Change { watch, key, alive } = out else {
        return;
    };
    let w = usize::try_from(watch.0).unwrap_or(usize::MAX);
    let Some(last) = s.ghost.presence().last_event.get(w).copied() else {
        return;
    };
    if let Some(prev) = last {
        let events = [(watch.0, key.clone(), prev), (watch.0, key.clone(), *alive)];
        record(why, p4_alternate(&events));
    }
    s.ghost.presence_mut().last_event[w] = Some(*alive);
    if *alive {
        reach(s, Milestone::KeyAlive);
        s.ghost.presence_mut().ever_alive |= 1 << w;
        return;
    }
    if s.ghost.presence().ever_alive & (1 << w) != 0 {
        reach(s, Milestone::KeyDied);
    }
    let real = model.real(s);
    let since = key
        .strip_prefix('k')
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| s.ghost.presence().pinging_since.get(i).copied().flatten());
    if let Some(since) = since {
        let pinging = BTreeMap::from([(key.clone(), vec![(since, real + 1)])]);
        let report = Report {
            key: key.clone(),
            real,
            alive: false,
        };
        record(
            why,
            p5_pinging_never_dead(&pinging, &[report], window(model, real)),
        );
    }
}

/// The presence part of a store, as P6 compares it.
pub(crate) fn snapshot(store: &MemoryStore) -> PresenceSnapshot {
    PresenceSnapshot::of(store, MODEL)
}

/// P6 over one pruner write.
pub(crate) fn pruned(
    model: &TenureModel,
    s: &mut State,
    before: &Shared<MemoryStore>,
    why: &mut Vec<Violation>,
) {
    let presence = s.ghost.presence();
    let input = PruneInput {
        before: before.fingerprint(),
        slot: presence.prune_slot,
        referenced: presence.prune_referenced.clone(),
    };
    let mut after = s.store.clone();
    let (violation, slots_pruned) = model.prune_memo.call(
        &mut after,
        input,
        |after, input| {
            let (before, after) = (snapshot(before), snapshot(after));
            let slots_pruned = after.slots.len() < before.slots.len();
            let violation = input.slot.and_then(|slot| {
                let period = config(model).period_secs();
                // The beings the pass must keep are those referenced by kept pings when it
                // began; a ping landing later may reference a being it already judged
                // superseded.
                let after = PresenceSnapshot {
                    referenced: input.referenced.iter().copied().collect(),
                    ..after
                };
                p6_prune_keeps(&before, &after, slot, period).err()
            });
            (violation, slots_pruned)
        },
        |_| {},
    );
    if slots_pruned {
        reach(s, Milestone::SlotsPruned);
    }
    why.extend(violation);
}

/// Sequences referenced by the pings a pass relative to `slot` must keep.
pub(crate) fn kept_references(model: &TenureModel, store: &MemoryStore, slot: i64) -> Vec<u64> {
    let period = config(model).period_secs();
    tenure::property::presence::kept_references(store, MODEL, slot, period)
        .into_iter()
        .collect()
}

/// P2 when the batcher has nothing pending or in flight: every surviving slot document holds
/// exactly the OR of the bits pinged into it.
pub(crate) fn settled_bits(model: &TenureModel, s: &State, why: &mut Vec<Violation>) {
    // Slot documents below the last prune's cut may have been deleted and re-created by a
    // late dead marker: leave them out, on both sides.
    let cut = s.ghost.presence().prune_slot.map_or(i64::MIN, |slot| {
        oldest_kept_slot(slot, config(model).period_secs())
    });
    let sent = &s.ghost.presence().sent;
    let input = (model.settled_memo.hash(sent), cut);
    let mut store = s.store.clone();
    let violation = model.settled_memo.call(
        &mut store,
        input,
        |store, _| p2_settled(store, sent, cut).err(),
        |_| {},
    );
    why.extend(violation);
}

/// P2 on `store`, given the pings `sent`, above the last prune's `cut`.
fn p2_settled(store: &MemoryStore, sent: &[(i64, String, i64)], cut: i64) -> Verdict {
    let mut stored = stored_alive_bits(store);
    let slot_of = |id: &str| slot_of_ping_id(id).unwrap_or(i64::MIN);
    stored.retain(|(id, _), _| slot_of(id) >= cut);
    let present: Vec<&str> = store
        .documents(Collection::PresencePings)
        .map(|d| d.id.as_str())
        .collect();
    let sent: BTreeMap<(String, String), i64> = sent
        .iter()
        .map(|(slot, f, b)| ((format!("{MODEL}:{slot}"), f.clone()), *b))
        .filter(|((id, _), _)| present.contains(&id.as_str()) && slot_of(id) >= cut)
        .collect();
    p2_or_of_sent(&sent, &stored)
}

impl TenureModel {
    /// A fresh presence actor in `role`.
    pub(crate) fn presence_actor(
        &self,
        role: PresenceRole,
    ) -> Result<Node, tenure::validate::InputError> {
        let config = config(self);
        let mutant = self.config.mutant;
        Ok(match role {
            PresenceRole::Pinger(i) => {
                Node::Pinger(Box::new(Pinger::new(config, &key(i), mutant)?))
            }
            PresenceRole::Batcher => Node::Batcher(Box::new(Batcher::new(BatcherConfig {
                mutant,
                ..config.batcher_config()
            })?)),
            PresenceRole::Watcher => {
                Node::PresenceWatcher(Box::new(PresenceWatcher::new(config, mutant)?))
            }
            PresenceRole::Pruner => Node::Pruner(Box::new(Pruner::new(config, mutant)?)),
        })
    }

    /// Pinger `k<i>` is stopped (`stop`, leaving a dead marker) or started again.
    pub(crate) fn switch_pinger(&self, s: &mut State, i: u8, stop: bool, why: &mut Vec<Violation>) {
        let p = usize::from(i);
        let now = self.now(s, p);
        if stop {
            s.ghost.presence_mut().kills_left[p] =
                s.ghost.presence().kills_left[p].saturating_sub(1);
            s.ghost.presence_mut().pinging_since[p] = None;
        }
        let out = self.call_directly(s, p, |a| match a {
            Node::Pinger(x) => Some(split(
                if stop {
                    x.handle_kill(now)
                } else {
                    x.handle_start(now)
                },
                Note::Pinger,
            )),
            _ => None,
        });
        if let Some(out) = out {
            self.absorb(s, p, &out, why);
        }
    }

    /// The pruner makes a pass, for the slot real time is in.
    pub(crate) fn prune(&self, s: &mut State, why: &mut Vec<Violation>) {
        s.ghost.presence_mut().prunes_left = s.ghost.presence().prunes_left.saturating_sub(1);
        let p = usize::from(self.config.pingers) + 2;
        let slot = current_slot(self, self.real(s));
        s.ghost.presence_mut().prune_slot = Some(slot);
        s.ghost.presence_mut().prune_referenced = kept_references(self, &s.store, slot);
        let now = self.now(s, p);
        let out = self.call_directly(s, p, |a| match a {
            Node::Pruner(x) => Some(split(x.handle_prune(slot, now), Note::Pruner)),
            _ => None,
        });
        if let Some(out) = out {
            self.absorb(s, p, &out, why);
        }
    }
}
