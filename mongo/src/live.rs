//! Live workloads: clients driving the adapter against a real server for a while, so that a
//! [`crate::Recorder`] attached to the substrate captures a history the core's properties can
//! judge (`tenure live` runs them; so can a service's own test).
//!
//! The lease workload: clients, each its own lease manager (its own writer), contend for a few
//! leases. A client claims one at random; holding it, it acts for a random part of the term,
//! then either releases it or lets it lapse; denied, it backs off a little. Two clock updaters
//! keep global time moving and a reader samples it, so the history also holds the clock's
//! reads and advances. Every random choice comes from the seed.

use crate::error::Error;
use crate::substrate::Substrate;
use crate::{ClockUpdater, Leases};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;
use tenure::time::SkewBounds;
use tokio::time::{sleep, Instant};

/// The most clients a live workload runs.
pub const CLIENTS_MAX: usize = 256;

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
        }
    }
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
        Ok(())
    }

    /// Runs the workload on `substrate` (attach a [`crate::Recorder`] to it to check the run),
    /// calling `progress` with the time elapsed about once a second.
    pub async fn run(
        &self,
        substrate: &Substrate,
        progress: impl Fn(Duration) + Send + Sync + 'static,
    ) -> Result<LeaseWorkloadReport, Error> {
        self.validate()?;
        let updaters = (0..2)
            .map(|_| {
                ClockUpdater::builder()
                    .update_interval(Duration::from_millis(50))
                    .backoff_delay(self.skew.clock_step_max)
                    .spawn(substrate)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = Instant::now() + self.duration;
        let clients = (0..self.clients)
            .map(|i| {
                let leases = Leases::builder("live")
                    .writer(format!("live-{i}"))
                    .skew(self.skew)
                    .max_sleep(self.term)
                    .build(substrate)?;
                let (config, rng) = (self.clone(), StdRng::seed_from_u64(self.seed ^ (i as u64)));
                Ok(tokio::spawn(client(leases, i, config, rng, deadline)))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let reader = tokio::spawn(read_clock(substrate.clone(), deadline, progress));
        let mut report = LeaseWorkloadReport::default();
        for c in clients {
            let r = c
                .await
                .map_err(|e| Error::Store(format!("a live client failed: {e}")))?;
            report.claims += r.claims;
            report.granted += r.granted;
            report.denied += r.denied;
            report.released += r.released;
            report.errors += r.errors;
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

/// One client: claim a random lease, act, release or lapse; back off when denied.
async fn client(
    leases: Leases,
    i: usize,
    config: LeaseWorkload,
    mut rng: StdRng,
    deadline: Instant,
) -> LeaseWorkloadReport {
    let holder = format!("client-{i}");
    let mut r = LeaseWorkloadReport::default();
    while Instant::now() < deadline {
        let lease = format!("l{}", rng.random_range(0..config.leases));
        r.claims += 1;
        match leases.claim(&lease, &holder, config.term).await {
            Ok(token) => {
                r.granted += 1;
                let act = config.term.mul_f64(rng.random_range(0.0..0.6));
                sleep(act).await;
                if rng.random_bool(0.5) {
                    match token.release().await {
                        Ok(_) => r.released += 1,
                        Err(_) => r.errors += 1,
                    }
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
