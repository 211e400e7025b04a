//! Scripted runs: the simulator's world with its network in the caller's hands.
//!
//! Why: a test that states one reference behaviour ("a claim whose reply is lost, then a
//! retry") must pin one interleaving down, where a seeded run picks its own. A [`Script`] holds
//! every request in flight until the caller delivers it, with the outcome the caller names, and
//! lets real time pass only when told. Everything else is the simulator's own code: the
//! processes and their clocks, pauses that hold replies back, how a reply reaches its actor,
//! timers, how the store applies an operation, and the online property checks.
//!
//! ```
//! use tenure::actor::{Node, Note};
//! use tenure::lease::{LeaseManager, ManagerConfig, ManagerOutput, RequestId};
//! use tenure_sim::clock::SimClock;
//! use tenure_sim::script::{Delivery, Script};
//! use std::time::Duration;
//!
//! let mut s = Script::new("app");
//! let m = LeaseManager::new(ManagerConfig::new("app", "ctl-0")).unwrap();
//! let p = s.add("manager", Node::Manager(Box::new(m)), SimClock::new(0, 0));
//! s.call(p, |n, now| match n {
//!     Node::Manager(m) => m
//!         .handle_claim(RequestId(1), "db", "unit-0", Duration::from_secs(60), now)
//!         .map(Note::Manager),
//!     _ => unreachable!(),
//! });
//! // The claim's first request (a global-time read) waits for the script.
//! assert_eq!(s.in_flight().len(), 1);
//! s.deliver(0, Delivery::Lost);
//! assert!(s.settle());
//! let failed = s.log().notes.iter().any(|(_, _, n)| {
//!     matches!(n, Note::Manager(ManagerOutput::Failed { .. }))
//! });
//! assert!(failed, "a lost global read fails the claim");
//! ```

use crate::clock::SimClock;
use crate::config::{SimConfig, Workload};
use crate::faults::FaultRates;
use crate::rng::Rng;
use crate::workload::Drive;
use crate::world::{Proc, Role, World};
use std::ops::{Deref, DerefMut};
use tenure::actor::{Actor, Node, Note};
use tenure::clock;
use tenure::effects::{Effects, Request};
use tenure::lease::LeaseDoc;
use tenure::property::lease::LeaseChange;
use tenure::substrate::{Collection, Document, MemoryStore, Op, OpResult};
use tenure::time::{GlobalTime, LocalTime};

/// Most steps one [`Script::settle`] takes before it calls the actors livelocked.
pub const SETTLE_STEPS_MAX: usize = 100_000;
/// Most timer firings one [`Script::run_until`] lets pass.
pub const RUN_STEPS_MAX: usize = 1_000_000;

/// How a delivered request fares: the caller names it, where a seeded run draws it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Applied and answered.
    Applied,
    /// Applied, but a write's reply is lost: the caller sees `Unknown`. (A read answers.)
    Ambiguous,
    /// Dropped before the store: not applied, the caller sees `Unknown`.
    Lost,
    /// Refused by the store before acting (unreachable, not primary): the caller sees `Failed`.
    Refused,
}

/// A request on its way to the store.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// The process that sent it.
    pub p: usize,
    /// The request.
    pub req: Request,
    /// The sender's incarnation: a reply to an earlier life is dropped.
    pub(crate) inc: u32,
    /// For an updater's advance: the value it meant to swap against (G2 reads it).
    pub(crate) base: Option<u64>,
}

/// What a script reads back.
#[derive(Clone, Debug, Default)]
pub struct Log {
    /// Every note, with its real time and process.
    pub notes: Vec<(u64, usize, Note)>,
    /// Every request delivered (whatever its fate), with its process.
    pub delivered: Vec<(usize, Op)>,
    /// Every change to a lease document of the script's namespace, with the global time then.
    pub lease_changes: Vec<LeaseChange>,
    namespace: String,
}

impl Log {
    /// A lease or clock document changed: note a lease's change as the properties read it.
    pub(crate) fn store_change(
        &mut self,
        coll: Collection,
        (before, after): (Option<&Document>, Option<&Document>),
        store: &MemoryStore,
    ) {
        if coll != Collection::Leases {
            return;
        }
        let decode =
            |d: Option<&Document>| d.and_then(|d| LeaseDoc::decode(d, &self.namespace).ok());
        let (before, after) = (decode(before), decode(after));
        if before != after {
            self.lease_changes.push(LeaseChange {
                before,
                after,
                global: global(store),
            });
        }
    }
}

/// The global time the clock document holds (zero while it is absent or unreadable).
fn global(store: &MemoryStore) -> GlobalTime {
    store
        .get(Collection::Clock, clock::CLOCK_ID)
        .and_then(|d| clock::decode(d).ok())
        .unwrap_or_default()
}

/// A world without workload or seeded faults, driven step by step. Reads through to the
/// [`World`] (its store, real time, processes, observer).
pub struct Script {
    world: World,
}

impl Deref for Script {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl DerefMut for Script {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.world
    }
}

impl Script {
    /// An empty world at real time zero whose lease changes are logged for `lease_namespace`.
    /// The server's clock stays where it is until [`World::server_epoch`] is set.
    pub fn new(lease_namespace: &str) -> Script {
        let config = SimConfig {
            faults: FaultRates::NONE,
            swarm: false,
            ..SimConfig::default_for(Workload::All)
        };
        let mut world = World::new(
            config,
            FaultRates::NONE,
            Rng::new(0),
            Drive::default(),
            false,
        );
        world.server_epoch = None;
        world.held = Some(Vec::new());
        world.log = Some(Log {
            namespace: lease_namespace.to_owned(),
            ..Log::default()
        });
        Script { world }
    }

    /// Adds a process running `node` on `clock`; returns its index. Starting the actor is the
    /// caller's first [`Script::call`].
    pub fn add(&mut self, name: impl Into<String>, node: Node, clock: SimClock) -> usize {
        self.world
            .add(Proc::new(name.into(), Role::Scripted, node, clock))
    }

    /// Process `p`'s local time now.
    pub fn now(&self, p: usize) -> LocalTime {
        self.world.procs[p].now(self.world.real)
    }

    /// The global time the clock document holds now.
    pub fn global(&self) -> GlobalTime {
        global(&self.world.store)
    }

    /// Calls an API method of process `p`'s actor and takes its effects: requests wait in
    /// flight, notes are logged and observed.
    pub fn call(&mut self, p: usize, f: impl FnOnce(&mut Node, LocalTime) -> Effects<Note>) {
        self.world.call(p, f);
    }

    /// The requests waiting for delivery, oldest first.
    pub fn in_flight(&self) -> &[InFlight] {
        self.world.held.as_deref().unwrap_or_default()
    }

    /// What the script has read back so far.
    pub fn log(&self) -> &Log {
        self.world
            .log
            .as_ref()
            .unwrap_or_else(|| unreachable!("a script's world always logs"))
    }

    /// Delivers the `i`-th request in flight, faring as `delivery` says; its reply reaches the
    /// sender at once (or waits, if the sender is paused).
    pub fn deliver(&mut self, i: usize, delivery: Delivery) {
        let Some(held) = self.world.held.as_mut() else {
            return;
        };
        let InFlight { p, req, inc, base } = held.remove(i);
        if let Some(log) = &mut self.world.log {
            log.delivered.push((p, req.op.clone()));
        }
        self.world.set_server_time();
        let write = req.op.is_write();
        let result = match delivery {
            Delivery::Lost => OpResult::Unknown,
            Delivery::Refused => OpResult::Failed("not primary".into()),
            Delivery::Applied => self.world.apply(p, &req.op, base, |_| false).0,
            Delivery::Ambiguous => self.world.apply(p, &req.op, base, |_| write).0,
        };
        self.world.reply(p, inc, req.id, result);
    }

    /// Fires process `p`'s timer if it is running and due.
    pub fn fire(&mut self, p: usize) {
        let now = self.now(p);
        let proc = &self.world.procs[p];
        if proc.paused || proc.node.next_deadline().is_none_or(|d| d > now) {
            return;
        }
        self.world.call(p, |n, now| n.handle_timeout(now));
    }

    /// Delivers every request (applied) and fires every due timer until nothing is left to do
    /// now; `false` if the actors never go idle.
    #[must_use]
    pub fn settle(&mut self) -> bool {
        for _ in 0..SETTLE_STEPS_MAX {
            if !self.in_flight().is_empty() {
                self.deliver(0, Delivery::Applied);
            } else if !self.world.step(self.world.real) {
                return true;
            }
        }
        false
    }

    /// Lets real time pass to `real`, settling at every timer on the way; `false` if the actors
    /// never go idle.
    #[must_use]
    pub fn run_until(&mut self, real: u64) -> bool {
        for _ in 0..RUN_STEPS_MAX {
            if !self.settle() {
                return false;
            }
            match self.world.next_at() {
                Some(at) if at <= real => self.world.real = self.world.real.max(at),
                _ => {
                    self.world.real = self.world.real.max(real);
                    return self.settle();
                }
            }
        }
        false
    }

    /// Pauses process `p` (a GC pause, SIGSTOP) or resumes it. While paused it takes no step:
    /// its requests still reach the store, their replies wait until it resumes.
    pub fn set_paused(&mut self, p: usize, paused: bool) {
        match (paused, self.world.procs[p].paused) {
            (true, false) => self.world.suspend(p),
            (false, true) => self.world.resume(p),
            _ => {}
        }
    }
}
