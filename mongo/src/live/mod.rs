//! Live workloads: clients driving the adapter against a real server for a while, every call
//! recorded, so the core's properties can judge the history (`tenure live` runs them; so can a
//! service's own test), under the faults of [`faults`].
//!
//! A workload runs one or more protocols, each with its own clients ([`clock`], [`lease`],
//! [`leadership`], [`presence`] say what theirs do). Every client is one recording process with
//! its own connection, recorder and local clock, so its calls and beliefs are its own in the
//! history. Process 0 keeps global time (two updaters) and samples it, for every protocol
//! times its work in global time. Every random choice, the clocks' skews and the server faults'
//! schedule come from the seed; network faults are drawn from it as requests arrive.

pub mod clock;
pub mod faults;
pub mod leadership;
pub mod lease;
pub mod presence;
pub mod processes;
pub mod proxy;

use crate::error::Error;
use crate::record::Recorder;
use crate::runtime::LocalClock;
use crate::substrate::Substrate;
use faults::{Fired, LiveFault, Restart, ServerEvent};
use processes::{ClientCommand, ClientFired, ClientSpec};
use proxy::{FaultProxy, ProxyCounts};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tenure::history::History;
use tenure::mutant::{Mutant, Protocol};
use tenure::property::PropertyId;
use tenure::time::SkewBounds;
use tokio::time::{sleep, Instant};

/// The properties a protocol's workload history has data for (and the test suite requires).
/// G3 is judged with the updaters' step bound, which the caller knows
/// ([`History::check_clock_rate`] with [`SKEW`]).
pub fn checks(protocol: Protocol) -> &'static [PropertyId] {
    use PropertyId::*;
    match protocol {
        Protocol::Clock => &[G1, G2, G3, G5],
        Protocol::Lease => &[G1, G2, G3, L6, F1],
        Protocol::Leadership => &[T1, T4, L6, F1],
        Protocol::Presence => &[P4],
    }
}

/// Whether `fault` leaves every ping on time: P5 is judged only in runs whose faults all do
/// (skew at most).
fn leaves_pings_prompt(fault: LiveFault) -> bool {
    fault == LiveFault::Skew
}

/// The faults a run of mutant `m` gets out of `faults`: all of them, but for a mutant that
/// breaks P5 only those that leave the run able to judge P5.
pub fn faults_for_mutant(m: Mutant, faults: &BTreeSet<LiveFault>) -> BTreeSet<LiveFault> {
    let keep = |f: &&LiveFault| m.breaks() != PropertyId::P5 || leaves_pings_prompt(**f);
    faults.iter().filter(keep).copied().collect()
}

/// What a live run of `protocol`'s workload can judge: the properties of [`checks`], and P5
/// for presence in a run whose pings no fault could hold up ([`faults_for_mutant`]).
pub fn judged(protocol: Protocol) -> impl Iterator<Item = PropertyId> {
    let p5 = (protocol == Protocol::Presence).then_some(PropertyId::P5);
    checks(protocol).iter().copied().chain(p5)
}

/// The mutants whose broken property a live run of their protocol's workload judges: those a
/// live run can catch. Each runs in its own protocol's workload.
pub fn live_mutants() -> impl Iterator<Item = Mutant> {
    Mutant::ALL
        .iter()
        .copied()
        .filter(|m| judged(m.protocol()).any(|p| p == m.breaks()))
}

/// Refuses a mutant no client of `protocols` would run.
pub fn check_mutant(m: Mutant, protocols: &BTreeSet<Protocol>) -> Result<(), Error> {
    // Every workload keeps the clock.
    if m.protocol() == Protocol::Clock || protocols.contains(&m.protocol()) {
        return Ok(());
    }
    Err(Error::Input(tenure::validate::InputError::InvalidConfig(
        format!(
            "mutant {m} is a {0} mutant, which only the {0} workload runs (try --protocol {0})",
            m.protocol().name()
        ),
    )))
}

/// The clock bounds the workloads' managers assume by default, and the live checks use: ρ of
/// a host's clock, and the step of their updaters (interval 50 ms, backoff 100 ms).
pub const SKEW: SkewBounds = SkewBounds {
    rate_error_ppm: 500,
    clock_step_max: Duration::from_millis(100),
};

/// The most clients a live workload runs per protocol.
pub const CLIENTS_MAX: usize = 256;
/// How far apart the clients' clocks may start (under `skew`).
const OFFSET_MAX: Duration = Duration::from_secs(3600);

/// How a live workload runs.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The protocols whose clients run (default: lease).
    pub protocols: BTreeSet<Protocol>,
    /// Concurrent clients per protocol (default 4).
    pub clients: usize,
    /// Leases the lease clients contend for; also the applications the leadership clients
    /// are units of (default 2).
    pub leases: usize,
    /// How long the clients run (default 30 s).
    pub duration: Duration,
    /// The term each lease claim asks for, and the leadership claim duration (default 1 s).
    pub term: Duration,
    /// Clock bounds the managers assume (the updaters here step at most 100 ms).
    pub skew: SkewBounds,
    /// Seeds every random choice.
    pub seed: u64,
    /// The faults to inject (default none).
    pub faults: BTreeSet<LiveFault>,
    /// A lease or clock mutant every lease manager and clock updater runs (default none).
    pub mutant: Option<Mutant>,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            protocols: BTreeSet::from([Protocol::Lease]),
            clients: 4,
            leases: 2,
            duration: Duration::from_secs(30),
            term: Duration::from_secs(1),
            skew: SKEW,
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
    /// Starts a client process (`tenure live-client`): with it, every client runs in a process
    /// of its own, and the `pause` and `crash` faults can strike them ([`processes`]).
    pub client_command: Option<ClientCommand>,
}

/// What one protocol's clients did: named counts ("claims", "granted", "errors", ...; each
/// protocol's module says which).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    /// How many times `what` happened.
    pub fn get(&self, what: &str) -> u64 {
        self.0.get(what).copied().unwrap_or(0)
    }

    /// Every count, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    fn add_to(&mut self, what: impl Into<String>, n: u64) {
        *self.0.entry(what.into()).or_default() += n;
    }

    fn bump(&mut self, what: &'static str) {
        self.add_to(what, 1);
    }

    /// A call that failed (an unknown outcome, an unavailable store): counted, not fatal.
    fn failed(&mut self, e: &Error) {
        tracing::debug!(error = %e, "live client: a call failed");
        self.bump("errors");
    }

    /// `what` if the call succeeded, an error if not.
    fn tally<T>(&mut self, r: Result<T, Error>, what: &'static str) {
        match r {
            Ok(_) => self.bump(what),
            Err(e) => self.failed(&e),
        }
    }

    fn add(&mut self, other: &Counts) {
        for (k, v) in other.iter() {
            self.add_to(k, v);
        }
    }
}

/// One recording process of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveProcess {
    /// Its number in the history.
    pub process: u32,
    /// The protocol it ran (the clock keeper, process 0, runs the clock).
    pub protocol: Protocol,
    /// Its local clock's rate error, parts per million.
    pub rate_ppm: i32,
    /// Its local clock's offset.
    pub offset: Duration,
}

/// A live run: what the clients did, the history recorded, and the faults injected.
#[derive(Clone, Debug)]
pub struct LiveRun {
    /// What each protocol's clients did.
    pub counts: BTreeMap<Protocol, Counts>,
    /// Every process's history, merged.
    pub history: History,
    /// Entries the recorders dropped (over their bound).
    pub dropped: u64,
    /// The recording processes.
    pub processes: Vec<LiveProcess>,
    /// The server faults scheduled from the seed.
    pub schedule: Vec<ServerEvent>,
    /// The server faults as they fired.
    pub fired: Vec<Fired>,
    /// The client faults (pauses, crashes) as they struck.
    pub client_faults: Vec<ClientFired>,
    /// What the fault proxy did (empty without network faults).
    pub proxy: ProxyCounts,
    /// For P5 ([`History::check_pinging_keys_stay_alive`]): how long a key must have pinged
    /// to be reported alive, when presence clients ran and no fault could hold a ping up
    /// (skew at most); `None` otherwise.
    pub presence_window: Option<Duration>,
}

impl LiveRun {
    /// Store operations invoked by `protocol`'s processes.
    pub fn operations(&self, protocol: Protocol) -> usize {
        let by_process = self.history.store_operations_by_process();
        self.processes
            .iter()
            .filter(|p| p.protocol == protocol)
            .map(|p| by_process.get(&p.process).copied().unwrap_or(0))
            .sum()
    }
}

/// What every client starts with.
struct Client {
    /// Its process's connection (with its recorder and local clock).
    substrate: Substrate,
    /// Its number among its protocol's clients.
    index: usize,
    workload: Workload,
    /// Its own stream of random choices.
    rng: StdRng,
    /// When it stops.
    deadline: Instant,
}

/// One recording process: its connection and recorder.
struct Process {
    protocol: Protocol,
    substrate: Substrate,
    recorder: Recorder,
}

impl Workload {
    fn validate(&self) -> Result<(), Error> {
        let bad = |why: &str| {
            Err(Error::Input(tenure::validate::InputError::InvalidConfig(
                why.to_owned(),
            )))
        };
        if self.protocols.is_empty() {
            return bad("a live workload runs at least one protocol");
        }
        if self.clients == 0 || self.clients > CLIENTS_MAX {
            return bad("a live workload runs 1 to 256 clients per protocol");
        }
        if self.leases == 0 || self.leases > 1_000 {
            return bad("a live workload contends for 1 to 1,000 leases");
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(24 * 3600) {
            return bad("a live workload runs for more than 0 s and at most a day");
        }
        tenure::validate::check_lease_duration(self.term)?;
        if let Some(m) = self.mutant {
            check_mutant(m, &self.protocols)?;
        }
        Ok(())
    }

    /// P5's window, if this run can judge it: presence clients, and no fault but skew.
    fn presence_window(&self) -> Option<Duration> {
        (self.faults.iter().all(|f| leaves_pings_prompt(*f))
            && self.protocols.contains(&Protocol::Presence))
        .then(presence::alive_window)
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

    /// The protocol of each process: the clock keeper, then `clients` per protocol.
    fn roles(&self) -> Vec<Protocol> {
        let clients = self
            .protocols
            .iter()
            .flat_map(|p| std::iter::repeat_n(*p, self.clients));
        std::iter::once(Protocol::Clock).chain(clients).collect()
    }

    /// Runs the workload against `target`, calling `progress` with the time elapsed about once
    /// a second.
    pub async fn run(
        &self,
        target: &LiveTarget,
        progress: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<LiveRun, Error> {
        self.validate()?;
        if target.client_command.is_none() {
            if let Some(f) = self.faults.iter().find(|f| f.needs_processes()) {
                return Err(Error::Input(tenure::validate::InputError::InvalidConfig(
                    format!("the {f} fault needs clients in processes of their own"),
                )));
            }
        }
        let admin = connect(&target.uri, target, LocalClock::SYSTEM, None).await?;
        if self.protocols.contains(&Protocol::Lease) {
            lease::create_data(&admin, self.leases).await?;
        }
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
        let roles = self.roles();
        let mut processes = Vec::with_capacity(roles.len());
        let mut described = Vec::with_capacity(roles.len());
        for (i, protocol) in (0..).zip(roles) {
            let (rate_ppm, offset) = self.clock_of(i);
            described.push(LiveProcess {
                process: i,
                protocol,
                rate_ppm,
                offset,
            });
            // Client processes connect for themselves.
            if i > 0 && target.client_command.is_some() {
                continue;
            }
            let recorder = Recorder::new(i);
            let clock = LocalClock::skewed(rate_ppm, offset)?;
            let substrate = connect(&uri, target, clock, Some(recorder.clone())).await?;
            processes.push(Process {
                protocol,
                substrate,
                recorder,
            });
        }
        // Global time keeps running while the network faults strike the keeper, as where
        // updaters on several machines keep it: one of its two updaters goes around the proxy.
        // A stalled clock only delays expiries (the safe side), and would hide the handovers
        // that a holder's deadline, measured wrong, breaks.
        let steady = match &proxy {
            Some(_) => {
                let keeper = &processes[0];
                let recorder = Some(keeper.recorder.clone());
                // The clients' options (retryable writes off unless asked), without the proxy.
                let direct = client_uri(&target.uri, None, target.driver_retries);
                Some(connect(&direct, target, keeper.substrate.clock(), recorder).await?)
            }
            None => None,
        };
        let schedule = faults::server_schedule(&self.faults, self.duration, self.seed);
        let start = Instant::now();
        let injector = {
            let (admin, schedule, restart) =
                (admin.clone(), schedule.clone(), target.restart.clone());
            tokio::spawn(async move { faults::inject(&admin, schedule, start, restart).await })
        };
        let setting = Setting {
            uri,
            target,
            described,
            start,
            steady,
        };
        let driven = self.drive(&processes, &setting, progress).await;
        let fired = injector
            .await
            .map_err(|e| Error::Store(format!("the fault injector failed: {e}")))?;
        if self.faults.contains(&LiveFault::Failpoint) {
            let _ = faults::disarm(&admin).await;
        }
        let _ = admin.database().drop().await;
        let driven = driven?;
        let dropped = processes.iter().map(|p| p.recorder.dropped()).sum();
        let files: Vec<PathBuf> = driven.children.iter().map(|c| c.history.clone()).collect();
        let children = processes::read_histories(&files);
        if let Some(dir) = files.first().and_then(|f| f.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        let history = History::merge(
            processes
                .iter()
                .map(|p| p.recorder.history())
                .chain(children?),
        );
        let mut described = setting.described;
        described.extend(driven.children.iter().map(|c| c.process));
        described.sort_by_key(|p| p.process);
        // A client process's first number is described already.
        described.dedup_by_key(|p| p.process);
        Ok(LiveRun {
            counts: driven.counts,
            history,
            dropped,
            processes: described,
            schedule,
            fired,
            client_faults: driven.client_faults,
            proxy: proxy.map(|p| p.counts()).unwrap_or_default(),
            presence_window: self.presence_window(),
        })
    }

    /// The clock keeper (process 0) and the clients, until the duration is up.
    async fn drive(
        &self,
        processes: &[Process],
        setting: &Setting<'_>,
        progress: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<Driven, Error> {
        let keeper = &processes[0].substrate;
        let updaters = [keeper, setting.steady.as_ref().unwrap_or(keeper)]
            .into_iter()
            .map(|s| clock::updater(s, self))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = setting.start + self.duration;
        let reader = tokio::spawn(read_clock(keeper.clone(), deadline, progress));
        let mut driven = match &setting.target.client_command {
            None => self.in_tasks(&processes[1..], deadline).await,
            Some(command) => self.in_processes(command, setting, deadline).await,
        };
        let reads = reader
            .await
            .map_err(|e| Error::Store(format!("the clock reader failed: {e}")))?;
        for u in &updaters {
            u.shutdown().await;
        }
        if let Ok(d) = &mut driven {
            d.counts
                .entry(Protocol::Clock)
                .or_default()
                .add_to("keeper reads", reads);
        }
        driven
    }

    /// Each client a task of this process.
    async fn in_tasks(&self, clients: &[Process], deadline: Instant) -> Result<Driven, Error> {
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = Client {
                    substrate: p.substrate.clone(),
                    index: i % self.clients,
                    workload: self.clone(),
                    rng: StdRng::seed_from_u64(self.client_seed(i, p.protocol)),
                    deadline,
                };
                (p.protocol, tokio::spawn(run_client(p.protocol, c)))
            })
            .collect();
        let mut driven = Driven::default();
        for (protocol, task) in tasks {
            let counts = task
                .await
                .map_err(|e| Error::Store(format!("a live client failed: {e}")))??;
            driven.counts.entry(protocol).or_default().add(&counts);
        }
        Ok(driven)
    }

    /// Each client a process of its own (started by `command`), paused and crashed as the
    /// client faults say.
    async fn in_processes(
        &self,
        command: &ClientCommand,
        setting: &Setting<'_>,
        deadline: Instant,
    ) -> Result<Driven, Error> {
        let dir = std::env::temp_dir().join(format!(
            "tenure-live-{}-{:x}",
            std::process::id(),
            self.seed
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Store(format!("cannot create {}: {e}", dir.display())))?;
        let clients = &setting.described[1..];
        let next = u32::try_from(setting.described.len()).unwrap_or(u32::MAX);
        let next_process = Arc::new(std::sync::atomic::AtomicU32::new(next));
        let running = processes::Running::default();
        let schedule =
            processes::client_schedule(&self.faults, self.duration, self.term, self.seed);
        let injector = tokio::spawn(processes::inject(
            schedule,
            setting.start,
            running.clone(),
            self.seed,
        ));
        let tasks: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let spec = self.spec(setting, i, p, dir.join(format!("p{}.jsonl", p.process)));
                let task = tokio::spawn(processes::supervise(
                    command.clone(),
                    spec,
                    deadline,
                    next_process.clone(),
                    running.clone(),
                ));
                (*p, task)
            })
            .collect();
        let mut driven = Driven::default();
        let mut failed = None;
        for (p, task) in tasks {
            match task.await {
                Ok(Ok(s)) => {
                    driven.counts.entry(p.protocol).or_default().add(&s.counts);
                    driven.children.extend(s.processes.iter().map(|n| Child {
                        process: LiveProcess { process: *n, ..p },
                        history: dir.join(format!("p{n}.jsonl")),
                    }));
                }
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(e) => {
                    failed = failed.or(Some(Error::Store(format!("a supervisor failed: {e}"))))
                }
            }
        }
        driven.client_faults = injector
            .await
            .map_err(|e| Error::Store(format!("the client fault injector failed: {e}")))?;
        failed.map_or(Ok(driven), Err)
    }

    /// Client `i`'s stream of random choices (clients of different protocols draw from
    /// different streams).
    fn client_seed(&self, i: usize, protocol: Protocol) -> u64 {
        self.seed ^ (i as u64) ^ ((protocol as u64) << 32)
    }

    /// What client `i` (process `p`) of a run in processes needs.
    fn spec(
        &self,
        setting: &Setting<'_>,
        i: usize,
        p: &LiveProcess,
        history: PathBuf,
    ) -> ClientSpec {
        ClientSpec {
            protocol: p.protocol,
            index: i % self.clients,
            process: p.process,
            uri: setting.uri.clone(),
            database: setting.target.database.clone(),
            allow_standalone: setting.target.allow_standalone,
            clients: self.clients,
            leases: self.leases,
            term: self.term,
            skew: self.skew,
            seed: self.client_seed(i, p.protocol),
            mutant: self.mutant,
            rate_ppm: p.rate_ppm,
            offset: p.offset,
            real_origin: crate::runtime::real_time_origin(),
            run_for: self.duration,
            history,
        }
    }
}

/// What a run's clients share: where they connect, and when they started.
struct Setting<'a> {
    /// The clients' URI (through the proxy, with the run's options).
    uri: String,
    target: &'a LiveTarget,
    /// Every recording process as first started.
    described: Vec<LiveProcess>,
    start: Instant,
    /// The clock keeper's connection around the proxy, if there is one.
    steady: Option<Substrate>,
}

/// What the clients came to.
#[derive(Default)]
struct Driven {
    counts: BTreeMap<Protocol, Counts>,
    /// Client processes, restarts included (empty when clients are tasks).
    children: Vec<Child>,
    client_faults: Vec<ClientFired>,
}

/// A client process and its history file.
struct Child {
    process: LiveProcess,
    history: PathBuf,
}

/// Runs one client of `protocol` until its deadline.
async fn run_client(protocol: Protocol, c: Client) -> Result<Counts, Error> {
    match protocol {
        Protocol::Clock => clock::client(c).await,
        Protocol::Lease => lease::client(c).await,
        Protocol::Leadership => leadership::client(c).await,
        Protocol::Presence => presence::client(c).await,
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
    fn a_p5_mutant_runs_under_skew_alone_and_the_others_under_every_fault() {
        let all: BTreeSet<LiveFault> = LiveFault::ALL.iter().copied().collect();
        assert_eq!(
            faults_for_mutant(Mutant::PresenceOneSlotWindow, &all),
            BTreeSet::from([LiveFault::Skew])
        );
        assert_eq!(faults_for_mutant(Mutant::LeaseEpochReuse, &all), all);
        // P5 counts as judged for presence; L5 is judged by no live workload.
        assert!(live_mutants().any(|m| m == Mutant::PresenceJujuPingInterval));
        assert!(!live_mutants().any(|m| m == Mutant::LeaseStaleGlobalRead));
    }

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
