//! One process's presence (PROTOCOLS.md §5.3, §5.5): a batcher and the pingers it flushes for,
//! wired together as [`crate::leadership::Unit`] wires a tracker to its manager.
//!
//! Each pinger's pings go to the batcher at once (an in-process hand-off), and every store
//! request of either is tagged with an id of the agent's own, so an executor drives the whole
//! agent as one actor. The agent holds no protocol logic of its own: it is the routing every
//! executor would otherwise write. Its deadline is the earliest of the batcher's and its
//! pingers', kept in order, so an agent of many pingers answers without visiting each.

use super::batcher::BatcherOutput;
use super::{Batcher, BatcherConfig, Pinger, PingerOutput, PresenceConfig};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber, Request};
use crate::mutant::Mutant;
use crate::substrate::{Collection, OpResult};
use crate::time::LocalTime;
use crate::validate::{check_name, InputError};
use std::collections::{BTreeMap, BTreeSet};

/// Most pingers in one agent: each is a timer and a few hundred bytes.
pub const PINGERS_MAX: usize = 100_000;

/// What an agent reports: its pingers' outputs (pings included, after handing them to the
/// batcher) and its batcher's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentOutput {
    /// From the pinger of `key`.
    Pinger {
        /// The key.
        key: String,
        /// What it reported.
        output: PingerOutput,
    },
    /// From the batcher.
    Batcher(BatcherOutput),
}

/// Who issued a request the agent forwarded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Part {
    Batcher,
    Pinger(String),
}

/// A pinger and its deadline as last seen, so the agent's index of deadlines can be updated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Keeper {
    pinger: Pinger,
    due: Option<LocalTime>,
}

/// A batcher and the pingers of the keys this process keeps alive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Agent {
    config: PresenceConfig,
    mutant: Option<Mutant>,
    batcher: Batcher,
    pingers: BTreeMap<String, Keeper>,
    /// Every pinger's deadline, earliest first.
    deadlines: BTreeSet<(LocalTime, String)>,
    ids: OpIds,
    /// Each request in flight: who issued it, and the id it gave it.
    routes: BTreeMap<OpId, (Part, OpId)>,
}

impl Agent {
    /// An agent with no pingers yet; its batcher flushes on `config`'s timing.
    pub fn new(
        config: PresenceConfig,
        jitter_seed: Option<u64>,
        mutant: Option<Mutant>,
    ) -> Result<Agent, InputError> {
        config.validate()?;
        let batcher = Batcher::new(BatcherConfig {
            jitter_seed,
            mutant,
            ..config.batcher_config()
        })?;
        Ok(Agent {
            config,
            mutant,
            batcher,
            pingers: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            ids: OpIds::default(),
            routes: BTreeMap::new(),
        })
    }

    /// The presence configuration.
    pub fn config(&self) -> &PresenceConfig {
        &self.config
    }

    /// The pinger of `key`, if it was ever started here.
    pub fn pinger(&self, key: &str) -> Option<&Pinger> {
        self.pingers.get(key).map(|k| &k.pinger)
    }

    /// The batcher.
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// Starts pinging for `key` (a new sequence), creating its pinger on first use.
    pub fn handle_start(
        &mut self,
        key: &str,
        now: LocalTime,
    ) -> Result<Effects<AgentOutput>, InputError> {
        check_name("presence key", key)?;
        if !self.pingers.contains_key(key) {
            if self.pingers.len() >= PINGERS_MAX {
                return Err(InputError::InvalidConfig(format!(
                    "a presence agent keeps at most {PINGERS_MAX} keys alive"
                )));
            }
            let pinger = Pinger::new(self.config.clone(), key, self.mutant)?;
            let keeper = Keeper { pinger, due: None };
            self.pingers.insert(key.to_owned(), keeper);
        }
        Ok(self.with_pinger(key, now, |p| p.handle_start(now)))
    }

    /// Stops pinging for `key`; watchers see it dead once its last ping ages out.
    pub fn handle_stop(&mut self, key: &str, now: LocalTime) -> Effects<AgentOutput> {
        self.with_pinger(key, now, |p| p.handle_stop(now))
    }

    /// Stops pinging for `key` and marks its sequence dead at once.
    pub fn handle_kill(&mut self, key: &str, now: LocalTime) -> Effects<AgentOutput> {
        self.with_pinger(key, now, |p| p.handle_kill(now))
    }

    /// Flushes the batcher now.
    pub fn handle_flush(&mut self, now: LocalTime) -> Effects<AgentOutput> {
        let fx = self.batcher.handle_flush(now);
        self.route_batcher(fx)
    }

    /// Calls `key`'s pinger, if there is one, and routes what it says.
    fn with_pinger(
        &mut self,
        key: &str,
        now: LocalTime,
        f: impl FnOnce(&mut Pinger) -> Effects<PingerOutput>,
    ) -> Effects<AgentOutput> {
        let Some(keeper) = self.pingers.get_mut(key) else {
            return Effects::none();
        };
        let fx = f(&mut keeper.pinger);
        self.route_pinger(key, fx, now)
    }

    /// Tags `key`'s requests, hands its pings to the batcher, and re-indexes its deadline.
    fn route_pinger(
        &mut self,
        key: &str,
        fx: Effects<PingerOutput>,
        now: LocalTime,
    ) -> Effects<AgentOutput> {
        let mut out = Effects::none();
        for req in fx.requests {
            out.requests
                .push(self.tag(Part::Pinger(key.to_owned()), req));
        }
        for output in fx.notifications {
            let handed = match &output {
                PingerOutput::Ping(ping) => self.batcher.handle_ping(ping, now),
                _ => Effects::none(),
            };
            out.notify(AgentOutput::Pinger {
                key: key.to_owned(),
                output,
            });
            out.extend(self.route_batcher(handed));
        }
        self.reindex(key);
        out
    }

    fn route_batcher(&mut self, fx: Effects<BatcherOutput>) -> Effects<AgentOutput> {
        let mut out = Effects::none();
        for req in fx.requests {
            out.requests.push(self.tag(Part::Batcher, req));
        }
        out.notifications = fx
            .notifications
            .into_iter()
            .map(AgentOutput::Batcher)
            .collect();
        out
    }

    fn tag(&mut self, part: Part, req: Request) -> Request {
        let tagged = self.ids.request(req.op);
        let previous = self.routes.insert(tagged.id, (part, req.id));
        debug_assert!(previous.is_none(), "agent op id {:?} reused", tagged.id);
        tagged
    }

    fn reindex(&mut self, key: &str) {
        let Some(keeper) = self.pingers.get_mut(key) else {
            return;
        };
        let due = keeper.pinger.next_deadline();
        if due == keeper.due {
            return;
        }
        if let Some(old) = keeper.due.take() {
            self.deadlines.remove(&(old, key.to_owned()));
        }
        if let Some(new) = due {
            self.deadlines.insert((new, key.to_owned()));
        }
        keeper.due = due;
    }
}

impl Actor for Agent {
    type Output = AgentOutput;

    /// What its pingers and its batcher write.
    fn may_write(&self, coll: Collection) -> bool {
        matches!(
            coll,
            Collection::PresenceSeqs | Collection::PresenceBeings | Collection::PresencePings
        )
    }

    /// The earliest of the batcher's and the pingers' deadlines.
    fn next_deadline(&self) -> Option<LocalTime> {
        let pingers = self.deadlines.first().map(|(t, _)| *t);
        [self.batcher.next_deadline(), pingers]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires the batcher and every pinger that is due. Bounded: each pinger fires at most once
    /// (its next deadline is an interval later).
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<AgentOutput> {
        let mut out = Effects::none();
        if self.batcher.next_deadline().is_some_and(|t| t <= now) {
            let fx = self.batcher.handle_timeout(now);
            out.extend(self.route_batcher(fx));
        }
        for _ in 0..self.pingers.len() {
            let Some((due, key)) = self.deadlines.first().cloned() else {
                break;
            };
            if due > now {
                break;
            }
            out.extend(self.with_pinger(&key, now, |p| p.handle_timeout(now)));
            debug_assert!(
                self.pingers[&key].due.is_none_or(|d| d > now),
                "pinger {key:?} still due after its timeout"
            );
        }
        out
    }

    /// Hands the reply to whichever part issued the request.
    fn handle_reply(&mut self, id: OpId, result: OpResult, now: LocalTime) -> Effects<AgentOutput> {
        match self.routes.remove(&id) {
            Some((Part::Batcher, sub)) => {
                let fx = self.batcher.handle_reply(sub, result, now);
                self.route_batcher(fx)
            }
            Some((Part::Pinger(key), sub)) => {
                self.with_pinger(&key, now, |p| p.handle_reply(sub, result, now))
            }
            None => Effects::none(),
        }
    }
}

/// The agent's own ids only: its parts' ids never leave it.
impl Renumber for Agent {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.routes.keys().copied())
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.routes = std::mem::take(&mut self.routes)
            .into_iter()
            .map(|(id, route)| (id.lowered(by), route))
            .collect();
        self.ids.lower(by, []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::substrate::MemoryStore;

    /// Runs every request the agent issues against `store` until it has none left.
    fn drive(
        agent: &mut Agent,
        store: &mut MemoryStore,
        fx: Effects<AgentOutput>,
        now: LocalTime,
    ) -> Vec<AgentOutput> {
        let mut notes = fx.notifications;
        let mut requests = fx.requests;
        for _ in 0..1_000 {
            let Some(req) = requests.pop() else {
                return notes;
            };
            let fx = agent.handle_reply(req.id, store.apply(&req.op), now);
            requests.extend(fx.requests);
            notes.extend(fx.notifications);
        }
        panic!("the agent never went idle");
    }

    /// Goal: an agent starts pingers for two keys, hands their pings to its batcher and
    /// flushes both into one slot document; its deadline is the earliest of its parts'.
    #[test]
    fn pingers_ping_through_the_agents_batcher() {
        let mut store = MemoryStore::new();
        store.set_server_time(1_000_000_000_000);
        let config = PresenceConfig::new("m");
        let mut agent = Agent::new(config.clone(), None, None).unwrap();
        let t0 = LocalTime(0);
        for key in ["a", "b"] {
            let fx = agent.handle_start(key, t0).unwrap();
            let notes = drive(&mut agent, &mut store, fx, t0);
            assert!(notes.iter().any(|n| matches!(n,
                AgentOutput::Pinger { key: k, output: PingerOutput::Ping(_) } if k == key)));
        }
        assert_eq!(agent.batcher().pending_docs(), 1);
        let flush_at = agent.next_deadline().unwrap();
        assert_eq!(flush_at, t0.after(config.flush_interval));
        let fx = agent.handle_timeout(flush_at);
        let notes = drive(&mut agent, &mut store, fx, flush_at);
        assert!(notes.iter().any(|n| matches!(
            n,
            AgentOutput::Batcher(BatcherOutput::Flushed { docs: 1, .. })
        )));
        let doc = store.get(Collection::PresencePings, "m:990").unwrap();
        assert_eq!(super::super::decode_bits(doc, "alive").unwrap().len(), 2);
        // Next: the pingers' interval.
        assert_eq!(
            agent.next_deadline(),
            Some(t0.after(config.ping_interval()))
        );
        assert!(agent.handle_start("bad key", t0).is_err());
    }
}
