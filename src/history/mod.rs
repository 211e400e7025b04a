//! The history format: what live runs (and the simulator) record, one JSON object per line, and
//! its reduction to the inputs of [`crate::property`].
//!
//! Each [`Entry`] is one event of one process: the invocation of a call, its completion, or its
//! "outcome unknown" end, stamped with real time (one host's monotonic clock, shared by every
//! recorded client) and the process's local time. Calls are paired by `(process, call)`.
//!
//! [`register`] is the other format a history may take: plain store operations on documents,
//! as any tool records them, checked for S1 (each document a linearizable register).

use crate::leadership::{TicketId, TicketKind};
use crate::lease::Epoch;
use crate::property::clock::{ClockRead, ClockWrite};
use crate::property::leadership::{LeaderAnswer, TicketEvent};
use crate::property::lease::{Grant, Tenure};
use crate::property::{clock, leadership, lease, presence, PropertyId, Verdict};
use crate::time::{GlobalTime, LocalTime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use thiserror::Error;

pub mod frames;
pub mod register;

/// The version of this format; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Where an entry stands in its call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The call began.
    Invoke,
    /// The call ended with a definite result.
    Complete,
    /// The call ended and its outcome is unknown.
    Unknown,
}

/// The result of a claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ClaimOutcome {
    /// Granted until `local_deadline` on the caller's clock.
    Granted {
        /// The fencing epoch.
        epoch: Epoch,
        /// The holder's local deadline.
        local_deadline: LocalTime,
    },
    /// Another holder holds it.
    Denied,
    /// An error; nothing may be inferred.
    Failed {
        /// The error message.
        error: String,
    },
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// A raw store operation (its verb and document), for timelines.
    Store {
        /// The verb (`read`, `update`, ...).
        verb: String,
        /// The `_id` addressed, if one.
        id: Option<String>,
        /// The result, on completion.
        result: Option<String>,
    },
    /// A read of global time.
    ClockRead {
        /// The value, on completion.
        value: Option<GlobalTime>,
    },
    /// A compare-and-swap advance of the clock.
    ClockAdvance {
        /// The base swapped against.
        from: GlobalTime,
        /// The value written.
        to: GlobalTime,
    },
    /// A value emitted by a clock watcher.
    ClockEmitted {
        /// The value.
        value: GlobalTime,
    },
    /// A lease claim (or extension).
    Claim {
        /// The lease.
        lease: String,
        /// The holder.
        holder: String,
        /// The duration asked for.
        duration: Duration,
        /// The result, on completion.
        outcome: Option<ClaimOutcome>,
    },
    /// The holder gave up its belief early (released, or lost tenure).
    Release {
        /// The lease.
        lease: String,
        /// The holder.
        holder: String,
        /// The term given up (`None`: every term of the holder's in that process).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epoch: Option<Epoch>,
    },
    /// A leadership ticket: issued on invoke, resolved on complete.
    Ticket {
        /// The application.
        application: String,
        /// The unit.
        unit: String,
        /// The ticket.
        ticket: TicketId,
        /// Its kind.
        kind: TicketKind,
        /// The tracker's claim duration.
        claim_duration: Duration,
        /// The answer, on completion.
        value: Option<bool>,
    },
    /// A leadership tracker stopped.
    TrackerStopped {
        /// The application.
        application: String,
        /// The unit.
        unit: String,
    },
    /// A presence watcher reported a key.
    Presence {
        /// The watch.
        watch: u64,
        /// The key.
        key: String,
        /// Alive or dead.
        alive: bool,
    },
    /// A presence pinger ran for a key: invoked once it started pinging, completed when it was
    /// stopped or killed (a process that ends without either pinged until its last entry).
    Pinging {
        /// The key.
        key: String,
        /// The sequence this start took.
        seq: u64,
    },
    /// A write guarded by a fencing epoch.
    FencedWrite {
        /// The lease.
        lease: String,
        /// The epoch presented.
        epoch: Epoch,
        /// Whether it was accepted, on completion.
        accepted: Option<bool>,
    },
}

/// One recorded event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The recording process (client).
    pub process: u32,
    /// Pairs an invocation with its end, per process.
    pub call: u64,
    /// Invoke, complete or unknown.
    pub phase: Phase,
    /// Real time, nanoseconds.
    pub real_ns: u64,
    /// The process's local time, nanoseconds.
    pub local_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub operation: Operation,
}

/// A history file could not be read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HistoryError {
    /// A line is not a valid entry.
    #[error("history line {line}: {source}; is this a Tenure history (schema {SCHEMA_VERSION})?")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Parameters the history checks need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckParams {
    /// ρ in ppm: used to map local deadlines past the last sample to real time (slowest rate).
    pub rate_error_ppm: u32,
}

/// A recorded history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Entries in recording order.
    pub entries: Vec<Entry>,
}

impl History {
    /// The histories of several recording processes as one, in real-time order (entries with
    /// equal times keep their order). Each process must carry its own `process` number.
    pub fn merge(histories: impl IntoIterator<Item = History>) -> History {
        let mut entries: Vec<Entry> = histories.into_iter().flat_map(|h| h.entries).collect();
        entries.sort_by_key(|e| e.real_ns);
        History { entries }
    }

    /// One JSON object per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            // Entries hold only strings, integers and enums: serialisation cannot fail.
            if let Ok(line) = serde_json::to_string(e) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    /// Parses JSON lines; blank lines are skipped.
    pub fn from_jsonl(text: &str) -> Result<History, HistoryError> {
        let mut entries = Vec::new();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            entries.push(
                serde_json::from_str(line).map_err(|source| HistoryError::Parse {
                    line: i + 1,
                    source,
                })?,
            );
        }
        Ok(History { entries })
    }

    /// Maps a local time of `process` to real time: interpolated between the process's samples,
    /// or extrapolated from the last one at the slowest allowed rate.
    pub fn local_to_real(&self, process: u32, local: LocalTime, rate_error_ppm: u32) -> u64 {
        let mut samples: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|e| e.process == process)
            .map(|e| (e.local_ns, e.real_ns))
            .collect();
        samples.sort_unstable();
        match samples.iter().position(|(l, _)| *l >= local.0) {
            Some(0) => samples[0].1.saturating_sub(samples[0].0 - local.0),
            Some(i) => {
                let ((l0, r0), (l1, r1)) = (samples[i - 1], samples[i]);
                let span = u128::from(l1 - l0).max(1);
                r0 + u64::try_from(
                    u128::from(r1.saturating_sub(r0)) * u128::from(local.0 - l0) / span,
                )
                .unwrap_or(u64::MAX)
            }
            None => {
                let (l, r) = samples.last().copied().unwrap_or((0, 0));
                let slow = 1_000_000 - u128::from(rate_error_ppm.min(999_999));
                r.saturating_add(
                    u64::try_from(u128::from(local.0 - l) * 1_000_000 / slow).unwrap_or(u64::MAX),
                )
            }
        }
    }

    fn invocations(&self) -> BTreeMap<(u32, u64), &Entry> {
        self.entries
            .iter()
            .filter(|e| e.phase == Phase::Invoke)
            .map(|e| ((e.process, e.call), e))
            .collect()
    }

    /// Beliefs in real time, from granted claims until their deadlines or a release.
    pub fn tenures(&self, params: CheckParams) -> Vec<Tenure> {
        self.terms(params, true)
    }

    /// Granted terms in real time, from granted claims until their deadlines: what the store
    /// guarantees the holder, whether or not it gave the term up early (T1: a unit that
    /// resigns after a true answer was still guaranteed its tenure).
    pub fn guaranteed_terms(&self, params: CheckParams) -> Vec<Tenure> {
        self.terms(params, false)
    }

    fn terms(&self, params: CheckParams, until_release: bool) -> Vec<Tenure> {
        let mut out: Vec<(u32, Tenure)> = Vec::new();
        for e in &self.entries {
            match &e.operation {
                Operation::Claim {
                    lease,
                    holder,
                    outcome:
                        Some(ClaimOutcome::Granted {
                            epoch,
                            local_deadline,
                        }),
                    ..
                } if e.phase == Phase::Complete => {
                    let until_real =
                        self.local_to_real(e.process, *local_deadline, params.rate_error_ppm);
                    out.push((
                        e.process,
                        Tenure {
                            lease: lease.clone(),
                            holder: holder.clone(),
                            epoch: *epoch,
                            from_real: e.real_ns,
                            until_real,
                        },
                    ));
                }
                Operation::Release {
                    lease,
                    holder,
                    epoch,
                } if until_release => {
                    for (p, t) in out.iter_mut() {
                        if *p == e.process
                            && t.lease == *lease
                            && t.holder == *holder
                            && epoch.is_none_or(|e| e == t.epoch)
                            && t.until_real > e.real_ns
                        {
                            t.until_real = e.real_ns.max(t.from_real);
                        }
                    }
                }
                _ => {}
            }
        }
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// Granted claims with their invocation times.
    pub fn grants(&self) -> Vec<Grant> {
        let inv = self.invocations();
        self.entries
            .iter()
            .filter_map(|e| match &e.operation {
                Operation::Claim {
                    lease,
                    holder,
                    outcome: Some(ClaimOutcome::Granted { epoch, .. }),
                    ..
                } => Some(Grant {
                    lease: lease.clone(),
                    holder: holder.clone(),
                    epoch: *epoch,
                    invoked_real: inv
                        .get(&(e.process, e.call))
                        .map_or(e.real_ns, |i| i.real_ns),
                    granted_real: e.real_ns,
                }),
                _ => None,
            })
            .collect()
    }

    /// Completed clock reads with their real intervals.
    pub fn clock_reads(&self) -> Vec<ClockRead> {
        let inv = self.invocations();
        self.entries
            .iter()
            .filter_map(|e| match e.operation {
                Operation::ClockRead { value: Some(value) } if e.phase == Phase::Complete => {
                    Some(ClockRead {
                        real_start: inv
                            .get(&(e.process, e.call))
                            .map_or(e.real_ns, |i| i.real_ns),
                        real_end: e.real_ns,
                        value,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// How many store operations the recording processes invoked (every read and write).
    pub fn store_operations(&self) -> usize {
        self.store_operations_by_process().values().sum()
    }

    /// How many store operations each recording process invoked.
    pub fn store_operations_by_process(&self) -> BTreeMap<u32, usize> {
        let mut by = BTreeMap::new();
        for e in &self.entries {
            if e.phase == Phase::Invoke && matches!(e.operation, Operation::Store { .. }) {
                *by.entry(e.process).or_default() += 1;
            }
        }
        by
    }

    /// Successful clock advances.
    pub fn clock_writes(&self) -> Vec<ClockWrite> {
        self.clock_advances(Phase::Complete)
    }

    /// Clock advances whose outcome is unknown (the reply was lost; each may have applied).
    pub fn clock_writes_unsure(&self) -> Vec<ClockWrite> {
        self.clock_advances(Phase::Unknown)
    }

    fn clock_advances(&self, phase: Phase) -> Vec<ClockWrite> {
        self.entries
            .iter()
            .filter_map(|e| match e.operation {
                Operation::ClockAdvance { from, to } if e.phase == phase => {
                    Some(ClockWrite { from, to })
                }
                _ => None,
            })
            .collect()
    }

    /// When the chain of clock advances broke, for a picture: the real time of the advance
    /// with which the recorded chain, taken in real-time order, first fails G2 (a binary
    /// search between the empty chain, which holds, and the whole, which fails).
    fn g2_broke_at(&self, initial: GlobalTime, unsure: &[ClockWrite]) -> Option<u64> {
        let mut timed: Vec<(u64, ClockWrite)> = self
            .entries
            .iter()
            .filter_map(|e| match e.operation {
                Operation::ClockAdvance { from, to } if e.phase == Phase::Complete => {
                    Some((e.real_ns, ClockWrite { from, to }))
                }
                _ => None,
            })
            .collect();
        timed.sort_by_key(|(real, _)| *real);
        let writes: Vec<ClockWrite> = timed.iter().map(|(_, w)| *w).collect();
        let fails = |k: usize| clock::g2_chain_unsure(initial, &writes[..k], unsure).is_err();
        let (mut holds, mut broken) = (0, writes.len());
        if !fails(broken) {
            return None;
        }
        while broken - holds > 1 {
            let mid = holds + (broken - holds) / 2;
            if fails(mid) {
                broken = mid;
            } else {
                holds = mid;
            }
        }
        timed.get(broken - 1).map(|(real, _)| *real)
    }

    /// Checks every property the history has data for; properties with no data are left out.
    pub fn check(&self, params: CheckParams) -> Vec<(PropertyId, Verdict)> {
        let mut out = Vec::new();
        let reads = self.clock_reads();
        if !reads.is_empty() {
            out.push((PropertyId::G1, clock::g1_monotonic(&reads)));
        }
        let (writes, unsure) = (self.clock_writes(), self.clock_writes_unsure());
        if !writes.is_empty() {
            let initial = writes
                .iter()
                .chain(&unsure)
                .map(|w| w.from)
                .min()
                .unwrap_or_default();
            let g2 = clock::g2_chain_unsure(initial, &writes, &unsure).map_err(|v| {
                match self.g2_broke_at(initial, &unsure) {
                    Some(real) => v.at(real),
                    None => v,
                }
            });
            out.push((PropertyId::G2, g2));
        }
        let mut emitted: BTreeMap<u32, Vec<GlobalTime>> = BTreeMap::new();
        for e in &self.entries {
            if let Operation::ClockEmitted { value } = e.operation {
                emitted.entry(e.process).or_default().push(value);
            }
        }
        if !emitted.is_empty() {
            out.push((
                PropertyId::G5,
                emitted
                    .values()
                    .map(|v| clock::g5_watcher_strictly_later(v))
                    .find(|v| v.is_err())
                    .unwrap_or(Ok(())),
            ));
        }
        let tenures = self.tenures(params);
        if !tenures.is_empty() {
            out.push((PropertyId::L6, lease::l6_exclusion(&tenures)));
            out.push((PropertyId::F1, lease::f1_epochs(&self.grants())));
        }
        self.check_fenced(&mut out);
        let guaranteed = self.guaranteed_terms(params);
        self.check_leadership(&guaranteed, params.rate_error_ppm, &mut out);
        self.check_presence(&mut out);
        out
    }

    fn check_fenced(&self, out: &mut Vec<(PropertyId, Verdict)>) {
        let inv = self.invocations();
        let fenced: Vec<_> = self
            .entries
            .iter()
            .filter_map(|e| match &e.operation {
                Operation::FencedWrite {
                    lease,
                    epoch,
                    accepted: Some(accepted),
                } => Some(lease::FencedWrite {
                    lease: lease.clone(),
                    epoch: *epoch,
                    accepted: *accepted,
                    invoked: inv
                        .get(&(e.process, e.call))
                        .map_or(e.real_ns, |i| i.real_ns),
                    completed: e.real_ns,
                }),
                _ => None,
            })
            .collect();
        if !fenced.is_empty() {
            out.push((PropertyId::F1, lease::f1_fenced_writes(&fenced)));
        }
    }

    fn check_leadership(
        &self,
        tenures: &[Tenure],
        rate_error_ppm: u32,
        out: &mut Vec<(PropertyId, Verdict)>,
    ) {
        let inv = self.invocations();
        let mut answers = Vec::new();
        // Per tracker: a process may run several (one per unit it hosts).
        let mut tickets: BTreeMap<(u32, &str, &str), Vec<TicketEvent>> = BTreeMap::new();
        for e in &self.entries {
            match &e.operation {
                Operation::Ticket {
                    application,
                    unit,
                    ticket,
                    kind,
                    claim_duration,
                    value,
                } => {
                    let events = tickets
                        .entry((e.process, application.as_str(), unit.as_str()))
                        .or_default();
                    match (e.phase, value) {
                        (Phase::Invoke, _) => events.push(TicketEvent::Issued(*ticket, *kind)),
                        (_, Some(v)) => {
                            events.push(TicketEvent::Resolved(*ticket, *v));
                            if *v && *kind == TicketKind::ClaimLeader {
                                let invoked = inv.get(&(e.process, e.call)).copied().unwrap_or(e);
                                let until_local =
                                    LocalTime(invoked.local_ns).after(*claim_duration);
                                answers.push(LeaderAnswer {
                                    application: application.clone(),
                                    unit: unit.clone(),
                                    issued_real: invoked.real_ns,
                                    answered_real: e.real_ns,
                                    claim_until_real: self.local_to_real(
                                        e.process,
                                        until_local,
                                        rate_error_ppm,
                                    ),
                                });
                            }
                        }
                        _ => {}
                    }
                }
                Operation::TrackerStopped { application, unit } => tickets
                    .entry((e.process, application.as_str(), unit.as_str()))
                    .or_default()
                    .push(TicketEvent::Stopped),
                _ => {}
            }
        }
        if !tickets.is_empty() {
            let v = tickets
                .values()
                .map(|t| leadership::t4_tickets_once(t, false))
                .find(|v| v.is_err())
                .unwrap_or(Ok(()));
            out.push((PropertyId::T4, v));
        }
        if !answers.is_empty() {
            out.push((PropertyId::T1, leadership::t1_backed(&answers, tenures)));
        }
    }

    /// G3 on the history's clock reads (global time no faster than real time plus one step
    /// `step_max`); the caller knows the updaters' step bound, the history does not. `None`
    /// without reads.
    pub fn check_clock_rate(&self, rate_error_ppm: u32, step_max: Duration) -> Option<Verdict> {
        let reads = self.clock_reads();
        (!reads.is_empty()).then(|| clock::g3_reads(&reads, rate_error_ppm, step_max))
    }

    /// Each key's real intervals of a running pinger.
    pub fn pinging(&self) -> BTreeMap<String, Vec<(u64, u64)>> {
        let mut last: BTreeMap<u32, u64> = BTreeMap::new();
        let mut started: BTreeMap<(u32, u64), (&str, u64)> = BTreeMap::new();
        let mut out: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for e in &self.entries {
            let l = last.entry(e.process).or_default();
            *l = (*l).max(e.real_ns);
            let Operation::Pinging { key, .. } = &e.operation else {
                continue;
            };
            match e.phase {
                Phase::Invoke => {
                    started.insert((e.process, e.call), (key, e.real_ns));
                }
                _ => {
                    if let Some((k, from)) = started.remove(&(e.process, e.call)) {
                        out.entry(k.to_owned()).or_default().push((from, e.real_ns));
                    }
                }
            }
        }
        // Never stopped: pinging, as far as the history knows, until its process's last entry.
        for ((process, _), (k, from)) in started {
            let until = last.get(&process).copied().unwrap_or(from);
            out.entry(k.to_owned()).or_default().push((from, until));
        }
        out
    }

    /// P5's safety half: no key reported dead while it had been pinging for `window` (what a
    /// watcher reads, two slots, plus slack for the sync's own latency). Only for a run whose
    /// pings were not held up by faults (the caller knows; the history does not): a lost or
    /// delayed ping makes a pinging key dead, rightly. `None` if the history has no pinger.
    pub fn check_pinging_keys_stay_alive(&self, window: Duration) -> Option<Verdict> {
        let pinging = self.pinging();
        if pinging.is_empty() {
            return None;
        }
        let reports: Vec<presence::Report> = self
            .entries
            .iter()
            .filter_map(|e| match &e.operation {
                Operation::Presence { key, alive, .. } => Some(presence::Report {
                    key: key.clone(),
                    real: e.real_ns,
                    alive: *alive,
                }),
                _ => None,
            })
            .collect();
        let window = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        Some(
            reports
                .iter()
                .map(|r| {
                    presence::p5_pinging_never_dead(&pinging, std::slice::from_ref(r), window)
                        .map_err(|v| v.at(r.real))
                })
                .find(Result::is_err)
                .unwrap_or(Ok(())),
        )
    }

    fn check_presence(&self, out: &mut Vec<(PropertyId, Verdict)>) {
        let events: Vec<(u64, String, bool)> = self
            .entries
            .iter()
            .filter_map(|e| match &e.operation {
                Operation::Presence { watch, key, alive } => {
                    Some((u64::from(e.process) << 32 | *watch, key.clone(), *alive))
                }
                _ => None,
            })
            .collect();
        if !events.is_empty() {
            out.push((PropertyId::P4, presence::p4_alternate(&events)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(
        process: u32,
        call: u64,
        phase: Phase,
        real: u64,
        local: u64,
        holder: &str,
        outcome: Option<ClaimOutcome>,
    ) -> Entry {
        Entry {
            process,
            call,
            phase,
            real_ns: real,
            local_ns: local,
            operation: Operation::Claim {
                lease: "db".into(),
                holder: holder.into(),
                duration: Duration::from_nanos(100),
                outcome,
            },
        }
    }

    #[test]
    fn jsonl_round_trip_and_line_numbers_in_errors() {
        let h = History {
            entries: vec![
                claim(1, 0, Phase::Invoke, 0, 0, "a", None),
                claim(
                    1,
                    0,
                    Phase::Complete,
                    5,
                    5,
                    "a",
                    Some(ClaimOutcome::Granted {
                        epoch: Epoch(1),
                        local_deadline: LocalTime(100),
                    }),
                ),
            ],
        };
        let text = h.to_jsonl();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .contains("\"operation\":\"claim\""),
            "{text}"
        );
        assert_eq!(History::from_jsonl(&text).unwrap(), h);
        let err = History::from_jsonl(&format!("{text}{{\"nope\":1}}\n")).unwrap_err();
        assert!(err.to_string().starts_with("history line 3"), "{err}");
    }

    #[test]
    fn overlapping_beliefs_are_found_in_a_history() {
        let granted = |e, d| {
            Some(ClaimOutcome::Granted {
                epoch: Epoch(e),
                local_deadline: LocalTime(d),
            })
        };
        let h = History {
            entries: vec![
                claim(1, 0, Phase::Invoke, 0, 0, "a", None),
                claim(1, 0, Phase::Complete, 5, 5, "a", granted(1, 100)),
                claim(2, 0, Phase::Invoke, 50, 1000, "b", None),
                claim(2, 0, Phase::Complete, 60, 1010, "b", granted(2, 1100)),
            ],
        };
        let verdicts = h.check(CheckParams { rate_error_ppm: 0 });
        let l6 = verdicts.iter().find(|(p, _)| *p == PropertyId::L6).unwrap();
        assert!(l6.1.is_err(), "{verdicts:?}");
        // Process 1's deadline (local 100) is extrapolated to real 100, after b's grant at 60.
        assert_eq!(h.local_to_real(1, LocalTime(100), 0), 100);
    }

    /// A unit told it leads, and then resigning, was still guaranteed its tenure (T1 passes);
    /// a term shorter than the claim duration is not a guarantee (T1 fails).
    #[test]
    fn a_resign_after_a_true_answer_keeps_t1() {
        let ticket = |call, phase, real, value| Entry {
            process: 1,
            call,
            phase,
            real_ns: real,
            local_ns: real,
            operation: Operation::Ticket {
                application: "db".into(),
                unit: "a".into(),
                ticket: TicketId(call),
                kind: TicketKind::ClaimLeader,
                claim_duration: Duration::from_nanos(100),
                value,
            },
        };
        let granted = |deadline| {
            Some(ClaimOutcome::Granted {
                epoch: Epoch(1),
                local_deadline: LocalTime(deadline),
            })
        };
        let resign = Entry {
            process: 1,
            call: 9,
            phase: Phase::Complete,
            real_ns: 30,
            local_ns: 30,
            operation: Operation::Release {
                lease: "db".into(),
                holder: "a".into(),
                epoch: None,
            },
        };
        let t1 = |deadline| {
            let h = History {
                entries: vec![
                    ticket(1, Phase::Invoke, 0, None),
                    claim(1, 2, Phase::Invoke, 1, 1, "a", None),
                    claim(1, 2, Phase::Complete, 5, 5, "a", granted(deadline)),
                    ticket(1, Phase::Complete, 6, Some(true)),
                    resign.clone(),
                ],
            };
            let verdicts = h.check(CheckParams { rate_error_ppm: 0 });
            verdicts
                .into_iter()
                .find(|(p, _)| *p == PropertyId::T1)
                .unwrap()
                .1
        };
        assert_eq!(t1(200), Ok(()));
        assert!(t1(50).is_err());
    }

    /// P5 over a history: a key pinging since real 0 reported dead at 8 s, with a 5 s window,
    /// fails; reported dead at 3 s (not yet a whole window of pinging) or after its pinger
    /// stopped, it passes. A pinger never stopped pings until its process's last entry.
    #[test]
    fn a_pinging_key_reported_dead_fails_p5() {
        let at = |process, call, phase, secs: u64, operation| Entry {
            process,
            call,
            phase,
            real_ns: secs * 1_000_000_000,
            local_ns: secs * 1_000_000_000,
            operation,
        };
        let pinging = || Operation::Pinging {
            key: "a".into(),
            seq: 1,
        };
        let dead = || Operation::Presence {
            watch: 1,
            key: "a".into(),
            alive: false,
        };
        let window = Duration::from_secs(5);
        let run = |entries: Vec<Entry>| {
            History { entries }
                .check_pinging_keys_stay_alive(window)
                .unwrap()
        };
        let started = at(1, 1, Phase::Invoke, 0, pinging());
        let stopped = at(1, 1, Phase::Complete, 10, pinging());
        let v = run(vec![
            started.clone(),
            at(2, 1, Phase::Complete, 8, dead()),
            stopped.clone(),
        ]);
        assert_eq!(v.unwrap_err().at_real, Some(8_000_000_000));
        assert!(run(vec![
            started.clone(),
            at(2, 1, Phase::Complete, 3, dead()),
            stopped.clone()
        ])
        .is_ok());
        assert!(run(vec![
            started.clone(),
            stopped,
            at(2, 1, Phase::Complete, 12, dead())
        ])
        .is_ok());
        // Never stopped; the process's last entry (real 9 s) ends its pinging.
        let last = at(1, 2, Phase::Complete, 9, dead());
        let v = run(vec![started, last, at(2, 1, Phase::Complete, 8, dead())]);
        assert!(v.is_err());
        assert!(History::default()
            .check_pinging_keys_stay_alive(window)
            .is_none());
    }
}
