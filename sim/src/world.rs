//! The discrete-event executor: simulated real time in nanoseconds, a queue of timers,
//! deliveries and replies ordered by (time, sequence number), the processes running the core's
//! actors through the one driver interface ([`tenure::actor::Actor`]), and the reference store
//! behind a layer that injects the faults of DESIGN.md.
//!
//! Everything that happens is an event popped from the queue; ties in time are broken by the
//! order events were scheduled, and every random choice is drawn from the run's one seeded
//! stream, so a seed replays its run exactly (the trace hash says so).

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::faults::FaultRates;
use crate::observe::Observer;
use crate::rng::Rng;
use crate::script::{InFlight, Log};
use crate::trace::{Stats, Trace};
use crate::workload::Drive;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;
use tenure::actor::{Actor, Node, Note};
use tenure::effects::{Effects, OpId, Request};
use tenure::fault::{is_conditional_write, tolerates_stale, Fault};
use tenure::substrate::{Collection, Document, MemoryStore, Op, OpResult};
use tenure::time::{nanos, LocalTime};

/// Server time (ns) at real time zero: slots and server clocks are numbered from it.
pub const SERVER_EPOCH: u64 = 1_000_000_000_000;
/// A request's or a reply's trip over the network: between these, uniformly (ns).
pub const LATENCY_NS: (u64, u64) = (100_000, 2_000_000);
/// How long a caller waits before it calls an operation's outcome unknown (its op timeout).
pub const UNKNOWN_AFTER: Duration = Duration::from_secs(1);
/// How much later than usual a delayed request reaches the store: up to this.
pub const DELAY_MAX: Duration = Duration::from_secs(3);
/// How old the store a stale read sees may be: a secondary lagging by a fault tick.
pub const STALE_MAX: Duration = Duration::from_millis(100);
/// How often pauses and crashes may strike.
pub const FAULT_TICK: Duration = Duration::from_millis(100);
/// A pause lasts between these.
pub const PAUSE: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(10));
/// Most events one run may process: a run that needs more is reported, never left spinning.
pub const EVENTS_MAX: u64 = 200_000_000;

/// What a process is, so it can be rebuilt after a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Clock updater `i`.
    Updater(u32),
    /// The clock watcher.
    ClockWatcher,
    /// Lease manager `i`, serving holder `h<i>`.
    Manager(u32),
    /// Leadership unit `i`.
    Unit(u32),
    /// Presence agent `i`.
    Agent(u32),
    /// The presence watcher.
    PresenceWatcher,
    /// The presence pruner.
    Pruner,
    /// A process a script added ([`crate::script`]): the script drives it, and no fault
    /// rebuilds it.
    Scripted,
}

/// A process: an actor, its local clock, and its fault state.
#[derive(Debug)]
pub struct Proc {
    /// "updater-0", "manager-2 (h2)", ...
    pub name: String,
    /// What it runs.
    pub role: Role,
    /// The actor.
    pub node: Node,
    /// Its local clock.
    pub clock: SimClock,
    /// Paused: takes no step; replies wait in `held`.
    pub paused: bool,
    /// Bumped on every crash: replies to an earlier life are dropped.
    pub inc: u32,
    /// Replies that arrived while paused.
    held: Vec<(OpId, OpResult)>,
    /// Bumped whenever the timer moves, so a stale timer event is ignored.
    timer_gen: u64,
    timer_at: Option<u64>,
}

impl Proc {
    /// A process of `role` running `node` on `clock`.
    pub fn new(name: String, role: Role, node: Node, clock: SimClock) -> Proc {
        Proc {
            name,
            role,
            node,
            clock,
            paused: false,
            inc: 0,
            held: Vec::new(),
            timer_gen: 0,
            timer_at: None,
        }
    }

    /// Its local time at real time `real`.
    pub fn now(&self, real: u64) -> LocalTime {
        self.clock.local(real)
    }
}

/// Something that happens at a point of simulated time.
#[derive(Debug)]
pub(crate) enum Ev {
    /// A process's timer (ignored unless `gen` is still its timer's generation).
    Timer { p: u32, gen: u64 },
    /// A request reaches the store. `base`: for an updater's advance, the value it meant to
    /// swap against (G2 needs the writer's intent, which a blind write leaves out of its
    /// filter).
    Deliver {
        p: u32,
        inc: u32,
        req: Request,
        base: Option<u64>,
    },
    /// A reply reaches its process.
    Reply {
        p: u32,
        inc: u32,
        id: OpId,
        result: OpResult,
    },
    /// A write a non-atomic server checked earlier now lands, unchecked.
    Land { op: Op, base: Option<u64> },
    /// An acknowledged `w:1` write is rolled back by a failover.
    Rollback {
        coll: Collection,
        id: String,
        before: Option<Document>,
        after: Option<Document>,
    },
    /// A paused process resumes.
    Resume { p: u32 },
    /// A workload driver acts (a holder calls, a unit gets a ticket, a key stops or starts).
    Act { who: u32 },
    /// Holder `holder` checks lease `lease` (its index), if idle: how former holders react to
    /// an expiry another manager made, the moment a stale cache would vouch for them (M4).
    Check { holder: u32, lease: u32 },
    /// Pauses and crashes may strike; the stale snapshot is renewed.
    FaultTick,
    /// In the quiet phase: the bounded-liveness properties are sampled.
    Sample,
}

impl Ev {
    /// A small number naming the kind, for the trace hash.
    fn kind(&self) -> u64 {
        match self {
            Ev::Timer { .. } => 1,
            Ev::Deliver { .. } => 2,
            Ev::Reply { .. } => 3,
            Ev::Land { .. } => 4,
            Ev::Rollback { .. } => 5,
            Ev::Resume { .. } => 6,
            Ev::Act { .. } => 7,
            Ev::FaultTick => 8,
            Ev::Sample => 9,
            Ev::Check { .. } => 10,
        }
    }
}

struct Scheduled {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest, and among equals the first scheduled.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulated world.
pub struct World {
    /// The configuration.
    pub config: SimConfig,
    /// This run's fault rates (the configuration's, or what swarm testing drew).
    pub faults: FaultRates,
    /// Real time, ns.
    pub real: u64,
    /// The run's random stream.
    pub rng: Rng,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    /// Every process.
    pub procs: Vec<Proc>,
    /// The store (linearizable; faults are injected around it).
    pub store: MemoryStore,
    /// The store as it was when last copied (at most [`STALE_MAX`] before the stale read that
    /// copied it), with the real time of the copy: what a lagging secondary serves.
    stale: Option<(u64, MemoryStore)>,
    /// What the properties watch.
    pub observer: Observer,
    /// The workload's drivers.
    pub(crate) drive: Drive,
    /// What happened, counted.
    pub stats: Stats,
    /// The trace: a hash of every event, and (when replaying) the frames around the end.
    pub trace: Trace,
    /// The quiet phase: no fault strikes and the drivers stop calling.
    pub quiet: bool,
    /// The server's wall clock at real time zero (ns), or `None` to leave the store's clock
    /// where it is (a script that sets it by hand).
    pub server_epoch: Option<u64>,
    /// `Some` in a scripted world: requests wait here until the script delivers them, instead
    /// of crossing the simulated network ([`crate::script`]).
    pub(crate) held: Option<Vec<InFlight>>,
    /// `Some` in a scripted world: what the script reads back.
    pub(crate) log: Option<Log>,
}

impl World {
    /// An empty world for `config` under `faults`, drawing from `rng`.
    pub(crate) fn new(
        config: SimConfig,
        faults: FaultRates,
        rng: Rng,
        drive: Drive,
        frames: bool,
    ) -> World {
        let mut observer = Observer::new(&config);
        observer.faults(&faults);
        World {
            observer,
            config,
            faults,
            real: 0,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            procs: Vec::new(),
            store: MemoryStore::new(),
            stale: None,
            drive,
            stats: Stats::default(),
            trace: Trace::new(frames),
            quiet: false,
            server_epoch: Some(SERVER_EPOCH),
            held: None,
            log: None,
        }
    }

    pub(crate) fn schedule(&mut self, at: u64, ev: Ev) {
        debug_assert!(
            at >= self.real,
            "scheduled in the past: {at} < {}",
            self.real
        );
        self.seq += 1;
        self.queue.push(Scheduled {
            at: at.max(self.real),
            seq: self.seq,
            ev,
        });
    }

    /// Schedules `ev` `delay` from now.
    pub(crate) fn after(&mut self, delay: Duration, ev: Ev) {
        let at = self.real.saturating_add(nanos(delay));
        self.schedule(at, ev);
    }

    /// A network trip's latency.
    fn latency(&mut self) -> u64 {
        self.rng.range(LATENCY_NS.0, LATENCY_NS.1)
    }

    /// Whether `fault` strikes now (never in the quiet phase).
    pub(crate) fn strikes(&mut self, fault: Fault) -> bool {
        if self.quiet {
            return false;
        }
        let hit = self.rng.chance(self.faults.rate(fault));
        if hit {
            self.stats.fault(fault);
        }
        hit
    }

    /// Adds a process and arms its timer; returns its index.
    pub(crate) fn add(&mut self, proc: Proc) -> usize {
        self.procs.push(proc);
        let p = self.procs.len() - 1;
        self.rearm(p);
        p
    }

    /// Makes an API call on process `p`'s actor (which must be running) and executes what it
    /// asks for.
    pub(crate) fn call(&mut self, p: usize, f: impl FnOnce(&mut Node, LocalTime) -> Effects<Note>) {
        let fx = self.call_only(p, f);
        self.absorb(p, fx);
    }

    /// Makes a call and returns its effects, not yet executed: for a caller that must note
    /// something (a ticket's id) before its notes are observed. [`World::absorb`] them next.
    pub(crate) fn call_only<T>(
        &mut self,
        p: usize,
        f: impl FnOnce(&mut Node, LocalTime) -> T,
    ) -> T {
        debug_assert!(!self.procs[p].paused, "a paused process takes no call");
        let now = self.procs[p].now(self.real);
        self.stats.events += 1;
        f(&mut self.procs[p].node, now)
    }

    /// Sends `p`'s requests, hands its notes to the observer and the drivers, re-arms its timer.
    pub(crate) fn absorb(&mut self, p: usize, fx: Effects<Note>) {
        let inc = self.procs[p].inc;
        let pi = u32::try_from(p).unwrap_or(u32::MAX);
        for req in fx.requests {
            if self.procs[p].role == Role::PresenceWatcher
                && matches!(
                    req.op,
                    Op::Find {
                        coll: Collection::PresencePings,
                        ..
                    }
                )
            {
                self.observer.sync_started(self.real);
            }
            let base = match &self.procs[p].node {
                Node::Updater(u) => u.base().map(|g| g.0),
                _ => None,
            };
            if let Some(held) = &mut self.held {
                held.push(InFlight { p, inc, req, base });
                continue;
            }
            let mut at = self.real + self.latency();
            if self.strikes(Fault::Delay) {
                at += self.rng.below(nanos(DELAY_MAX));
            }
            self.schedule(
                at,
                Ev::Deliver {
                    p: pi,
                    inc,
                    req,
                    base,
                },
            );
        }
        for note in fx.notifications {
            self.observe_note(p, &note);
            self.drive_note(p, &note);
        }
        self.rearm(p);
    }

    fn observe_note(&mut self, p: usize, note: &Note) {
        if let Some(log) = &mut self.log {
            log.notes.push((self.real, p, note.clone()));
        }
        self.stats.note(note);
        let proc = &self.procs[p];
        self.observer
            .note(self.real, p, proc.role, &proc.clock, note);
        self.trace.note(self.real, &self.procs[p].name, note);
    }

    /// Moves `p`'s timer event to its actor's deadline, if that changed.
    pub(crate) fn rearm(&mut self, p: usize) {
        let real = self.real;
        let proc = &mut self.procs[p];
        if proc.paused {
            return;
        }
        let at = proc
            .node
            .next_deadline()
            .map(|d| proc.clock.real_of(d).max(real));
        if at == proc.timer_at {
            return;
        }
        proc.timer_gen += 1;
        proc.timer_at = at;
        let ev = Ev::Timer {
            p: u32::try_from(p).unwrap_or(u32::MAX),
            gen: proc.timer_gen,
        };
        if let Some(at) = at {
            self.schedule(at, ev);
        }
    }

    /// Runs until the queue is empty, real time passes `until`, a property fails, or the event
    /// budget is spent. Returns `false` on the last.
    pub(crate) fn run_until(&mut self, until: u64) -> bool {
        while !self.observer.failed() {
            if self.stats.steps >= EVENTS_MAX && self.next_at().is_some_and(|at| at <= until) {
                return false;
            }
            if !self.step(until) {
                break;
            }
        }
        self.real = self.real.max(until);
        true
    }

    /// When the next event is due, if any is queued.
    pub(crate) fn next_at(&self) -> Option<u64> {
        self.queue.peek().map(|top| top.at)
    }

    /// Handles the next event if it is due by `until`; `false` if none is. Real time never
    /// goes back: a script may have moved it past an event, which then happens late.
    pub(crate) fn step(&mut self, until: u64) -> bool {
        if self.next_at().is_none_or(|at| at > until) {
            return false;
        }
        let Some(Scheduled { at, ev, .. }) = self.queue.pop() else {
            return false;
        };
        self.real = self.real.max(at);
        self.stats.steps += 1;
        self.trace.event(at, ev.kind(), event_subject(&ev));
        if self.trace.framing() {
            self.describe(&ev);
        }
        self.handle(ev);
        if self.trace.framing() && (self.trace.has_pending() || self.observer.failed()) {
            self.push_frame();
        }
        true
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Timer { p, gen } => self.timer(p as usize, gen),
            Ev::Deliver { p, inc, req, base } => self.deliver(p, inc, req, base),
            Ev::Reply { p, inc, id, result } => self.reply(p as usize, inc, id, result),
            Ev::Land { op, base } => {
                self.write(&op, true, base);
            }
            Ev::Rollback {
                coll,
                id,
                before,
                after,
            } => self.roll_back(coll, &id, before, after),
            Ev::Resume { p } => self.resume(p as usize),
            Ev::Act { who } => self.act(who),
            Ev::Check { holder, lease } => self.check_if_idle(holder as usize, lease),
            Ev::FaultTick => self.fault_tick(),
            Ev::Sample => self.sample(),
        }
    }

    /// Notes a write reaching the store, for a replay's timeline (reads would drown it).
    fn describe(&mut self, ev: &Ev) {
        if let Ev::Deliver { p, req, .. } = ev {
            if req.op.is_write() {
                let target = target(&req.op).map_or("", |(_, id)| id);
                let text = format!(
                    "{}: {} {target} reaches the store",
                    self.procs[*p as usize].name,
                    req.op.verb()
                );
                self.trace.mark(self.real, &text);
            }
        }
    }

    fn timer(&mut self, p: usize, gen: u64) {
        let proc = &mut self.procs[p];
        if proc.timer_gen != gen || proc.paused {
            return;
        }
        let fired = proc.timer_at.take();
        let deadline = proc.node.next_deadline();
        self.call(p, |n, now| n.handle_timeout(now));
        // An actor whose deadline stays due after its timeout would spin: step past it.
        if self.procs[p].node.next_deadline() == deadline && self.procs[p].timer_at == fired {
            self.stats.spins += 1;
            let at = self.real + 1_000;
            let proc = &mut self.procs[p];
            proc.timer_gen += 1;
            proc.timer_at = Some(at);
            let gen = proc.timer_gen;
            self.schedule(at, Ev::Timer { p: p as u32, gen });
        }
    }

    fn deliver(&mut self, p: u32, inc: u32, req: Request, base: Option<u64>) {
        self.set_server_time();
        let op = req.op;
        let (result, unknown) = if self.strikes(Fault::Lost) {
            (OpResult::Unknown, true)
        } else if !op.is_write() && tolerates_stale(&op) && self.strikes(Fault::StaleRead) {
            (self.read_stale(&op), false)
        } else if is_conditional_write(&op) && self.strikes(Fault::NonAtomicCas) {
            (self.check_then_land(op, base), false)
        } else {
            self.apply(p as usize, &op, base, |w| w.strikes(Fault::Ambiguous))
        };
        if unknown {
            self.stats.unknown += 1;
        }
        let delay = if unknown {
            nanos(UNKNOWN_AFTER)
        } else {
            self.latency()
        };
        let id = req.id;
        self.schedule(self.real + delay, Ev::Reply { p, inc, id, result });
    }

    /// The server's wall clock follows real time (unless a script keeps it by hand).
    pub(crate) fn set_server_time(&mut self) {
        if let Some(epoch) = self.server_epoch {
            self.store.set_server_time(epoch + self.real);
        }
    }

    /// Process `p`'s `op` reaches the store and applies; its reply is then lost if
    /// `ambiguous` says so (drawn after the write, as the write happened either way). Returns
    /// the reply and whether it was lost.
    pub(crate) fn apply(
        &mut self,
        p: usize,
        op: &Op,
        base: Option<u64>,
        ambiguous: impl FnOnce(&mut World) -> bool,
    ) -> (OpResult, bool) {
        if let Some(log) = &mut self.log {
            log.delivered.push((p, op.clone()));
        }
        // What a rollback would restore: read only when rollbacks may strike.
        let before = match target(op) {
            Some((coll, id)) if op.is_write() && self.faults.has(Fault::Rollback) => {
                Some(self.store.get(coll, id).cloned())
            }
            _ => None,
        };
        // P6 judges each of a prune pass's writes against the documents just before it.
        let pruning = self.procs[p].role == Role::Pruner && op.is_write();
        let keys = pruning.then(|| self.observer.keys_deleted_by(op, &self.store));
        let view = keys
            .as_ref()
            .map(|k| self.observer.presence_view(&self.store, k));
        let result = self.write(op, false, base);
        if let (Some(keys), Some(view)) = (keys, view) {
            let after = self.observer.presence_view(&self.store, &keys);
            self.observer.prune_write(self.real, &view, &after);
        }
        if matches!(op, Op::BulkUpsert { .. }) {
            self.observer.flush_applied(self.real, op, &self.store);
        }
        let ambiguous = ambiguous(self);
        if let Some(before) = before {
            if matches!(result, OpResult::Ok(_)) && self.strikes(Fault::Rollback) {
                self.schedule_rollback(op, before);
            }
        }
        if ambiguous {
            (OpResult::Unknown, true)
        } else {
            (result, false)
        }
    }

    /// A stale read: served from a copy of the store at most [`STALE_MAX`] old (as a lagging
    /// secondary would). Copies are made only when a stale read strikes, so large stores cost
    /// little.
    fn read_stale(&mut self, op: &Op) -> OpResult {
        let age = self
            .stale
            .as_ref()
            .map_or(u64::MAX, |(at, _)| self.real - at);
        if age > nanos(STALE_MAX) {
            self.stale = Some((self.real, self.store.clone()));
        }
        let old = self.stale.as_ref().map_or(&self.store, |(_, s)| s);
        old.query(op).unwrap_or(OpResult::Unknown)
    }

    /// A non-atomic server: the filter is checked now, the write lands a little later by
    /// `_id` alone. The answer is what the server would say had the write applied now.
    fn check_then_land(&mut self, op: Op, base: Option<u64>) -> OpResult {
        if !self.store.expect_holds(&op) {
            return OpResult::PreconditionFailed;
        }
        let mut scratch = MemoryStore::new();
        if let Some((coll, id)) = target(&op) {
            if let Some(d) = self.store.get(coll, id) {
                scratch.put(coll, d.clone());
            }
        }
        let answer = scratch.apply(&op);
        let land = self.rng.range(1_000_000, 50_000_000);
        self.schedule(self.real + land, Ev::Land { op, base });
        answer
    }

    /// Applies `op` (without its filter if `unchecked`), telling the observer of every change to
    /// a watched document (`base`: what an updater meant to swap against).
    fn write(&mut self, op: &Op, unchecked: bool, base: Option<u64>) -> OpResult {
        let watched =
            target(op).filter(|(c, _)| matches!(c, Collection::Clock | Collection::Leases));
        let before = watched.and_then(|(c, id)| self.store.get(c, id).cloned());
        let removed = self.observer.beings_to_remove(op, &self.store);
        let result = if unchecked {
            self.store.apply_unchecked(op)
        } else {
            self.store.apply(op)
        };
        self.observer.beings_written(op, &result, &removed);
        if let Some((coll, id)) = watched {
            let after = self.store.get(coll, id);
            if after != before.as_ref() {
                let after = after.cloned();
                if let Some(log) = &mut self.log {
                    log.store_change(coll, (before.as_ref(), after.as_ref()), &self.store);
                }
                self.observer.store_change(
                    self.real,
                    coll,
                    id,
                    (before.as_ref(), after.as_ref()),
                    base,
                    &self.store,
                );
            }
        }
        result
    }

    fn schedule_rollback(&mut self, op: &Op, before: Option<Document>) {
        let Some((coll, id)) = target(op) else {
            return;
        };
        // What the write left, read back (it has just applied).
        let after = self.store.get(coll, id).cloned();
        let at = self.real + self.rng.range(50_000_000, 2_000_000_000);
        self.schedule(
            at,
            Ev::Rollback {
                coll,
                id: id.to_owned(),
                before,
                after,
            },
        );
    }

    fn roll_back(
        &mut self,
        coll: Collection,
        id: &str,
        before: Option<Document>,
        after: Option<Document>,
    ) {
        // Only if nothing wrote the document since: a failover loses the unreplicated tail.
        if self.store.get(coll, id) != after.as_ref() {
            return;
        }
        match &before {
            Some(d) => self.store.put(coll, d.clone()),
            None => {
                let del = Op::DeleteMany {
                    coll,
                    selector: tenure::substrate::Selector::Ids(vec![id.to_owned()]),
                };
                self.store.apply(&del);
            }
        }
        self.observer.store_change(
            self.real,
            coll,
            id,
            (after.as_ref(), before.as_ref()),
            None,
            &self.store,
        );
    }

    pub(crate) fn reply(&mut self, p: usize, inc: u32, id: OpId, result: OpResult) {
        let proc = &mut self.procs[p];
        if proc.inc != inc {
            return;
        }
        if proc.paused {
            proc.held.push((id, result));
            return;
        }
        self.call(p, |n, now| n.handle_reply(id, result, now));
    }

    /// Process `p` stops taking steps for a while (GC, SIGSTOP).
    pub(crate) fn pause(&mut self, p: usize) {
        let d = self.rng.range(nanos(PAUSE.0), nanos(PAUSE.1));
        self.suspend(p);
        self.schedule(self.real + d, Ev::Resume { p: p as u32 });
    }

    /// Process `p` stops taking steps until [`World::resume`].
    pub(crate) fn suspend(&mut self, p: usize) {
        let proc = &mut self.procs[p];
        proc.paused = true;
        proc.timer_gen += 1;
        proc.timer_at = None;
        let keys = self.keys_of(p);
        self.observer.agent_paused(&keys);
        self.trace
            .mark(self.real, &format!("{} pauses", self.procs[p].name));
    }

    pub(crate) fn resume(&mut self, p: usize) {
        if !self.procs[p].paused {
            return;
        }
        self.procs[p].paused = false;
        self.trace
            .mark(self.real, &format!("{} resumes", self.procs[p].name));
        let held = std::mem::take(&mut self.procs[p].held);
        for (id, result) in held {
            self.call(p, |n, now| n.handle_reply(id, result, now));
        }
        self.rearm(p);
        let keys = self.keys_of(p);
        self.observer
            .agent_resumed(self.real, &keys, &self.procs[p].node);
    }

    /// The presence keys process `p` keeps alive (none unless it is an agent).
    pub(crate) fn keys_of(&self, p: usize) -> Vec<String> {
        let Role::Agent(i) = self.procs[p].role else {
            return Vec::new();
        };
        self.drive
            .keys
            .iter()
            .filter(|k| k.agent == i as usize)
            .map(|k| k.name.clone())
            .collect()
    }

    /// Resumes every paused process now (the quiet phase begins).
    pub(crate) fn resume_all(&mut self) {
        for p in 0..self.procs.len() {
            self.resume(p);
        }
    }

    /// Process `p` crashes and restarts at once with empty memory; the store keeps its writes.
    pub(crate) fn crash(&mut self, p: usize) {
        let role = self.procs[p].role;
        if self.drive.left.contains(&p) || role == Role::Scripted {
            return;
        }
        self.observer.crashed(self.real, p, role);
        let keys = self.keys_of(p);
        self.observer.agent_paused(&keys);
        self.trace.mark(
            self.real,
            &format!("{} crashes and restarts", self.procs[p].name),
        );
        let node = self.build(role, self.procs[p].inc + 1);
        let proc = &mut self.procs[p];
        proc.node = node;
        proc.paused = false;
        proc.held.clear();
        proc.inc += 1;
        proc.timer_gen += 1;
        proc.timer_at = None;
        self.start(p);
    }

    fn fault_tick(&mut self) {
        if self.quiet {
            return;
        }
        // Per process and tick: the rates are per second.
        let ticks = (1_000_000_000 / nanos(FAULT_TICK)).max(1) as u32;
        let (pause, crash) = (
            self.faults.rate(Fault::Pause) / ticks,
            self.faults.rate(Fault::Crash) / ticks,
        );
        for p in 0..self.procs.len() {
            if self.procs[p].paused {
                continue;
            }
            if self.rng.chance(crash) {
                self.stats.fault(Fault::Crash);
                self.crash(p);
            } else if self.rng.chance(pause) {
                self.stats.fault(Fault::Pause);
                self.pause(p);
            }
        }
        self.after(FAULT_TICK, Ev::FaultTick);
    }

    fn sample(&mut self) {
        self.observer.sample(self.real, &self.procs, &self.store);
        self.after(Duration::from_secs(1), Ev::Sample);
    }
}

/// The one document a single-document operation addresses.
pub(crate) fn target(op: &Op) -> Option<(Collection, &str)> {
    match op {
        Op::Read { coll, id, .. } | Op::Update { coll, id, .. } | Op::Delete { coll, id, .. } => {
            Some((*coll, id.as_str()))
        }
        Op::Insert { coll, doc } => Some((*coll, doc.id.as_str())),
        _ => None,
    }
}

/// The process (or operation) an event concerns, for the trace hash.
fn event_subject(ev: &Ev) -> u64 {
    match ev {
        Ev::Timer { p, gen } => (u64::from(*p) << 32) ^ gen,
        Ev::Deliver { p, req, .. } => (u64::from(*p) << 32) ^ req.id.0,
        Ev::Reply { p, id, .. } => (u64::from(*p) << 32) ^ id.0,
        Ev::Resume { p } => u64::from(*p),
        Ev::Act { who } => u64::from(*who),
        Ev::Check { holder, lease } => (u64::from(*holder) << 32) ^ u64::from(*lease),
        Ev::Land { .. } | Ev::Rollback { .. } | Ev::FaultTick | Ev::Sample => 0,
    }
}
