//! The scenario tests' world: the simulator's scripted world ([`tenure_sim::script`]), with
//! the calls each protocol's tests make. The simulator executes every effect (requests held in
//! flight until delivered, replies, timers, pauses, the store); these helpers only name the
//! actor calls, so no test restates how the core is driven.

// Each test file uses part of this module.
#![allow(dead_code, unused_imports)]

use std::ops::{Deref, DerefMut};
use tenure::effects::Effects;
use tenure::lease::{LeaseManager, ManagerOutput};
use tenure_sim::script::Script;

pub use tenure::actor::{Actor, Node, Note};
pub use tenure_sim::script::Delivery as Fault;

/// A process's local clock: `local = offset + real × (1 + rate_ppm / 10⁶)`.
pub type Clock = tenure::time::DriftingClock;

/// An actor's effects, its outputs tagged by `f`.
pub fn split<N>(fx: Effects<N>, f: impl FnMut(N) -> Note) -> Effects<Note> {
    fx.map(f)
}

/// The scripted world, its leases in namespace `app`; a test fails if its actors never go idle.
pub struct Sim(Script);

impl Deref for Sim {
    type Target = Script;

    fn deref(&self) -> &Script {
        &self.0
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Script {
        &mut self.0
    }
}

impl Sim {
    pub fn new() -> Sim {
        Sim(Script::new("app"))
    }

    /// Adds a process (named by its index) running `actor` on `clock`.
    pub fn add(&mut self, actor: Node, clock: Clock) -> usize {
        let name = format!("p{}", self.procs.len());
        self.0.add(name, actor, clock.into())
    }

    /// Delivers everything and fires every due timer until nothing is left to do now.
    pub fn settle(&mut self) {
        assert!(self.0.settle(), "the actors never went idle");
    }

    /// Lets real time pass to `real`, settling at every timer on the way.
    pub fn run_until(&mut self, real: u64) {
        assert!(self.0.run_until(real), "the actors never went idle");
    }

    /// The actor of process `n`, to read its state.
    pub fn node(&self, n: usize) -> &Node {
        &self.procs[n].node
    }

    pub fn manager(&mut self, n: usize) -> &mut LeaseManager {
        match &mut self.procs[n].node {
            Node::Manager(m) => m,
            _ => panic!("process {n} is not a manager"),
        }
    }

    /// Notes of one process.
    pub fn notes_of(&self, n: usize) -> Vec<Note> {
        self.log()
            .notes
            .iter()
            .filter(|(_, p, _)| *p == n)
            .map(|(_, _, note)| note.clone())
            .collect()
    }

    /// Manager outputs of one process.
    pub fn manager_outputs(&self, n: usize) -> Vec<ManagerOutput> {
        self.notes_of(n)
            .into_iter()
            .filter_map(|note| match note {
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
    }
}

/// Leadership units (a tracker wired to its own manager, the core's `Unit`).
pub mod leadership {
    use super::{split, Clock, Node, Note, Sim};
    use tenure::leadership::{TicketId, TicketKind, Tracker, TrackerConfig, TrackerOutput, Unit};
    use tenure::lease::ManagerConfig;

    /// Adds unit `i` (its manager writes as `ctl-<i>`), starts it, and settles.
    pub fn unit(sim: &mut Sim, i: usize, config: TrackerConfig) -> usize {
        let unit = Unit::new(ManagerConfig::new("app", format!("ctl-{i}")), config).unwrap();
        let n = sim.add(Node::Unit(Box::new(unit)), Clock::EXACT);
        call(sim, n, |u, now| u.handle_start(now));
        n
    }

    fn call(
        sim: &mut Sim,
        n: usize,
        f: impl FnOnce(
            &mut Unit,
            tenure::time::LocalTime,
        ) -> tenure::effects::Effects<tenure::leadership::UnitOutput>,
    ) {
        sim.call(n, |a, now| match a {
            Node::Unit(u) => split(f(u, now), Note::from),
            _ => panic!("not a unit"),
        });
        sim.settle();
    }

    /// Issues a ticket and settles; returns its id.
    pub fn ticket(sim: &mut Sim, n: usize, kind: TicketKind) -> TicketId {
        let mut id = None;
        call(sim, n, |u, now| {
            let (t, fx) = u.handle_ticket(kind, now);
            id = Some(t);
            fx
        });
        id.expect("a ticket")
    }

    pub fn stop(sim: &mut Sim, n: usize) {
        call(sim, n, |u, now| u.handle_stop(now));
    }

    /// The resolution of a ticket, if it has resolved.
    pub fn answer(sim: &Sim, n: usize, id: TicketId) -> Option<bool> {
        outputs(sim, n).into_iter().find_map(|o| match o {
            TrackerOutput::Ticket { id: i, value, .. } if i == id => Some(value),
            _ => None,
        })
    }

    /// Everything unit `n`'s tracker reported, in order.
    pub fn outputs(sim: &Sim, n: usize) -> Vec<TrackerOutput> {
        sim.notes_of(n)
            .into_iter()
            .filter_map(|note| match note {
                Note::Tracker(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    pub fn tracker(sim: &Sim, n: usize) -> &Tracker {
        match sim.node(n) {
            Node::Unit(u) => u.tracker(),
            _ => panic!("not a unit"),
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
        match sim.node(w) {
            Node::PresenceWatcher(x) => x,
            _ => panic!(),
        }
    }

    /// Routes every ping noted since `*seen` to the batcher node `b`.
    pub fn route(sim: &mut Sim, b: usize, seen: &mut usize) {
        while *seen < sim.log().notes.len() {
            let note = sim.log().notes[*seen].2.clone();
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
