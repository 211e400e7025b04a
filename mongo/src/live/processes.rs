//! Clients as OS processes: each client of a run in a process of its own (`tenure live
//! --processes` starts `tenure live-client` for each), so that a client can be stopped with
//! SIGSTOP past its lease and continued with SIGCONT, or killed with SIGKILL and started again,
//! as a long GC pause, a frozen VM or a crash would do it. Nothing of the client runs while it
//! is stopped: not its timers, not its renewals, not its replies.
//!
//! A client process gets its [`ClientSpec`] as JSON on standard input, records its history into
//! a file line by line (kept up to a kill, [`crate::Recorder::streaming`]) on the run's real
//! time ([`crate::align_real_time`]), and prints its [`super::Counts`] as JSON on standard
//! output when it ends.

use super::{connect, Client, Counts, LiveFault, LiveTarget, Workload};
use crate::error::Error;
use crate::record::Recorder;
use crate::runtime::LocalClock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tenure::history::History;
use tenure::mutant::{Mutant, Protocol};
use tenure::time::SkewBounds;
use tokio::io::AsyncWriteExt;
use tokio::time::{sleep, sleep_until, Instant};

/// Builds the command that starts one client process (`tenure live-client`); the run adds the
/// pipes and writes the spec.
pub type ClientCommand = Arc<dyn Fn() -> tokio::process::Command + Send + Sync>;

/// Everything a client process needs to run one client of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientSpec {
    /// The protocol it runs.
    pub protocol: Protocol,
    /// Its number among its protocol's clients.
    pub index: usize,
    /// Its process number in the history (a restarted client gets a new one).
    pub process: u32,
    /// The URI it connects to (the fault proxy's, with the run's options).
    pub uri: String,
    /// The run's database.
    pub database: String,
    /// Whether a standalone server is accepted.
    pub allow_standalone: bool,
    /// The workload's clients per protocol, leases, term, clock bounds and mutant.
    pub clients: usize,
    /// See [`Workload::leases`].
    pub leases: usize,
    /// See [`Workload::term`].
    pub term: Duration,
    /// See [`Workload::skew`].
    pub skew: SkewBounds,
    /// Seeds its random choices.
    pub seed: u64,
    /// See [`Workload::mutant`].
    pub mutant: Option<Mutant>,
    /// Its local clock's rate error (ppm) and offset.
    pub rate_ppm: i32,
    /// See `rate_ppm`.
    pub offset: Duration,
    /// The run's real-time origin ([`crate::real_time_origin`] of the parent).
    pub real_origin: u64,
    /// How long it runs.
    pub run_for: Duration,
    /// The file its history streams to.
    pub history: PathBuf,
}

/// Runs one client as its process's whole work (the child's side): connects, runs the
/// protocol's client until `run_for` is up, and returns what it did.
pub async fn serve(spec: ClientSpec) -> Result<Counts, Error> {
    let bad = |why: String| Error::Input(tenure::validate::InputError::InvalidConfig(why));
    if !crate::runtime::align_real_time(spec.real_origin) {
        return Err(bad("this process recorded before it was aligned".into()));
    }
    let recorder = Recorder::streaming(spec.process, &spec.history).map_err(|e| {
        bad(format!(
            "cannot write the history file {}: {e}",
            spec.history.display()
        ))
    })?;
    let target = LiveTarget {
        uri: spec.uri.clone(),
        database: spec.database.clone(),
        allow_standalone: spec.allow_standalone,
        restart: None,
        driver_retries: false,
        client_command: None,
    };
    let clock = LocalClock::skewed(spec.rate_ppm, spec.offset)?;
    let deadline = Instant::now() + spec.run_for;
    let substrate = connect(&spec.uri, &target, clock, Some(recorder)).await?;
    let workload = Workload {
        protocols: BTreeSet::from([spec.protocol]),
        clients: spec.clients,
        leases: spec.leases,
        duration: spec.run_for,
        term: spec.term,
        skew: spec.skew,
        seed: spec.seed,
        faults: BTreeSet::new(),
        mutant: spec.mutant,
    };
    let client = Client {
        substrate,
        index: spec.index,
        workload,
        rng: StdRng::seed_from_u64(spec.seed ^ u64::from(spec.process)),
        deadline,
    };
    super::run_client(spec.protocol, client).await
}

/// A client fault at a point of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEvent {
    /// When, from the start of the workload.
    pub at: Duration,
    /// What.
    pub fault: ClientFault,
}

/// What a client fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientFault {
    /// A client process is stopped this long, then continued.
    Pause(Duration),
    /// A client process is killed, and started again.
    Crash,
}

/// A client fault as it struck.
#[derive(Clone, Debug)]
pub struct ClientFired {
    /// The fault as scheduled.
    pub event: ClientEvent,
    /// The process it struck (chosen from the seed among those running).
    pub process: Option<u32>,
    /// `Err` if it could not strike (no client running, a signal refused).
    pub result: Result<(), String>,
}

/// The client faults of a run, from its seed: one every 2 to 5 s, each pause ending a second
/// before the run does.
pub fn client_schedule(
    faults: &BTreeSet<LiveFault>,
    duration: Duration,
    term: Duration,
    seed: u64,
) -> Vec<ClientEvent> {
    let kinds: Vec<LiveFault> = [LiveFault::Pause, LiveFault::Crash]
        .into_iter()
        .filter(|f| faults.contains(f))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x00c1_1e47);
    let mut events = Vec::new();
    let mut at = Duration::from_secs(1);
    let last = duration.saturating_sub(Duration::from_secs(1));
    while !kinds.is_empty() {
        at += Duration::from_millis(rng.random_range(2_000..5_000));
        let fault = match kinds[rng.random_range(0..kinds.len())] {
            LiveFault::Pause => ClientFault::Pause(term.mul_f64(rng.random_range(1.0..3.0))),
            _ => ClientFault::Crash,
        };
        let ends = match fault {
            ClientFault::Pause(d) => at + d,
            ClientFault::Crash => at,
        };
        if ends >= last {
            break;
        }
        events.push(ClientEvent { at, fault });
    }
    events
}

/// The running client processes: process number to OS pid, and whether a crash may strike it.
/// Clock clients are only paused: a clock updater killed with its advance in flight leaves no
/// record of a write that may have applied, and G2 would see a gap the protocol did not make
/// (stopped gracefully, an updater records such a write as unknown).
#[derive(Clone, Default)]
pub(super) struct Running(Arc<Mutex<BTreeMap<u32, (u32, bool)>>>);

impl Running {
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<u32, (u32, bool)>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What one supervised client did over its processes.
pub(super) struct Supervised {
    pub(super) counts: Counts,
    /// Its process numbers, the first and each restart's.
    pub(super) processes: Vec<u32>,
}

/// Runs one client in a process of its own until `deadline`, starting it again (as a new
/// process number) whenever a crash kills it.
pub(super) async fn supervise(
    command: ClientCommand,
    mut spec: ClientSpec,
    deadline: Instant,
    next_process: Arc<AtomicU32>,
    running: Running,
) -> Result<Supervised, Error> {
    let mut done = Supervised {
        counts: Counts::default(),
        processes: Vec::new(),
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(200) {
            return Ok(done);
        }
        spec.run_for = left;
        spec.history = spec
            .history
            .with_file_name(format!("p{}.jsonl", spec.process));
        done.processes.push(spec.process);
        let output = run_once(&command, &spec, &running).await?;
        if output.status.success() {
            let counts: Counts = serde_json::from_slice(&output.stdout)
                .map_err(|e| Error::Store(format!("client process {}: {e}", spec.process)))?;
            done.counts.add(&counts);
            return Ok(done);
        }
        if !killed(&output.status) {
            return Err(Error::Store(format!(
                "client process {} failed ({}): {}",
                spec.process,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        done.counts.bump("crashed");
        spec.process = next_process.fetch_add(1, Ordering::Relaxed);
    }
}

/// Starts one client process, hands it its spec, and waits for it.
async fn run_once(
    command: &ClientCommand,
    spec: &ClientSpec,
    running: &Running,
) -> Result<std::process::Output, Error> {
    let failed = |e: std::io::Error| Error::Store(format!("client process {}: {e}", spec.process));
    let mut child = command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(failed)?;
    let json = serde_json::to_vec(spec).map_err(|e| Error::Store(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&json).await.map_err(failed)?;
    }
    if let Some(pid) = child.id() {
        let crashable = spec.protocol != Protocol::Clock;
        running.with(|r| r.insert(spec.process, (pid, crashable)));
    }
    let output = child.wait_with_output().await.map_err(failed);
    running.with(|r| r.remove(&spec.process));
    output
}

/// Whether a process ended by SIGKILL.
fn killed(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(rustix::process::Signal::KILL.as_raw())
}

/// Strikes the scheduled client faults at their times, each on a running client chosen from
/// the seed; returns how each went.
pub(super) async fn inject(
    schedule: Vec<ClientEvent>,
    start: Instant,
    running: Running,
    seed: u64,
) -> Vec<ClientFired> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9a05e);
    let mut fired = Vec::with_capacity(schedule.len());
    for event in schedule {
        sleep_until(start + event.at).await;
        let crash = event.fault == ClientFault::Crash;
        let target = running.with(|r| {
            let fit: Vec<(u32, u32)> = r
                .iter()
                .filter(|(_, (_, crashable))| *crashable || !crash)
                .map(|(p, (pid, _))| (*p, *pid))
                .collect();
            (!fit.is_empty()).then(|| fit[rng.random_range(0..fit.len())])
        });
        let Some((process, pid)) = target else {
            fired.push(ClientFired {
                event,
                process: None,
                result: Err("no client process it may strike was running".into()),
            });
            continue;
        };
        let result = strike(pid, event.fault).await;
        fired.push(ClientFired {
            event,
            process: Some(process),
            result,
        });
    }
    fired
}

async fn strike(pid: u32, fault: ClientFault) -> Result<(), String> {
    use rustix::process::{kill_process, Pid, Signal};
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| format!("no such process id {pid}"))?;
    let signal = |s| kill_process(pid, s).map_err(|e| format!("signal to {pid:?}: {e}"));
    match fault {
        ClientFault::Pause(d) => {
            signal(Signal::STOP)?;
            sleep(d).await;
            signal(Signal::CONT)
        }
        ClientFault::Crash => signal(Signal::KILL),
    }
}

/// Reads the client processes' history files: a line cut by a kill is left out.
pub(super) fn read_histories(files: &[PathBuf]) -> Result<Vec<History>, Error> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .map_err(|e| Error::Store(format!("cannot read {}: {e}", f.display())))?;
            let whole = match text.rfind('\n') {
                Some(i) => &text[..=i],
                None => "",
            };
            History::from_jsonl(whole)
                .map_err(|e| Error::Store(format!("{} is not a history: {e}", f.display())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_schedule_comes_from_the_seed_and_ends_before_the_run() {
        let faults = BTreeSet::from([LiveFault::Pause, LiveFault::Crash]);
        let d = Duration::from_secs(60);
        let term = Duration::from_secs(1);
        let a = client_schedule(&faults, d, term, 3);
        assert_eq!(a, client_schedule(&faults, d, term, 3));
        assert!(a.len() > 5, "{a:?}");
        assert!(a.iter().any(|e| e.fault == ClientFault::Crash));
        assert!(a.iter().all(|e| match e.fault {
            ClientFault::Pause(p) => p >= term && e.at + p < d,
            ClientFault::Crash => e.at < d,
        }));
        assert!(client_schedule(&BTreeSet::new(), d, term, 3).is_empty());
    }
}
