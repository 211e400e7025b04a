//! What a run did: counts of events, faults and protocol paths ([`Stats`]), a hash of every
//! event in order ([`Trace::hash`]: one seed, one hash, whatever machine or thread runs it),
//! and, when replaying, the last steps as [`Frame`]s (the timeline `tenure check` prints).

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use tenure::actor::Note;
use tenure::clock::watcher::WatcherOutput as ClockWatcherOutput;
use tenure::clock::UpdaterOutput;
use tenure::fault::Fault;
use tenure::leadership::TrackerOutput;
use tenure::lease::{ManagerError, ManagerOutput};
use tenure::presence::batcher::BatcherOutput;
use tenure::presence::pruner::PrunerOutput;
use tenure::presence::{AgentOutput, WatcherOutput};
use tenure::timeline::Frame;

/// Frames kept for a replay's timeline: the steps before the end.
pub const FRAMES_MAX: usize = 60;

/// Counts of what happened in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events taken off the queue.
    pub steps: u64,
    /// Calls into actors (API calls, timer firings, replies): the core's unit of work.
    pub events: u64,
    /// Timers stepped past because an actor stayed due after its timeout (0 in a sound run).
    pub spins: u64,
    /// Operations whose outcome the caller could not know.
    pub unknown: u64,
    /// How often each fault struck.
    pub faults: BTreeMap<&'static str, u64>,
    /// How often each protocol path of note was taken.
    pub paths: BTreeMap<&'static str, u64>,
    /// The last holder and epoch granted per lease, to tell a claim from an extension.
    #[serde(skip)]
    last_grant: BTreeMap<String, (String, u64)>,
}

impl Stats {
    pub(crate) fn fault(&mut self, fault: Fault) {
        *self.faults.entry(fault.name()).or_default() += 1;
    }

    pub(crate) fn path(&mut self, path: &'static str) {
        *self.paths.entry(path).or_default() += 1;
    }

    /// Counts the path a note shows.
    pub(crate) fn note(&mut self, note: &Note) {
        let path = match note {
            Note::Updater(UpdaterOutput::Advanced { .. }) => "clock advance",
            Note::Updater(UpdaterOutput::Conflict { .. }) => "clock conflict",
            Note::ClockWatcher(ClockWatcherOutput::Stalled { .. }) => "clock stalled",
            Note::Manager(m) => match m {
                ManagerOutput::Claimed {
                    lease,
                    holder,
                    epoch,
                    ..
                } => {
                    let extends = self
                        .last_grant
                        .get(lease)
                        .is_some_and(|(h, e)| h == holder && *e == epoch.0);
                    if !extends {
                        self.last_grant
                            .insert(lease.clone(), (holder.clone(), epoch.0));
                    }
                    if extends {
                        "extend"
                    } else {
                        "claim"
                    }
                }
                ManagerOutput::Denied { .. } => "denial",
                ManagerOutput::Expired { .. } => "expire",
                ManagerOutput::Released { vacated: true, .. } => "release",
                ManagerOutput::Released { .. } => "release of an ended term",
                ManagerOutput::Checked { .. } => "check",
                ManagerOutput::Failed {
                    error: ManagerError::Contended(_),
                    ..
                } => "retries exhausted",
                ManagerOutput::Failed {
                    error: ManagerError::OutcomeUnknown(_),
                    ..
                } => "unknown outcome",
                _ => return,
            },
            Note::Tracker(TrackerOutput::BecameLeader { .. }) => "leader",
            Note::Tracker(TrackerOutput::BecameMinion) => "minion",
            Note::Tracker(TrackerOutput::Lapsed { .. }) => "leadership lapsed",
            Note::PresenceWatcher(WatcherOutput::Change { alive: true, .. }) => "alive",
            Note::PresenceWatcher(WatcherOutput::Change { alive: false, .. }) => "dead",
            Note::Agent(AgentOutput::Batcher(BatcherOutput::Requeued { .. })) => "flush requeued",
            Note::Pruner(PrunerOutput::Pruned { .. }) => "prune",
            _ => return,
        };
        self.path(path);
    }
}

/// A run's trace.
#[derive(Debug)]
pub struct Trace {
    hash: u64,
    frames: Option<VecDeque<Frame>>,
    /// What happened since the last frame, for the next frame's action.
    pending: Vec<String>,
}

impl Trace {
    /// An empty trace; `frames`: keep the last steps as frames (replays).
    pub(crate) fn new(frames: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            frames: frames.then(VecDeque::new),
            pending: Vec::new(),
        }
    }

    /// The hash of every event so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Whether frames are kept.
    pub fn framing(&self) -> bool {
        self.frames.is_some()
    }

    /// Mixes one event into the hash.
    pub(crate) fn event(&mut self, at: u64, kind: u64, subject: u64) {
        for word in [at, kind, subject] {
            self.hash = fnv(self.hash, word);
        }
    }

    /// Notes what a process reported, for the next frame.
    pub(crate) fn note(&mut self, _real: u64, proc: &str, note: &Note) {
        if self.frames.is_some() {
            self.pending.push(format!("{proc}: {}", describe(note)));
        }
    }

    /// Notes something the executor did (a pause, a crash), for the next frame.
    pub(crate) fn mark(&mut self, _real: u64, text: &str) {
        if self.frames.is_some() {
            self.pending.push(text.to_owned());
        }
    }

    /// Whether there is something to put in a frame.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// What happened since the last frame, taken.
    pub(crate) fn take_pending(&mut self) -> String {
        let text = self.pending.join("; ");
        self.pending.clear();
        text
    }

    /// Keeps `frame`, dropping the oldest past [`FRAMES_MAX`].
    pub(crate) fn push(&mut self, frame: Frame) {
        if let Some(frames) = &mut self.frames {
            if frames.len() == FRAMES_MAX {
                frames.pop_front();
            }
            frames.push_back(frame);
        }
    }

    /// The frames kept, numbered from 1.
    pub fn frames(&self) -> Vec<Frame> {
        let Some(frames) = &self.frames else {
            return Vec::new();
        };
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| Frame {
                step: i + 1,
                ..f.clone()
            })
            .collect()
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over the eight bytes of `word`: a fixed, documented hash, the same on every machine
/// and Rust version (std's hasher promises neither).
fn fnv(mut h: u64, word: u64) -> u64 {
    for b in word.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A note in a few words.
fn describe(note: &Note) -> String {
    match note {
        Note::Manager(ManagerOutput::Claimed {
            lease,
            holder,
            epoch,
            ..
        }) => format!("{holder} granted {lease} #{}", epoch.0),
        Note::Manager(ManagerOutput::Denied { lease, holder, .. }) => {
            format!("denied {lease} (held by {holder})")
        }
        Note::Manager(ManagerOutput::Expired { lease, epoch, .. }) => {
            format!("expired {lease} #{}", epoch.0)
        }
        Note::Manager(ManagerOutput::Checked { held, .. }) => match held {
            Some(e) => format!("check: held #{}", e.0),
            None => "check: not held".into(),
        },
        Note::Manager(ManagerOutput::WaitEnded { .. }) => "a wait ended: not held".into(),
        Note::Manager(ManagerOutput::Released { epoch, vacated, .. }) => {
            if *vacated {
                format!("released #{}", epoch.0)
            } else {
                format!("release: #{} had ended", epoch.0)
            }
        }
        Note::Manager(ManagerOutput::Failed { error, .. }) => format!("failed: {error}"),
        Note::Updater(UpdaterOutput::Advanced { from, to, .. }) => {
            format!("advanced global {from} -> {to}")
        }
        Note::Updater(UpdaterOutput::Conflict { observed }) => {
            format!("lost a race at global {observed}")
        }
        Note::Tracker(TrackerOutput::Claim { .. }) => "tracker claims".into(),
        Note::Tracker(TrackerOutput::Ticket { kind, value, .. }) => {
            format!("ticket {kind:?} answered {value}")
        }
        Note::Tracker(TrackerOutput::BecameLeader { .. }) => "became leader".into(),
        Note::Tracker(TrackerOutput::BecameMinion) => "became minion".into(),
        Note::PresenceWatcher(WatcherOutput::Change { key, alive, .. }) => {
            format!("{key} {}", if *alive { "alive" } else { "dead" })
        }
        Note::Agent(AgentOutput::Pinger { key, output }) => match output {
            tenure::presence::PingerOutput::Started { seq } => format!("{key} started (seq {seq})"),
            tenure::presence::PingerOutput::Ping(p) => format!("{key} pings slot {}", p.slot),
            tenure::presence::PingerOutput::Killed => format!("{key} killed"),
            tenure::presence::PingerOutput::Failed(why) => format!("{key} failed: {why}"),
        },
        Note::Agent(AgentOutput::Batcher(BatcherOutput::Flushed { docs, .. })) => {
            format!("flushed {docs} slot document(s)")
        }
        other => {
            let s = format!("{other:?}");
            s.chars().take(80).collect()
        }
    }
}
