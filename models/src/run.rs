//! Running a check and reading its verdicts: one [`PropertyResult`] per property, PASS, FAIL or
//! UNKNOWN, with the shortest counterexample (breadth-first search finds shortest paths first;
//! with symmetry reduction the search is depth first and a counterexample need not be shortest).

use crate::config::ModelConfig;
use crate::harness::state::State;
use crate::harness::{Action, TenureModel};
use crate::memory;
use crate::properties::CheckedProperty;
use stateright::report::ReportData;
use stateright::{Checker, HasDiscoveries, Model, Path};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tenure::property::PropertyId;

/// How a check runs.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Worker threads.
    pub threads: usize,
    /// Stop (and report UNKNOWN for what is unsettled) after this long.
    pub timeout: Option<Duration>,
    /// When to stop before the space is exhausted.
    pub stop: Stop,
    /// Stop (UNKNOWN for what is unsettled) once the process's resident memory passes this
    /// many bytes. `None`: no limit.
    pub memory_limit: Option<u64>,
}

/// When a check may stop before exhausting the state space (the properties it has not settled
/// are then UNKNOWN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Explore everything within the horizon.
    Exhausted,
    /// At the first counterexample of any property.
    FirstFailure,
    /// At the first counterexample of this property (a mutant's).
    FailureOf(PropertyId),
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout: None,
            stop: Stop::Exhausted,
            memory_limit: memory::default_limit(),
        }
    }
}

/// Why a search stopped before it covered the state space (other than having settled every
/// property it was asked about).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cutoff {
    /// The time limit passed.
    Timeout(Duration),
    /// The process's resident memory passed the limit.
    MemoryLimit {
        /// The limit, in bytes.
        limit: u64,
        /// Resident memory when it was noticed, in bytes.
        resident: u64,
    },
}

impl fmt::Display for Cutoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cutoff::Timeout(t) => write!(f, "time limit of {} s reached", t.as_secs()),
            Cutoff::MemoryLimit { limit, resident } => write!(
                f,
                "memory limit of {} reached ({} resident)",
                memory::gib(*limit),
                memory::gib(*resident)
            ),
        }
    }
}

/// One property's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Holds (`always`: no counterexample in the whole space; `sometimes`: an example exists).
    Pass,
    /// Fails (`always`: a counterexample; `sometimes`: no run reaches it).
    Fail,
    /// The search stopped before it could decide.
    Unknown,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Unknown => "UNKNOWN",
        })
    }
}

/// Which kind of property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Must hold in every reachable state.
    Always,
    /// Must hold in some reachable state (the model is not vacuous).
    Sometimes,
}

/// The verdict on one property.
#[derive(Clone, Debug)]
pub struct PropertyResult {
    /// The property's name ("L6 lease exclusion", "sometimes: a lease is claimed").
    pub name: &'static str,
    /// Its key ("L6", "claimed"): what `ModelConfig::only` takes and the Explorer shows.
    pub key: &'static str,
    /// The core property, for `always` properties.
    pub id: Option<PropertyId>,
    /// Always or sometimes.
    pub kind: Kind,
    /// The verdict.
    pub outcome: Outcome,
    /// For a failed `always` property: the actions from the initial state to the violation.
    pub counterexample: Option<Vec<Action>>,
}

/// Everything a check found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The configuration checked.
    pub config: ModelConfig,
    /// One result per property, `always` first.
    pub properties: Vec<PropertyResult>,
    /// States generated.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Deepest path explored.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the whole state space within the horizon was explored.
    pub complete: bool,
    /// Why the search stopped early, if a limit stopped it.
    pub cutoff: Option<Cutoff>,
}

impl CheckReport {
    /// The worst outcome: FAIL over UNKNOWN over PASS.
    pub fn outcome(&self) -> Outcome {
        let worst = |o| self.properties.iter().any(|p| p.outcome == o);
        if worst(Outcome::Fail) {
            Outcome::Fail
        } else if worst(Outcome::Unknown) {
            Outcome::Unknown
        } else {
            Outcome::Pass
        }
    }

    /// The result for `id`, if this model checks it.
    pub fn property(&self, id: PropertyId) -> Option<&PropertyResult> {
        self.properties.iter().find(|p| p.id == Some(id))
    }

    /// Unique states per second.
    pub fn unique_per_sec(&self) -> f64 {
        self.unique_states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Progress while a check runs.
pub type Progress<'a> = &'a mut (dyn FnMut(&ReportData) + Send);

/// Relays progress, and stops the search at the time or memory limit. (stateright's own
/// timeout is not used: with one thread it ends the progress reports but not the search.)
struct Relay<'a> {
    progress: Progress<'a>,
    halt: Arc<AtomicBool>,
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    cutoff: Option<Cutoff>,
    finished: bool,
}

impl Relay<'_> {
    fn watch_limits(&mut self, elapsed: Duration) {
        if self.cutoff.is_some() || self.finished {
            return;
        }
        self.cutoff = match (self.timeout, self.memory_limit) {
            (Some(t), _) if elapsed >= t => Some(Cutoff::Timeout(t)),
            (_, Some(limit)) => memory::resident_bytes()
                .filter(|r| *r > limit)
                .map(|resident| Cutoff::MemoryLimit { limit, resident }),
            _ => None,
        };
        if self.cutoff.is_some() {
            self.halt.store(true, Ordering::Relaxed);
        }
    }
}

/// How often progress is reported (and the time and memory limits looked at).
const REPORT_EVERY: Duration = Duration::from_millis(10);

impl Relay<'_> {
    fn report(&mut self, data: ReportData) {
        if data.done {
            // The search is over; stateright now rebuilds each discovery's path by replaying
            // the model's actions, which must be there again.
            self.finished = true;
            self.halt.store(false, Ordering::Relaxed);
        } else {
            self.watch_limits(data.duration);
        }
        (self.progress)(&data);
    }
}

/// Waits for the search, relaying progress every [`REPORT_EVERY`] meanwhile, and returns as
/// soon as it ends. (stateright's `join_and_report` sleeps out the report tick in which the
/// search ends: 5 ms a check on average, a twentieth of a small one.)
fn join_relaying<C: Checker<TenureModel> + Sync>(mut checker: C, relay: &mut Relay<'_>) -> C {
    let workers = checker.handles();
    let started = Instant::now();
    let progress = |checker: &C, done| ReportData {
        total_states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        max_depth: checker.max_depth(),
        duration: started.elapsed(),
        done,
    };
    let (searching, ended) = mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let (checker, relay) = (&checker, &mut *relay);
        scope.spawn(move || loop {
            relay.report(progress(checker, false));
            // Woken at once when the search ends (the sender is dropped).
            if ended.recv_timeout(REPORT_EVERY) != Err(RecvTimeoutError::Timeout) {
                break;
            }
        });
        for worker in workers {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        drop(searching);
    });
    relay.report(progress(&checker, true));
    checker
}

/// What a finished search found, whichever search it was.
struct Searched {
    discoveries: HashMap<&'static str, Path<State, Action>>,
    states: usize,
    unique_states: usize,
    max_depth: usize,
}

impl Searched {
    fn from(checker: impl Checker<TenureModel>) -> Searched {
        Searched {
            discoveries: checker.discoveries(),
            states: checker.state_count(),
            unique_states: checker.unique_state_count(),
            max_depth: checker.max_depth(),
        }
    }
}

/// Checks `config` exhaustively (breadth first; depth first with symmetry reduction), reporting
/// progress about once a second.
pub fn check(config: &ModelConfig, options: &CheckOptions, progress: Progress<'_>) -> CheckReport {
    // Parts kept for this check alone: it sees every one of its states dropped, and frees them.
    let (model, parts) = TenureModel::new(config.clone())
        .first_counterexamples_only()
        .with_parts_of_its_own();
    let mut relay = Relay {
        progress,
        halt: model.halt_switch(),
        timeout: options.timeout,
        memory_limit: options.memory_limit,
        cutoff: None,
        finished: false,
    };
    let properties = model.selected();
    let mut builder = model.checker().threads(options.threads.max(1));
    match options.stop {
        Stop::Exhausted => {}
        Stop::FirstFailure => builder = builder.finish_when(HasDiscoveries::AnyFailures),
        Stop::FailureOf(id) => {
            let name = CheckedProperty::Always(id).key();
            builder = builder.finish_when(HasDiscoveries::AnyOf([name].into_iter().collect()));
        }
    }
    let started = Instant::now();
    let searched = if config.symmetry {
        let builder = builder.symmetry_fn(crate::speedup::symmetry::representative);
        Searched::from(join_relaying(builder.spawn_dfs(), &mut relay))
    } else {
        Searched::from(join_relaying(builder.spawn_bfs(), &mut relay))
    };
    let Searched {
        discoveries,
        states,
        unique_states,
        max_depth,
    } = searched;
    let discoveries: HashMap<&'static str, Vec<Action>> = discoveries
        .into_iter()
        .map(|(name, path)| (name, path.into_actions()))
        .collect();
    // The checker, every model clone (each thread's and the memos in them) and the paths'
    // states are gone; when no model clone is left (`into_inner`), nothing holds a part.
    if let Some(parts) = Arc::into_inner(parts) {
        // SAFETY: no state, part, memo or model of this check is left (see above).
        unsafe { parts.release() };
    }
    let elapsed = started.elapsed();
    let cutoff = relay.cutoff;
    let all_found = properties.iter().all(|p| discoveries.contains_key(p.key()));
    let failed = properties
        .iter()
        .any(|p| matches!(p, CheckedProperty::Always(_)) && discoveries.contains_key(p.key()));
    let stopped_early = all_found || (options.stop != Stop::Exhausted && failed);
    let complete = cutoff.is_none() && !stopped_early;
    let results = properties
        .iter()
        .map(|p| {
            let found = discoveries.get(p.key());
            let (kind, id) = match *p {
                CheckedProperty::Always(id) => (Kind::Always, Some(id)),
                CheckedProperty::Sometimes(_) => (Kind::Sometimes, None),
            };
            let outcome = match (kind, found.is_some(), complete) {
                (Kind::Always, true, _) => Outcome::Fail,
                (Kind::Sometimes, true, _) => Outcome::Pass,
                (Kind::Always, false, true) => Outcome::Pass,
                (Kind::Sometimes, false, true) => Outcome::Fail,
                (_, false, false) => Outcome::Unknown,
            };
            PropertyResult {
                name: p.name(),
                key: p.key(),
                id,
                kind,
                outcome,
                counterexample: match kind {
                    Kind::Always => found.cloned(),
                    Kind::Sometimes => None,
                },
            }
        })
        .collect();
    CheckReport {
        config: config.clone(),
        properties: results,
        states,
        unique_states,
        max_depth,
        elapsed,
        complete,
        cutoff,
    }
}
