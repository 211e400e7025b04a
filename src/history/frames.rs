//! A stretch of a recorded history as the timeline frames `tenure check` and `tenure replay`
//! draw, so a live violation is pictured as the model's counterexamples are.
//!
//! A history knows less than a model state: each process's local time only when it recorded
//! something, and each lease's holder only from the grants and releases its clients saw (not
//! the stored document). The frames show exactly that.

use super::{CheckParams, ClaimOutcome, History, Operation, Phase};
use crate::timeline::{BeliefFrame, Frame, LeaseFrame, ProcFrame};
use std::collections::BTreeMap;

/// Most frames one picture holds (as a replay's).
pub const FRAMES_MAX: usize = 60;

impl History {
    /// The frames of the events between real times `from` and `to` (ns): each granted, denied
    /// or failed claim, release and clock advance, after a first frame at `from`. When there
    /// are more than [`FRAMES_MAX`], those nearest `around` are kept.
    pub fn frames(&self, params: CheckParams, from: u64, to: u64, around: u64) -> Vec<Frame> {
        let tenures = self.tenures(params);
        let mut processes: Vec<u32> = self.entries.iter().map(|e| e.process).collect();
        processes.sort_unstable();
        processes.dedup();
        let mut leases: Vec<String> = tenures.iter().map(|t| t.lease.clone()).collect();
        leases.sort();
        leases.dedup();
        let mut now = State {
            local: processes.iter().map(|p| (*p, 0)).collect(),
            holders: leases.iter().map(|l| (l.clone(), (None, 0))).collect(),
            global: 0,
        };
        let mut frames = Vec::new();
        for e in &self.entries {
            if e.real_ns > to {
                break;
            }
            if e.real_ns >= from && frames.is_empty() {
                frames.push(now.frame(0, String::new(), from, &tenures));
            }
            now.local.insert(e.process, e.local_ns);
            let Some(action) = now.apply(e.process, e.phase, &e.operation) else {
                continue;
            };
            if e.real_ns >= from {
                frames.push(now.frame(frames.len(), action, e.real_ns, &tenures));
            }
        }
        keep_nearest(frames, around)
    }
}

/// What the history has shown so far.
struct State {
    local: BTreeMap<u32, u64>,
    /// Per lease: the holder and epoch last granted, until released.
    holders: BTreeMap<String, (Option<String>, u64)>,
    global: u64,
}

impl State {
    /// Takes one entry in; the action it names, if it is one a timeline shows.
    fn apply(&mut self, process: u32, phase: Phase, op: &Operation) -> Option<String> {
        match (phase, op) {
            (Phase::Complete, Operation::ClockRead { value: Some(v) }) => {
                self.global = self.global.max(v.0);
                None
            }
            (Phase::Complete, Operation::ClockAdvance { from, to }) => {
                self.global = self.global.max(to.0);
                Some(format!("p{process}: global {from} -> {to}"))
            }
            (
                Phase::Complete | Phase::Unknown,
                Operation::Claim {
                    lease,
                    holder,
                    outcome,
                    ..
                },
            ) => {
                let said = match outcome {
                    Some(ClaimOutcome::Granted { epoch, .. }) => {
                        self.holders
                            .insert(lease.clone(), (Some(holder.clone()), epoch.0));
                        format!("granted (epoch {})", epoch.0)
                    }
                    Some(ClaimOutcome::Denied) => "denied".to_owned(),
                    Some(ClaimOutcome::Failed { .. }) | None => "failed or unknown".to_owned(),
                };
                Some(format!("p{process}: {holder} claims {lease}: {said}"))
            }
            (
                _,
                Operation::Release {
                    lease,
                    holder,
                    epoch,
                },
            ) => {
                if let Some((h, e)) = self.holders.get_mut(lease) {
                    if h.as_deref() == Some(holder.as_str()) && epoch.is_none_or(|x| x.0 == *e) {
                        *h = None;
                    }
                }
                let term = epoch
                    .map(|e| format!(" (epoch {})", e.0))
                    .unwrap_or_default();
                Some(format!("p{process}: {holder} gives up {lease}{term}"))
            }
            _ => None,
        }
    }

    fn frame(
        &self,
        step: usize,
        action: String,
        real: u64,
        tenures: &[crate::property::lease::Tenure],
    ) -> Frame {
        Frame {
            step,
            action,
            real,
            global: self.global,
            procs: self
                .local
                .iter()
                .map(|(p, local)| ProcFrame {
                    name: format!("p{p}"),
                    local: *local,
                    paused: false,
                })
                .collect(),
            leases: self
                .holders
                .iter()
                .map(|(lease, (holder, epoch))| LeaseFrame {
                    lease: lease.clone(),
                    holder: holder.clone(),
                    epoch: *epoch,
                    expiry: None,
                })
                .collect(),
            beliefs: tenures
                .iter()
                .filter(|t| t.from_real <= real && real < t.until_real)
                .map(|t| BeliefFrame {
                    holder: t.holder.clone(),
                    lease: t.lease.clone(),
                    epoch: t.epoch.0,
                    until: t.until_real,
                })
                .collect(),
            violations: Vec::new(),
        }
    }
}

/// At most [`FRAMES_MAX`] frames, those nearest `around`, renumbered from 0.
fn keep_nearest(mut frames: Vec<Frame>, around: u64) -> Vec<Frame> {
    if frames.len() > FRAMES_MAX {
        let centre = frames.partition_point(|f| f.real < around);
        let start = centre
            .saturating_sub(FRAMES_MAX * 3 / 4)
            .min(frames.len() - FRAMES_MAX);
        frames = frames.split_off(start);
        frames.truncate(FRAMES_MAX);
    }
    for (i, f) in frames.iter_mut().enumerate() {
        f.step = i;
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Entry;
    use crate::lease::Epoch;
    use crate::time::LocalTime;
    use std::time::Duration;

    fn claim(process: u32, call: u64, real: u64, holder: &str, epoch: u64) -> [Entry; 2] {
        let op = |outcome| Operation::Claim {
            lease: "l0".into(),
            holder: holder.into(),
            duration: Duration::from_secs(1),
            outcome,
        };
        let at = |phase, real, operation| Entry {
            process,
            call,
            phase,
            real_ns: real,
            local_ns: real,
            operation,
        };
        [
            at(Phase::Invoke, real - 10, op(None)),
            at(
                Phase::Complete,
                real,
                op(Some(ClaimOutcome::Granted {
                    epoch: Epoch(epoch),
                    local_deadline: LocalTime(real + 1_000_000_000),
                })),
            ),
        ]
    }

    #[test]
    fn a_doubled_holder_shows_both_beliefs_and_the_store_view() {
        let mut entries = Vec::new();
        entries.extend(claim(1, 1, 1_000_000_000, "a", 1));
        entries.extend(claim(2, 1, 1_500_000_000, "b", 2));
        let h = History { entries };
        let params = CheckParams { rate_error_ppm: 0 };
        let frames = h.frames(params, 500_000_000, 3_000_000_000, 1_500_000_000);
        assert_eq!(frames.len(), 3, "{frames:#?}");
        assert_eq!(frames[0].action, "");
        assert!(frames[2].action.contains("b claims l0: granted (epoch 2)"));
        let last = &frames[2];
        assert_eq!(last.beliefs.len(), 2, "both believe: {last:?}");
        assert_eq!(last.leases[0].holder.as_deref(), Some("b"));
        assert_eq!(last.procs.len(), 2);
        assert!(frames.iter().enumerate().all(|(i, f)| f.step == i));
    }

    #[test]
    fn long_stretches_keep_the_frames_nearest_the_violation() {
        let mut entries = Vec::new();
        for i in 1..200u64 {
            entries.extend(claim(1, i, i * 10_000_000, "a", 1));
        }
        let h = History { entries };
        let frames = h.frames(
            CheckParams { rate_error_ppm: 0 },
            0,
            u64::MAX,
            1_000_000_000,
        );
        assert_eq!(frames.len(), FRAMES_MAX);
        assert!(frames[0].real < 1_000_000_000 && frames[FRAMES_MAX - 1].real > 1_000_000_000);
    }
}
