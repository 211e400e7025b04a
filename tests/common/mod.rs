//! A small deterministic executor for the core's actors, for tests.
//!
//! Goal: drive the sans-I/O actors exactly as the simulator and adapter will — requests carried to
//! the reference store, replies carried back, timers fired — with explicit real time, per-process
//! clock rates, requests held in flight, and lost or ambiguous replies, so tests can state
//! reference behaviours and properties over every interleaving a choice sequence picks.
//! Method: every node's requests wait in `in_flight` until a step delivers them; `step(choice)`
//! lets a number pick the next thing to happen (deliver, fire a timer, let time pass).

#![allow(dead_code)]

use std::time::Duration;
use tenure::clock;
use tenure::effects::{Effects, OpId, Request};
use tenure::lease::{LeaseDoc, LeaseManager, ManagerOutput};
use tenure::property::lease::LeaseChange;
use tenure::substrate::{Collection, MemoryStore, Op, OpResult};
use tenure::time::{GlobalTime, LocalTime};

/// A process's local clock: `local = offset + real × (1 + rate_ppm / 10⁶)`.
/// Local clocks drift by a rate in ppm (the core's executor helper).
pub type Clock = tenure::time::DriftingClock;

pub use tenure::actor::{Actor, Node, Note};

/// Requests and notes out of one call.
pub type Out = (Vec<Request>, Vec<Note>);

/// An actor's effects as requests and notes, its outputs tagged by `f`.
pub fn split<N>(fx: Effects<N>, f: impl FnMut(N) -> Note) -> Out {
    let fx = fx.map(f);
    (fx.requests, fx.notifications)
}

/// How a delivered request fares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Applied and answered.
    None,
    /// Applied, reply lost: the caller sees `Unknown`.
    Ambiguous,
    /// Not applied, caller sees `Unknown`.
    Lost,
    /// Not applied, refused by the store (unreachable, not primary): caller sees `Failed`.
    Refused,
}

/// A process: an actor, its local clock and whether it is paused.
pub struct Proc {
    pub actor: Node,
    pub clock: Clock,
    /// A paused node takes no steps: its requests still reach the store, but the replies wait
    /// in `held` until it resumes (a GC pause or SIGSTOP in the middle of a call).
    pub paused: bool,
    pub held: Vec<(OpId, OpResult)>,
}

/// The executor.
pub struct Sim {
    pub store: MemoryStore,
    pub real: u64,
    pub nodes: Vec<Proc>,
    pub in_flight: Vec<(usize, Request)>,
    /// Every notification with its real time and node.
    pub notes: Vec<(u64, usize, Note)>,
    /// Every change to a lease document, with the true global time.
    pub lease_changes: Vec<LeaseChange>,
    /// Every value the clock document took, with its real time.
    pub clock_samples: Vec<(u64, GlobalTime)>,
    /// Every request delivered, with its node.
    pub delivered: Vec<(usize, Op)>,
    /// Whether `step` may inject faults.
    pub faults: bool,
    /// The namespace whose lease changes are recorded.
    pub namespace: String,
    /// If set, the server's wall clock reads this offset plus real time at every operation.
    pub server_epoch: Option<u64>,
}

impl Sim {
    pub fn new() -> Sim {
        Sim {
            store: MemoryStore::new(),
            real: 0,
            nodes: Vec::new(),
            in_flight: Vec::new(),
            notes: Vec::new(),
            lease_changes: Vec::new(),
            clock_samples: Vec::new(),
            delivered: Vec::new(),
            faults: false,
            namespace: "app".into(),
            server_epoch: None,
        }
    }

    pub fn add(&mut self, actor: Node, clock: Clock) -> usize {
        self.nodes.push(Proc {
            actor,
            clock,
            paused: false,
            held: Vec::new(),
        });
        self.nodes.len() - 1
    }

    pub fn now(&self, node: usize) -> LocalTime {
        self.nodes[node].clock.local(self.real)
    }

    pub fn global(&self) -> GlobalTime {
        self.store
            .get(Collection::Clock, clock::CLOCK_ID)
            .and_then(|d| clock::decode(d).ok())
            .unwrap_or_default()
    }

    /// Feeds `fx` from `node` into the executor.
    pub fn absorb<N>(&mut self, node: usize, fx: Effects<N>, f: fn(N) -> Note) {
        let (reqs, notes) = split(fx, f);
        self.absorb_out(node, (reqs, notes));
    }

    fn absorb_out(&mut self, node: usize, (reqs, notes): Out) {
        self.in_flight.extend(reqs.into_iter().map(|r| (node, r)));
        let real = self.real;
        self.notes
            .extend(notes.into_iter().map(|n| (real, node, n)));
    }

    /// Calls an API method of a node's actor and absorbs its effects.
    pub fn call(&mut self, node: usize, f: impl FnOnce(&mut Node, LocalTime) -> Out) {
        let now = self.now(node);
        let out = f(&mut self.nodes[node].actor, now);
        self.absorb_out(node, out);
    }

    fn lease_doc(&self, id: &str) -> Option<LeaseDoc> {
        self.store
            .get(Collection::Leases, id)
            .and_then(|d| LeaseDoc::decode(d, &self.namespace).ok())
    }

    /// Applies `op` to the store, recording lease changes and clock samples.
    pub fn apply(&mut self, node: usize, op: &Op, fault: Fault) -> OpResult {
        self.delivered.push((node, op.clone()));
        if let Some(epoch) = self.server_epoch {
            self.store.set_server_time(epoch + self.real);
        }
        match fault {
            Fault::Lost => return OpResult::Unknown,
            Fault::Refused => return OpResult::Failed("not primary".into()),
            Fault::None | Fault::Ambiguous => {}
        }
        let lease_id = match op {
            Op::Update {
                coll: Collection::Leases,
                id,
                ..
            }
            | Op::Delete {
                coll: Collection::Leases,
                id,
                ..
            } => Some(id.clone()),
            Op::Insert {
                coll: Collection::Leases,
                doc,
            } => Some(doc.id.clone()),
            _ => None,
        };
        let before = lease_id.as_deref().and_then(|id| self.lease_doc(id));
        let clock_before = self.global();
        let result = self.store.apply(op);
        if let Some(id) = lease_id {
            let after = self.lease_doc(&id);
            if after != before {
                self.lease_changes.push(LeaseChange {
                    before,
                    after,
                    global: self.global(),
                });
            }
        }
        let clock_after = self.global();
        if clock_after != clock_before || self.clock_samples.is_empty() {
            self.clock_samples.push((self.real, clock_after));
        }
        if fault == Fault::Ambiguous && op.is_write() {
            return OpResult::Unknown;
        }
        result
    }

    /// Delivers the `i`-th in-flight request.
    pub fn deliver(&mut self, i: usize, fault: Fault) {
        let (node, req) = self.in_flight.remove(i);
        let result = self.apply(node, &req.op, fault);
        if self.nodes[node].paused {
            self.nodes[node].held.push((req.id, result));
            return;
        }
        let now = self.now(node);
        let out = split(
            self.nodes[node].actor.handle_reply(req.id, result, now),
            |n| n,
        );
        self.absorb_out(node, out);
    }

    /// Pauses or resumes a node; on resuming it takes the replies that arrived meanwhile.
    pub fn set_paused(&mut self, node: usize, paused: bool) {
        self.nodes[node].paused = paused;
        if !paused {
            for (id, result) in std::mem::take(&mut self.nodes[node].held) {
                let now = self.now(node);
                let out = split(self.nodes[node].actor.handle_reply(id, result, now), |n| n);
                self.absorb_out(node, out);
            }
        }
    }

    /// Fires `node`'s timer if due.
    pub fn fire(&mut self, node: usize) {
        let now = self.now(node);
        if self.nodes[node].paused
            || self.nodes[node]
                .actor
                .next_deadline()
                .is_none_or(|d| d > now)
        {
            return;
        }
        let out = split(self.nodes[node].actor.handle_timeout(now), |n| n);
        self.absorb_out(node, out);
    }

    /// The first running node whose timer is due now.
    fn due_node(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|n| {
            !self.nodes[*n].paused
                && self.nodes[*n]
                    .actor
                    .next_deadline()
                    .is_some_and(|d| d <= self.now(*n))
        })
    }

    /// Delivers everything and fires every due timer until nothing is left to do now.
    pub fn settle(&mut self) {
        for _ in 0..100_000 {
            if !self.in_flight.is_empty() {
                self.deliver(0, Fault::None);
                continue;
            }
            match self.due_node() {
                Some(n) => self.fire(n),
                None => return,
            }
        }
        panic!("the actors never went idle");
    }

    /// Like [`Sim::settle`], but when `faults` is on each delivery may be lost or ambiguous, as
    /// picked by a small generator seeded with `seed`.
    pub fn settle_faulty(&mut self, seed: u32) {
        let mut x = u64::from(seed) | 1;
        for _ in 0..100_000 {
            if self.in_flight.is_empty() {
                match self.due_node() {
                    Some(n) => self.fire(n),
                    None => return,
                }
                continue;
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fault = match (self.faults, x % 8) {
                (true, 0) => Fault::Ambiguous,
                (true, 1) => Fault::Lost,
                _ => Fault::None,
            };
            self.deliver(0, fault);
        }
        panic!("the actors never went idle");
    }

    /// Lets real time pass to `real`, settling at every timer on the way.
    pub fn run_until(&mut self, real: u64) {
        self.settle();
        for _ in 0..1_000_000 {
            let next = (0..self.nodes.len())
                .filter(|n| !self.nodes[*n].paused)
                .filter_map(|n| {
                    self.nodes[n]
                        .actor
                        .next_deadline()
                        .map(|d| self.real_of(n, d))
                })
                .min()
                .filter(|t| *t <= real);
            match next {
                Some(t) => {
                    self.real = self.real.max(t);
                    self.settle();
                }
                None => {
                    self.real = real;
                    self.settle();
                    return;
                }
            }
        }
        panic!("too many timer firings before real {real}");
    }

    /// The first real time at which `node`'s clock reads at least `local`.
    pub fn real_of(&self, node: usize, local: LocalTime) -> u64 {
        self.nodes[node].clock.real_of(local)
    }

    /// One step picked by `choice`: deliver an in-flight request (maybe with a fault), fire a
    /// due timer, or let up to `max_advance` of real time pass.
    pub fn step(&mut self, choice: u32, max_advance: Duration) {
        let pick = choice as usize;
        match pick % 4 {
            0 | 1 if !self.in_flight.is_empty() => {
                let i = (pick / 4) % self.in_flight.len();
                let fault = match (self.faults, (pick / 64) % 8) {
                    (true, 0) => Fault::Ambiguous,
                    (true, 1) => Fault::Lost,
                    _ => Fault::None,
                };
                self.deliver(i, fault);
            }
            2 => {
                let n = (pick / 4) % self.nodes.len().max(1);
                if !self.nodes.is_empty() {
                    self.fire(n);
                }
            }
            _ => {
                let max = u64::try_from(max_advance.as_nanos()).unwrap().max(1);
                self.real += (u64::from(choice) * 7_919) % max + 1;
                for n in 0..self.nodes.len() {
                    self.fire(n);
                }
            }
        }
    }

    /// The actor of node `n`, to read its state.
    pub fn node(&self, n: usize) -> &Node {
        &self.nodes[n].actor
    }

    pub fn manager(&mut self, n: usize) -> &mut LeaseManager {
        match &mut self.nodes[n].actor {
            Node::Manager(m) => m,
            _ => panic!("node {n} is not a manager"),
        }
    }

    /// Notifications of one node.
    pub fn notes_of(&self, node: usize) -> Vec<Note> {
        self.notes
            .iter()
            .filter(|(_, n, _)| *n == node)
            .map(|(_, _, n)| n.clone())
            .collect()
    }

    /// Manager outputs of one node.
    pub fn manager_outputs(&self, node: usize) -> Vec<ManagerOutput> {
        self.notes_of(node)
            .into_iter()
            .filter_map(|n| match n {
                Note::Manager(m) => Some(m),
                _ => None,
            })
            .collect()
    }
}

pub fn secs(s: u64) -> u64 {
    s * 1_000_000_000
}

pub fn ms(s: u64) -> u64 {
    s * 1_000_000
}

/// Lease-manager helpers.
pub mod lease {
    use super::{split, Clock, Node, Note, Sim};
    use std::time::Duration;
    use tenure::lease::{LeaseManager, ManagerConfig, RequestId};
    use tenure::substrate::{fields, Collection, Document, Value};
    use tenure::time::GlobalTime;

    fn with(
        sim: &mut Sim,
        n: usize,
        f: impl FnOnce(
            &mut LeaseManager,
            tenure::time::LocalTime,
        ) -> tenure::effects::Effects<tenure::lease::ManagerOutput>,
    ) {
        sim.call(n, |a, now| match a {
            Node::Manager(m) => split(f(m, now), Note::Manager),
            _ => panic!("not a manager"),
        });
    }

    /// Adds and starts a manager.
    pub fn manager(sim: &mut Sim, config: ManagerConfig, clock: Clock) -> usize {
        let n = sim.add(
            Node::Manager(Box::new(LeaseManager::new(config).unwrap())),
            clock,
        );
        with(sim, n, |m, now| m.handle_start(now));
        n
    }

    pub fn claim(sim: &mut Sim, n: usize, req: u64, lease: &str, holder: &str, d: Duration) {
        with(sim, n, |m, now| {
            m.handle_claim(RequestId(req), lease, holder, d, now)
        });
    }

    pub fn release(sim: &mut Sim, n: usize, req: u64, lease: &str, holder: &str, epoch: u64) {
        with(sim, n, |m, now| {
            m.handle_release(
                RequestId(req),
                lease,
                holder,
                tenure::lease::Epoch(epoch),
                now,
            )
        });
    }

    pub fn check(sim: &mut Sim, n: usize, req: u64, lease: &str, holder: &str) {
        with(sim, n, |m, now| {
            m.handle_check(RequestId(req), lease, holder, now)
        });
    }

    pub fn wait(sim: &mut Sim, n: usize, req: u64, lease: &str) {
        with(sim, n, |m, now| {
            m.handle_wait_expired(RequestId(req), lease, now)
        });
    }

    pub fn cancel(sim: &mut Sim, n: usize, req: u64) {
        with(sim, n, |m, now| m.handle_cancel_wait(RequestId(req), now));
    }

    pub fn stop(sim: &mut Sim, n: usize) {
        with(sim, n, |m, now| m.handle_stop(now));
    }

    /// Sets the clock document to `t` (as if updaters had advanced it).
    pub fn set_global(sim: &mut Sim, t: u64) {
        sim.store.put(
            Collection::Clock,
            Document::new("g", fields([("time", Value::from(t))])),
        );
        sim.clock_samples.push((sim.real, GlobalTime(t)));
    }
}

/// Leadership trackers wired to lease managers, as a unit agent talks to its controller.
pub mod leadership {
    use super::{lease, Note, Sim};
    use std::collections::BTreeMap;
    use tenure::actor::Actor;
    use tenure::effects::Effects;
    use tenure::leadership::{
        ClaimResult, TicketId, TicketKind, Tracker, TrackerConfig, TrackerOutput,
    };
    use tenure::lease::ManagerOutput;

    pub struct Unit {
        pub tracker: Tracker,
        pub manager: usize,
        /// Whether the manager's local deadline is passed back (same process) or not (remote).
        pub share_deadline: bool,
        pub outputs: Vec<(u64, TrackerOutput)>,
    }

    #[derive(Clone, Copy)]
    enum Waiting {
        Claim(usize),
        Release(usize),
    }

    pub struct World {
        pub sim: Sim,
        pub units: Vec<Unit>,
        requests: BTreeMap<u64, Waiting>,
        next_req: u64,
        seen: usize,
        /// `(real, unit)` for every release-waiter that returned.
        pub released: Vec<(u64, usize)>,
    }

    impl World {
        pub fn new(sim: Sim) -> World {
            World {
                sim,
                units: Vec::new(),
                requests: BTreeMap::new(),
                next_req: 1_000_000,
                seen: 0,
                released: Vec::new(),
            }
        }

        /// Adds a unit whose tracker uses manager node `manager` and its clock, and starts it.
        pub fn unit(
            &mut self,
            config: TrackerConfig,
            manager: usize,
            share_deadline: bool,
        ) -> usize {
            self.units.push(Unit {
                tracker: Tracker::new(config).unwrap(),
                manager,
                share_deadline,
                outputs: Vec::new(),
            });
            let u = self.units.len() - 1;
            let now = self.sim.now(manager);
            let fx = self.units[u].tracker.handle_start(now);
            self.feed(u, fx);
            u
        }

        fn feed(&mut self, u: usize, fx: Effects<TrackerOutput>) {
            for out in fx.notifications {
                self.units[u].outputs.push((self.sim.real, out.clone()));
                let m = self.units[u].manager;
                match out {
                    TrackerOutput::Claim {
                        application,
                        unit,
                        duration,
                    } => {
                        self.next_req += 1;
                        self.requests.insert(self.next_req, Waiting::Claim(u));
                        lease::claim(
                            &mut self.sim,
                            m,
                            self.next_req,
                            &application,
                            &unit,
                            duration,
                        );
                    }
                    TrackerOutput::WaitReleased { application } => {
                        self.next_req += 1;
                        self.requests.insert(self.next_req, Waiting::Release(u));
                        lease::wait(&mut self.sim, m, self.next_req, &application);
                    }
                    _ => {}
                }
            }
        }

        /// Settles the store and routes manager answers to trackers until nothing moves.
        pub fn pump(&mut self) {
            assert!(self.try_pump(), "leadership world never settled");
        }

        /// [`World::pump`], or `false` if the world never settles (a livelocked mutant).
        pub fn try_pump(&mut self) -> bool {
            for _ in 0..10_000 {
                self.sim.settle();
                if !self.route() {
                    return true;
                }
            }
            false
        }

        /// Routes manager answers noted so far to their trackers; `false` if there were none.
        pub fn route(&mut self) -> bool {
            let mut any = false;
            while self.seen < self.sim.notes.len() {
                any = true;
                let (i, node, note) = (
                    self.seen,
                    self.sim.notes[self.seen].1,
                    self.sim.notes[self.seen].2.clone(),
                );
                self.seen = i + 1;
                let Note::Manager(out) = note else { continue };
                let req = match &out {
                    ManagerOutput::Claimed { req, .. }
                    | ManagerOutput::Denied { req, .. }
                    | ManagerOutput::Failed { req, .. }
                    | ManagerOutput::WaitEnded { req }
                    | ManagerOutput::WaitCancelled { req } => *req,
                    _ => continue,
                };
                let Some(waiting) = self.requests.remove(&req.0) else {
                    continue;
                };
                let now = self.sim.now(node);
                let fx = match (waiting, out) {
                    (Waiting::Claim(u), answer) => {
                        let share = self.units[u].share_deadline;
                        let result = ClaimResult::from_answer(&answer, share);
                        (u, self.units[u].tracker.handle_claim_result(result, now))
                    }
                    (Waiting::Release(u), _) => {
                        self.released.push((self.sim.real, u));
                        (u, self.units[u].tracker.handle_released(now))
                    }
                };
                self.feed(fx.0, fx.1);
            }
            any
        }

        /// Sends a claim for unit `u` to manager `m`, as the tracker asked.
        pub fn claim_for(
            &mut self,
            u: usize,
            m: usize,
            application: &str,
            unit: &str,
            duration: std::time::Duration,
        ) {
            self.next_req += 1;
            self.requests.insert(self.next_req, Waiting::Claim(u));
            lease::claim(&mut self.sim, m, self.next_req, application, unit, duration);
        }

        /// Fires unit `u`'s tracker timer if due.
        pub fn fire_tracker(&mut self, u: usize) {
            let now = self.sim.now(self.units[u].manager);
            let fx = self.units[u].tracker.handle_timeout(now);
            self.feed(u, fx);
        }

        /// Lets real time pass to `real`, firing store-actor and tracker timers on the way.
        pub fn run_until(&mut self, real: u64) {
            assert!(self.try_run_until(real), "leadership world never settled");
        }

        /// [`World::run_until`], or `false` if the world never settles on the way.
        pub fn try_run_until(&mut self, real: u64) -> bool {
            if !self.try_pump() {
                return false;
            }
            for _ in 0..1_000_000 {
                let store_next = (0..self.sim.nodes.len())
                    .filter(|n| !self.sim.nodes[*n].paused)
                    .filter_map(|n| {
                        self.sim.nodes[n]
                            .actor
                            .next_deadline()
                            .map(|d| self.sim.real_of(n, d))
                    });
                let tracker_next = self.units.iter().filter_map(|u| {
                    u.tracker
                        .next_deadline()
                        .map(|d| self.sim.real_of(u.manager, d))
                });
                match store_next.chain(tracker_next).min().filter(|t| *t <= real) {
                    Some(t) => {
                        self.sim.real = self.sim.real.max(t);
                        for u in 0..self.units.len() {
                            let now = self.sim.now(self.units[u].manager);
                            let fx = self.units[u].tracker.handle_timeout(now);
                            self.feed(u, fx);
                        }
                        if !self.try_pump() {
                            return false;
                        }
                    }
                    None => {
                        self.sim.real = real;
                        return self.try_pump();
                    }
                }
            }
            false
        }

        /// Issues a ticket; returns its id.
        pub fn ticket(&mut self, u: usize, kind: TicketKind) -> TicketId {
            let now = self.sim.now(self.units[u].manager);
            let (id, fx) = self.units[u].tracker.handle_ticket(kind, now);
            self.feed(u, fx);
            self.pump();
            id
        }

        /// The resolution of a ticket, if it has resolved.
        pub fn answer(&self, u: usize, id: TicketId) -> Option<bool> {
            self.units[u].outputs.iter().find_map(|(_, o)| match o {
                TrackerOutput::Ticket { id: i, value, .. } if *i == id => Some(*value),
                _ => None,
            })
        }

        pub fn stop(&mut self, u: usize) {
            let now = self.sim.now(self.units[u].manager);
            let fx = self.units[u].tracker.handle_stop(now);
            self.feed(u, fx);
        }
    }
}

/// Presence helpers: pingers' pings routed to a batcher.
pub mod presence {
    use super::{split, Clock, Node, Note, Sim};
    use tenure::presence::{
        Batcher, Pinger, PingerOutput, PresenceConfig, PresenceWatcher, Pruner,
    };

    pub fn config(model: &str) -> PresenceConfig {
        PresenceConfig::new(model)
    }

    pub fn batcher(sim: &mut Sim) -> usize {
        let cfg = config("m").batcher_config();
        sim.add(
            Node::Batcher(Box::new(Batcher::new(cfg).unwrap())),
            Clock::EXACT,
        )
    }

    pub fn pinger(
        sim: &mut Sim,
        config: &PresenceConfig,
        key: &str,
        clock: Clock,
        mutant: Option<tenure::mutant::Mutant>,
    ) -> usize {
        let n = sim.add(
            Node::Pinger(Box::new(Pinger::new(config.clone(), key, mutant).unwrap())),
            clock,
        );
        start(sim, n);
        n
    }

    pub fn start(sim: &mut Sim, n: usize) {
        sim.call(n, |a, now| match a {
            Node::Pinger(p) => split(p.handle_start(now), Note::Pinger),
            _ => panic!(),
        });
    }

    pub fn stop(sim: &mut Sim, n: usize) {
        sim.call(n, |a, now| match a {
            Node::Pinger(p) => split(p.handle_stop(now), Note::Pinger),
            _ => panic!(),
        });
    }

    pub fn kill(sim: &mut Sim, n: usize) {
        sim.call(n, |a, now| match a {
            Node::Pinger(p) => split(p.handle_kill(now), Note::Pinger),
            _ => panic!(),
        });
    }

    pub fn watcher(
        sim: &mut Sim,
        config: &PresenceConfig,
        mutant: Option<tenure::mutant::Mutant>,
    ) -> usize {
        sim.add(
            Node::PresenceWatcher(Box::new(
                PresenceWatcher::new(config.clone(), mutant).unwrap(),
            )),
            Clock::EXACT,
        )
    }

    pub fn pruner(
        sim: &mut Sim,
        config: &PresenceConfig,
        mutant: Option<tenure::mutant::Mutant>,
    ) -> usize {
        sim.add(
            Node::Pruner(Box::new(Pruner::new(config.clone(), mutant).unwrap())),
            Clock::EXACT,
        )
    }

    pub fn watch(sim: &mut Sim, w: usize, key: &str) {
        sim.call(w, |a, now| match a {
            Node::PresenceWatcher(x) => {
                split(x.handle_watch(key, now).unwrap().1, Note::PresenceWatcher)
            }
            _ => panic!(),
        });
    }

    pub fn prune(sim: &mut Sim, p: usize, slot: i64) {
        sim.call(p, |a, now| match a {
            Node::Pruner(x) => split(x.handle_prune(slot, now), Note::Pruner),
            _ => panic!(),
        });
    }

    pub fn watcher_ref(sim: &Sim, w: usize) -> &PresenceWatcher {
        match &sim.nodes[w].actor {
            Node::PresenceWatcher(x) => x,
            _ => panic!(),
        }
    }

    /// Routes every ping noted since `*seen` to the batcher node `b`.
    pub fn route(sim: &mut Sim, b: usize, seen: &mut usize) {
        while *seen < sim.notes.len() {
            let note = sim.notes[*seen].2.clone();
            *seen += 1;
            if let Note::Pinger(PingerOutput::Ping(ping)) = note {
                sim.call(b, |a, now| match a {
                    Node::Batcher(x) => split(x.handle_ping(&ping, now), Note::Batcher),
                    _ => panic!(),
                });
            }
        }
    }

    /// Runs to `real` in steps of at most one second, routing pings as they appear.
    pub fn run_until(sim: &mut Sim, b: usize, seen: &mut usize, real: u64) {
        while sim.real < real {
            let next = (sim.real + 1_000_000_000).min(real);
            sim.run_until(next);
            route(sim, b, seen);
            sim.settle();
        }
    }
}
