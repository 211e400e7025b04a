//! What an actor asks its executor to do after each call: [`Effects`], store [`Request`]s
//! tagged with an [`OpId`] and notifications for the actor's user. How executors drive actors
//! is [`crate::actor`]'s subject.

use crate::substrate::Op;
use serde::{Deserialize, Serialize};

/// Correlates a store request with its reply. Unique per actor for the actor's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId(pub u64);

impl OpId {
    /// This id renumbered `by` lower (see [`Renumber`]).
    pub fn lowered(self, by: u64) -> OpId {
        debug_assert!(self.0 >= by, "{self:?} renumbered below 0 (by {by})");
        OpId(self.0.saturating_sub(by))
    }
}

/// An actor whose operation ids can be renumbered. An id does one thing: it matches a reply to
/// its request. So lowering every id an actor holds, and the ids of its requests still
/// unanswered, by the same amount changes nothing the actor does. The model checker renumbers
/// so that states differing only in how many operations came before are one state (the ids
/// are a history no property needs; DESIGN.md, compact state).
pub trait Renumber {
    /// The lowest id the actor still holds: its oldest unanswered request's, or else the next
    /// id it will hand out.
    fn oldest_op_id(&self) -> OpId;
    /// Lowers every id the actor holds by `by`, at most [`Renumber::oldest_op_id`]. The caller
    /// renumbers the actor's requests still in flight the same way.
    fn lower_op_ids(&mut self, by: u64);
}

/// A store operation the executor must run, then answer with `handle_reply(id, result, now)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Tag to give back with the result.
    pub id: OpId,
    /// The operation, as data.
    pub op: Op,
}

/// The output of one `handle_*` call: store requests to issue and notifications to deliver.
///
/// An empty value means the call changed nothing visible, which models use to prune no-op
/// transitions.
#[must_use = "effects carry store requests and notifications that must be executed"]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effects<N> {
    /// Store operations to issue, in order.
    pub requests: Vec<Request>,
    /// Outputs for the actor's user (results of API calls, state changes).
    pub notifications: Vec<N>,
}

impl<N> Default for Effects<N> {
    fn default() -> Self {
        Effects {
            requests: Vec::new(),
            notifications: Vec::new(),
        }
    }
}

impl<N> Effects<N> {
    /// No requests, no notifications.
    pub fn none() -> Self {
        Self::default()
    }
    /// Whether there is nothing to execute.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.notifications.is_empty()
    }
    /// Appends a notification.
    pub fn notify(&mut self, n: N) {
        self.notifications.push(n);
    }
    /// Appends everything in `other`.
    pub fn extend(&mut self, other: Effects<N>) {
        self.requests.extend(other.requests);
        self.notifications.extend(other.notifications);
    }
    /// Converts the notifications with `f`, keeping requests.
    pub fn map<M>(self, f: impl FnMut(N) -> M) -> Effects<M> {
        Effects {
            requests: self.requests,
            notifications: self.notifications.into_iter().map(f).collect(),
        }
    }
}

/// Hands out [`OpId`]s in increasing order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct OpIds {
    next: u64,
}

impl OpIds {
    /// Wraps `op` in a request with a fresh id.
    pub fn request(&mut self, op: Op) -> Request {
        let id = OpId(self.next);
        self.next += 1;
        Request { id, op }
    }

    /// The id the next request will get.
    pub fn next(&self) -> OpId {
        OpId(self.next)
    }

    /// The oldest of `held` (the ids an actor still waits on), or else the next id.
    pub fn oldest(&self, held: impl IntoIterator<Item = OpId>) -> OpId {
        held.into_iter().min().unwrap_or(self.next())
    }

    /// Lowers `held` (the ids an actor still waits on) by `by`, and hands out ids `by` lower
    /// from now on (see [`Renumber`]).
    pub fn lower<'a>(&mut self, by: u64, held: impl IntoIterator<Item = &'a mut OpId>) {
        for id in held {
            *id = id.lowered(by);
        }
        self.next = self.next().lowered(by).0;
    }
}
