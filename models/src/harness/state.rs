//! The model's state: real time, the store, the processes running the core's actors, the
//! requests in flight, and the ghost observations the properties need.

use crate::config::{LEASES_MAX, PROCESSES_MAX};
use crate::speedup::shared::{parts, Interner, Shared};
use tenure::actor::Actor;
use tenure::effects::{Effects, OpId, Request};
use tenure::leadership::TicketKind;
use tenure::substrate::{MemoryStore, OpResult};
use tenure::time::{DriftingClock, LocalTime};

/// One of the core's actors, as the model runs it: the core's [`Node`].
pub use tenure::actor::{Node, Note};

/// Requests and notes out of one actor call. A request is shared: it is copied into every
/// state in which it is in flight, and into the remembered transitions ([`crate::speedup::memo`]).
pub type Out = (Vec<Shared<Request>>, Vec<Note>);

/// An actor's effects as the model's requests and notes, its outputs tagged by `f`.
pub fn split<N>(fx: Effects<N>, f: impl FnMut(N) -> Note) -> Out {
    let fx = fx.map(f);
    (shared(fx.requests), fx.notifications)
}

/// A store's answer, shared (and kept: see [`Parts`]).
pub type Answer = Shared<OpResult>;

/// Requests, shared.
pub fn shared(requests: Vec<Request>) -> Vec<Shared<Request>> {
    requests.into_iter().map(Shared::new).collect()
}

/// Fires the actor's timer.
pub fn timeout(actor: &mut Node, now: LocalTime) -> Out {
    split(actor.handle_timeout(now), |n| n)
}

/// Hands the actor a store reply.
pub fn reply(actor: &mut Node, id: OpId, result: OpResult, now: LocalTime) -> Out {
    split(actor.handle_reply(id, result, now), |n| n)
}

/// Renumbers the actor's operation ids from 0, and those of `out`, the requests it just issued
/// (see [`tenure::effects::Renumber`]): the caller has made sure nothing else refers to them
/// (`TenureModel::alone`).
pub fn renumber(actor: &mut Node, out: &mut Out) {
    let by = actor.renumber(out.0.iter().map(|r| r.id).min());
    if by > 0 {
        for req in &mut out.0 {
            let req = req.make_mut();
            req.id = req.id.lowered(by);
        }
    }
}

/// The base an updater's in-flight advance swaps against (G2 needs the writer's intent, which
/// a blind write does not put in its filter).
pub fn clock_base(actor: &Node) -> Option<u64> {
    match actor {
        Node::Updater(a) => a.base().map(|g| g.0),
        _ => None,
    }
}

/// A process: an actor with its local clock and its fault state.
///
/// In this order (`repr(C)`): what listing a state's steps reads of every process (when its
/// timer is due, whether it runs, its replies held) comes first, in the cache line that also
/// holds the kept part's flag and hash ([`crate::speedup::shared`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Proc {
    /// The real time (ns) at which the actor's timer is due: derived from `actor` and `clock`
    /// when the process is kept ([`Parts`]), so that listing a state's steps does not ask every
    /// actor (a walk through its memory) and convert its deadline in every state.
    due: Option<u64>,
    /// Paused: takes no steps; replies wait in `held`.
    pub paused: bool,
    /// Bumped on every crash, so replies to a previous life are dropped.
    pub incarnation: u8,
    /// Replies that arrived while paused.
    pub held: Vec<(OpId, Answer)>,
    /// Its local clock.
    pub clock: DriftingClock,
    /// The actor.
    pub actor: Node,
}

impl Proc {
    /// A process running `actor` on `clock`.
    pub fn new(actor: Node, clock: DriftingClock) -> Proc {
        let mut p = Proc {
            actor,
            clock,
            paused: false,
            held: Vec::new(),
            incarnation: 0,
            due: None,
        };
        p.due = p.due_now();
        p
    }

    /// Whether the process can take a step now.
    pub fn runs(&self) -> bool {
        !self.paused
    }

    /// The first real time (ns) at which the actor's timer is due, if it has one. Up to date
    /// in every kept process, which is every process of a state the checker holds.
    pub fn due(&self) -> Option<u64> {
        debug_assert_eq!(self.due, self.due_now(), "read before the process was kept");
        self.due
    }

    fn due_now(&self) -> Option<u64> {
        self.actor.next_deadline().map(|d| self.clock.real_of(d))
    }
}

/// A request on its way to the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Flight {
    /// The issuing process.
    pub proc: u8,
    /// Its incarnation when it issued the request.
    pub incarnation: u8,
    /// The request.
    pub req: Shared<Request>,
    /// For a clock advance: the base the updater meant to swap against.
    pub clock_base: Option<u64>,
}

impl Flight {
    /// Where the canonical order puts it ([`State::canonical_order`]).
    pub fn order(&self) -> (u8, OpId) {
        (self.proc, self.req.id)
    }
}

/// A lease holder's belief, in real time (ghost state for L6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Belief {
    /// The lease index.
    pub lease: u8,
    /// The holder (= manager) index.
    pub holder: u8,
    /// The epoch granted.
    pub epoch: u64,
    /// Real time the belief began (ns).
    pub from: u64,
    /// Real time the belief ends (ns, exclusive).
    pub until: u64,
}

/// What a caller is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallKind {
    /// A claim or extension.
    Claim,
    /// A token check.
    Check,
    /// A release of the holder's first token.
    Release,
}

/// An API call awaiting its answer (ghost state for L5 and to bound calls).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Call {
    /// The manager index.
    pub manager: u8,
    /// The lease index.
    pub lease: u8,
    /// Which call.
    pub kind: CallKind,
    /// The request id given to the manager.
    pub req: u64,
    /// Global time when the call began (the lower bound of L5).
    pub global_at_start: u64,
    /// The duration asked for.
    pub duration: std::time::Duration,
}

/// Holders' call slots: one per (manager, lease) for claims and one for checks, then h0's
/// releases of l0 ([`RELEASE_SLOT`]).
pub const CALL_SLOTS: usize = PROCESSES_MAX as usize * LEASES_MAX as usize * 2 + 1;

/// The call slot of h0's releases of l0 (the model's only releases: releases by every holder
/// would multiply the state space and reveal nothing new).
pub const RELEASE_SLOT: usize = CALL_SLOTS - 1;

/// A count per holders' call slot ([`CALL_SLOTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallSlots(pub [u8; CALL_SLOTS]);

impl Default for CallSlots {
    fn default() -> Self {
        CallSlots([0; CALL_SLOTS])
    }
}

impl std::ops::Deref for CallSlots {
    type Target = [u8; CALL_SLOTS];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for CallSlots {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

/// Observations the properties need, kept as small as they can be.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ghost {
    /// Beliefs that have not yet ended.
    pub beliefs: Vec<Belief>,
    /// The epoch of h0's first grant of l0 (0 before it): the token its releases give up,
    /// stale once h0 claimed l0 again after an expiry.
    pub first_grant: u64,
    /// Calls awaiting answers.
    pub calls: Vec<Call>,
    /// Per (manager, lease, kind): calls the holder may still make (in place: a list would
    /// be one more allocation in every copy of the ghost).
    pub calls_left: CallSlots,
    /// Per (manager, lease, kind), as bits: called during this tick (at most one call each).
    pub called_this_tick: u64,
    /// The last successful clock write, as (intended base, value written). G2 checks each new
    /// write against it alone: in a chain every write swaps against the value the last one
    /// wrote, and a write that does not breaks the chain wherever it falls.
    pub clock_write_last: Option<(u64, u64)>,
    /// (real ns, global) of the clock document's change with the lowest G3 level, the one
    /// change G3 must compare each new one with (`tenure::property::clock::g3_lowest`).
    /// Keeping it instead of every change makes runs that differ only in settled history one
    /// state. (Exact while global time never goes back; when it does, G1 fails.)
    pub clock_lowest: Option<(u64, u64)>,
    /// (real ns, global) of the clock document's last change: G6's window starts there.
    pub clock_last: Option<(u64, u64)>,
    /// (real ns, global) after every change of the clock document, kept only where M6 is
    /// checked: it looks for the first time global time passed each lease's expiry.
    pub clock_samples: Vec<(u64, u64)>,
    /// Real time (ns) the last fault ended: G6's window starts no earlier.
    pub quiet_since: u64,
    /// The last value the clock watcher emitted.
    pub watcher_emitted: Option<u64>,
    /// What only the leadership model observes (`None` elsewhere: a ghost is copied whenever
    /// it changes, and fields a model never uses would be copied and hashed every time).
    pub leadership: Option<Shared<LeadershipGhost>>,
    /// What only the presence model observes (`None` elsewhere).
    pub presence: Option<Shared<PresenceGhost>>,
}

/// Ghost observations of the leadership model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LeadershipGhost {
    /// Leadership tickets not yet resolved.
    pub tickets: Vec<Ticket>,
    /// Per unit: tickets it may still be given.
    pub tickets_left: Vec<u8>,
    /// Resignations unit `h0` may still make.
    pub resigns_left: u8,
    /// Per unit: release-waiters outstanding (T3).
    pub waiters: Vec<u8>,
    /// Bit `m` set: unit `h<m>` has become leader at some point.
    pub leaders: u8,
    /// Real time since which the leadership lease has been free (T6; kept only where T6 is
    /// checked).
    pub free_since: Option<u64>,
    /// Whether a release (a resignation) freed it, rather than an expiry (T6's window).
    pub freed_by_release: bool,
}

/// Ghost observations of the presence model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PresenceGhost {
    /// Per pinger: real time it last started pinging (or resumed from a pause), while it runs
    /// and is not paused (P5).
    pub pinging_since: Vec<Option<u64>>,
    /// Per pinger: the sequences it was given, in order (P1).
    pub seqs: Vec<Vec<u64>>,
    /// (slot, field, OR of the bits pinged): what the slot documents must hold (P2).
    pub sent: Vec<(i64, String, i64)>,
    /// Per watch: the last liveness reported (P4).
    pub last_event: Vec<Option<bool>>,
    /// Bit `w` set: watch `w` has reported its key alive.
    pub ever_alive: u8,
    /// Per pinger: kills (graceful stops with a dead marker) left.
    pub kills_left: Vec<u8>,
    /// Prune passes left.
    pub prunes_left: u8,
    /// The current slot the last prune pass was asked to keep from (P6).
    pub prune_slot: Option<i64>,
    /// Sequences referenced, when that pass began, by pings it must keep: the beings it must
    /// not delete. (Pings landing later may reference beings it already judged superseded;
    /// those are an old incarnation's, which the watcher ignores once the being is gone.)
    pub prune_referenced: Vec<u64>,
}

/// What a model without leadership observes of it: nothing.
static NO_LEADERSHIP: LeadershipGhost = LeadershipGhost {
    tickets: Vec::new(),
    tickets_left: Vec::new(),
    resigns_left: 0,
    waiters: Vec::new(),
    leaders: 0,
    free_since: None,
    freed_by_release: false,
};

/// What a model without presence observes of it: nothing.
static NO_PRESENCE: PresenceGhost = PresenceGhost {
    pinging_since: Vec::new(),
    seqs: Vec::new(),
    sent: Vec::new(),
    last_event: Vec::new(),
    ever_alive: 0,
    kills_left: Vec::new(),
    prunes_left: 0,
    prune_slot: None,
    prune_referenced: Vec::new(),
};

impl Ghost {
    /// The leadership observations (empty outside the leadership model).
    pub fn leadership(&self) -> &LeadershipGhost {
        self.leadership.as_deref().unwrap_or(&NO_LEADERSHIP)
    }

    /// The leadership observations, to change (copied first if shared).
    pub fn leadership_mut(&mut self) -> &mut LeadershipGhost {
        self.leadership
            .get_or_insert_with(Shared::default)
            .make_mut()
    }

    /// The presence observations (empty outside the presence model).
    pub fn presence(&self) -> &PresenceGhost {
        self.presence.as_deref().unwrap_or(&NO_PRESENCE)
    }

    /// The presence observations, to change (copied first if shared).
    pub fn presence_mut(&mut self) -> &mut PresenceGhost {
        self.presence.get_or_insert_with(Shared::default).make_mut()
    }
}

/// A leadership ticket awaiting its answer (ghost state for T1 and T4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    /// The unit index.
    pub unit: u8,
    /// The tracker's ticket id.
    pub id: u64,
    /// What it asks.
    pub kind: TicketKind,
    /// Real time it was issued (ns).
    pub issued: u64,
}

/// The whole model state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// Real time (ns).
    pub real: u64,
    /// The store (shared with the states it came from until it changes).
    pub store: Shared<MemoryStore>,
    /// Updaters, then the clock watcher (clock model), then managers (each shared until it
    /// changes: most steps touch one process).
    pub procs: Vec<Shared<Proc>>,
    /// Requests not yet applied.
    pub flights: Shared<Vec<Flight>>,
    /// Non-atomic compare-and-swaps whose filter matched, waiting to write by `_id`.
    pub checked: Shared<Vec<Flight>>,
    /// The store before the last write (served by stale reads).
    pub before_write: Option<Shared<MemoryStore>>,
    /// The store before an acknowledged but unreplicated write (restored by a rollback).
    pub unreplicated: Option<Shared<MemoryStore>>,
    /// Fault events left.
    pub budget: u8,
    /// Bit `b` set: the property whose state bit is `b` ([`TenureModel::state_bit`]) was
    /// violated on the way to this state. (Held here rather than in the ghost, as `reached`:
    /// the checker asks in every state, and the ghost is most likely out of cache.)
    ///
    /// [`TenureModel::state_bit`]: crate::harness::TenureModel::state_bit
    pub violated: u32,
    /// Milestones reached (for `sometimes` properties), as bits of [`crate::Milestone`].
    pub reached: u16,
    /// Nothing has happened yet in this tick. Holders call, and processes pause, resume, crash
    /// and restart, only then: their requests still interleave with everything else in the
    /// tick, but the checker does not explore every point of the tick at which each could have
    /// happened (the state space would grow with the square of the points).
    pub tick_start: bool,
    /// Ghost observations.
    pub ghost: Shared<Ghost>,
}

parts!(MemoryStore, Proc, Vec<Flight>, Ghost, OpResult, Request);

/// Where a check keeps the one value of each distinct state part, and of each distinct answer
/// of the store (see [`crate::speedup::shared`]).
#[derive(Debug, Default)]
pub struct Parts {
    stores: Interner<MemoryStore>,
    procs: Interner<Proc>,
    flights: Interner<Vec<Flight>>,
    ghosts: Interner<Ghost>,
    answers: Interner<OpResult>,
    /// The requests actors issue (kept, a request in flight is copied without counting).
    requests: Interner<Request>,
}

impl Parts {
    /// Parts kept by this check alone, until [`Parts::release`] (see [`Interner::for_one_check`]).
    pub fn for_one_check() -> Parts {
        Parts {
            stores: Interner::for_one_check(),
            procs: Interner::for_one_check(),
            flights: Interner::for_one_check(),
            ghosts: Interner::for_one_check(),
            answers: Interner::for_one_check(),
            requests: Interner::for_one_check(),
        }
    }

    /// Frees the parts kept by [`Parts::for_one_check`].
    ///
    /// # Safety
    ///
    /// As [`Interner::release`]: no state, part, memo or model holding one of them may be used
    /// or dropped afterwards.
    pub unsafe fn release(self) {
        // SAFETY: passed on to the caller.
        unsafe {
            self.stores.release();
            self.procs.release();
            self.flights.release();
            self.ghosts.release();
            self.answers.release();
            self.requests.release();
        }
    }

    /// Points every part of `s` at its kept value.
    pub fn intern(&self, s: &mut State) {
        self.intern_parts(s, None);
    }

    /// Points every part of `s` at its kept value, where `s` was made from the kept state
    /// `parent`: the parts it shares with `parent` are kept already, and are not even looked at
    /// (each look is a read of memory that is likely out of cache).
    pub fn intern_from(&self, s: &mut State, parent: &State) {
        self.intern_parts(s, Some(parent));
    }

    fn intern_parts(&self, s: &mut State, parent: Option<&State>) {
        fn kept<T: Clone + std::hash::Hash>(part: &Shared<T>, old: Option<&Shared<T>>) -> bool {
            old.is_some_and(|o| part.same(o))
        }
        if !kept(&s.store, parent.map(|p| &p.store)) {
            self.stores.intern(&mut s.store);
        }
        for store in [&mut s.before_write, &mut s.unreplicated]
            .into_iter()
            .flatten()
        {
            self.stores.intern(store);
        }
        for (i, p) in s.procs.iter_mut().enumerate() {
            if !kept(p, parent.and_then(|q| q.procs.get(i))) {
                self.intern_proc(p);
            }
        }
        if !kept(&s.flights, parent.map(|p| &p.flights)) {
            self.flights.intern(&mut s.flights);
        }
        if !kept(&s.checked, parent.map(|p| &p.checked)) {
            self.flights.intern(&mut s.checked);
        }
        if !kept(&s.ghost, parent.map(|p| &p.ghost)) {
            self.ghosts.intern(&mut s.ghost);
        }
    }

    /// Points a store at its kept value.
    pub fn intern_store(&self, s: &mut Shared<MemoryStore>) {
        self.stores.intern(s);
    }

    /// Points a set of requests at its kept value.
    pub fn intern_flights(&self, f: &mut Shared<Vec<Flight>>) {
        self.flights.intern(f);
    }

    /// Points a request at its kept value.
    pub fn intern_request(&self, r: &mut Shared<Request>) {
        self.requests.intern(r);
    }

    /// Points a store's answer at its kept value.
    pub fn intern_answer(&self, a: &mut Answer) {
        self.answers.intern(a);
    }

    /// Points a process at its kept value.
    pub fn intern_proc(&self, p: &mut Shared<Proc>) {
        if p.kept_at().is_none() {
            let due = p.due_now();
            if p.due != due {
                p.make_mut().due = due;
            }
        }
        self.procs.intern(p);
    }

    /// Distinct (stores, processes, request sets, ghosts) kept so far.
    pub fn counts(&self) -> [usize; 4] {
        [
            self.stores.len(),
            self.procs.len(),
            self.flights.len(),
            self.ghosts.len(),
        ]
    }
}

impl State {
    /// The store, copied first if another state shares it.
    pub fn store_mut(&mut self) -> &mut MemoryStore {
        self.store.make_mut()
    }

    /// Sorts what is a multiset by nature (requests, calls, tickets, beliefs), so that the same
    /// multiset is one state.
    /// (Parts already in order are left alone: writing to one copies it if it is shared.)
    ///
    /// A kept part is in order already (it was put in order before it was kept, or made in
    /// order by a remembered edit), and is not read: most steps leave the ghost as it was, and
    /// reading its lists would be a read of memory long out of cache.
    pub fn canonical_order(&mut self) {
        sort_by_key(&mut self.flights, Flight::order);
        sort_by_key(&mut self.checked, Flight::order);
        if self.ghost.kept_at().is_some() {
            debug_assert!(
                self.ghost.calls.is_sorted_by_key(|c| c.req),
                "a kept ghost is in order"
            );
            return;
        }
        let g = &self.ghost;
        let ordered =
            g.calls.is_sorted_by_key(|c| c.req) && g.beliefs.is_sorted_by_key(belief_order);
        if !ordered {
            let g = self.ghost.make_mut();
            g.calls.sort_by_key(|c| c.req);
            g.beliefs.sort_by_key(belief_order);
        }
        let ticket_order = |t: &Ticket| (t.unit, t.id);
        if !self
            .ghost
            .leadership()
            .tickets
            .is_sorted_by_key(ticket_order)
        {
            self.ghost
                .leadership_mut()
                .tickets
                .sort_by_key(ticket_order);
        }
    }

    /// Process `p`, copied first if another state shares it.
    pub fn proc_mut(&mut self, p: usize) -> &mut Proc {
        self.procs[p].make_mut()
    }
}

fn belief_order(b: &Belief) -> (u8, u8, u64, u64) {
    (b.lease, b.holder, b.epoch, b.from)
}

/// Sorts a shared list, copying it only if it is out of order (a kept one is in order).
fn sort_by_key<T: Clone + std::hash::Hash, K: Ord>(
    list: &mut Shared<Vec<T>>,
    key: impl Fn(&T) -> K + Copy,
) {
    if list.kept_at().is_some() {
        debug_assert!(list.is_sorted_by_key(key), "a kept list is in order");
        return;
    }
    if !list.is_sorted_by_key(key) {
        list.sort_by_key(key);
    }
}

#[cfg(test)]
mod tests {
    use crate::harness::{Action, TenureModel};
    use crate::ModelConfig;
    use tenure::actor::Actor;
    use tenure::mutant::Protocol;

    /// `Proc::due` is the first real time at which the process's local clock reads its actor's
    /// deadline, and it follows the actor once the process is kept again.
    #[test]
    fn a_process_is_due_exactly_when_its_local_clock_reaches_the_deadline() {
        let m = TenureModel::new(ModelConfig::default_for(Protocol::Lease));
        let mut s = m.initial();
        let mut checked = 0;
        for p in 0..s.procs.len() {
            let (Some(deadline), Some(due)) = (s.procs[p].actor.next_deadline(), s.procs[p].due())
            else {
                continue;
            };
            let clock = s.procs[p].clock;
            assert!(clock.local(due) >= deadline);
            assert!(due == 0 || clock.local(due - 1) < deadline);
            let mut at = s.clone();
            at.real = due;
            assert!(m.timer_due(&at, p));
            if due > 0 {
                at.real = due - 1;
                assert!(!m.timer_due(&at, p));
            }
            checked += 1;
        }
        assert!(checked > 0, "some process has a timer");
        // Fire a due timer: the process kept afterwards knows its new deadline.
        m.step(&mut s, Action::Tick, &mut Vec::new());
        let p = (0..s.procs.len())
            .find(|p| m.timer_due(&s, *p))
            .expect("a timer is due after the first tick");
        let before = s.procs[p].due();
        let mut next = s.clone();
        m.step(
            &mut next,
            Action::Fire(u8::try_from(p).expect("few processes")),
            &mut Vec::new(),
        );
        let mut kept = next.procs[p].clone();
        crate::harness::state::Parts::default().intern_proc(&mut kept);
        let fresh = kept.actor.next_deadline().map(|d| kept.clock.real_of(d));
        assert_eq!(kept.due(), fresh);
        assert_ne!(kept.due(), before, "firing moved the timer");
    }
}
