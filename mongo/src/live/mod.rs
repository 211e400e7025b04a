//! Live workloads: clients driving the adapter against a real server for a while, every call
//! recorded, so the core's properties can judge the history (`tenure live` runs them; so can a
//! service's own test), under the faults of [`faults`].
//!
//! The lease workload: clients, each its own lease manager (its own writer) on a connection and
//! a local clock of its own, contend for a few leases. A client claims one at random; holding
//! it, it acts for a random part of the term, then either releases it or lets it lapse; denied,
//! it backs off a little. Two clock updaters keep global time moving and a reader samples it,
//! so the history also holds the clock's reads and advances. Every random choice, the clocks'
//! skews and the server faults' schedule come from the seed; network faults are drawn from it
//! as requests arrive.

pub mod faults;
pub mod proxy;

use crate::error::Error;
use crate::record::Recorder;
use crate::runtime::LocalClock;
use crate::substrate::Substrate;
use crate::{ClockUpdater, Leases};
use faults::{Fired, LiveFault, Restart, ServerEvent};
use proxy::{FaultProxy, ProxyCounts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tenure::history::History;
use tenure::mutant::{Mutant, Protocol};
use tenure::property::PropertyId;
use tenure::time::SkewBounds;
use tokio::time::{sleep, Instant};

/// The protocols whose actors the lease workload runs (so whose mutants it can run).
pub const LEASE_WORKLOAD_RUNS: [Protocol; 2] = [Protocol::Clock, Protocol::Lease];

/// The properties the lease workload's history has data for.
pub const LEASE_WORKLOAD_CHECKS: [PropertyId; 4] = [
    PropertyId::G1,
    PropertyId::G2,
    PropertyId::L6,
    PropertyId::F1,
];

/// The mutants the lease workload runs whose broken property its history shows: those a live
/// run can catch.
pub fn live_mutants() -> impl Iterator<Item = Mutant> {
    Mutant::ALL.iter().copied().filter(|m| {
        LEASE_WORKLOAD_RUNS.contains(&m.protocol()) && LEASE_WORKLOAD_CHECKS.contains(&m.breaks())
    })
}

/// Refuses a mutant of a protocol the lease workload does not run.
pub fn check_mutant(m: Mutant) -> Result<(), Error> {
    if LEASE_WORKLOAD_RUNS.contains(&m.protocol()) {
        return Ok(());
    }
    Err(Error::Input(tenure::validate::InputError::InvalidConfig(
        format!(
            "mutant {m} is a {} mutant; the lease workload runs lease managers and clock \
             updaters only (try `tenure sim --mutant {m}`)",
            m.protocol().name()
        ),
    )))
}

/// The most clients a live workload runs.
pub const CLIENTS_MAX: usize = 256;
/// How far apart the clients' clocks may start (under `skew`).
const OFFSET_MAX: Duration = Duration::from_secs(3600);

/// How a live lease workload runs.
#[derive(Clone, Debug)]
pub struct LeaseWorkload {
    /// Concurrent clients, each with a lease manager of its own (default 4).
    pub clients: usize,
    /// Leases they contend for (default 2).
    pub leases: usize,
    /// How long the clients run (default 30 s).
    pub duration: Duration,
    /// The term each claim asks for (default 1 s).
    pub term: Duration,
    /// Clock bounds the managers assume (the updaters here step at most 100 ms).
    pub skew: SkewBounds,
    /// Seeds every random choice.
    pub seed: u64,
    /// The faults to inject (default none).
    pub faults: BTreeSet<LiveFault>,
    /// A lease or clock mutant every client's manager and both updaters run (default none).
    pub mutant: Option<Mutant>,
}

impl Default for LeaseWorkload {
    fn default() -> Self {
        LeaseWorkload {
            clients: 4,
            leases: 2,
            duration: Duration::from_secs(30),
            term: Duration::from_secs(1),
            skew: SkewBounds {
                rate_error_ppm: 500,
                clock_step_max: Duration::from_millis(100),
            },
            seed: 0,
            faults: BTreeSet::new(),
            mutant: None,
        }
    }
}

/// Where a live run connects, and what it may do to the server.
#[derive(Clone)]
pub struct LiveTarget {
    /// The server (`mongodb://HOST:PORT/...`; network faults need one host).
    pub uri: String,
    /// The database the run uses (and drops at the end).
    pub database: String,
    /// Accept a standalone server (see [`crate::SubstrateBuilder::allow_standalone_unsafe`]).
    pub allow_standalone: bool,
    /// Kills and restarts the server (only when the run owns it); without it, the `restart`
    /// fault is refused.
    pub restart: Option<Restart>,
    /// Let the driver retry a write once after a network error or a failover (`retryWrites`,
    /// the production default). Off by default in live runs: the retry runs on a new
    /// connection, and a server that deduplicates retries only per connection (SecantusDB 0.7)
    /// executes the write again, so a compare-and-swap that applied is reported as not applied
    /// and the history is wrong about it. Without the driver's retry every such write ends
    /// unknown, and the protocols resolve it themselves, which is what the run checks.
    pub driver_retries: bool,
}

/// What the clients did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaseWorkloadReport {
    /// Claims made (extensions included).
    pub claims: u64,
    /// Claims granted.
    pub granted: u64,
    /// Claims denied (another holder).
    pub denied: u64,
    /// Terms released early.
    pub released: u64,
    /// Calls that failed otherwise (unknown outcomes, an unavailable store).
    pub errors: u64,
    /// Reads of global time.
    pub clock_reads: u64,
}

impl LeaseWorkloadReport {
    fn add(&mut self, r: &LeaseWorkloadReport) {
        self.claims += r.claims;
        self.granted += r.granted;
        self.denied += r.denied;
        self.released += r.released;
        self.errors += r.errors;
        self.clock_reads += r.clock_reads;
    }
}

/// A live run: what the clients did, the history recorded, and the faults injected.
#[derive(Clone, Debug)]
pub struct LiveRun {
    /// What the clients did.
    pub report: LeaseWorkloadReport,
    /// Every process's history, merged (process 0 keeps the clock; client `i` is `i + 1`).
    pub history: History,
    /// Entries the recorders dropped (over their bound).
    pub dropped: u64,
    /// Each process's local clock: `(process, rate ppm, offset)`.
    pub clocks: Vec<(u32, i32, Duration)>,
    /// The server faults scheduled from the seed.
    pub schedule: Vec<ServerEvent>,
    /// The server faults as they fired.
    pub fired: Vec<Fired>,
    /// What the fault proxy did (empty without network faults).
    pub proxy: ProxyCounts,
}

/// One recording process: its connection, clock and recorder.
struct Process {
    substrate: Substrate,
    recorder: Recorder,
}

impl LeaseWorkload {
    fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| {
            Err(Error::Input(tenure::validate::InputError::InvalidConfig(
                why.to_owned(),
            )))
        };
        if self.clients == 0 || self.clients > CLIENTS_MAX {
            return bad("a live workload runs 1 to 256 clients");
        }
        if self.leases == 0 || self.leases > 1_000 {
            return bad("a live workload contends for 1 to 1,000 leases");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad("a live workload runs for more than 0 s and at most a day");
        }
        tenure::validate::check_lease_duration(self.term)?;
        if let Some(m) = self.mutant {
            check_mutant(m)?;
        }
        Ok(())
    }

    /// Whether any fault needs the proxy.
    fn network_faults(&self) -> bool {
        !faults::proxy_rates(&self.faults).is_none()
    }

    /// Process `i`'s clock: exact for the clock keeper (0) or without `skew`; otherwise a rate
    /// within the managers' bound and an offset, both from the seed.
    fn clock_of(&self, i: u32) -> (i32, Duration) {
        if i == 0 || !self.faults.contains(&LiveFault::Skew) {
            return (0, Duration::ZERO);
        }
        let mut rng = StdRng::seed_from_u64(self.seed ^ 0xc10c ^ u64::from(i));
        let rho = i32::try_from(self.skew.rate_error_ppm).unwrap_or(i32::MAX);
        let rate = rng.random_range(-rho..=rho);
        (rate, OFFSET_MAX.mul_f64(rng.random_range(0.0..1.0)))
    }

    /// Runs the workload against `target`, calling `progress` with the time elapsed about once
    /// a second.
    pub async fn run(
        &self,
        target: &LiveTarget,
        progress: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<LiveRun, Error> {
        self.validate()?;
        let admin = connect(&target.uri, target, LocalClock::SYSTEM, None).await?;
        let proxy = if self.network_faults() {
            let upstream = upstream_of(&target.uri).await?;
            let rates = faults::proxy_rates(&self.faults);
            Some(
                FaultProxy::start(upstream, rates, self.seed)
                    .await
                    .map_err(|e| Error::Store(format!("cannot start the fault proxy: {e}")))?,
            )
        } else {
            None
        };
        let uri = client_uri(
            &target.uri,
            proxy.as_ref().map(FaultProxy::addr),
            target.driver_retries,
        );
        let mut processes = Vec::with_capacity(self.clients + 1);
        let mut clocks = Vec::with_capacity(self.clients + 1);
        for i in 0..=u32::try_from(self.clients).unwrap_or(u32::MAX) {
            let (rate, offset) = self.clock_of(i);
            let recorder = Recorder::new(i);
            let clock = LocalClock::skewed(rate, offset)?;
            let substrate = connect(&uri, target, clock, Some(recorder.clone())).await?;
            processes.push(Process {
                substrate,
                recorder,
            });
            clocks.push((i, rate, offset));
        }
        let schedule = faults::server_schedule(&self.faults, self.duration, self.seed);
        let start = Instant::now();
        let injector = {
            let (admin, schedule, restart) =
                (admin.clone(), schedule.clone(), target.restart.clone());
            tokio::spawn(async move { faults::inject(&admin, schedule, start, restart).await })
        };
        let report = self.drive(&processes, start, progress).await;
        let fired = injector
            .await
            .map_err(|e| Error::Store(format!("the fault injector failed: {e}")))?;
        if self.faults.contains(&LiveFault::Failpoint) {
            let _ = faults::disarm(&admin).await;
        }
        let _ = admin.database().drop().await;
        let dropped = processes.iter().map(|p| p.recorder.dropped()).sum();
        let history = History::merge(processes.iter().map(|p| p.recorder.history()));
        Ok(LiveRun {
            report: report?,
            history,
            dropped,
            clocks,
            schedule,
            fired,
            proxy: proxy.map(|p| p.counts()).unwrap_or_default(),
        })
    }

    /// The clock keeper (process 0) and the clients, until the duration is up.
    async fn drive(
        &self,
        processes: &[Process],
        start: Instant,
        progress: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<LeaseWorkloadReport, Error> {
        let keeper = &processes[0].substrate;
        let updaters = (0..2)
            .map(|_| {
                ClockUpdater::builder()
                    .update_interval(Duration::from_millis(50))
                    .backoff_delay(self.skew.clock_step_max)
                    .mutant(self.mutant)
                    .spawn(keeper)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = start + self.duration;
        let clients = processes[1..]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let leases = Leases::builder("live")
                    .writer(format!("live-{i}"))
                    .skew(self.skew)
                    .max_sleep(self.term)
                    .mutant(self.mutant)
                    .build(&p.substrate)?;
                let (config, rng) = (self.clone(), StdRng::seed_from_u64(self.seed ^ (i as u64)));
                Ok(tokio::spawn(client(leases, i, config, rng, deadline)))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let reader = tokio::spawn(read_clock(keeper.clone(), deadline, progress));
        let mut report = LeaseWorkloadReport::default();
        for c in clients {
            let r = c
                .await
                .map_err(|e| Error::Store(format!("a live client failed: {e}")))?;
            report.add(&r);
        }
        report.clock_reads = reader
            .await
            .map_err(|e| Error::Store(format!("the clock reader failed: {e}")))?;
        for u in &updaters {
            u.shutdown().await;
        }
        Ok(report)
    }
}

/// Attempts at connecting, each after a transient failure (the faults strike setup too).
const CONNECT_TRIES: u32 = 5;

/// A connection of the run: its own database, clock and recorder; retried as a service would
/// retry its start while the network is faulty.
async fn connect(
    uri: &str,
    target: &LiveTarget,
    clock: LocalClock,
    recorder: Option<Recorder>,
) -> Result<Substrate, Error> {
    let mut tries = 0;
    loop {
        let mut b = Substrate::builder(uri)
            .database(target.database.clone())
            .allow_standalone_unsafe(target.allow_standalone)
            .clock(clock);
        if let Some(r) = &recorder {
            b = b.recorder(r.clone());
        }
        match b.connect().await {
            Err(e) if e.is_transient() && tries + 1 < CONNECT_TRIES => {
                tries += 1;
                tracing::debug!(error = %e, tries, "live: connecting again");
                sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// The one `host:port` of a `mongodb://` URI (credentials and options aside).
async fn upstream_of(uri: &str) -> Result<SocketAddr, Error> {
    let bad = |why: &str| {
        Error::Input(tenure::validate::InputError::InvalidConfig(format!(
            "network faults need a mongodb:// URI naming one host: {why}"
        )))
    };
    let rest = uri
        .strip_prefix("mongodb://")
        .ok_or_else(|| bad("not a mongodb:// URI"))?;
    let hosts = rest.split(['/', '?']).next().unwrap_or_default();
    let hosts = hosts.rsplit('@').next().unwrap_or_default();
    if hosts.contains(',') {
        return Err(bad("it names several hosts"));
    }
    let host = if hosts.contains(':') {
        hosts.to_owned()
    } else {
        format!("{hosts}:27017")
    };
    tokio::net::lookup_host(host.as_str())
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad("its host does not resolve"))
}

/// The clients' URI: `uri` with the same credentials and options, pointed at the proxy if there
/// is one (as one direct connection: the driver must not discover the server's own address and
/// go around the proxy), and with the driver's write retries as asked.
fn client_uri(uri: &str, proxy: Option<SocketAddr>, driver_retries: bool) -> String {
    let rest = uri.strip_prefix("mongodb://").unwrap_or(uri);
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, q),
        None => (tail, ""),
    };
    let ours = ["directconnection=", "retrywrites="];
    let mut options: Vec<&str> = query
        .split('&')
        .filter(|o| !o.is_empty())
        .filter(|o| {
            let o = o.to_ascii_lowercase();
            !ours.iter().any(|p| o.starts_with(p))
        })
        .collect();
    let authority = match proxy {
        Some(addr) => {
            options.push("directConnection=true");
            let credentials = authority.rfind('@').map_or("", |i| &authority[..=i]);
            format!("{credentials}{addr}")
        }
        None => authority.to_owned(),
    };
    if !driver_retries {
        options.push("retryWrites=false");
    }
    let path = if path.is_empty() { "/" } else { path };
    match options.is_empty() {
        true => format!("mongodb://{authority}{path}"),
        false => format!("mongodb://{authority}{path}?{}", options.join("&")),
    }
}

/// One client: claim a random lease, act, release or lapse; back off when denied. Like a
/// service that gives up an old handle late, it keeps the token of a term it let lapse and,
/// granted the same lease again in a newer term, sometimes releases the old token first: a
/// release that ignored the token's epoch would end the new term under its holder.
async fn client(
    leases: Leases,
    i: usize,
    config: LeaseWorkload,
    mut rng: StdRng,
    deadline: Instant,
) -> LeaseWorkloadReport {
    let holder = format!("client-{i}");
    let mut r = LeaseWorkloadReport::default();
    let mut lapsed: Option<(String, crate::Token)> = None;
    while Instant::now() < deadline {
        let lease = format!("l{}", rng.random_range(0..config.leases));
        r.claims += 1;
        match leases.claim(&lease, &holder, config.term).await {
            Ok(token) => {
                r.granted += 1;
                let stale = lapsed.take_if(|(l, old)| *l == lease && old.epoch() < token.epoch());
                if let Some((_, old)) = stale.filter(|_| rng.random_bool(0.5)) {
                    if old.release().await.is_err() {
                        r.errors += 1;
                    }
                }
                let act = config.term.mul_f64(rng.random_range(0.0..0.6));
                sleep(act).await;
                if rng.random_bool(0.5) {
                    match token.release().await {
                        Ok(_) => r.released += 1,
                        Err(_) => r.errors += 1,
                    }
                } else {
                    lapsed = Some((lease, token));
                }
            }
            Err(Error::ClaimDenied { .. }) => {
                r.denied += 1;
                sleep(Duration::from_millis(rng.random_range(20..200))).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "live client: claim failed");
                r.errors += 1;
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
    leases.shutdown().await;
    r
}

/// Samples global time every 50 ms until `deadline`; returns how many reads answered.
async fn read_clock(
    substrate: Substrate,
    deadline: Instant,
    progress: impl Fn(Duration) + Send + Sync + 'static,
) -> u64 {
    let (started, mut reads, mut told) = (Instant::now(), 0, Duration::ZERO);
    while Instant::now() < deadline {
        if crate::clock::global_time(&substrate).await.is_ok() {
            reads += 1;
        }
        let elapsed = started.elapsed();
        if elapsed >= told + Duration::from_secs(1) {
            told = elapsed;
            progress(elapsed);
        }
        sleep(Duration::from_millis(50)).await;
    }
    reads
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_uri_keeps_credentials_and_options() {
        let proxy: Option<SocketAddr> = Some("127.0.0.1:4000".parse().unwrap());
        assert_eq!(
            client_uri(
                "mongodb://127.0.0.1:27117/?replicaSet=secantus",
                proxy,
                true
            ),
            "mongodb://127.0.0.1:4000/?replicaSet=secantus&directConnection=true"
        );
        assert_eq!(
            client_uri(
                "mongodb://u:p@db:27017/app?directConnection=false&w=majority&retryWrites=true",
                proxy,
                false
            ),
            "mongodb://u:p@127.0.0.1:4000/app?w=majority&directConnection=true&retryWrites=false"
        );
        assert_eq!(
            client_uri("mongodb://db", None, false),
            "mongodb://db/?retryWrites=false"
        );
        assert_eq!(
            client_uri("mongodb://u:p@db:1/x", None, true),
            "mongodb://u:p@db:1/x"
        );
    }

    #[tokio::test]
    async fn the_upstream_is_the_one_host() {
        let a = upstream_of("mongodb://u:p@127.0.0.1:27117/?replicaSet=x").await;
        assert_eq!(a.unwrap(), "127.0.0.1:27117".parse().unwrap());
        let e = upstream_of("mongodb://a:1,b:2/").await.unwrap_err();
        assert!(e.to_string().contains("several hosts"), "{e}");
        assert!(upstream_of("mongodb+srv://x/").await.is_err());
    }
}
