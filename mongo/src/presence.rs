//! Presence (PROTOCOLS.md §5): which agents are alive, within one model (namespace).
//!
//! A [`Presence`] owns the model's ping [batcher](tenure::presence::Batcher): every pinger of the
//! process hands it its pings, and it writes them as one bulk `$bit or` upsert per flush
//! interval. [`Presence::pinger`] starts a pinger for a key; [`Presence::watcher`] starts a
//! watcher (with the pruner it triggers after some syncs) whose [`PresenceWatch::watch`] streams a
//! key's alive/dead state. Models never see each other's documents.

use crate::error::Error;
use crate::record::{self, CallId, Recorder};
use crate::runtime::{Call, Caller, Router, Worker};
use crate::substrate::Substrate;
use futures_util::Stream;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tenure::actor::Actor;
use tenure::effects::{Effects, OpId};
use tenure::history::Operation;
use tenure::jitter::Jitter;
use tenure::mutant::Mutant;
use tenure::presence::batcher::BatcherOutput;
use tenure::presence::pruner::PrunerOutput;
use tenure::presence::{
    Batcher, BatcherConfig, Pinger, PingerOutput, PresenceConfig, PresenceWatcher, PruneTrigger,
    Pruner, WatchId, WatcherOutput,
};
use tenure::substrate::OpResult;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

/// A caller of [`Presence::flush`]: answered once every bulk in flight when it called has
/// landed, with the first failure if one did not.
struct FlushWaiter {
    bulks: BTreeSet<OpId>,
    failed: Option<String>,
    answer: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct BatcherRouter {
    flushes: Vec<FlushWaiter>,
}

impl BatcherRouter {
    /// Bulk `bulk` ended (`failed` says how, if it did not land).
    fn ended(&mut self, bulk: OpId, failed: Option<String>) {
        for w in &mut self.flushes {
            if w.bulks.remove(&bulk) && w.failed.is_none() {
                w.failed.clone_from(&failed);
            }
        }
        let (done, waiting) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|w| w.bulks.is_empty());
        self.flushes = waiting;
        for w in done {
            let _ = w.answer.send(w.failed.map_or(Ok(()), Err));
        }
    }
}

impl Router<Batcher> for BatcherRouter {
    fn route(&mut self, out: BatcherOutput) {
        match out {
            BatcherOutput::Flushed { bulk, docs, lag } => {
                metrics::histogram!("tenure_presence_flush_docs").record(docs as f64);
                metrics::histogram!("tenure_presence_flush_lag_seconds").record(lag.as_secs_f64());
                self.ended(bulk, None);
            }
            BatcherOutput::Requeued { bulk, docs, cause } => {
                tracing::debug!(docs, %cause, "presence flush failed; pings requeued");
                self.ended(bulk, Some(cause));
            }
            BatcherOutput::Refused(why) => tracing::warn!(%why, "ping refused"),
        }
    }
}

/// Builder for [`Presence`].
#[derive(Clone, Debug)]
pub struct PresenceBuilder {
    config: PresenceConfig,
    prune_automatically: bool,
    cancel: CancellationToken,
    mutant: Option<Mutant>,
}

impl PresenceBuilder {
    /// A deliberately broken variant of the batcher, pingers and watchers (the names `tenure
    /// check --list-mutants` prints), so that a live check can show it catches it. Never in
    /// production.
    pub fn mutant(mut self, mutant: Option<Mutant>) -> Self {
        self.mutant = mutant;
        self
    }

    /// The slot length, whole seconds from 1 s to 1 h (default 30 s). Every process of a model
    /// must use the same.
    pub fn period(mut self, period: Duration) -> Self {
        self.config.period = period;
        self
    }

    /// How often the batcher writes the pings it gathered (default 1 s, at most 60 s). The
    /// period must be at least 3.4 times as long: a ping must be stored, even resent once,
    /// before its slot ends (`PresenceConfig::ping_interval` says why).
    pub fn flush_interval(mut self, d: Duration) -> Self {
        self.config.flush_interval = d;
        self
    }

    /// Whether each watcher starts a prune pass by itself now and then, after a sync (default
    /// true, as in Juju: about every 20 syncs). Turn it off where one process prunes on its own
    /// schedule through [`PresenceWatch::prune`], or where a test must know what each pass
    /// removed.
    pub fn prune_automatically(mut self, on: bool) -> Self {
        self.prune_automatically = on;
        self
    }

    /// A token whose cancellation stops this presence's batcher and every pinger, watcher and
    /// pruner it started (default: a fresh one), as the other handles' `cancellation` does.
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Validates and starts the model's batcher.
    pub fn build(self, substrate: &Substrate) -> Result<Presence, Error> {
        self.config.validate()?;
        let batcher = Batcher::new(BatcherConfig {
            jitter_seed: Some(rand::random()),
            mutant: self.mutant,
            ..self.config.batcher_config()
        })?;
        let worker = Worker::spawn(
            "presence batcher",
            batcher,
            BatcherRouter::default(),
            substrate.clone(),
            Box::new(|_, _, _| Effects::none()),
            self.cancel.child_token(),
        )?;
        Ok(Presence {
            inner: Arc::new(PresenceInner {
                cancel: self.cancel,
                config: self.config,
                prune_automatically: self.prune_automatically,
                substrate: substrate.clone(),
                mutant: self.mutant,
                batcher: worker,
            }),
        })
    }
}

struct PresenceInner {
    /// The parent of every worker's token ([`PresenceBuilder::cancellation`]).
    cancel: CancellationToken,
    config: PresenceConfig,
    prune_automatically: bool,
    substrate: Substrate,
    batcher: Worker<Batcher, BatcherRouter>,
    mutant: Option<Mutant>,
}

/// One model's presence in this process: its batcher, and the factory of pingers and watchers.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use tenure_mongo::{Presence, Substrate};
///
/// # async fn run(substrate: Substrate) -> Result<(), tenure_mongo::Error> {
/// let presence = Presence::builder("model-a").build(&substrate)?;
/// // This process says it is alive...
/// let pinger = presence.pinger("agent-7").await?;
/// // ...and another learns when it is not.
/// let watch = presence.watcher()?;
/// let mut agent = Box::pin(watch.watch("agent-7").await?);
/// while let Some(alive) = agent.next().await {
///     println!("agent-7 is {}", if alive { "alive" } else { "dead" });
/// }
/// pinger.stop().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Presence {
    inner: Arc<PresenceInner>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("model", &self.inner.config.model)
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// A builder for `model` (a valid name: the prefix of every presence document's `_id`).
    pub fn builder(model: impl Into<String>) -> PresenceBuilder {
        // Juju's timing, 30 s slots and a flush every second, unless told otherwise.
        PresenceBuilder {
            config: PresenceConfig::new(model),
            prune_automatically: true,
            cancel: CancellationToken::new(),
            mutant: None,
        }
    }

    /// The model.
    pub fn model(&self) -> &str {
        &self.inner.config.model
    }

    /// Starts pinging for `key`: measures the offset to the server clock, takes a new sequence,
    /// registers the being, then pings once per slot. Resolves once started.
    pub async fn pinger(&self, key: &str) -> Result<PresencePinger, Error> {
        let pinger = Pinger::new(self.inner.config.clone(), key, self.inner.mutant)?;
        let (started_tx, started) = oneshot::channel();
        let router = PingerRouter {
            batcher: self.inner.batcher.caller(),
            started: Some(started_tx),
            killed: None,
            key: key.to_owned(),
        };
        let worker = Worker::spawn(
            "presence pinger",
            pinger,
            router,
            self.inner.substrate.clone(),
            Box::new(|p, _, now| p.handle_start(now)),
            self.inner.cancel.child_token(),
        )?;
        let started = self.inner.substrate.bounded("pinger", async {
            started.await.map_err(|_| Error::Stopped("presence pinger"))
        });
        match started.await {
            Ok(Ok(seq)) => {
                let pinging = || Operation::Pinging {
                    key: key.to_owned(),
                    seq,
                };
                let recorder = self.inner.substrate.recorder().cloned();
                let recorded = recorder.map(|r| {
                    let call = r.invoke(pinging());
                    (r, call, key.to_owned())
                });
                Ok(PresencePinger {
                    worker,
                    seq,
                    recorded,
                })
            }
            Ok(Err(why)) => {
                worker.shutdown(Box::new(|_, _, _| Effects::none())).await;
                Err(Error::Store(format!(
                    "presence pinger for {key:?} failed to start: {why}"
                )))
            }
            Err(e) => {
                worker.shutdown(Box::new(|_, _, _| Effects::none())).await;
                Err(e)
            }
        }
    }

    /// Starts a watcher of this model (and the pruner it triggers now and then, unless
    /// [`PresenceBuilder::prune_automatically`] turned that off).
    pub fn watcher(&self) -> Result<PresenceWatch, Error> {
        let config = self.inner.config.clone();
        let pruner = Worker::spawn(
            "presence pruner",
            Pruner::new(config.clone(), self.inner.mutant)?,
            PrunerRouter::default(),
            self.inner.substrate.clone(),
            Box::new(|_, _, _| Effects::none()),
            self.inner.cancel.child_token(),
        )?;
        let (synced_tx, synced) = watch::channel(Synced::default());
        let router = WatcherRouter {
            watches: HashMap::new(),
            pruner: pruner.caller(),
            trigger: self.inner.prune_automatically.then(PruneTrigger::new),
            jitter: Jitter::seeded(rand::random()),
            synced: synced_tx,
            recorder: self.inner.substrate.recorder().cloned(),
        };
        let worker = Worker::spawn(
            "presence watcher",
            PresenceWatcher::new(config, self.inner.mutant)?,
            router,
            self.inner.substrate.clone(),
            Box::new(|w, _, now| w.handle_timeout(now)),
            self.inner.cancel.child_token(),
        )?;
        Ok(PresenceWatch {
            inner: Arc::new(WatchInner {
                worker,
                pruner,
                synced,
            }),
        })
    }

    /// Deletes every presence document of this model (and of no other). Stop its pingers and
    /// watchers first.
    pub async fn remove_model(&self) -> Result<u64, Error> {
        let substrate = &self.inner.substrate;
        substrate
            .bounded("remove_model", async {
                let mut removed = 0;
                for op in self.inner.config.remove_model_ops() {
                    match substrate.execute(&op).await {
                        OpResult::Ok(tenure::substrate::Reply::Count(n)) => removed += n,
                        other => return Err(Error::Store(format!("removing model: {other}"))),
                    }
                }
                Ok(removed)
            })
            .await
    }

    /// Writes the pings gathered so far now, rather than at the next flush interval, and waits
    /// (at most the substrate's call bound) until they, and any write already under way, have
    /// landed. On failure the pings stay queued for the next flush.
    pub async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let call: Call<Batcher, BatcherRouter> = Box::new(move |b, r, now| {
            let fx = b.handle_flush(now);
            let waiter = FlushWaiter {
                bulks: b.bulks_in_flight().collect(),
                failed: None,
                answer: tx,
            };
            if waiter.bulks.is_empty() {
                let _ = waiter.answer.send(Ok(()));
            } else {
                r.flushes.push(waiter);
            }
            fx
        });
        self.inner
            .batcher
            .call_and_wait("flush", call, rx)
            .await?
            .map_err(|why| {
                Error::Store(format!(
                    "presence flush failed (pings kept for the next flush): {why}"
                ))
            })
    }

    /// Flushes what is pending, then stops the batcher (later pings are refused).
    pub async fn shutdown(&self) {
        let _ = self.flush().await;
        self.inner
            .batcher
            .shutdown(Box::new(|b, _, now| b.handle_stop(now)))
            .await;
    }
}

struct PingerRouter {
    batcher: Caller<Batcher, BatcherRouter>,
    started: Option<oneshot::Sender<Result<u64, String>>>,
    killed: Option<oneshot::Sender<()>>,
    key: String,
}

impl Router<Pinger> for PingerRouter {
    fn route(&mut self, out: PingerOutput) {
        match out {
            PingerOutput::Started { seq } => {
                tracing::debug!(key = %self.key, seq, "presence pinger started");
                if let Some(tx) = self.started.take() {
                    let _ = tx.send(Ok(seq));
                }
            }
            PingerOutput::Ping(ping) => {
                // A full batcher queue drops this ping; the next interval pings again.
                self.batcher
                    .try_call(Box::new(move |b, _, now| b.handle_ping(&ping, now)));
            }
            PingerOutput::Killed => {
                if let Some(tx) = self.killed.take() {
                    let _ = tx.send(());
                }
            }
            PingerOutput::Failed(why) => {
                tracing::warn!(key = %self.key, %why, "presence pinger failed");
                if let Some(tx) = self.started.take() {
                    let _ = tx.send(Err(why));
                }
            }
        }
    }
}

/// A running pinger: the key is alive while it pings.
pub struct PresencePinger {
    worker: Worker<Pinger, PingerRouter>,
    seq: u64,
    /// The recorder and the call of this pinger's `Pinging` entry, ended on stop or kill.
    recorded: Option<(Recorder, CallId, String)>,
}

impl std::fmt::Debug for PresencePinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresencePinger")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl PresencePinger {
    /// The sequence this start took.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The history's word that this key no longer pings (P5 stops counting it at once).
    fn record_stop(&self) {
        if let Some((r, call, key)) = &self.recorded {
            r.complete(
                *call,
                Operation::Pinging {
                    key: key.clone(),
                    seq: self.seq,
                },
            );
        }
    }

    /// Stops pinging: watchers see the key dead once its last ping leaves their two-slot window.
    pub async fn stop(self) {
        self.record_stop();
        self.worker
            .shutdown(Box::new(|p, _, now| p.handle_stop(now)))
            .await;
    }

    /// Stops and marks the sequence dead at once: watchers see the key dead at their next sync.
    /// Waits (at most the substrate's call bound) for the dead marker to be written.
    pub async fn kill(self) -> Result<(), Error> {
        self.record_stop();
        let (tx, rx) = oneshot::channel();
        let call: Call<Pinger, PingerRouter> = Box::new(move |p, r, now| {
            r.killed = Some(tx);
            p.handle_kill(now)
        });
        let killed = self.worker.call_and_wait("kill", call, rx).await;
        self.worker
            .shutdown(Box::new(|_, _, _| Effects::none()))
            .await;
        killed
    }
}

/// What a prune pass removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pruned {
    /// Ping slot documents deleted.
    pub pings: u64,
    /// Superseded beings deleted.
    pub beings: u64,
}

#[derive(Default)]
struct PrunerRouter {
    /// Whoever waits for the running pass (an explicit [`PresenceWatch::prune`]).
    waiting: Vec<oneshot::Sender<Result<Pruned, String>>>,
}

impl Router<Pruner> for PrunerRouter {
    fn route(&mut self, out: PrunerOutput) {
        let result = match out {
            PrunerOutput::Pruned { pings, beings } => {
                tracing::debug!(pings, beings, "presence pruned");
                Ok(Pruned { pings, beings })
            }
            PrunerOutput::Failed(why) => {
                tracing::warn!(%why, "presence prune failed");
                Err(why)
            }
        };
        for tx in self.waiting.drain(..) {
            let _ = tx.send(result.clone());
        }
    }
}

struct WatcherRouter {
    /// Each watch's channel, and its number in the history (watch ids are per watcher, the
    /// history's per recorder).
    watches: HashMap<WatchId, (watch::Sender<bool>, u64)>,
    pruner: Caller<Pruner, PrunerRouter>,
    /// `None`: passes start only through [`PresenceWatch::prune`].
    trigger: Option<PruneTrigger>,
    jitter: Jitter,
    synced: watch::Sender<Synced>,
    recorder: Option<Recorder>,
}

/// What the watcher's syncs came to, for [`PresenceWatch::sync`] and [`PresenceWatch::prune`].
#[derive(Clone, Debug, Default)]
struct Synced {
    /// The slot of the last sync that succeeded.
    slot: Option<i64>,
    /// Why the last sync failed, if it did: a caller waiting for a sync gets this rather than
    /// waiting for the next one to succeed (which may be never).
    failed: Option<String>,
}

impl Router<PresenceWatcher> for WatcherRouter {
    fn route(&mut self, out: WatcherOutput) {
        match out {
            WatcherOutput::Change { watch, alive, key } => {
                if let Some((tx, recorded)) = self.watches.get(&watch) {
                    record::event(self.recorder.as_ref(), || Operation::Presence {
                        watch: *recorded,
                        key,
                        alive,
                    });
                    tx.send_replace(alive);
                }
            }
            WatcherOutput::Synced { slot } => {
                self.synced.send_replace(Synced {
                    slot: Some(slot),
                    failed: None,
                });
                let due = self.trigger.as_mut();
                if due.is_some_and(|t| t.after_sync(&mut self.jitter)) {
                    self.pruner
                        .try_call(Box::new(move |p, _, now| p.handle_prune(slot, now)));
                }
            }
            WatcherOutput::SyncFailed(why) => {
                tracing::debug!(%why, "presence sync failed");
                self.synced.send_modify(|s| s.failed = Some(why));
            }
        }
    }
}

struct WatchInner {
    worker: Worker<PresenceWatcher, WatcherRouter>,
    pruner: Worker<Pruner, PrunerRouter>,
    synced: watch::Receiver<Synced>,
}

/// A presence watcher of one model; cheap to clone.
#[derive(Clone)]
pub struct PresenceWatch {
    inner: Arc<WatchInner>,
}

impl std::fmt::Debug for PresenceWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceWatch").finish_non_exhaustive()
    }
}

impl PresenceWatch {
    /// `key`'s liveness as a stream: the current state first (after the watcher's first sync),
    /// then each change. A slow reader sees the newest state, not every flap. Dropping the stream
    /// ends the watch.
    pub async fn watch(
        &self,
        key: &str,
    ) -> Result<impl Stream<Item = bool> + Send + 'static, Error> {
        tenure::validate::check_name("presence key", key)?;
        let (tx, rx) = watch::channel(false);
        let (id_tx, id_rx) = oneshot::channel();
        let k = key.to_owned();
        self.inner
            .worker
            .call(Box::new(move |w, r, now| match w.handle_watch(&k, now) {
                Ok((id, fx)) => {
                    let recorded = r.recorder.as_ref().map_or(id.0, Recorder::unique);
                    r.watches.insert(id, (tx, recorded));
                    let _ = id_tx.send(Ok(id));
                    fx
                }
                Err(e) => {
                    let _ = id_tx.send(Err(e));
                    Effects::none()
                }
            }))
            .await?;
        let id = id_rx
            .await
            .map_err(|_| Error::Stopped("presence watcher"))??;
        let guard = Unwatch {
            caller: self.inner.worker.caller(),
            id,
        };
        let mut rx = rx;
        rx.mark_unchanged();
        Ok(futures_util::stream::unfold(
            (rx, guard),
            |(mut rx, guard)| async move {
                rx.changed().await.ok()?;
                let alive = *rx.borrow_and_update();
                Some((alive, (rx, guard)))
            },
        ))
    }

    /// Whether `key` is alive as of the watcher's last sync (false before the first).
    pub async fn alive(&self, key: &str) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        let k = key.to_owned();
        let call: Call<PresenceWatcher, WatcherRouter> = Box::new(move |w, _, _| {
            let _ = tx.send(w.alive(&k));
            Effects::none()
        });
        self.inner.worker.call_and_wait("alive", call, rx).await
    }

    /// Syncs as soon as possible and waits until a sync has completed after this call.
    pub async fn sync(&self) -> Result<(), Error> {
        let mut synced = self.inner.synced.clone();
        synced.mark_unchanged();
        let worker = &self.inner.worker;
        worker
            .bounded("sync", async {
                worker
                    .call(Box::new(|w, _, now| w.handle_start_sync(now)))
                    .await?;
                synced
                    .changed()
                    .await
                    .map_err(|_| Error::Stopped("presence watcher"))
            })
            .await?;
        let failed = synced.borrow().failed.clone();
        match failed {
            None => Ok(()),
            Some(why) => Err(Error::Store(format!("presence sync failed: {why}"))),
        }
    }

    /// Runs a prune pass now (one also runs, at random, about once per 260 syncs): deletes ping
    /// documents older than the last four slots and beings no longer referenced, never a key's
    /// newest. Waits for the pass.
    pub async fn prune(&self) -> Result<Pruned, Error> {
        let slot = match self.inner.synced.borrow().slot {
            Some(slot) => slot,
            None => {
                return Err(Error::Store(
                    "the watcher has not synced yet; call sync() first".into(),
                ))
            }
        };
        let (tx, rx) = oneshot::channel();
        let call: Call<Pruner, PrunerRouter> = Box::new(move |p, r, now| {
            r.waiting.push(tx);
            let fx = p.handle_prune(slot, now);
            if fx.is_empty() && !p.is_running() {
                // Nothing started (cannot happen: a pass always starts with a delete).
                for tx in r.waiting.drain(..) {
                    let _ = tx.send(Err("no prune pass started".into()));
                }
            }
            fx
        });
        self.inner
            .pruner
            .call_and_wait("prune", call, rx)
            .await?
            .map_err(Error::Store)
    }

    /// Stops the watcher and its pruner.
    pub async fn shutdown(&self) {
        self.inner
            .worker
            .shutdown(Box::new(|_, _, _| Effects::none()))
            .await;
        self.inner
            .pruner
            .shutdown(Box::new(|_, _, _| Effects::none()))
            .await;
    }
}

/// Ends a watch when its stream is dropped.
struct Unwatch {
    caller: Caller<PresenceWatcher, WatcherRouter>,
    id: WatchId,
}

impl Drop for Unwatch {
    fn drop(&mut self) {
        let id = self.id;
        self.caller.try_call(Box::new(move |w, r, now| {
            w.handle_unwatch(id, now);
            r.watches.remove(&id);
            Effects::none()
        }));
    }
}
