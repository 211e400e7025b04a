//! The global clock (PROTOCOLS.md §1): read it, keep it ticking, watch it.
//!
//! Leases are timed in global time, so at least one [`ClockUpdater`] must run against a
//! deployment for leases to ever expire; run one per process (they race harmlessly: one wins each
//! interval, the others stand by).

use crate::error::Error;
use crate::record::{self, Recorder};
use crate::runtime::{Call, Router, Worker};
use crate::substrate::Substrate;
use futures_util::Stream;
use std::time::Duration;
use tenure::actor::Actor;
use tenure::clock::watcher::WatcherOutput;
use tenure::clock::{
    stall_threshold, ClockWatcher, Reader, Updater, UpdaterConfig, UpdaterOutput, WatcherConfig,
};
use tenure::effects::Effects;
use tenure::history::Operation;
use tenure::substrate::ReadConcern;
use tenure::time::GlobalTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Reads global time once, linearizably: every write acknowledged before the call is reflected.
/// A deployment whose clock document does not exist yet reads as 0.
pub async fn global_time(substrate: &Substrate) -> Result<GlobalTime, Error> {
    let rec = substrate.recorder();
    let call = record::invoke(rec, || Operation::ClockRead { value: None });
    let result = substrate
        .execute(&Reader::request(ReadConcern::Linearizable))
        .await;
    let value = Reader::decode(&result);
    let known = value.as_ref().ok().copied();
    record::complete(rec, call, known.is_none(), || Operation::ClockRead {
        value: known,
    });
    Ok(value?)
}

/// Publishes each updater outcome; failures are logged (the worker rebuilds itself).
struct UpdaterRouter {
    advanced: watch::Sender<Option<GlobalTime>>,
    recorder: Option<Recorder>,
}

impl Router<Updater> for UpdaterRouter {
    fn route(&mut self, out: UpdaterOutput) {
        match out {
            UpdaterOutput::Ready { base } => {
                tracing::debug!(global_time = base.0, "clock updater ready");
            }
            UpdaterOutput::Advanced { from, to, .. } => {
                tracing::trace!(from = from.0, to = to.0, "global time advanced");
                metrics::counter!("tenure_clock_advances_total").increment(1);
                record::event(self.recorder.as_ref(), || Operation::ClockAdvance {
                    from,
                    to,
                });
                self.advanced.send_replace(Some(to));
            }
            UpdaterOutput::AdvanceUnknown { from, to } => {
                tracing::debug!(
                    from = from.0,
                    to = to.0,
                    "a clock advance's outcome is unknown"
                );
                record::unsure(self.recorder.as_ref(), || Operation::ClockAdvance {
                    from,
                    to,
                });
            }
            UpdaterOutput::Conflict { observed } => {
                tracing::trace!(observed = observed.0, "another updater advanced the clock");
                metrics::counter!("tenure_clock_conflicts_total").increment(1);
            }
            UpdaterOutput::Failed(e) => {
                tracing::warn!(error = %e, "clock updater failed; rebuilding after the backoff delay");
            }
        }
    }
}

/// The updater's default interval: Juju's 1 s.
pub const DEFAULT_UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// The updater's default backoff delay, 5 s: shorter than Juju's 30 s because it is the clock
/// step bound `S` every lease holder budgets for (a 30 s lease would keep only 25 s of it).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(5);

/// Builder for a [`ClockUpdater`]; defaults: [`DEFAULT_UPDATE_INTERVAL`], [`DEFAULT_BACKOFF`].
#[derive(Clone, Debug)]
pub struct ClockUpdaterBuilder {
    config: UpdaterConfig,
    cancel: CancellationToken,
}

impl ClockUpdaterBuilder {
    /// A deliberately broken variant of the updater (the names `tenure check --list-mutants`
    /// prints), so that a live check can show it catches it. Never in production.
    pub fn mutant(mut self, mutant: Option<tenure::mutant::Mutant>) -> Self {
        self.config.mutant = mutant;
        self
    }

    /// How often the winning updater advances the clock (default 1 s).
    pub fn update_interval(mut self, d: Duration) -> Self {
        self.config.update_interval = d;
        self
    }

    /// How long a losing updater stands by, and the delay before rebuilding after a failure
    /// (default 5 s). It is the clock step bound `S`: lease holders lose up to that much of
    /// their guarantee after a failover (DESIGN.md, "The arithmetic a holder must get right").
    pub fn backoff_delay(mut self, d: Duration) -> Self {
        self.config.backoff_delay = d;
        self
    }

    /// A token whose cancellation stops the updater (default: a fresh one).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Validates the configuration and starts the updater.
    pub fn spawn(self, substrate: &Substrate) -> Result<ClockUpdater, Error> {
        let updater = Updater::new(self.config)?;
        let (tx, rx) = watch::channel(None);
        let start: Call<Updater, UpdaterRouter> = Box::new(|u, _, now| u.handle_start(now));
        let worker = Worker::spawn(
            "clock updater",
            updater,
            UpdaterRouter {
                advanced: tx,
                recorder: substrate.recorder().cloned(),
            },
            substrate.clone(),
            start,
            self.cancel,
        )?;
        Ok(ClockUpdater {
            worker,
            advanced: rx,
        })
    }
}

/// The clock updater worker: advances global time by this process's elapsed monotonic time.
pub struct ClockUpdater {
    worker: Worker<Updater, UpdaterRouter>,
    advanced: watch::Receiver<Option<GlobalTime>>,
}

impl ClockUpdater {
    /// A builder with the defaults.
    pub fn builder() -> ClockUpdaterBuilder {
        ClockUpdaterBuilder {
            config: UpdaterConfig {
                update_interval: DEFAULT_UPDATE_INTERVAL,
                backoff_delay: DEFAULT_BACKOFF,
                mutant: None,
            },
            cancel: CancellationToken::new(),
        }
    }

    /// The global time this updater last wrote (`None` before its first advance).
    pub fn advanced(&self) -> watch::Receiver<Option<GlobalTime>> {
        self.advanced.clone()
    }

    /// Whether the worker runs.
    pub fn is_running(&self) -> bool {
        self.worker.is_running()
    }

    /// Stops the updater and waits for its task. Leases keep their global times; another
    /// updater (or this one, restarted) continues from the stored value. An advance still in
    /// flight is recorded as of unknown outcome.
    pub async fn shutdown(&self) {
        self.worker
            .shutdown(Box::new(|u, _, now| u.handle_stop(now)))
            .await;
    }
}

/// What a [`ClockWatch`] knows about global time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClockHealth {
    /// No poll has answered yet.
    Unknown,
    /// Global time moved within the stall threshold; it last read `global_time`.
    Advancing {
        /// The latest global time seen.
        global_time: GlobalTime,
    },
    /// Global time has not moved for longer than the stall threshold: no updater is advancing
    /// it, so no lease expires until one does (start a [`ClockUpdater`]).
    Stalled {
        /// The value global time is stuck at.
        global_time: GlobalTime,
        /// How long it had stood still when the stall was detected.
        stalled_for: Duration,
    },
}

impl ClockHealth {
    /// `Ok` with the latest global time unless the clock is stalled (or never read).
    pub fn ensure_advancing(self) -> Result<GlobalTime, Error> {
        match self {
            ClockHealth::Advancing { global_time } => Ok(global_time),
            ClockHealth::Stalled {
                global_time,
                stalled_for,
            } => Err(Error::ClockStalled {
                global_time,
                stalled_for,
            }),
            ClockHealth::Unknown => Err(Error::Clock(tenure::clock::ClockError::Store {
                context: "watching global time".into(),
                cause: "no poll has answered yet".into(),
            })),
        }
    }
}

struct WatchRouter {
    latest: watch::Sender<Option<GlobalTime>>,
    health: watch::Sender<ClockHealth>,
    recorder: Option<Recorder>,
}

impl Router<ClockWatcher> for WatchRouter {
    fn route(&mut self, out: WatcherOutput) {
        match out {
            // A latest-value slot: a slow consumer sees only the newest time (coalescing).
            WatcherOutput::Time(t) => {
                record::event(self.recorder.as_ref(), || Operation::ClockEmitted {
                    value: t,
                });
                self.latest.send_replace(Some(t));
                if matches!(*self.health.borrow(), ClockHealth::Stalled { .. }) {
                    tracing::info!(global_time = t.0, "global time advances again");
                }
                metrics::gauge!("tenure_clock_stalled").set(0.0);
                self.health
                    .send_replace(ClockHealth::Advancing { global_time: t });
            }
            WatcherOutput::Stalled {
                global_time,
                stalled_for,
            } => {
                tracing::error!(
                    global_time = global_time.0,
                    ?stalled_for,
                    "global time is not advancing: no lease will expire until a clock updater runs"
                );
                metrics::gauge!("tenure_clock_stalled").set(1.0);
                self.health.send_replace(ClockHealth::Stalled {
                    global_time,
                    stalled_for,
                });
            }
            WatcherOutput::PollFailed(e) => tracing::debug!(error = %e, "clock poll failed"),
        }
    }
}

/// The default poll interval of a [`ClockWatch`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Builder for a [`ClockWatch`]; defaults: [`DEFAULT_POLL_INTERVAL`], a stall threshold of
/// [`stall_threshold`] of the default updater settings (12 s), or two polls if longer.
#[derive(Clone, Debug)]
pub struct ClockWatchBuilder {
    poll_interval: Duration,
    stall_after: Option<Duration>,
    cancel: CancellationToken,
    mutant: Option<tenure::mutant::Mutant>,
}

impl ClockWatchBuilder {
    /// A deliberately broken variant of the watcher (the names `tenure check --list-mutants`
    /// prints), so that a live check can show it catches it. Never in production.
    pub fn mutant(mut self, mutant: Option<tenure::mutant::Mutant>) -> Self {
        self.mutant = mutant;
        self
    }

    /// How often global time is read (majority reads).
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Report [`ClockHealth::Stalled`] once global time has not moved for this long. Set it
    /// to [`stall_threshold`] of your updaters' settings if they are not the defaults.
    pub fn stall_after(mut self, d: Duration) -> Self {
        self.stall_after = Some(d);
        self
    }

    /// A token whose cancellation stops the watch (default: a fresh one).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Validates the configuration and starts polling.
    pub fn spawn(self, substrate: &Substrate) -> Result<ClockWatch, Error> {
        let default_stall = stall_threshold(&ClockUpdater::builder().config);
        let stall_after = self
            .stall_after
            .unwrap_or_else(|| default_stall.max(self.poll_interval * 2));
        let watcher = ClockWatcher::new(WatcherConfig {
            poll_interval: self.poll_interval,
            stall_after: Some(stall_after),
            mutant: self.mutant,
        })?;
        let (tx, rx) = watch::channel(None);
        let (health_tx, health) = watch::channel(ClockHealth::Unknown);
        let start: Call<ClockWatcher, WatchRouter> = Box::new(|w, _, now| w.handle_timeout(now));
        let worker = Worker::spawn(
            "clock watcher",
            watcher,
            WatchRouter {
                latest: tx,
                health: health_tx,
                recorder: substrate.recorder().cloned(),
            },
            substrate.clone(),
            start,
            self.cancel,
        )?;
        Ok(ClockWatch {
            worker,
            latest: rx,
            health,
        })
    }
}

/// Polls global time, publishes each value strictly later than the last, and says when it
/// stalls ([`ClockWatch::health`]; metric `tenure_clock_stalled`, 0 or 1).
pub struct ClockWatch {
    worker: Worker<ClockWatcher, WatchRouter>,
    latest: watch::Receiver<Option<GlobalTime>>,
    health: watch::Receiver<ClockHealth>,
}

impl ClockWatch {
    /// A builder with the defaults.
    pub fn builder() -> ClockWatchBuilder {
        ClockWatchBuilder {
            poll_interval: DEFAULT_POLL_INTERVAL,
            stall_after: None,
            cancel: CancellationToken::new(),
            mutant: None,
        }
    }

    /// Starts polling every `poll_interval`, with the default stall threshold.
    pub fn spawn(substrate: &Substrate, poll_interval: Duration) -> Result<ClockWatch, Error> {
        ClockWatch::builder()
            .poll_interval(poll_interval)
            .spawn(substrate)
    }

    /// The latest value as a `watch` receiver.
    pub fn subscribe(&self) -> watch::Receiver<Option<GlobalTime>> {
        self.latest.clone()
    }

    /// Whether global time advances, as of the last poll.
    pub fn health(&self) -> ClockHealth {
        *self.health.borrow()
    }

    /// Every change of [`ClockWatch::health`], as a `watch` receiver (alert on `Stalled`).
    pub fn health_changes(&self) -> watch::Receiver<ClockHealth> {
        self.health.clone()
    }

    /// Each newer global time, as a stream (values a slow reader missed are skipped).
    pub fn stream(&self) -> impl Stream<Item = GlobalTime> + Send + 'static {
        let rx = self.latest.clone();
        futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let latest = *rx.borrow_and_update();
                if let Some(t) = latest {
                    return Some((t, rx));
                }
            }
        })
    }

    /// Stops polling.
    pub async fn shutdown(&self) {
        self.worker
            .shutdown(Box::new(|_, _, _| Effects::none()))
            .await;
    }
}
