//! The processes: building each one's actor, starting it, handing it timers, replies and
//! calls (remembered, as the actors are pure), and taking in what it asks and reports.

use super::TenureModel;
use crate::harness::state::{
    clock_base, renumber, reply, shared, split, timeout, Answer, CallKind, Flight, Node, Note, Out,
    Proc, State,
};
use crate::protocol;
use crate::protocol::presence;
use crate::speedup::memo::Input;
use crate::speedup::shared::Shared;
use std::sync::Arc;
use tenure::actor::Actor;
use tenure::clock::{ClockWatcher, Updater, WatcherConfig};
use tenure::effects::OpId;
use tenure::leadership::{TrackerConfig, Unit};
use tenure::lease::{Epoch, LeaseManager, RequestId};
use tenure::mutant::Protocol;
use tenure::presence::PingerOutput;
use tenure::property::Violation;

impl TenureModel {
    /// A fresh actor for process `p` (at start and on restart).
    pub(super) fn fresh_actor(&self, p: usize, incarnation: u8) -> Node {
        let built = if let Some(role) = self.presence_role(p) {
            self.presence_actor(role)
        } else if p < usize::from(self.config.updaters) {
            Updater::new(self.updater_config()).map(Node::Updater)
        } else if Some(p) == self.watcher() {
            ClockWatcher::new(WatcherConfig {
                poll_interval: self.config.tick,
                stall_after: None,
                mutant: self.config.mutant,
            })
            .map(Node::ClockWatcher)
        } else {
            let m = self.manager_of(p).unwrap_or(0);
            if self.config.protocol == Protocol::Leadership {
                Unit::new(self.manager_config(m, incarnation), self.tracker_config(m))
                    .map(|u| Node::Unit(Box::new(u)))
            } else {
                LeaseManager::new(self.manager_config(m, incarnation))
                    .map(|x| Node::Manager(Box::new(x)))
            }
        };
        // The configuration was validated by ModelConfig::validate; the actors' own limits are
        // wider than the model's.
        built.unwrap_or_else(|e| panic!("model built an invalid actor configuration: {e}"))
    }

    /// Unit `h<m>`'s tracker configuration: the model's claim duration and mutant.
    pub(crate) fn tracker_config(&self, m: u8) -> TrackerConfig {
        TrackerConfig {
            application: "l0".to_owned(),
            unit: format!("h{m}"),
            claim_duration: self.config.lease_duration,
            mutant: self.config.mutant,
        }
    }

    /// Starts (or restarts) process `p`.
    pub(super) fn start(&self, s: &mut State, p: usize, why: &mut Vec<Violation>) {
        let incarnation = s.procs[p].incarnation;
        s.proc_mut(p).actor = self.fresh_actor(p, incarnation);
        let out = {
            let now = self.now(s, p);
            match &mut s.proc_mut(p).actor {
                Node::Updater(a) => {
                    let fx = a.handle_start(now);
                    (shared(fx.requests), Vec::new())
                }
                Node::Manager(a) => {
                    let fx = a.handle_start(now);
                    (
                        shared(fx.requests),
                        fx.notifications.into_iter().map(Note::Manager).collect(),
                    )
                }
                Node::Unit(a) => split(a.handle_start(now), Note::from),
                Node::Pinger(a) => split(a.handle_start(now), Note::Pinger),
                Node::PresenceWatcher(a) => {
                    // Watch every key; a (re)started watcher numbers its watches from 0 again.
                    let mut notes = Vec::new();
                    for i in 0..usize::from(self.config.pingers) {
                        if let Ok((_, fx)) = a.handle_watch(&presence::key(i), now) {
                            notes.extend(fx.notifications.into_iter().map(Note::PresenceWatcher));
                        }
                    }
                    (Vec::new(), notes)
                }
                Node::ClockWatcher(_) | Node::Batcher(_) | Node::Agent(_) | Node::Pruner(_) => {
                    (Vec::new(), Vec::new())
                }
            }
        };
        self.absorb(s, p, &out, why);
    }

    /// Queues an actor's requests and observes its notes.
    pub(crate) fn absorb(
        &self,
        s: &mut State,
        p: usize,
        (reqs, notes): &Out,
        why: &mut Vec<Violation>,
    ) {
        // (Writing the requests in flight copies them if they are shared: only when there are
        // new ones.)
        if !reqs.is_empty() {
            let base = clock_base(&s.procs[p].actor);
            let incarnation = s.procs[p].incarnation;
            let proc = u8::try_from(p).unwrap_or(u8::MAX);
            for req in reqs {
                debug_assert!(
                    req.op
                        .collection()
                        .is_none_or(|c| !req.op.is_write() || s.procs[p].actor.may_write(c)),
                    "process {p} writes {:?}, which its actor does not declare (Node::may_write)",
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
            protocol::note(self, s, p, note, why);
            // A pinger hands its pings to the batcher at once (an in-process channel). The
            // model keeps them apart (not one presence::Agent) so each may pause or crash alone.
            if let Note::Pinger(PingerOutput::Ping(ping)) = note {
                let b = usize::from(self.config.pingers);
                let now = self.now(s, b);
                let out = self.call_directly(s, b, |a| match a {
                    Node::Batcher(x) => Some(split(x.handle_ping(ping, now), Note::Batcher)),
                    _ => None,
                });
                if let Some(out) = out {
                    self.absorb(s, b, &out, why);
                }
            }
        }
    }

    /// Hands running process `p` the answer to its operation `id`.
    pub(super) fn deliver_reply(
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

    /// Hands process `p` a timer or a reply (remembered: the actors are pure).
    pub(crate) fn call_actor(&self, s: &mut State, p: usize, input: Input) -> Arc<Out> {
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
                    Input::Timeout(now) => timeout(actor, now),
                    Input::Reply(id, result, now) => reply(actor, id, (*result).clone(), now),
                    Input::Call {
                        kind,
                        req,
                        lease,
                        holder,
                        duration,
                        epoch,
                        now,
                    } => {
                        let (lease, holder) = (self.lease_name(lease), self.holder_name(holder));
                        match actor {
                            Node::Manager(a) => split(
                                match kind {
                                    CallKind::Claim => {
                                        a.handle_claim(RequestId(req), lease, holder, duration, now)
                                    }
                                    CallKind::Check => {
                                        a.handle_check(RequestId(req), lease, holder, now)
                                    }
                                    CallKind::Release => a.handle_release(
                                        RequestId(req),
                                        lease,
                                        holder,
                                        Epoch(epoch),
                                        now,
                                    ),
                                },
                                Note::Manager,
                            ),
                            _ => (Vec::new(), Vec::new()),
                        }
                    }
                };
                if alone {
                    renumber(actor, &mut out);
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
    pub(crate) fn call_directly(
        &self,
        s: &mut State,
        p: usize,
        call: impl FnOnce(&mut Node) -> Option<Out>,
    ) -> Option<Out> {
        let alone = self.alone(s, p);
        let actor = &mut s.proc_mut(p).actor;
        let mut out = call(actor)?;
        if alone {
            renumber(actor, &mut out);
        }
        Some(out)
    }
}
