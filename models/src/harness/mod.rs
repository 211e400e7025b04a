//! The stateright model every protocol shares: the core's actors executed under the fault
//! model. What each protocol adds (its processes' calls, what is observed, which properties)
//! is in [`crate::protocol`].
//!
//! The model owns real time (a tick action), every process's drifting local clock, the store,
//! and the requests in flight. It executes the actors' effects and never decides anything a
//! protocol decides. Properties are the core's `tenure::property` functions, evaluated on each
//! transition; a violation sets a bit in the ghost state, which the `always` property of that
//! id reads.
//!
//! - `actions`: which actions are enabled in a state (the partial-order reduction's choice
//!   among them is [`crate::speedup::reduction`]'s);
//! - `step`: what each action does;
//! - `time`: real time and each process's drifting local clock;
//! - `processes`: building, starting and calling the actors, and taking in their effects;
//! - `store`: the requests in flight, the store that applies them, the answers handed back;
//! - `checks`: which properties a configuration checks, and the bounded-liveness windows;
//! - [`state`]: the state: processes, requests in flight, the store and the ghost record;
//! - [`faults`]: the fault switches.

use crate::config::ModelConfig;
use crate::harness::state::{
    Belief, CallKind, LeadershipGhost, Parts, PresenceGhost, Proc, State, RELEASE_SLOT,
};
use crate::properties::CheckedProperty;
use crate::protocol;
use crate::speedup::memo::{
    ActorMemo, FlightsMemo, PruneMemo, ServerTimeMemo, SettledMemo, StoreMemo,
};
use crate::speedup::shared::Shared;
use checks::Checks;
use stateright::{Model, Property};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tenure::leadership::TicketKind;
use tenure::mutant::Protocol;
use tenure::property::{PropertyId, Violation};
use tenure::substrate::MemoryStore;

mod actions;
mod checks;
pub mod faults;
mod processes;
pub mod state;
mod step;
mod store;
mod time;

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
    /// Holder `h<m>` releases lease `l<k>`, giving up the token of its first grant there.
    Release(u8, u8),
    /// Unit `h<m>` is given a leadership ticket.
    Ticket(u8, TicketKind),
    /// Unit `h<m>` resigns: its tracker stops and it releases the term it holds.
    Resign(u8),
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
                | Action::Release(..)
                | Action::Ticket(..)
                | Action::Resign(_)
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
pub(crate) fn call_bit(slot: usize) -> u64 {
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

pub(crate) const NAMESPACE: &str = "app";

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
            if let Some(slot) = model.state_bits.get_mut(protocol::index(id)) {
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
        self.state_bit_at(protocol::index(id))
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

    /// Whether a counterexample of the property with bit `bit` (`1 << protocol::index(id)`) was
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

    /// Holder `h<m>`'s name.
    fn holder_name(&self, m: u8) -> &str {
        self.names
            .holders
            .get(usize::from(m))
            .map_or("", String::as_str)
    }

    /// Lease `l<k>`'s name.
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

    /// Holder `h<m>`'s call slot for `kind` on lease `l<k>` (below `CALL_SLOTS` in every
    /// valid configuration; a slot past it has no calls left, so it is never called).
    pub(crate) fn call_slot(&self, m: u8, k: u8, kind: CallKind) -> usize {
        match kind {
            // Only h0 releases, and only l0: one slot past the others ([`RELEASE_SLOT`]).
            CallKind::Release if m == 0 && k == 0 => RELEASE_SLOT,
            CallKind::Release => usize::MAX,
            _ => {
                (usize::from(m) * usize::from(self.config.leases) + usize::from(k)) * 2
                    + usize::from(kind == CallKind::Check)
            }
        }
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

    /// Process `p`'s part in the presence model: pingers `0..K`, then the batcher, the watcher
    /// and the pruner.
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
            s.ghost.calls_left.0[RELEASE_SLOT] = self.config.releases;
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
                resigns_left: self.config.releases,
                waiters: vec![0; units],
                // Free until the units' first claims (applied below) take it.
                free_since: self.observes(PropertyId::T6).then_some(0),
                ..LeadershipGhost::default()
            }));
        }
        let mut why = Vec::new();
        for p in 0..n {
            s.procs.push(Shared::new(Proc::new(
                self.fresh_actor(p, 0),
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
}

impl Model for TenureModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        vec![self.initial()]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        self.enabled_actions(s, actions);
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
            Action::Release(m, k) => write!(f, "h{m} releases l{k}"),
            Action::Ticket(m, kind) => write!(f, "h{m} asks {kind:?}"),
            Action::Resign(m) => write!(f, "h{m} resigns"),
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
