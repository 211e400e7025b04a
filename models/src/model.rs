//! The stateright model: the core's actors executed under the fault model.
//!
//! The model owns real time (a tick action), every process's drifting local clock, the store,
//! and the requests in flight. It executes the actors' effects and never decides anything a
//! protocol decides. Properties are the core's `tenure::property` functions, evaluated on each
//! transition; a violation sets a bit in the ghost state, which the `always` property of that
//! id reads.

use crate::config::ModelConfig;
use crate::faults::Fault;
use crate::memo::{
    ActorMemo, FlightEdit, FlightsMemo, Input, PruneMemo, ServerTimeMemo, SettledMemo, StoreInput,
    StoreMemo, StoreOutcome,
};
use crate::observe::{self, Milestone, WatchedChange};
use crate::presence;
use crate::properties::CheckedProperty;
use crate::shared::Shared;
use crate::state::{
    shared, split, unit_note, Actor, Answer, Belief, Call, CallKind, Flight, LeadershipGhost, Note,
    Out, Parts, PresenceGhost, Proc, State, Ticket,
};
use stateright::{Model, Property};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tenure::clock::{ClockWatcher, Updater, UpdaterConfig, WatcherConfig};
use tenure::effects::OpId;
use tenure::leadership::{TicketKind, TrackerConfig, Unit};
use tenure::lease::{LeaseManager, ManagerConfig, RequestId};
use tenure::mutant::Protocol;
use tenure::presence::{Batcher, BatcherConfig, Pinger, PingerOutput, PresenceWatcher, Pruner};
use tenure::property::clock::g6_progress;
use tenure::property::{PropertyId, Violation};
use tenure::substrate::{MemoryStore, OpResult};
use tenure::time::{nanos, DriftingClock, LocalTime, SkewBounds};

/// A process's part in the presence model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceRole {
    /// Pinger of key `k<i>`.
    Pinger(usize),
    /// The batcher.
    Batcher,
    /// The watcher.
    Watcher,
    /// The pruner.
    Pruner,
}

/// How a request reaches the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum How {
    /// Applied and answered.
    Ok,
    /// Dropped: not applied, answered "outcome unknown" (fault `lost`).
    Lost,
    /// Applied, answered "outcome unknown" (fault `ambiguous`).
    Ambiguous,
    /// Applied and acknowledged, but not replicated: a later rollback undoes it (fault
    /// `rollback`).
    Unreplicated,
    /// A read served from the store as it was before the last write (fault `stale-read`).
    Stale,
    /// Filter checked now, write by `_id` later without re-checking (fault `non-atomic-cas`).
    FilterOnly,
}

/// One step of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Real time advances one tick.
    Tick,
    /// The `i`-th request in flight reaches the store.
    Deliver(u8, How),
    /// The `i`-th filter-checked non-atomic write lands.
    WriteChecked(u8),
    /// A process's due timer fires.
    Fire(u8),
    /// Holder `h<m>` asks manager `m` to claim (or extend) lease `l<k>`.
    Claim(u8, u8),
    /// Holder `h<m>` checks its token for lease `l<k>`.
    Check(u8, u8),
    /// Unit `h<m>` is given a leadership ticket.
    Ticket(u8, TicketKind),
    /// Pinger `k<i>` stops and marks its key dead.
    StopPinger(u8),
    /// Pinger `k<i>` starts again (a new sequence).
    StartPinger(u8),
    /// The pruner runs one pass relative to the current slot.
    Prune,
    /// A process pauses.
    Pause(u8),
    /// A paused process resumes and takes the replies that arrived meanwhile.
    Resume(u8),
    /// A process crashes and restarts with empty memory; replies to its earlier requests are
    /// dropped (a process that stays down a while is, to the others, a paused one).
    Crash(u8),
    /// The unreplicated write is rolled back by a failover.
    Rollback,
}

impl Action {
    /// Whether this step happens only at the start of a tick (before any timer fires or request
    /// lands in it): the environment's steps, holders' calls and faults of processes.
    pub fn only_at_tick_start(&self) -> bool {
        matches!(
            self,
            Action::Claim(..)
                | Action::Check(..)
                | Action::Ticket(..)
                | Action::StopPinger(_)
                | Action::StartPinger(_)
                | Action::Prune
                | Action::Pause(_)
                | Action::Resume(_)
                | Action::Crash(_)
        )
    }
}

/// A call slot's bit in `Ghost::called_this_tick`.
fn call_bit(slot: usize) -> u64 {
    u32::try_from(slot)
        .ok()
        .and_then(|s| 1u64.checked_shl(s))
        .unwrap_or(0)
}

/// Whether `bit` was already set in `marks` (outside a search, never), setting it.
fn already_marked(marks: &Option<Arc<AtomicU64>>, bit: u64) -> bool {
    // A plain read first: once a bit is set (most states past a milestone ask again), no
    // write to the shared word is needed.
    marks.as_ref().is_some_and(|m| {
        m.load(Ordering::Relaxed) & bit != 0 || m.fetch_or(bit, Ordering::Relaxed) & bit != 0
    })
}

/// The model of one configuration.
#[derive(Clone, Debug)]
pub struct TenureModel {
    /// What is checked (fixed once the model is built).
    pub config: ModelConfig,
    names: Names,
    /// Set to stop the search early (time or memory limit): no state has successors any more,
    /// so the checker drains what it queued and returns.
    halt: Arc<AtomicBool>,
    /// In a search: bit `i` set once a counterexample of `PropertyId::ALL[i]` was handed to
    /// the checker (see [`TenureModel::first_counterexamples_only`]).
    reported: Option<Arc<AtomicU64>>,
    /// In a search: bit `i` set once a state reaching milestone `i` was handed to the checker.
    witnessed: Option<Arc<AtomicU64>>,
    /// The distinct state parts seen, each kept once and shared by every state that has it.
    parts: Arc<Parts>,
    /// The actors' transitions seen so far.
    actor_memo: Arc<ActorMemo>,
    /// The store's transitions seen so far.
    store_memo: Arc<StoreMemo>,
    /// The edits of the requests in flight seen so far.
    flights_memo: Arc<FlightsMemo>,
    /// The server times set in each store so far (presence).
    server_time_memo: Arc<ServerTimeMemo>,
    /// P6's judgements of the pruner's writes seen so far (presence).
    pub(crate) prune_memo: Arc<PruneMemo>,
    /// P2's verdicts at idle ticks seen so far (presence).
    pub(crate) settled_memo: Arc<SettledMemo>,
    /// Which bounded-liveness properties the configuration checks (asked in every step).
    checks: Checks,
    /// Per property (by its place in `PropertyId::ALL`): its bit in `State::violated` if this
    /// check reports it, or 0. What the others alone need is not observed (`ModelConfig::only`),
    /// so a check of a few properties neither pays for the rest nor tells states apart by them.
    state_bits: [u32; 64],
}

/// The bounded-liveness properties a configuration checks, worked out once from it.
#[derive(Clone, Copy, Debug)]
struct Checks {
    /// G6.
    progress: bool,
    /// M6.
    expiry: bool,
    /// T6.
    service: bool,
}

/// The names the model hands the core, built once: formatting them on every step cost the
/// checker about 6% of its instructions.
#[derive(Clone, Debug)]
struct Names {
    /// Lease `l<k>`.
    leases: Vec<String>,
    /// Lease `l<k>`'s document `_id`.
    lease_ids: Vec<String>,
    /// Holder `h<m>`.
    holders: Vec<String>,
}

const NAMESPACE: &str = "app";

/// Most store requests delivered while building the initial state.
const STARTUP_STEPS_MAX: usize = 200;

impl TenureModel {
    /// A model of `config` (validate it first).
    pub fn new(config: ModelConfig) -> TenureModel {
        let leases: Vec<String> = (0..config.leases).map(|k| format!("l{k}")).collect();
        let names = Names {
            lease_ids: leases
                .iter()
                .map(|l| tenure::lease::lease_id(NAMESPACE, l))
                .collect(),
            leases,
            holders: (0..config.managers).map(|m| format!("h{m}")).collect(),
        };
        let mut model = TenureModel {
            config,
            names,
            halt: Arc::new(AtomicBool::new(false)),
            reported: None,
            witnessed: None,
            parts: Arc::new(Parts::default()),
            actor_memo: Arc::new(ActorMemo::default()),
            store_memo: Arc::new(StoreMemo::default()),
            flights_memo: Arc::new(FlightsMemo::default()),
            server_time_memo: Arc::new(ServerTimeMemo::default()),
            prune_memo: Arc::new(PruneMemo::default()),
            settled_memo: Arc::new(SettledMemo::default()),
            checks: Checks {
                progress: false,
                expiry: false,
                service: false,
            },
            state_bits: [0; 64],
        };
        model.checks = Checks {
            progress: model.progress_checked(),
            expiry: model.expiry_checked(),
            service: model.service_checked(),
        };
        let reported = model.selected().into_iter().filter_map(|p| match p {
            CheckedProperty::Always(id) => Some(id),
            CheckedProperty::Sometimes(_) => None,
        });
        for (b, id) in reported.enumerate() {
            // (A check reports at most 14 of them; there are 32 bits.)
            if let Some(slot) = model.state_bits.get_mut(observe::index(id)) {
                *slot = u32::try_from(b)
                    .ok()
                    .and_then(|b| 1u32.checked_shl(b))
                    .unwrap_or(0);
            }
        }
        model
    }

    /// `id`'s bit in `State::violated`, or 0 if this check does not report it.
    pub fn state_bit(&self, id: PropertyId) -> u32 {
        self.state_bit_at(observe::index(id))
    }

    /// The state bit of `PropertyId::ALL[i]`.
    pub(crate) fn state_bit_at(&self, i: usize) -> u32 {
        self.state_bits.get(i).copied().unwrap_or(0)
    }

    /// Sets the state bits of the reported properties among `why`'s.
    fn mark_violated(&self, s: &mut State, why: &[Violation]) {
        for v in why {
            s.violated |= self.state_bit(v.property);
        }
    }

    /// Whether this check reports `id` (and so observes what it needs).
    pub(crate) fn observes(&self, id: PropertyId) -> bool {
        self.state_bit(id) != 0
    }

    /// This model with parts kept for its check alone (see [`Parts::for_one_check`]), and them.
    pub(crate) fn with_parts_of_its_own(mut self) -> (TenureModel, Arc<Parts>) {
        self.parts = Arc::new(Parts::for_one_check());
        let parts = Arc::clone(&self.parts);
        (self, parts)
    }

    /// Whether a counterexample of the property with bit `bit` (`1 << observe::index(id)`) was
    /// already reported (and marks it reported).
    pub(crate) fn already_reported(&self, bit: u64) -> bool {
        already_marked(&self.reported, bit)
    }

    /// Whether a state reaching the milestone with bit `bit` (as in `State::reached`) was
    /// already handed to the checker (and marks it so).
    pub(crate) fn already_witnessed(&self, bit: u64) -> bool {
        already_marked(&self.witnessed, bit)
    }

    /// For a search: each `always` property fails only in the first state found violating it,
    /// so that the checker keeps that (shortest) counterexample, and each `sometimes` property
    /// holds only in the first state found reaching it (milestones stay reached in every later
    /// state, and stateright records a discovery, cloning its path, each time one holds). Not
    /// for the Explorer, which shows every state's verdicts.
    pub fn first_counterexamples_only(mut self) -> Self {
        self.reported = Some(Arc::new(AtomicU64::new(0)));
        self.witnessed = Some(Arc::new(AtomicU64::new(0)));
        self
    }

    /// The switch that stops a search of this model early (shared with its clones).
    pub fn halt_switch(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.halt)
    }

    /// Lease `l<k>`'s name.
    /// Holder `h<m>`'s name.
    fn holder_name(&self, m: u8) -> &str {
        self.names
            .holders
            .get(usize::from(m))
            .map_or("", String::as_str)
    }

    pub(crate) fn lease_name(&self, k: u8) -> &str {
        self.names
            .leases
            .get(usize::from(k))
            .map_or("", String::as_str)
    }

    /// Lease `l<k>`'s index and document `_id`, for every lease.
    pub(crate) fn lease_ids(&self) -> impl Iterator<Item = (u8, &str)> {
        (0u8..).zip(self.names.lease_ids.iter().map(String::as_str))
    }

    fn tick_ns(&self) -> u64 {
        nanos(self.config.tick)
    }

    /// Real time at the current tick, in ns.
    pub fn real(&self, s: &State) -> u64 {
        s.real
    }

    fn horizon_ns(&self) -> u64 {
        u64::from(self.config.horizon) * self.tick_ns()
    }

    /// Where the next time step lands: one tick on, or (exact timers) the next deadline of a
    /// running process if sooner.
    fn next_real(&self, s: &State) -> u64 {
        let tick = s.real + self.tick_ns();
        if !self.config.exact_timers {
            return tick;
        }
        s.procs
            .iter()
            .filter(|p| p.runs())
            .filter_map(|p| p.due())
            .filter(|t| *t > s.real)
            .min()
            .map_or(tick, |t| t.min(tick))
            .min(self.horizon_ns())
    }

    /// Index of the clock watcher, if the model has one.
    fn watcher(&self) -> Option<usize> {
        (self.config.protocol == Protocol::Clock).then_some(usize::from(self.config.updaters))
    }

    /// Index of manager `m`.
    pub fn manager_proc(&self, m: u8) -> usize {
        usize::from(self.config.updaters) + usize::from(self.watcher().is_some()) + usize::from(m)
    }

    pub(crate) fn manager_of(&self, p: usize) -> Option<u8> {
        if self.config.protocol == Protocol::Presence {
            return None;
        }
        let first = self.manager_proc(0);
        (p >= first).then(|| u8::try_from(p - first).ok()).flatten()
    }

    /// Updaters run fast, slow, exact, ...; managers slow, fast, exact, ... (a fast clock
    /// against a slow holder is the case the skew margin exists for).
    fn clock_of(&self, p: usize) -> DriftingClock {
        let rho = i64::from(self.config.rate_error_ppm);
        let (i, order) = match self.manager_of(p) {
            Some(m) => (usize::from(m), [-rho, rho, 0]),
            None => (p, [rho, -rho, 0]),
        };
        DriftingClock {
            rate_ppm: order[i % 3],
            offset: 0,
        }
    }

    fn updater_config(&self) -> UpdaterConfig {
        UpdaterConfig {
            update_interval: self.config.update_interval,
            backoff_delay: self.config.update_interval,
            mutant: self.config.mutant,
        }
    }

    fn manager_config(&self, m: u8) -> ManagerConfig {
        let mut c = ManagerConfig::new(NAMESPACE, format!("ctl-{m}"));
        c.max_sleep = Duration::from_secs(30);
        c.skew = SkewBounds {
            rate_error_ppm: self.config.rate_error_ppm,
            clock_step_max: self.config.clock_step_max(),
        };
        c.mutant = self.config.mutant;
        c
    }

    /// A fresh actor for process `p` (at start and on restart).
    /// In the presence model: pingers `0..K`, then the batcher, the watcher and the pruner.
    pub(crate) fn presence_role(&self, p: usize) -> Option<PresenceRole> {
        if self.config.protocol != Protocol::Presence {
            return None;
        }
        let k = usize::from(self.config.pingers);
        Some(match p.checked_sub(k) {
            None => PresenceRole::Pinger(p),
            Some(0) => PresenceRole::Batcher,
            Some(1) => PresenceRole::Watcher,
            Some(_) => PresenceRole::Pruner,
        })
    }

    fn presence_actor(&self, role: PresenceRole) -> Result<Actor, tenure::validate::InputError> {
        let config = presence::config(self);
        let mutant = self.config.mutant;
        Ok(match role {
            PresenceRole::Pinger(i) => {
                Actor::Pinger(Box::new(Pinger::new(config, &presence::key(i))?))
            }
            PresenceRole::Batcher => Actor::Batcher(Box::new(Batcher::new(BatcherConfig {
                flush_interval: Duration::from_secs(1),
                jitter_seed: None,
                mutant,
            })?)),
            PresenceRole::Watcher => {
                Actor::PresenceWatcher(Box::new(PresenceWatcher::new(config, mutant)?))
            }
            PresenceRole::Pruner => Actor::Pruner(Box::new(Pruner::new(config, mutant)?)),
        })
    }

    fn fresh_actor(&self, p: usize) -> Actor {
        let built = if let Some(role) = self.presence_role(p) {
            self.presence_actor(role)
        } else if p < usize::from(self.config.updaters) {
            Updater::new(self.updater_config()).map(Actor::Updater)
        } else if Some(p) == self.watcher() {
            ClockWatcher::new(WatcherConfig {
                poll_interval: self.config.tick,
                mutant: self.config.mutant,
            })
            .map(Actor::ClockWatcher)
        } else {
            let m = self.manager_of(p).unwrap_or(0);
            if self.config.protocol == Protocol::Leadership {
                let tracker = TrackerConfig {
                    application: "l0".to_owned(),
                    unit: format!("h{m}"),
                    claim_duration: self.config.lease_duration,
                    mutant: self.config.mutant,
                };
                Unit::new(self.manager_config(m), tracker).map(|u| Actor::Unit(Box::new(u)))
            } else {
                LeaseManager::new(self.manager_config(m)).map(|x| Actor::Manager(Box::new(x)))
            }
        };
        // The configuration was validated by ModelConfig::validate; the actors' own limits are
        // wider than the model's.
        built.unwrap_or_else(|e| panic!("model built an invalid actor configuration: {e}"))
    }

    pub(crate) fn now(&self, s: &State, p: usize) -> LocalTime {
        s.procs[p].clock.local(self.real(s))
    }

    /// Starts (or restarts) process `p`.
    fn start(&self, s: &mut State, p: usize, why: &mut Vec<Violation>) {
        s.proc_mut(p).actor = self.fresh_actor(p);
        let out = {
            let now = self.now(s, p);
            match &mut s.proc_mut(p).actor {
                Actor::Updater(a) => {
                    let fx = a.handle_start(now);
                    (shared(fx.requests), Vec::new())
                }
                Actor::Manager(a) => {
                    let fx = a.handle_start(now);
                    (
                        shared(fx.requests),
                        fx.notifications.into_iter().map(Note::Manager).collect(),
                    )
                }
                Actor::Unit(a) => split(a.handle_start(now), unit_note),
                Actor::Pinger(a) => split(a.handle_start(now), Note::Pinger),
                Actor::PresenceWatcher(a) => {
                    // Watch every key; a (re)started watcher numbers its watches from 0 again.
                    let mut notes = Vec::new();
                    for i in 0..usize::from(self.config.pingers) {
                        if let Ok((_, fx)) = a.handle_watch(&presence::key(i), now) {
                            notes.extend(fx.notifications.into_iter().map(Note::PresenceWatcher));
                        }
                    }
                    (Vec::new(), notes)
                }
                Actor::ClockWatcher(_) | Actor::Batcher(_) | Actor::Pruner(_) => {
                    (Vec::new(), Vec::new())
                }
            }
        };
        self.absorb(s, p, &out, why);
    }

    /// Sets what the store answers for server time (presence slots are numbered from it).
    fn set_server_time(&self, s: &mut State) {
        let nanos = presence::SERVER_EPOCH_SECS * 1_000_000_000 + self.real(s);
        self.server_time_memo.call(
            &mut s.store,
            nanos,
            |store, nanos| store.make_mut().set_server_time(nanos),
            |store| self.parts.intern_store(store),
        );
    }

    /// Queues an actor's requests and observes its notes.
    fn absorb(&self, s: &mut State, p: usize, (reqs, notes): &Out, why: &mut Vec<Violation>) {
        // (Writing the requests in flight copies them if they are shared: only when there are
        // new ones.)
        if !reqs.is_empty() {
            let base = s.procs[p].actor.clock_base();
            let incarnation = s.procs[p].incarnation;
            let proc = u8::try_from(p).unwrap_or(u8::MAX);
            for req in reqs {
                debug_assert!(
                    req.op
                        .collection()
                        .is_none_or(|c| !req.op.is_write() || s.procs[p].actor.may_write(c)),
                    "process {p} writes {:?}, which its actor does not declare (Actor::may_write)",
                    req.op.collection()
                );
                self.add_flight(
                    s,
                    Flight {
                        proc,
                        incarnation,
                        req: req.clone(),
                        clock_base: base,
                    },
                );
            }
        }
        for note in notes {
            // A pinger hands its pings to the batcher at once (an in-process channel).
            let ping = match note {
                Note::Pinger(PingerOutput::Ping {
                    model,
                    slot,
                    field,
                    bit,
                }) => Some((model.clone(), *slot, field.clone(), *bit)),
                _ => None,
            };
            observe::note(self, s, p, note, why);
            if let Some((model, slot, field, bit)) = ping {
                let b = usize::from(self.config.pingers);
                let now = self.now(s, b);
                let out = self.call_directly(s, b, |a| match a {
                    Actor::Batcher(x) => Some(split(
                        x.handle_ping(&model, slot, &field, bit, now),
                        Note::Batcher,
                    )),
                    _ => None,
                });
                if let Some(out) = out {
                    self.absorb(s, b, &out, why);
                }
            }
        }
    }

    /// Puts `f` in flight, where the canonical order puts it (remembered per kept set).
    fn add_flight(&self, s: &mut State, f: Flight) {
        let edit = FlightEdit::Insert {
            proc: f.proc,
            incarnation: f.incarnation,
            clock_base: f.clock_base,
            req: f.req.fingerprint(),
        };
        self.flights_memo.call(
            &mut s.flights,
            edit,
            |flights, _| {
                let flights = flights.make_mut();
                // After those that sort equal: as appending, then sorting stably, would.
                let at = flights.partition_point(|g| g.order() <= f.order());
                flights.insert(at, f);
            },
            |flights| self.parts.intern_flights(flights),
        );
    }

    /// Takes request `i` out of flight (remembered per kept set).
    fn take_flight(&self, s: &mut State, i: u8) -> Flight {
        let f = s.flights[usize::from(i)].clone();
        self.flights_memo.call(
            &mut s.flights,
            FlightEdit::Remove(i),
            |flights, _| {
                flights.make_mut().remove(usize::from(i));
            },
            |flights| self.parts.intern_flights(flights),
        );
        f
    }

    /// Hands a reply to the process that asked, unless it restarted or is down; a paused
    /// process keeps it for later.
    fn reply(&self, s: &mut State, f: &Flight, result: Answer, why: &mut Vec<Violation>) {
        let p = usize::from(f.proc);
        if s.procs[p].incarnation != f.incarnation {
            return;
        }
        if s.procs[p].paused {
            s.proc_mut(p).held.push((f.req.id, result));
            return;
        }
        self.deliver_reply(s, p, f.req.id, result, why);
    }

    fn deliver_reply(
        &self,
        s: &mut State,
        p: usize,
        id: OpId,
        result: Answer,
        why: &mut Vec<Violation>,
    ) {
        let now = self.now(s, p);
        let out = self.call_actor(s, p, Input::Reply(id, result, now));
        self.absorb(s, p, &out, why);
    }

    /// Whether nothing in `s` outside process `p` refers to its operation ids: no request of
    /// its present life in flight (or filter-checked, waiting to write) and no reply held for
    /// it. Its ids may then be renumbered from 0 along with the requests it is about to issue,
    /// so that states differing only in how many operations came before are one state.
    pub(crate) fn alone(&self, s: &State, p: usize) -> bool {
        let proc = &s.procs[p];
        self.config.renumber
            && proc.held.is_empty()
            && !s
                .flights
                .iter()
                .chain(s.checked.iter())
                .any(|f| usize::from(f.proc) == p && f.incarnation == proc.incarnation)
    }

    /// The store's answer `r`, kept (so that the transitions it starts are looked up by where
    /// it is kept rather than by comparing documents).
    fn answer(&self, r: OpResult) -> Answer {
        let mut a = Shared::new(r);
        self.parts.intern_answer(&mut a);
        a
    }

    /// Hands process `p` a timer or a reply (remembered: the actors are pure).
    fn call_actor(&self, s: &mut State, p: usize, input: Input) -> Arc<Out> {
        let alone = self.alone(s, p);
        self.run_actor(&mut s.procs[p], input, alone)
    }

    /// Hands `proc` a timer or a reply, remembered: the actors are pure, so each (kept process,
    /// input) is computed once, and its output shared by every state that replays it. `alone`
    /// ([`TenureModel::alone`]): renumber its operation ids afterwards.
    pub(crate) fn run_actor(&self, proc: &mut Shared<Proc>, input: Input, alone: bool) -> Arc<Out> {
        self.actor_memo.call(
            proc,
            (input, alone),
            |proc, (input, alone)| {
                let actor = &mut proc.make_mut().actor;
                let mut out = match input {
                    Input::Timeout(now) => actor.timeout(now),
                    Input::Reply(id, result, now) => actor.reply(id, (*result).clone(), now),
                    Input::Call {
                        kind,
                        req,
                        lease,
                        holder,
                        duration,
                        now,
                    } => {
                        let (lease, holder) = (self.lease_name(lease), self.holder_name(holder));
                        match actor {
                            Actor::Manager(a) => split(
                                match kind {
                                    CallKind::Claim => {
                                        a.handle_claim(RequestId(req), lease, holder, duration, now)
                                    }
                                    CallKind::Check => {
                                        a.handle_check(RequestId(req), lease, holder, now)
                                    }
                                },
                                Note::Manager,
                            ),
                            _ => (Vec::new(), Vec::new()),
                        }
                    }
                };
                if alone {
                    actor.renumber(&mut out);
                }
                for req in &mut out.0 {
                    self.parts.intern_request(req);
                }
                Arc::new(out)
            },
            |proc| self.parts.intern_proc(proc),
        )
    }

    /// Makes a call on process `p`'s actor that is not remembered (a ticket, a pinger's stop or
    /// start, a prune pass, a batcher's ping),
    /// renumbering its operation ids afterwards when it is [`TenureModel::alone`].
    fn call_directly(
        &self,
        s: &mut State,
        p: usize,
        call: impl FnOnce(&mut Actor) -> Option<Out>,
    ) -> Option<Out> {
        let alone = self.alone(s, p);
        let actor = &mut s.proc_mut(p).actor;
        let mut out = call(actor)?;
        if alone {
            actor.renumber(&mut out);
        }
        Some(out)
    }

    /// Applies `f` to the store and observes what changed.
    fn apply(
        &self,
        s: &mut State,
        f: &Flight,
        unchecked: bool,
        why: &mut Vec<Violation>,
    ) -> Answer {
        // The store before the operation, for stale reads and the pruner's check (sharing it
        // costs nothing: a write copies it anyway, and the parent state keeps it).
        let before = s.store.clone();
        let outcome = self.run_store(&mut s.store, f, unchecked);
        let result = outcome.result;
        if outcome.read {
            return result;
        }
        if let Some(change) = outcome.changed {
            observe::store_change(self, s, &change, f.clock_base, why);
        }
        if self.presence_role(usize::from(f.proc)) == Some(PresenceRole::Pruner) {
            presence::pruned(self, s, &before, why);
        }
        if self.config.faults.has(Fault::StaleRead) && matches!(*result, OpResult::Ok(_)) {
            s.before_write = Some(before);
        }
        result
    }

    /// Runs `f`'s operation on `store` (remembered: the store is pure).
    fn run_store(
        &self,
        store: &mut Shared<MemoryStore>,
        f: &Flight,
        unchecked: bool,
    ) -> StoreOutcome {
        let input = StoreInput {
            req: f.req.clone(),
            unchecked,
        };
        self.store_memo.call(
            store,
            input,
            |store, input| {
                let op = &input.req.op;
                if let Some(answer) = store.query(op) {
                    return StoreOutcome {
                        result: self.answer(answer),
                        read: true,
                        changed: None,
                    };
                }
                let before = store.clone();
                let result = if input.unchecked {
                    store.make_mut().apply_unchecked(op)
                } else {
                    store.make_mut().apply(op)
                };
                StoreOutcome {
                    result: self.answer(result),
                    read: false,
                    changed: WatchedChange::between(self, &before, store).map(Arc::new),
                }
            },
            |store| self.parts.intern_store(store),
        )
    }

    /// Whether delivering the read `f` of `s` (answered, or lost) reports nothing: its process
    /// takes the answer (or holds it, paused, or ignores it, restarted since) and at most
    /// issues requests. For `reduction::lone_read`, which has checked that `f` is its process's
    /// only business, so that its ids are renumbered afterwards if renumbering is on.
    pub(crate) fn read_reports_nothing(&self, s: &State, f: &Flight, lost: bool) -> bool {
        let p = usize::from(f.proc);
        let proc = &s.procs[p];
        if proc.incarnation != f.incarnation || proc.paused {
            return true;
        }
        let answer = if lost {
            self.answer(OpResult::Unknown)
        } else {
            let outcome = self.run_store(&mut s.store.clone(), f, false);
            if !outcome.read {
                return false;
            }
            outcome.result
        };
        let now = self.now(s, p);
        let input = Input::Reply(f.req.id, answer, now);
        let out = self.run_actor(&mut proc.clone(), input, self.config.renumber);
        out.1.is_empty()
    }

    /// Runs `action` on `s`, collecting the violations it reveals (with their details).
    pub fn step(&self, s: &mut State, action: Action, why: &mut Vec<Violation>) {
        let budget = s.budget;
        s.tick_start = action == Action::Tick || action.only_at_tick_start();
        match action {
            Action::Tick => {
                s.real = self.next_real(s);
                // (Writing the ghost copies it if it is shared, so only what changes.)
                if s.ghost.called_this_tick != 0 {
                    s.ghost.called_this_tick = 0;
                }
                let now = self.real(s);
                // While a process is paused, the windows have not started.
                if s.procs.iter().all(|p| p.runs()) {
                    if self.observes(PropertyId::G6) {
                        let last_change = s.ghost.clock_last.map_or(0, |(r, _)| r);
                        let window = self.progress_window();
                        observe::record(
                            why,
                            g6_progress(last_change, s.ghost.quiet_since, now, window),
                        );
                    }
                    if self.observes(PropertyId::M6) {
                        observe::expiries_due(self, s, now, why);
                    }
                }
                // Not only when every process runs: a paused leader is what frees the lease.
                if self.observes(PropertyId::T6) {
                    observe::candidates_served(self, s, now, why);
                }
                // A belief that has ended cannot overlap any later one.
                if s.ghost.beliefs.iter().any(|b| b.until <= now) {
                    s.ghost.beliefs.retain(|b| b.until > now);
                }
                if self.config.protocol == Protocol::Presence {
                    self.set_server_time(s);
                    let b = usize::from(self.config.pingers);
                    let idle = match &s.procs[b].actor {
                        Actor::Batcher(x) => x.pending_docs() == 0 && x.in_flight() == 0,
                        _ => false,
                    };
                    if idle && !s.flights.iter().any(|f| usize::from(f.proc) == b) {
                        presence::settled_bits(self, s, why);
                    }
                }
            }
            Action::StopPinger(i) | Action::StartPinger(i) => {
                let p = usize::from(i);
                let now = self.now(s, p);
                let stop = matches!(action, Action::StopPinger(_));
                if stop {
                    s.ghost.presence_mut().kills_left[p] =
                        s.ghost.presence().kills_left[p].saturating_sub(1);
                    s.ghost.presence_mut().pinging_since[p] = None;
                }
                let out = self.call_directly(s, p, |a| match a {
                    Actor::Pinger(x) => Some(split(
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
            Action::Prune => {
                s.ghost.presence_mut().prunes_left =
                    s.ghost.presence().prunes_left.saturating_sub(1);
                let p = usize::from(self.config.pingers) + 2;
                let period = presence::config(self).period_secs();
                let secs =
                    i64::try_from(presence::SERVER_EPOCH_SECS + self.real(s) / 1_000_000_000)
                        .unwrap_or(i64::MAX);
                let slot = secs.div_euclid(period) * period;
                s.ghost.presence_mut().prune_slot = Some(slot);
                s.ghost.presence_mut().prune_referenced =
                    presence::kept_references(self, &s.store, slot);
                let now = self.now(s, p);
                let out = self.call_directly(s, p, |a| match a {
                    Actor::Pruner(x) => Some(split(x.handle_prune(slot, now), Note::Pruner)),
                    _ => None,
                });
                if let Some(out) = out {
                    self.absorb(s, p, &out, why);
                }
            }
            Action::Deliver(i, how) => {
                let f = self.take_flight(s, i);
                if how != How::Ok {
                    s.budget = s.budget.saturating_sub(1);
                }
                match how {
                    How::Ok => {
                        let r = self.apply(s, &f, false, why);
                        self.reply(s, &f, r, why);
                    }
                    How::Lost => self.reply(s, &f, self.answer(OpResult::Unknown), why),
                    How::Ambiguous => {
                        self.apply(s, &f, false, why);
                        self.reply(s, &f, self.answer(OpResult::Unknown), why);
                    }
                    How::Unreplicated => {
                        let before = s.store.clone();
                        let r = self.apply(s, &f, false, why);
                        s.unreplicated = Some(before);
                        self.reply(s, &f, r, why);
                    }
                    How::Stale => {
                        let old = s.before_write.clone().unwrap_or_default();
                        let r = old.query(&f.req.op).unwrap_or(OpResult::Unknown);
                        self.reply(s, &f, self.answer(r), why);
                    }
                    How::FilterOnly => {
                        if s.store.expect_holds(&f.req.op) {
                            s.checked.push(f);
                        } else {
                            let refused = self.answer(OpResult::PreconditionFailed);
                            self.reply(s, &f, refused, why);
                        }
                    }
                }
            }
            Action::WriteChecked(i) => {
                let f = s.checked.remove(usize::from(i));
                let r = self.apply(s, &f, true, why);
                self.reply(s, &f, r, why);
            }
            Action::Fire(p) => {
                let p = usize::from(p);
                let now = self.now(s, p);
                let out = self.call_actor(s, p, Input::Timeout(now));
                self.absorb(s, p, &out, why);
            }
            Action::Claim(m, k) | Action::Check(m, k) => {
                let kind = if matches!(action, Action::Claim(..)) {
                    CallKind::Claim
                } else {
                    CallKind::Check
                };
                let p = self.manager_proc(m);
                let slot = self.call_slot(m, k, kind);
                let left = s.ghost.calls_left.get(slot).copied().unwrap_or(0);
                let extending = m == 0 && left < self.config.claims_first_holder;
                let duration = if extending {
                    self.config.extend_duration
                } else {
                    self.config.lease_duration
                };
                if let Some(c) = s.ghost.calls_left.get_mut(slot) {
                    *c = c.saturating_sub(1);
                }
                s.ghost.called_this_tick |= call_bit(slot);
                let req = u64::try_from(slot).unwrap_or(u64::MAX);
                let global_at_start = observe::global(&s.store);
                s.ghost.calls.push(Call {
                    manager: m,
                    lease: k,
                    kind,
                    req,
                    global_at_start,
                    duration,
                });
                // Remembered, as timers and replies are: a holder's call is an input like them.
                let now = self.now(s, p);
                let call = Input::Call {
                    kind,
                    req,
                    lease: k,
                    holder: m,
                    duration,
                    now,
                };
                let out = self.call_actor(s, p, call);
                self.absorb(s, p, &out, why);
            }
            Action::Ticket(m, kind) => {
                let p = self.manager_proc(m);
                let mi = usize::from(m);
                s.ghost.leadership_mut().tickets_left[mi] =
                    s.ghost.leadership().tickets_left[mi].saturating_sub(1);
                let now = self.now(s, p);
                let issued = self.real(s);
                let mut ticket = None;
                let out = self.call_directly(s, p, |a| match a {
                    Actor::Unit(u) => {
                        let (id, fx) = u.handle_ticket(kind, now);
                        ticket = Some(id);
                        Some(split(fx, unit_note))
                    }
                    _ => None,
                });
                if let (Some(id), Some(out)) = (ticket, out) {
                    s.ghost.leadership_mut().tickets.push(Ticket {
                        unit: m,
                        id: id.0,
                        kind,
                        issued,
                    });
                    self.absorb(s, p, &out, why);
                }
            }
            Action::Pause(p) => {
                s.budget = s.budget.saturating_sub(1);
                s.proc_mut(usize::from(p)).paused = true;
                // A paused pinger pings no more: its key may die (P5 starts again on resume).
                if let Some(PresenceRole::Pinger(i)) = self.presence_role(usize::from(p)) {
                    s.ghost.presence_mut().pinging_since[i] = None;
                }
            }
            Action::Resume(p) => {
                let p = usize::from(p);
                s.proc_mut(p).paused = false;
                // One at a time, the rest still held: they refer to the process's operation
                // ids, so it is not renumbered before the last (`alone`).
                while !s.procs[p].held.is_empty() {
                    let (id, result) = s.proc_mut(p).held.remove(0);
                    self.deliver_reply(s, p, id, result, why);
                }
                if let Some(PresenceRole::Pinger(i)) = self.presence_role(p) {
                    let running = matches!(&s.procs[p].actor, Actor::Pinger(x) if x.is_running());
                    if running && s.ghost.presence().pinging_since[i].is_none() {
                        s.ghost.presence_mut().pinging_since[i] = Some(self.real(s));
                    }
                }
            }
            Action::Crash(p) => {
                s.budget = s.budget.saturating_sub(1);
                let proc = s.proc_mut(usize::from(p));
                proc.paused = false;
                proc.held.clear();
                proc.incarnation = proc.incarnation.wrapping_add(1);
                // The holder lived in the crashed process: its beliefs and calls die with it.
                // (Only what changes is written: writing the ghost copies it if it is shared.)
                if let Some(m) = self.manager_of(usize::from(p)) {
                    if s.ghost.beliefs.iter().any(|b| b.holder == m) {
                        s.ghost.beliefs.retain(|b| b.holder != m);
                    }
                    if s.ghost.calls.iter().any(|c| c.manager == m) {
                        s.ghost.calls.retain(|c| c.manager != m);
                    }
                    let l = s.ghost.leadership();
                    let waits = l.waiters.get(usize::from(m)).is_some_and(|w| *w > 0);
                    if waits || l.tickets.iter().any(|t| t.unit == m) {
                        let l = s.ghost.leadership_mut();
                        l.tickets.retain(|t| t.unit != m);
                        if let Some(w) = l.waiters.get_mut(usize::from(m)) {
                            *w = 0;
                        }
                    }
                }
                // G5 is per watcher: a restarted watcher starts a new sequence.
                if Some(usize::from(p)) == self.watcher() {
                    s.ghost.watcher_emitted = None;
                }
                match self.presence_role(usize::from(p)) {
                    Some(PresenceRole::Pinger(i)) => s.ghost.presence_mut().pinging_since[i] = None,
                    // A new watcher's watches are new: their events start afresh (P4).
                    Some(PresenceRole::Watcher) => s
                        .ghost
                        .presence_mut()
                        .last_event
                        .iter_mut()
                        .for_each(|e| *e = None),
                    _ => {}
                }
                self.start(s, usize::from(p), why);
            }
            Action::Rollback => {
                if let Some(old) = s.unreplicated.take() {
                    let before = std::mem::replace(&mut s.store, old);
                    if let Some(change) = WatchedChange::between(self, &before, &s.store) {
                        observe::store_change(self, s, &change, None, why);
                    }
                }
            }
        }
        // A fault, or the end of a pause, restarts the G6 and M6 windows (kept at 0 where
        // neither is checked, so it splits no states there).
        let fault_ended = s.budget < budget
            || matches!(
                action,
                Action::Resume(_) | Action::WriteChecked(_) | Action::Rollback
            );
        if fault_ended && self.tracks_quiet() {
            s.ghost.quiet_since = s.real;
        }
        self.mark_violated(s, why);
        s.canonical_order();
    }

    /// Holder `h<m>`'s call slot for `kind` on lease `l<k>` (below `CALL_SLOTS` in every
    /// valid configuration; a slot past it has no calls left, so it is never called).
    fn call_slot(&self, m: u8, k: u8, kind: CallKind) -> usize {
        (usize::from(m) * usize::from(self.config.leases) + usize::from(k)) * 2
            + usize::from(kind == CallKind::Check)
    }

    pub(crate) fn timer_due(&self, s: &State, p: usize) -> bool {
        s.procs[p].runs() && s.procs[p].due().is_some_and(|due| due <= self.real(s))
    }

    /// The initial state, with every process started (and its first requests applied, so
    /// the checker does not explore the start-up order).
    pub fn initial(&self) -> State {
        let presence_helpers = if self.config.protocol == Protocol::Presence {
            3
        } else {
            0
        };
        let n = usize::from(self.config.processes())
            + usize::from(self.watcher().is_some())
            + presence_helpers;
        let mut s = State {
            real: 0,
            store: Shared::new(MemoryStore::new()),
            procs: Vec::with_capacity(n),
            flights: Shared::default(),
            checked: Shared::default(),
            before_write: None,
            unreplicated: None,
            budget: self.config.fault_budget,
            violated: 0,
            reached: 0,
            tick_start: true,
            ghost: Shared::default(),
        };
        let holders =
            (0..self.config.managers).flat_map(|m| (0..self.config.leases).map(move |_| m));
        for (m, slots) in holders.zip(s.ghost.calls_left.chunks_exact_mut(2)) {
            slots[0] = if m == 0 {
                self.config.claims_first_holder
            } else {
                self.config.claims_per_holder
            };
        }
        if self.config.protocol == Protocol::Lease {
            if let Some(first) = s.ghost.calls_left.get_mut(1) {
                *first = self.config.checks;
            }
        } else {
            // Units claim by themselves; holders make no direct calls.
            s.ghost.calls_left.iter_mut().for_each(|c| *c = 0);
        }
        if self.config.protocol == Protocol::Presence {
            let keys = usize::from(self.config.pingers);
            s.ghost.presence = Some(Shared::new(PresenceGhost {
                pinging_since: vec![None; keys],
                seqs: vec![Vec::new(); keys],
                last_event: vec![None; keys],
                kills_left: vec![self.config.kills_per_pinger; keys],
                prunes_left: self.config.prunes,
                ..PresenceGhost::default()
            }));
            self.set_server_time(&mut s);
        }
        if self.config.protocol == Protocol::Leadership {
            let units = usize::from(self.config.managers);
            s.ghost.leadership = Some(Shared::new(LeadershipGhost {
                tickets_left: vec![self.config.tickets_per_unit; units],
                waiters: vec![0; units],
                // Free until the units' first claims (applied below) take it.
                free_since: self.observes(PropertyId::T6).then_some(0),
                ..LeadershipGhost::default()
            }));
        }
        let mut why = Vec::new();
        for p in 0..n {
            s.procs.push(Shared::new(Proc::new(
                self.fresh_actor(p),
                self.clock_of(p),
            )));
            self.start(&mut s, p, &mut why);
        }
        // Bounded: a livelocked protocol (a mutant that claims forever) must not hang start-up.
        for _ in 0..STARTUP_STEPS_MAX {
            if s.flights.is_empty() {
                break;
            }
            self.step(&mut s, Action::Deliver(0, How::Ok), &mut why);
        }
        // Start-up is not a step; what it violated still counts.
        self.mark_violated(&mut s, &why);
        s.tick_start = true;
        self.parts.intern(&mut s);
        s
    }

    /// Distinct (stores, processes, request sets, ghosts) this model's states were made of.
    pub fn distinct_parts(&self) -> [usize; 4] {
        self.parts.counts()
    }

    /// Replays `actions` from the initial state, returning each step's state and violations:
    /// the details a counterexample timeline shows.
    pub fn replay(&self, actions: &[Action]) -> Vec<(Action, State, Vec<Violation>)> {
        let mut s = self.initial();
        actions
            .iter()
            .map(|a| {
                let mut why = Vec::new();
                self.step(&mut s, *a, &mut why);
                (*a, s.clone(), why)
            })
            .collect()
    }

    /// Whether G6 (the clock's bounded liveness) is checked: in the clock model, unless requests
    /// may be delayed without end (`delay` has no budget: a request held forever is a partition,
    /// under which no progress is promised).
    pub fn checks_progress(&self) -> bool {
        self.checks.progress
    }

    fn progress_checked(&self) -> bool {
        self.config.protocol == Protocol::Clock && !self.config.faults.has(Fault::Delay)
    }

    /// Whether M6 (abandoned leases expire in bounded time) is checked: in the lease model,
    /// unless requests may be delayed without end, and only if the horizon leaves room for a
    /// claim, its expiry and the window after it (the default 6 s horizon does not).
    pub fn checks_expiry(&self) -> bool {
        self.checks.expiry
    }

    fn expiry_checked(&self) -> bool {
        let needed = self.config.lease_duration
            + self.config.clock_step_max()
            + self.expiry_window()
            + self.config.tick * 2;
        self.config.protocol == Protocol::Lease
            && !self.config.faults.has(Fault::Delay)
            && u128::from(self.horizon_ns()) >= needed.as_nanos()
    }

    /// M6's window after global time passes a lease's expiry (or the last fault ends). The
    /// manager waits out the rest of the term on its own clock, which may run slow, counting
    /// from when it handled the reply that dated the term: a reply handled late (after a
    /// pause) restarts that wait, so up to a whole term on the slowest clock; global time may
    /// also jump by one clock step. Its timer then fires at the first tick after that (one
    /// tick), and the check runs at the start of a tick, before the timers due in it (one tick
    /// more); the refresh and the expiry complete within the tick.
    pub fn expiry_window(&self) -> Duration {
        self.on_slowest_clock(self.config.lease_duration)
            + self.config.clock_step_max()
            + self.config.tick * 2
    }

    /// The real time a `local` duration can take on the slowest local clock.
    fn on_slowest_clock(&self, local: Duration) -> Duration {
        let ppm = u128::from(self.config.rate_error_ppm.min(999_999));
        let real = local.as_nanos() * 1_000_000 / (1_000_000 - ppm);
        Duration::from_nanos(u64::try_from(real).unwrap_or(u64::MAX))
    }

    /// Whether T6 (a waiting candidate is served once the leadership lease is free) is checked:
    /// in the leadership model, unless requests may be delayed without end, and only if the
    /// horizon leaves room for the leader's term to run out and the window after it (the
    /// default 6 s horizon does not).
    pub fn checks_service(&self) -> bool {
        self.checks.service
    }

    fn service_checked(&self) -> bool {
        let term = self.config.lease_duration * 2;
        let needed = self.on_slowest_clock(term)
            + self.config.clock_step_max()
            + self.service_window()
            + self.config.tick;
        self.config.protocol == Protocol::Leadership
            && !self.config.faults.has(Fault::Delay)
            && u128::from(self.horizon_ns()) >= needed.as_nanos()
    }

    /// T6's window after the lease is freed (or the last fault ends). The unit whose manager
    /// expired the lease is told at once and claims within the tick; a unit that learns of it
    /// from its manager's next expiry tick or its own renewal timer (both due by then) claims
    /// at the next tick: two ticks.
    pub fn service_window(&self) -> Duration {
        self.config.tick * 2
    }

    /// Whether the model remembers when the last fault ended (G6, M6 and T6 windows start
    /// there).
    pub(crate) fn tracks_quiet(&self) -> bool {
        [PropertyId::G6, PropertyId::M6, PropertyId::T6]
            .into_iter()
            .any(|id| self.observes(id))
    }

    /// G6's window: an updater's interval and backoff on the slowest local clock, plus two
    /// ticks (a timer fires at the first tick at or after its deadline, and the write it starts
    /// completes within that tick).
    pub fn progress_window(&self) -> Duration {
        let local = self.config.update_interval + self.updater_config().backoff_delay;
        self.on_slowest_clock(local) + self.config.tick * 2
    }

    /// The properties this model's protocol checks, `always` first.
    pub fn checked_properties(&self) -> Vec<PropertyId> {
        use PropertyId::*;
        match self.config.protocol {
            Protocol::Clock if self.checks_progress() => vec![G1, G2, G3, G5, G6],
            Protocol::Clock => vec![G1, G2, G3, G5],
            Protocol::Leadership if self.checks_service() => {
                vec![G1, G2, G3, L2, L3, L4, L6, F1, T1, T3, T4, T5, T6]
            }
            Protocol::Leadership => vec![G1, G2, G3, L2, L3, L4, L6, F1, T1, T3, T4, T5],
            Protocol::Presence => vec![P1, P2, P4, P5, P6],
            _ if self.checks_expiry() => vec![G1, G2, G3, L2, L3, L4, L5, L6, F1, M4, M6],
            _ => vec![G1, G2, G3, L2, L3, L4, L5, L6, F1, M4],
        }
    }

    /// Every property this configuration can check, `always` first.
    pub fn checkable(&self) -> Vec<CheckedProperty> {
        let always = self
            .checked_properties()
            .into_iter()
            .map(CheckedProperty::Always);
        let sometimes = self
            .milestones()
            .into_iter()
            .map(CheckedProperty::Sometimes);
        always.chain(sometimes).collect()
    }

    /// The properties this check checks: those of `ModelConfig::only`, or all it can.
    pub fn selected(&self) -> Vec<CheckedProperty> {
        let mut all = self.checkable();
        if let Some(only) = &self.config.only {
            all.retain(|p| only.contains(p));
        }
        all
    }

    /// The milestones whose `sometimes` properties show the model is not vacuous.
    pub fn milestones(&self) -> Vec<Milestone> {
        match self.config.protocol {
            Protocol::Clock => vec![Milestone::ClockAdvanced, Milestone::WatcherEmitted],
            Protocol::Presence => vec![
                Milestone::KeyAlive,
                Milestone::KeyDied,
                Milestone::SlotsPruned,
            ],
            // Without tickets nobody asks claim_leader.
            Protocol::Leadership if self.config.tickets_per_unit == 0 => {
                vec![Milestone::LeadershipMoved, Milestone::BecameMinion]
            }
            Protocol::Leadership => vec![
                Milestone::LeaderConfirmed,
                Milestone::LeadershipMoved,
                Milestone::BecameMinion,
            ],
            // A lone holder is never denied.
            _ if self.config.managers < 2 => vec![
                Milestone::LeaseClaimed,
                Milestone::HolderChanged,
                Milestone::LeaseExpired,
            ],
            _ => vec![
                Milestone::LeaseClaimed,
                Milestone::HolderChanged,
                Milestone::LeaseExpired,
                Milestone::ClaimDenied,
            ],
        }
    }
}

impl Model for TenureModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        if self.halt.load(Ordering::Relaxed) {
            return;
        }
        let lone_timer = self
            .config
            .partial_order
            .then(|| crate::reduction::lone_timer(self, s))
            .flatten();
        if let (Some(alone), false) = (lone_timer, s.tick_start) {
            actions.push(alone);
            return;
        }
        let faults = self.config.faults;
        let spare = s.budget > 0;
        let lone_read = (self.config.partial_order && lone_timer.is_none())
            .then(|| crate::reduction::lone_read(self, s))
            .flatten();
        if let (Some(i), false) = (lone_read, s.tick_start) {
            // A read is never ambiguous, and stale reads turn the reduction off.
            actions.push(Action::Deliver(i, How::Ok));
            if spare && faults.has(Fault::Lost) {
                actions.push(Action::Deliver(i, How::Lost));
            }
            return;
        }
        for (i, f) in s.flights.iter().enumerate() {
            let i = u8::try_from(i).unwrap_or(u8::MAX);
            actions.push(Action::Deliver(i, How::Ok));
            if !spare {
                continue;
            }
            let op = &f.req.op;
            if faults.has(Fault::Lost) {
                actions.push(Action::Deliver(i, How::Lost));
            }
            if faults.has(Fault::Ambiguous) && op.is_write() {
                actions.push(Action::Deliver(i, How::Ambiguous));
            }
            if faults.has(Fault::Rollback) && op.is_write() && s.unreplicated.is_none() {
                actions.push(Action::Deliver(i, How::Unreplicated));
            }
            if faults.has(Fault::StaleRead)
                && observe::tolerates_stale(op)
                && s.before_write.is_some()
            {
                actions.push(Action::Deliver(i, How::Stale));
            }
            if faults.has(Fault::NonAtomicCas) && observe::is_conditional_write(op) {
                actions.push(Action::Deliver(i, How::FilterOnly));
            }
        }
        for i in 0..s.checked.len() {
            actions.push(Action::WriteChecked(u8::try_from(i).unwrap_or(u8::MAX)));
        }
        let mut due = false;
        for p in 0..s.procs.len() {
            if self.timer_due(s, p) {
                due = true;
                actions.push(Action::Fire(u8::try_from(p).unwrap_or(u8::MAX)));
            }
        }
        for m in 0..self.config.managers {
            if !s.tick_start || !s.procs[self.manager_proc(m)].runs() {
                continue;
            }
            for k in 0..self.config.leases {
                if self.config.protocol != Protocol::Lease {
                    break;
                }
                for kind in [CallKind::Claim, CallKind::Check] {
                    let busy = s
                        .ghost
                        .calls
                        .iter()
                        .any(|c| c.manager == m && c.lease == k && c.kind == kind);
                    let slot = self.call_slot(m, k, kind);
                    let allowed = s.ghost.calls_left.get(slot).is_some_and(|c| *c > 0)
                        && s.ghost.called_this_tick & call_bit(slot) == 0;
                    if !busy && allowed {
                        actions.push(match kind {
                            CallKind::Claim => Action::Claim(m, k),
                            CallKind::Check => Action::Check(m, k),
                        });
                    }
                }
            }
        }
        // (Only at the start of a tick: the ghost is not read in most states.)
        for m in (0..self.config.managers).filter(|_| s.tick_start) {
            let runs = s.procs[self.manager_proc(m)].runs();
            let left = s
                .ghost
                .leadership()
                .tickets_left
                .get(usize::from(m))
                .copied()
                .unwrap_or(0);
            if s.tick_start && runs && left > 0 {
                for kind in [
                    TicketKind::ClaimLeader,
                    TicketKind::WaitLeader,
                    TicketKind::WaitMinion,
                ] {
                    actions.push(Action::Ticket(m, kind));
                }
            }
        }
        if s.tick_start && self.config.protocol == Protocol::Presence {
            for i in 0..usize::from(self.config.pingers) {
                let running = matches!(&s.procs[i].actor, Actor::Pinger(x) if x.is_running());
                let i8 = u8::try_from(i).unwrap_or(u8::MAX);
                if !s.procs[i].runs() {
                    continue;
                }
                if running && s.ghost.presence().kills_left[i] > 0 {
                    actions.push(Action::StopPinger(i8));
                } else if !running && s.ghost.presence().pinging_since[i].is_none() {
                    actions.push(Action::StartPinger(i8));
                }
            }
            if s.ghost.presence().prunes_left > 0 {
                actions.push(Action::Prune);
            }
        }
        for (p, proc) in s.procs.iter().enumerate() {
            if !s.tick_start {
                break;
            }
            // A batcher's pending pings die with it, which P2 cannot tell from corruption.
            if self.presence_role(p) == Some(PresenceRole::Batcher) {
                continue;
            }
            let p8 = u8::try_from(p).unwrap_or(u8::MAX);
            if proc.paused {
                actions.push(Action::Resume(p8));
            } else if spare {
                if faults.has(Fault::Pause) {
                    actions.push(Action::Pause(p8));
                }
                if faults.has(Fault::Crash) {
                    actions.push(Action::Crash(p8));
                }
            }
        }
        if s.unreplicated.is_some() {
            actions.push(Action::Rollback);
        }
        let settled = faults.has(Fault::Delay) || (s.flights.is_empty() && s.checked.is_empty());
        if s.real < self.horizon_ns() && !due && settled {
            actions.push(Action::Tick);
        }
        if let Some(alone) = lone_timer {
            crate::reduction::keep_ample(actions, |a| *a == alone);
        } else if let Some(i) = lone_read {
            crate::reduction::keep_ample(
                actions,
                |a| matches!(a, Action::Deliver(j, _) if *j == i),
            );
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let mut why = Vec::new();
        self.step(&mut s, action, &mut why);
        self.parts.intern_from(&mut s, last);
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        self.selected()
            .into_iter()
            .map(CheckedProperty::stateright)
            .collect()
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.real <= self.horizon_ns()
    }

    fn format_action(&self, action: &Action) -> String {
        action.to_string()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Tick => write!(f, "tick"),
            Action::Deliver(i, How::Ok) => write!(f, "deliver request {i}"),
            Action::Deliver(i, how) => write!(f, "deliver request {i} ({how:?})"),
            Action::WriteChecked(i) => write!(f, "land non-atomic write {i}"),
            Action::Fire(p) => write!(f, "timer of process {p}"),
            Action::Claim(m, k) => write!(f, "h{m} claims l{k}"),
            Action::Check(m, k) => write!(f, "h{m} checks l{k}"),
            Action::Ticket(m, kind) => write!(f, "h{m} asks {kind:?}"),
            Action::StopPinger(i) => write!(f, "k{i} stops pinging (dead marker)"),
            Action::StartPinger(i) => write!(f, "k{i} starts pinging"),
            Action::Prune => write!(f, "the pruner runs"),
            Action::Pause(p) => write!(f, "process {p} pauses"),
            Action::Resume(p) => write!(f, "process {p} resumes"),
            Action::Crash(p) => write!(f, "process {p} crashes and restarts"),
            Action::Rollback => write!(f, "failover rolls back the unreplicated write"),
        }
    }
}

/// A belief of holder `m` about lease `k`, ready for the core's L6 check.
pub(crate) fn belief_tenure(b: &Belief) -> tenure::property::lease::Tenure {
    tenure::property::lease::Tenure {
        lease: format!("l{}", b.lease),
        holder: format!("h{}", b.holder),
        epoch: tenure::lease::Epoch(b.epoch),
        from_real: b.from,
        until_real: b.until,
    }
}

pub(crate) fn namespace() -> &'static str {
    NAMESPACE
}
