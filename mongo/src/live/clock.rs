//! The clock workload: every client keeps global time with an updater of its own (on its own,
//! possibly skewed, clock), watches it, and reads it often. The updaters race on the one clock
//! document, so the history shows G1 (reads never go back), G2 (no advance lost or doubled)
//! and G5 (the watchers emit only later values). Now and then a client crashes its updater
//! and starts a new one, as a restarted process would.

use super::{Client, Counts, Workload};
use crate::clock::global_time;
use crate::error::Error;
use crate::{ClockUpdater, ClockWatch, Substrate};
use rand::Rng;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// The updaters' interval; with their backoff at most the workload's step bound S.
const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// How often each client's watcher polls.
const WATCH_POLL: Duration = Duration::from_millis(100);
/// How often the first client's watcher polls: faster than the updaters advance the clock, so
/// it reads values again, and must emit each once (G5).
const EAGER_POLL: Duration = Duration::from_millis(10);
/// The chance, per read, that the client restarts its updater.
const RESTART_CHANCE: f64 = 0.005;

/// An updater as the workload runs them (the clock keeper's too).
pub(super) fn updater(substrate: &Substrate, w: &Workload) -> Result<ClockUpdater, Error> {
    ClockUpdater::builder()
        .update_interval(UPDATE_INTERVAL.min(w.skew.clock_step_max))
        .backoff_delay(w.skew.clock_step_max)
        .mutant(w.mutant)
        .spawn(substrate)
}

/// One client until `deadline`.
pub(super) async fn client(c: Client) -> Result<Counts, Error> {
    let Client {
        substrate,
        index,
        workload: w,
        mut rng,
        deadline,
    } = c;
    let mut n = Counts::default();
    let mut updater = updater(&substrate, &w)?;
    let watch = ClockWatch::builder()
        .poll_interval(if index == 0 { EAGER_POLL } else { WATCH_POLL })
        .mutant(w.mutant)
        .spawn(&substrate)?;
    while Instant::now() < deadline {
        n.tally(global_time(&substrate).await, "reads");
        if rng.random_bool(RESTART_CHANCE) {
            updater.shutdown().await;
            updater = self::updater(&substrate, &w)?;
            n.bump("updater restarts");
        }
        sleep(Duration::from_millis(rng.random_range(10..60))).await;
    }
    updater.shutdown().await;
    watch.shutdown().await;
    Ok(n)
}
