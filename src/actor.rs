//! One way to drive every protocol actor: the [`Actor`] trait, and [`Node`], any actor of the
//! core with its outputs tagged by kind ([`Note`]).
//!
//! Every executor (the model checker, the simulator, the MongoDB adapter, the test harness)
//! drives actors through this interface and nothing else, so the calling convention is stated
//! once (STYLE.md §7.1, after quinn-proto):
//!
//! 1. an API call (`handle_start`, `handle_claim`, ...: inherent methods, one per actor) or
//!    [`Actor::handle_timeout`] or [`Actor::handle_reply`], with the actor's local time `now`,
//!    which must never decrease between calls to one actor;
//! 2. execute the returned [`Effects`]: carry each request to the store and its result back to
//!    [`Actor::handle_reply`] (tagged with its [`OpId`]), deliver each notification;
//! 3. re-arm the actor's one timer at [`Actor::next_deadline`], which may have moved. Calling
//!    [`Actor::handle_timeout`] early is harmless: it does nothing.
//!
//! Executors that run several kinds of actor side by side hold them as [`Node`]s, which
//! implement [`Actor`] (and [`Renumber`]) by dispatching to the actor inside.

use crate::clock::watcher::WatcherOutput as ClockWatcherOutput;
use crate::clock::{ClockWatcher, Updater, UpdaterOutput};
use crate::effects::{Effects, OpId, Renumber};
use crate::leadership::{TrackerOutput, Unit, UnitOutput};
use crate::lease::{LeaseManager, ManagerOutput};
use crate::presence::batcher::BatcherOutput;
use crate::presence::pruner::PrunerOutput;
use crate::presence::{
    Agent, AgentOutput, Batcher, Pinger, PingerOutput, PresenceWatcher, Pruner, WatcherOutput,
};
use crate::substrate::{Collection, OpResult};
use crate::time::LocalTime;

/// A protocol actor as an executor drives it: a timer, store replies, and what it may write.
pub trait Actor {
    /// What the actor reports to its user.
    type Output;

    /// When the actor next wants [`Actor::handle_timeout`]; `None`: no timer is armed.
    fn next_deadline(&self) -> Option<LocalTime>;

    /// Fires the actor's timer. Early or spurious calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<Self::Output>;

    /// Takes the result of the store request tagged `id`. Unknown ids are ignored.
    fn handle_reply(&mut self, id: OpId, result: OpResult, now: LocalTime)
        -> Effects<Self::Output>;

    /// Whether the actor ever writes `coll`: a fact of the protocol that executors may rely on
    /// (the model checker's partial-order reduction does, and asserts it of every request).
    fn may_write(&self, coll: Collection) -> bool;
}

/// Any actor of the core, for executors that run several kinds side by side.
///
/// The larger actors are boxed so that a `Node` stays two words: model states copy nodes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A global clock updater.
    Updater(Updater),
    /// A global clock watcher.
    ClockWatcher(ClockWatcher),
    /// A lease manager.
    Manager(Box<LeaseManager>),
    /// A leadership unit: a tracker and its manager.
    Unit(Box<Unit>),
    /// A presence pinger, alone (its pings go to a batcher the executor names).
    Pinger(Box<Pinger>),
    /// A presence batcher, alone.
    Batcher(Box<Batcher>),
    /// A presence agent: a batcher and the pingers it flushes for.
    Agent(Box<Agent>),
    /// A presence watcher.
    PresenceWatcher(Box<PresenceWatcher>),
    /// A presence pruner.
    Pruner(Box<Pruner>),
}

/// What a [`Node`] reported, tagged by the kind of actor that reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// From an updater.
    Updater(UpdaterOutput),
    /// From a clock watcher.
    ClockWatcher(ClockWatcherOutput),
    /// From a lease manager (a unit's included).
    Manager(ManagerOutput),
    /// From a leadership unit's tracker.
    Tracker(TrackerOutput),
    /// From a pinger running alone.
    Pinger(PingerOutput),
    /// From a batcher running alone.
    Batcher(BatcherOutput),
    /// From a presence agent: its pingers' outputs (tagged with their key) and its batcher's.
    Agent(AgentOutput),
    /// From a presence watcher.
    PresenceWatcher(WatcherOutput),
    /// From a pruner.
    Pruner(PrunerOutput),
    /// A unit's resignation ended ([`UnitOutput::Resigned`]).
    Resigned(Result<bool, crate::lease::ManagerError>),
}

impl From<UnitOutput> for Note {
    fn from(o: UnitOutput) -> Note {
        match o {
            UnitOutput::Manager(m) => Note::Manager(m),
            UnitOutput::Tracker(t) => Note::Tracker(t),
            UnitOutput::Resigned(r) => Note::Resigned(r),
        }
    }
}

/// Runs `$body` with `$a` bound to the actor inside `$node`, and tags its effects' outputs.
macro_rules! dispatch {
    ($node:expr, $a:ident => $body:expr) => {
        match $node {
            Node::Updater($a) => $body.map(Note::Updater),
            Node::ClockWatcher($a) => $body.map(Note::ClockWatcher),
            Node::Manager($a) => $body.map(Note::Manager),
            Node::Unit($a) => $body.map(Note::from),
            Node::Pinger($a) => $body.map(Note::Pinger),
            Node::Batcher($a) => $body.map(Note::Batcher),
            Node::Agent($a) => $body.map(Note::Agent),
            Node::PresenceWatcher($a) => $body.map(Note::PresenceWatcher),
            Node::Pruner($a) => $body.map(Note::Pruner),
        }
    };
}

/// Runs `$body` with `$a` bound to the actor inside `$node`, whatever it returns.
macro_rules! each {
    ($node:expr, $a:ident => $body:expr) => {
        match $node {
            Node::Updater($a) => $body,
            Node::ClockWatcher($a) => $body,
            Node::Manager($a) => $body,
            Node::Unit($a) => $body,
            Node::Pinger($a) => $body,
            Node::Batcher($a) => $body,
            Node::Agent($a) => $body,
            Node::PresenceWatcher($a) => $body,
            Node::Pruner($a) => $body,
        }
    };
}

impl Actor for Node {
    type Output = Note;

    fn next_deadline(&self) -> Option<LocalTime> {
        each!(self, a => a.next_deadline())
    }

    fn handle_timeout(&mut self, now: LocalTime) -> Effects<Note> {
        dispatch!(self, a => a.handle_timeout(now))
    }

    fn handle_reply(&mut self, id: OpId, result: OpResult, now: LocalTime) -> Effects<Note> {
        dispatch!(self, a => a.handle_reply(id, result, now))
    }

    fn may_write(&self, coll: Collection) -> bool {
        each!(self, a => a.may_write(coll))
    }
}

impl Renumber for Node {
    fn oldest_op_id(&self) -> OpId {
        each!(self, a => a.oldest_op_id())
    }

    fn lower_op_ids(&mut self, by: u64) {
        each!(self, a => a.lower_op_ids(by))
    }
}

impl Node {
    /// Lowers the node's operation ids so the oldest it holds, or `issued` (the lowest id of
    /// the requests it just issued), is 0 (see [`Renumber`]), and returns by how much: the
    /// executor lowers the ids of the node's requests in flight by as much. `issued` matters
    /// when the node stopped in the call that issued a request: it no longer holds that id,
    /// but the request is still to be answered (and ignored).
    pub fn renumber(&mut self, issued: Option<OpId>) -> u64 {
        let by = issued
            .map_or(self.oldest_op_id(), |id| id.min(self.oldest_op_id()))
            .0;
        if by > 0 {
            self.lower_op_ids(by);
        }
        by
    }
}
