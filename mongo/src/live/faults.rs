//! The faults a live run injects, and their schedule.
//!
//! Network faults strike requests as they pass the [`super::proxy::FaultProxy`]; server faults
//! (`failCommand` failpoints, step-downs, a kill and restart) strike at times drawn from the
//! run's seed before it starts, so the schedule is known, saved with the report, and the same
//! for the same seed; skew gives each client a clock of its own.

use crate::live::proxy::ProxyRates;
use crate::substrate::Substrate;
use mongodb::bson::{doc, Document};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

macro_rules! live_faults {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal; )*) => {
        /// A fault a live run can inject.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum LiveFault {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl LiveFault {
            /// Every live fault, in a stable order.
            pub const ALL: &'static [LiveFault] = &[$(LiveFault::$variant),*];

            /// The kebab-case name `--faults` takes.
            pub fn name(self) -> &'static str {
                match self { $(LiveFault::$variant => $name,)* }
            }

            /// What the fault does, in one sentence.
            pub fn description(self) -> String {
                let lines: &[&str] = match self { $(LiveFault::$variant => &[$($doc),*],)* };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            }
        }
    };
}

live_faults! {
    /// The proxy drops a request before the server and closes the connection.
    Lost = "lost";
    /// The proxy forwards a request, drops its reply and closes the connection (the write
    /// happened; the client cannot know).
    Ambiguous = "ambiguous";
    /// The proxy holds a request back up to 400 ms, or its reply (one in ten of those up to
    /// 2 s); and one write acknowledgement in ten 100-400 ms late (a lagging secondary).
    Delay = "delay";
    /// The proxy closes a connection before a request.
    Sever = "sever";
    /// The server fails commands (`failCommand`): refused with a retryable or a fatal code,
    /// applied with a write concern error (ambiguous), connection closed, or blocked a while.
    Failpoint = "failpoint";
    /// The server steps down (`replSetStepDown`, forced) and refuses writes for a while.
    StepDown = "step-down";
    /// Each client's clock runs at its own rate (within the bound the managers assume) from an
    /// offset of its own.
    Skew = "skew";
    /// The server is killed (SIGKILL) and restarted on its directory store (only when `tenure
    /// live` started the server).
    Restart = "restart";
    /// A client process is stopped (SIGSTOP) for one to three terms, past its lease, and
    /// continued (SIGCONT) (only with client processes).
    Pause = "pause";
    /// A client process is killed (SIGKILL) and started again as a new process (only with
    /// client processes; clock clients are only paused).
    Crash = "crash";
}

impl fmt::Display for LiveFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl LiveFault {
    /// Whether the fault strikes client processes (so needs clients in processes of their own).
    pub fn needs_processes(self) -> bool {
        matches!(self, LiveFault::Pause | LiveFault::Crash)
    }

    /// Parses `none`, `all`, or a comma-separated list of names.
    pub fn parse_set(s: &str) -> Result<BTreeSet<LiveFault>, String> {
        match s.trim() {
            "none" | "" => return Ok(BTreeSet::new()),
            "all" => return Ok(LiveFault::ALL.iter().copied().collect()),
            _ => {}
        }
        s.split(',')
            .map(str::trim)
            .map(|name| {
                LiveFault::ALL
                    .iter()
                    .copied()
                    .find(|f| f.name() == name)
                    .ok_or_else(|| {
                        let known: Vec<&str> = LiveFault::ALL.iter().map(|f| f.name()).collect();
                        format!(
                            "unknown live fault '{name}'; known: {}, or all, or none",
                            known.join(", ")
                        )
                    })
            })
            .collect()
    }
}

/// The proxy's rates for a fault set: each network fault on a few percent of requests.
pub fn proxy_rates(faults: &BTreeSet<LiveFault>) -> ProxyRates {
    let on = |f, ppm| if faults.contains(&f) { ppm } else { 0 };
    ProxyRates {
        lost: on(LiveFault::Lost, 10_000),
        ambiguous: on(LiveFault::Ambiguous, 10_000),
        delay: on(LiveFault::Delay, 30_000),
        slow_ack: on(LiveFault::Delay, 100_000),
        sever: on(LiveFault::Sever, 5_000),
    }
}

/// A server fault at a point of the run.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerEvent {
    /// When, from the start of the workload.
    pub at: Duration,
    /// What.
    pub fault: ServerFault,
}

/// What a server fault does.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ServerFault {
    /// The next `times` write commands fail as `data` says (`failCommand`).
    Failpoint {
        /// How many commands it strikes.
        times: u32,
        /// What it does: a short name for reports.
        kind: &'static str,
        /// The failpoint's `data` document.
        data: Document,
    },
    /// The server steps down for `secs` seconds.
    StepDown {
        /// How long it refuses writes.
        secs: u32,
    },
    /// The server is killed and restarted.
    Restart,
}

impl fmt::Display for ServerFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerFault::Failpoint { times, kind, .. } => {
                write!(f, "failpoint {kind} on the next {times} write(s)")
            }
            ServerFault::StepDown { secs } => write!(f, "step down for {secs} s"),
            ServerFault::Restart => f.write_str("kill and restart the server"),
        }
    }
}

/// Mean time between server faults.
const SERVER_FAULT_EVERY: Duration = Duration::from_secs(2);
/// Least time between two restarts: a restart takes seconds, and the clients must get work
/// done between them.
const RESTART_GAP: Duration = Duration::from_secs(15);
/// The write commands a failpoint strikes.
const WRITES: [&str; 4] = ["insert", "update", "delete", "findAndModify"];

/// The server faults of a run of `duration`, drawn from `seed`: on average one every two
/// seconds, among the enabled ones, restarts at least [`RESTART_GAP`] apart, none in the last
/// tenth (so the run ends settled).
pub fn server_schedule(
    faults: &BTreeSet<LiveFault>,
    duration: Duration,
    seed: u64,
) -> Vec<ServerEvent> {
    let kinds: Vec<LiveFault> = [
        LiveFault::Failpoint,
        LiveFault::StepDown,
        LiveFault::Restart,
    ]
    .into_iter()
    .filter(|f| faults.contains(f))
    .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5e4e_f417);
    let mut events = Vec::new();
    if kinds.is_empty() {
        return events;
    }
    let end = duration.mul_f64(0.9);
    let (mut at, mut restarted) = (Duration::ZERO, None);
    loop {
        at += SERVER_FAULT_EVERY.mul_f64(rng.random_range(0.25..1.75));
        if at >= end {
            return events;
        }
        let fault = match kinds[rng.random_range(0..kinds.len())] {
            LiveFault::StepDown => ServerFault::StepDown {
                secs: rng.random_range(1..=3),
            },
            LiveFault::Restart if restarted.is_none_or(|r| at >= r + RESTART_GAP) => {
                restarted = Some(at);
                ServerFault::Restart
            }
            LiveFault::Restart => continue,
            _ => failpoint(&mut rng),
        };
        events.push(ServerEvent { at, fault });
    }
}

/// One of the failpoints: refused (retryable or not), applied but unacknowledged, connection
/// closed, or blocked.
fn failpoint(rng: &mut StdRng) -> ServerFault {
    let commands: Vec<&str> = WRITES.to_vec();
    let (kind, data) = match rng.random_range(0..5) {
        0 => (
            "not-primary",
            doc! { "failCommands": commands, "errorCode": 10107 },
        ),
        1 => ("refused", doc! { "failCommands": commands, "errorCode": 2 }),
        2 => (
            "write-concern-error",
            doc! {
                "failCommands": commands,
                "writeConcernError": { "code": 64, "errmsg": "waiting for replication timed out" },
            },
        ),
        3 => (
            "close-connection",
            doc! { "failCommands": commands, "closeConnection": true },
        ),
        _ => (
            "block",
            doc! {
                "failCommands": commands,
                "blockConnection": true,
                "blockTimeMS": rng.random_range(50..500),
            },
        ),
    };
    ServerFault::Failpoint {
        times: rng.random_range(1..=3),
        kind,
        data,
    }
}

/// Kills and restarts the server (blocking; run off the async threads).
pub type Restart = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A server fault as it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Fired {
    /// The scheduled event.
    pub event: ServerEvent,
    /// When it fired, from the start.
    pub fired_at: Duration,
    /// `Ok` or why the server refused it.
    pub result: Result<(), String>,
}

/// Runs `schedule` from `start` on the server behind `admin` (a direct connection, not through
/// the proxy); `restart` kills and restarts the server (when the run owns it).
pub async fn inject(
    admin: &Substrate,
    schedule: Vec<ServerEvent>,
    start: Instant,
    restart: Option<Restart>,
) -> Vec<Fired> {
    let mut fired = Vec::with_capacity(schedule.len());
    for event in schedule {
        sleep_until(start + event.at).await;
        let result = match &event.fault {
            ServerFault::Failpoint { times, data, .. } => {
                command(
                    admin,
                    doc! {
                        "configureFailPoint": "failCommand",
                        "mode": { "times": i64::from(*times) },
                        "data": data.clone(),
                    },
                )
                .await
            }
            ServerFault::StepDown { secs } => {
                command(
                    admin,
                    doc! { "replSetStepDown": i64::from(*secs), "force": true },
                )
                .await
            }
            ServerFault::Restart => match &restart {
                Some(r) => {
                    let r = r.clone();
                    tokio::task::spawn_blocking(move || r())
                        .await
                        .unwrap_or_else(|e| Err(format!("the restart panicked: {e}")))
                }
                None => Err("the run does not own the server".into()),
            },
        };
        if let Err(e) = &result {
            tracing::warn!(fault = %event.fault, error = %e, "live: a server fault was refused");
        }
        fired.push(Fired {
            fired_at: start.elapsed(),
            event,
            result,
        });
    }
    fired
}

async fn command(admin: &Substrate, cmd: Document) -> Result<(), String> {
    admin
        .client()
        .database("admin")
        .run_command(cmd)
        .await
        .map(|_| ())
        .map_err(|e| crate::error::describe(&e))
}

/// Turns any failpoint off (at the end of a run).
pub async fn disarm(admin: &Substrate) -> Result<(), String> {
    command(
        admin,
        doc! { "configureFailPoint": "failCommand", "mode": "off" },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_all_and_none() {
        assert!(LiveFault::parse_set("none").unwrap().is_empty());
        assert_eq!(
            LiveFault::parse_set("all").unwrap().len(),
            LiveFault::ALL.len()
        );
        let two = LiveFault::parse_set("lost, step-down").unwrap();
        assert_eq!(
            two.into_iter().collect::<Vec<_>>(),
            [LiveFault::Lost, LiveFault::StepDown]
        );
        let e = LiveFault::parse_set("lost,partition").unwrap_err();
        assert!(e.contains("'partition'") && e.contains("step-down"), "{e}");
    }

    #[test]
    fn the_schedule_comes_from_the_seed_and_the_enabled_faults() {
        let all = LiveFault::parse_set("all").unwrap();
        let a = server_schedule(&all, Duration::from_secs(60), 3);
        assert_eq!(a, server_schedule(&all, Duration::from_secs(60), 3));
        assert_ne!(a, server_schedule(&all, Duration::from_secs(60), 4));
        assert!((10..=60).contains(&a.len()), "{}", a.len());
        let restarts: Vec<Duration> = a
            .iter()
            .filter(|e| e.fault == ServerFault::Restart)
            .map(|e| e.at)
            .collect();
        assert!(!restarts.is_empty());
        assert!(
            restarts.windows(2).all(|w| w[1] >= w[0] + RESTART_GAP),
            "{restarts:?}"
        );
        assert!(a.iter().all(|e| e.at < Duration::from_secs(54)));
        let only = LiveFault::parse_set("step-down").unwrap();
        let s = server_schedule(&only, Duration::from_secs(60), 3);
        assert!(s
            .iter()
            .all(|e| matches!(e.fault, ServerFault::StepDown { .. })));
        assert!(server_schedule(
            &LiveFault::parse_set("lost").unwrap(),
            Duration::from_secs(60),
            3
        )
        .is_empty());
    }
}
