//! A counterexample as a timeline a person can read: after each step, real time, every
//! process's local time, global time, and every lease's holder and epoch.

use crate::harness::state::{Node, State};
use crate::harness::{namespace, Action, How, TenureModel};
use crate::protocol::global;
use tenure::substrate::{Collection, Op};

pub use tenure::timeline::{BeliefFrame, Frame, LeaseFrame, ProcFrame};

impl TenureModel {
    /// The name of process `p`.
    pub fn proc_name(&self, s: &State, p: usize) -> String {
        match &s.procs[p].actor {
            Node::Updater(_) => format!("updater-{p}"),
            Node::ClockWatcher(_) | Node::PresenceWatcher(_) => "watcher".to_owned(),
            Node::Pinger(_) => format!("pinger-k{p}"),
            Node::Batcher(_) | Node::Agent(_) => "batcher".to_owned(),
            Node::Pruner(_) => "pruner".to_owned(),
            Node::Manager(_) | Node::Unit(_) => {
                let m = p - self.manager_proc(0);
                format!("manager-{m} (h{m})")
            }
        }
    }

    fn frame(&self, step: usize, action: String, s: &State, violations: Vec<String>) -> Frame {
        let real = self.real(s);
        Frame {
            step,
            action,
            real,
            global: global(&s.store),
            procs: (0..s.procs.len())
                .map(|p| ProcFrame {
                    name: self.proc_name(s, p),
                    local: s.procs[p].clock.local(real).0,
                    paused: s.procs[p].paused,
                })
                .collect(),
            leases: self
                .lease_ids()
                .map(|(k, id)| {
                    LeaseFrame::stored(
                        format!("l{k}"),
                        s.store.get(Collection::Leases, id),
                        namespace(),
                    )
                })
                .collect(),
            beliefs: s
                .ghost
                .beliefs
                .iter()
                .map(|b| BeliefFrame {
                    holder: format!("h{}", b.holder),
                    lease: format!("l{}", b.lease),
                    epoch: b.epoch,
                    until: b.until,
                })
                .collect(),
            violations,
        }
    }

    /// `action` in words, naming the process and the operation it concerns (`before` is the
    /// state it was taken in).
    pub fn describe(&self, before: &State, action: Action) -> String {
        let op_of = |f: &crate::harness::state::Flight| {
            let target = match &f.req.op {
                Op::Read { id, .. } | Op::Update { id, .. } | Op::Delete { id, .. } => id.clone(),
                Op::Insert { doc, .. } => doc.id.clone(),
                _ => String::new(),
            };
            let who = self.proc_name(before, usize::from(f.proc));
            format!("{who}: {} {target}", f.req.op.verb())
                .trim_end()
                .to_owned()
        };
        match action {
            Action::Deliver(i, how) => match before.flights.get(usize::from(i)) {
                Some(f) if how == How::Ok => op_of(f),
                Some(f) => format!("{} [{how:?}]", op_of(f)),
                None => action.to_string(),
            },
            Action::WriteChecked(i) => match before.checked.get(usize::from(i)) {
                Some(f) => format!("{} [lands unchecked]", op_of(f)),
                None => action.to_string(),
            },
            Action::Fire(p) => format!("{}: timer fires", self.proc_name(before, usize::from(p))),
            Action::Pause(p) => format!("{} pauses", self.proc_name(before, usize::from(p))),
            Action::Resume(p) => format!("{} resumes", self.proc_name(before, usize::from(p))),
            Action::Crash(p) => format!(
                "{} crashes and restarts",
                self.proc_name(before, usize::from(p))
            ),
            other => other.to_string(),
        }
    }

    /// Replays `actions` and describes the world after each.
    pub fn timeline(&self, actions: &[Action]) -> Vec<Frame> {
        let initial = self.initial();
        let mut frames = vec![self.frame(0, String::new(), &initial, Vec::new())];
        let mut before = initial;
        for (i, (action, state, why)) in self.replay(actions).into_iter().enumerate() {
            let why = why.iter().map(ToString::to_string).collect();
            frames.push(self.frame(i + 1, self.describe(&before, action), &state, why));
            before = state;
        }
        frames
    }
}
