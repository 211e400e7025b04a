//! Leases (PROTOCOLS.md §2-§3): claim or extend, check, wait until expired, fenced writes.
//!
//! A [`Leases`] handle drives one core [`LeaseManager`] in a tokio task. A successful claim
//! returns a [`Token`]: the lease, the holder, the fencing [`Epoch`] of the term and the **local
//! deadline** (a monotonic [`Instant`]) until which the holder may act as the holder. Past that
//! instant the holder must stop acting, whatever it believes, until a new claim succeeds.

use crate::error::Error;
use crate::fence::Fence;
pub use crate::fence::Fenced;
use crate::record;
use crate::runtime::{Call, LocalClock, Router, Worker};
use crate::substrate::Substrate;
use mongodb::bson::Document as BsonDocument;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tenure::effects::Effects;
use tenure::history::{ClaimOutcome, Operation};
use tenure::lease::{
    Epoch, LeaseManager, ManagerConfig, ManagerError, ManagerOutput, RequestId, RetryConfig,
};
use tenure::time::{GlobalTime, LocalTime, SkewBounds};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Answers waiting callers by request id, and publishes the holders while anyone watches them;
/// everything else goes to logs and metrics.
struct Waiters {
    pending: HashMap<RequestId, oneshot::Sender<ManagerOutput>>,
    /// Shared with the handle, which subscribes ([`Leases::holder_changes`]).
    holders: Arc<watch::Sender<BTreeMap<String, Holding>>>,
}

/// What the manager's cache says is held ([`LeaseManager::leases`]).
fn holdings(m: &LeaseManager) -> BTreeMap<String, Holding> {
    m.leases()
        .map(|(name, info)| {
            let holding = Holding {
                holder: info.holder,
                epoch: info.epoch,
                global_expiry: info.global_expiry,
            };
            (name.to_owned(), holding)
        })
        .collect()
}

/// A claim's answer in the history's terms, and whether its outcome is unknown; `None` for
/// answers that are not about claims.
pub(crate) fn claim_outcome(out: &ManagerOutput) -> Option<(ClaimOutcome, bool)> {
    Some(match out {
        ManagerOutput::Claimed {
            epoch,
            local_deadline,
            ..
        } => (
            ClaimOutcome::Granted {
                epoch: *epoch,
                local_deadline: *local_deadline,
            },
            false,
        ),
        ManagerOutput::Denied { .. } => (ClaimOutcome::Denied, false),
        ManagerOutput::Failed { error, .. } => (
            ClaimOutcome::Failed {
                error: error.to_string(),
            },
            matches!(error, ManagerError::OutcomeUnknown(_)),
        ),
        _ => return None,
    })
}

/// Logs and counts what a manager reports; shared by every worker that runs one.
pub(crate) fn observe_manager_output(out: &ManagerOutput) {
    match out {
        ManagerOutput::Claimed {
            lease,
            holder,
            epoch,
            ..
        } => {
            tracing::debug!(%lease, %holder, epoch = epoch.0, "lease claimed");
            metrics::counter!("tenure_lease_claims_total", "result" => "claimed").increment(1);
        }
        ManagerOutput::Denied { .. } => {
            metrics::counter!("tenure_lease_claims_total", "result" => "denied").increment(1);
        }
        ManagerOutput::Expired {
            lease,
            epoch,
            global,
        } => {
            tracing::debug!(%lease, epoch = epoch.0, global_time = global.0, "lease expired");
            metrics::counter!("tenure_lease_expiries_total").increment(1);
        }
        ManagerOutput::Released { vacated, .. } => {
            let result = if *vacated { "vacated" } else { "already ended" };
            metrics::counter!("tenure_lease_releases_total", "result" => result).increment(1);
        }
        ManagerOutput::Stopped(e) => tracing::info!(reason = %e, "lease manager stopped"),
        ManagerOutput::Checked { .. }
        | ManagerOutput::WaitEnded { .. }
        | ManagerOutput::WaitCancelled { .. }
        | ManagerOutput::Failed { .. } => {}
    }
}

impl Router<LeaseManager> for Waiters {
    fn route(&mut self, out: ManagerOutput) {
        observe_manager_output(&out);
        let req = match &out {
            ManagerOutput::Claimed { req, .. }
            | ManagerOutput::Denied { req, .. }
            | ManagerOutput::Checked { req, .. }
            | ManagerOutput::Released { req, .. }
            | ManagerOutput::WaitEnded { req }
            | ManagerOutput::WaitCancelled { req }
            | ManagerOutput::Failed { req, .. } => *req,
            ManagerOutput::Expired { .. } | ManagerOutput::Stopped(_) => return,
        };
        if let Some(tx) = self.pending.remove(&req) {
            // The caller may have given up (dropped its future); nothing to do then.
            let _ = tx.send(out);
        }
    }

    /// The cache is copied only while someone watches it: a manager of many leases pays
    /// nothing for a feature it does not use.
    fn settled(&mut self, m: &LeaseManager) {
        if self.holders.receiver_count() == 0 {
            return;
        }
        let now = holdings(m);
        self.holders.send_if_modified(|known| {
            let changed = *known != now;
            if changed {
                *known = now;
            }
            changed
        });
    }
}

type ManagerCall = Call<LeaseManager, Waiters>;

/// A held lease, as [`Leases::holders`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holding {
    /// Who holds it.
    pub holder: String,
    /// The term's fencing epoch.
    pub epoch: Epoch,
    /// The global time at which the term ends unless extended (it is expired some time
    /// after, by whichever manager sees it first).
    pub global_expiry: GlobalTime,
}

/// Builder for [`Leases`]. Defaults: a random writer id, one-minute expiry sweep, the core's
/// retry policy, and skew bounds for NTP-grade hardware clocks (ρ = 500 ppm) with a clock step
/// bound `S` of 5 s, matching [`crate::clock::ClockUpdater`]'s default backoff.
#[derive(Clone, Debug)]
pub struct LeasesBuilder {
    config: ManagerConfig,
    cancel: CancellationToken,
}

/// How often [`Leases::acquire`] looks at a lease held by another: a wait learns of an expiry
/// from its own manager's sweep, but of a release through another manager only by looking.
pub const ACQUIRE_POLL: Duration = Duration::from_secs(1);

/// The skew bounds [`Leases`] assume unless told otherwise.
pub const DEFAULT_SKEW: SkewBounds = SkewBounds {
    rate_error_ppm: 500,
    clock_step_max: crate::clock::DEFAULT_BACKOFF,
};

impl LeasesBuilder {
    /// This manager's writer id; must be unique among live managers (default: random).
    pub fn writer(mut self, writer: impl Into<String>) -> Self {
        self.config.writer = writer.into();
        self
    }

    /// Longest time between expiry sweeps (default 1 min).
    pub fn max_sleep(mut self, d: Duration) -> Self {
        self.config.max_sleep = d;
        self
    }

    /// Most store calls the manager runs at once (default 16): calls on different leases
    /// proceed independently, so one slow lease delays no other; 1 serialises every call.
    pub fn calls_max(mut self, n: usize) -> Self {
        self.config.calls_max = n;
        self
    }

    /// Retry policy for claims that meet a concurrent change.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.config.retry = retry;
        self
    }

    /// Clock bounds for computing local deadlines. `clock_step_max` must be at least the
    /// largest step any clock updater of the deployment makes (its update interval and backoff
    /// delay, whichever is larger).
    pub fn skew(mut self, skew: SkewBounds) -> Self {
        self.config.skew = skew;
        self
    }

    /// A deliberately broken variant of the protocol (the names `tenure check --list-mutants`
    /// prints), so that a live check can show it catches it. Never in production.
    pub fn mutant(mut self, mutant: Option<tenure::mutant::Mutant>) -> Self {
        self.config.mutant = mutant;
        self
    }

    /// A token whose cancellation stops the manager (default: a fresh one).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Validates the configuration and starts the manager.
    pub fn build(self, substrate: &Substrate) -> Result<Leases, Error> {
        let mut config = self.config;
        config.jitter_seed = Some(rand::random());
        let manager = LeaseManager::new(config)?;
        let start: ManagerCall = Box::new(|m, _, now| m.handle_start(now));
        let holders = Arc::new(watch::Sender::new(BTreeMap::new()));
        let worker = Worker::spawn(
            "lease manager",
            manager,
            Waiters {
                pending: HashMap::new(),
                holders: holders.clone(),
            },
            substrate.clone(),
            start,
            self.cancel,
        )?;
        Ok(Leases {
            inner: Arc::new(Inner {
                worker,
                next_req: AtomicU64::new(1),
                substrate: substrate.clone(),
                holders,
            }),
        })
    }
}

struct Inner {
    worker: Worker<LeaseManager, Waiters>,
    next_req: AtomicU64,
    substrate: Substrate,
    holders: Arc<watch::Sender<BTreeMap<String, Holding>>>,
}

/// A lease manager for one namespace; cheap to clone, shared by every task of the process.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").finish_non_exhaustive()
    }
}

/// Proof of a successful claim.
#[derive(Clone, Debug)]
pub struct Token {
    leases: Leases,
    lease: String,
    holder: String,
    epoch: Epoch,
    local_deadline: LocalTime,
    global_expiry: GlobalTime,
}

impl Token {
    /// The lease name.
    pub fn lease(&self) -> &str {
        &self.lease
    }
    /// The holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }
    /// The fencing epoch of this term: larger than every earlier holder's.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// The instant until which the holder may act as the holder.
    pub fn local_deadline(&self) -> Instant {
        self.clock().instant_of(self.local_deadline)
    }
    /// The global time at which the stored term ends.
    pub fn global_expiry(&self) -> GlobalTime {
        self.global_expiry
    }
    /// Whether the local deadline is still ahead. Cheap; no I/O.
    pub fn is_valid(&self) -> bool {
        self.clock().now() < self.local_deadline
    }

    fn clock(&self) -> LocalClock {
        self.leases.inner.substrate.clock()
    }

    /// The manager that granted it.
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Asks the manager whether the holder still holds the lease with this token's epoch
    /// (refreshing from the store before saying no).
    pub async fn check(&self) -> Result<bool, Error> {
        let held = self.leases.check(&self.lease, &self.holder).await?;
        Ok(held == Some(self.epoch))
    }

    /// Gives the lease up now, so another holder may claim it at once instead of waiting for
    /// the term to expire (a rolling deploy hands over in one round trip). Consumes the token:
    /// stop acting as the holder *before* calling. Only this token's term is released, never
    /// another holder's nor a later term of this holder's, so releasing an old token is
    /// harmless. `Ok(true)` if this call vacated the lease, `Ok(false)` if the term had already
    /// ended. On an error the outcome is unknown; the term ends at its expiry at the latest.
    /// Answers within the substrate's call bound.
    pub async fn release(self) -> Result<bool, Error> {
        // The holder's belief in this term ends now, whatever the release's fate.
        record::event(self.leases.inner.substrate.recorder(), || {
            Operation::Release {
                lease: self.lease.clone(),
                holder: self.holder.clone(),
                epoch: Some(self.epoch),
            }
        });
        let (lease, holder, epoch) = (self.lease.clone(), self.holder.clone(), self.epoch);
        let answer = self
            .leases
            .answer("release", move |m, req, now| {
                m.handle_release(req, &lease, &holder, epoch, now)
            })
            .await?;
        match answer {
            ManagerOutput::Released { vacated, .. } => {
                tracing::debug!(lease = %self.lease, holder = %self.holder, epoch = self.epoch.0, vacated, "lease released");
                Ok(vacated)
            }
            ManagerOutput::Failed { error, .. } => Err(Error::Lease(error)),
            other => Err(Error::Store(format!(
                "unexpected answer to a release: {other:?}"
            ))),
        }
    }

    /// Updates one document of the user's `collection` only if no holder of a later epoch has
    /// written it: the filter adds `{<fence_field>: {$not: {$gt: epoch}}}` and the update sets
    /// `fence_field` to this epoch. Use the same field for every write guarded by this lease.
    /// The write uses the collection's own write concern. Past the local deadline nothing is
    /// written and the answer is [`Fenced::Superseded`].
    ///
    /// ```no_run
    /// use tenure_mongo::mongodb::bson::{doc, Document};
    /// use tenure_mongo::{Fenced, Token};
    ///
    /// # async fn run(token: Token, db: tenure_mongo::mongodb::Database) -> Result<(), tenure_mongo::Error> {
    /// let jobs = db.collection::<Document>("jobs");
    /// let wrote = token
    ///     .fenced_update_one(&jobs, "lease_epoch", doc! { "_id": "nightly" }, doc! { "$set": { "state": "done" } })
    ///     .await?;
    /// if wrote == Fenced::Superseded {
    ///     // A later holder has written (or this term ended): stop acting as the holder.
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fenced_update_one(
        &self,
        collection: &mongodb::Collection<BsonDocument>,
        fence_field: &str,
        filter: BsonDocument,
        update: BsonDocument,
    ) -> Result<Fenced, Error> {
        let fence = Fence {
            substrate: &self.leases.inner.substrate,
            lease: &self.lease,
            epoch: self.epoch,
        };
        fence
            .update_one(self.is_valid(), collection, fence_field, filter, update)
            .await
    }
}

impl Leases {
    /// A builder for a manager of `namespace` (for example `application-leadership`).
    pub fn builder(namespace: impl Into<String>) -> LeasesBuilder {
        let mut config = ManagerConfig::new(namespace, random_id("writer"));
        config.skew = DEFAULT_SKEW;
        LeasesBuilder {
            config,
            cancel: CancellationToken::new(),
        }
    }

    /// The connection this manager uses.
    pub fn substrate(&self) -> &Substrate {
        &self.inner.substrate
    }

    /// A request to the manager (`make` runs in its task), and where its answer will come.
    fn request(
        &self,
        make: impl FnOnce(&mut LeaseManager, RequestId, LocalTime) -> Effects<ManagerOutput>
            + Send
            + 'static,
    ) -> (RequestId, ManagerCall, oneshot::Receiver<ManagerOutput>) {
        let req = RequestId(self.inner.next_req.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        let call: ManagerCall = Box::new(move |m, waiters, now| {
            waiters.pending.insert(req, tx);
            make(m, req, now)
        });
        (req, call, rx)
    }

    /// Asks the manager and waits for its answer, at most the substrate's call bound.
    async fn answer(
        &self,
        what: &'static str,
        make: impl FnOnce(&mut LeaseManager, RequestId, LocalTime) -> Effects<ManagerOutput>
            + Send
            + 'static,
    ) -> Result<ManagerOutput, Error> {
        let (_, call, rx) = self.request(make);
        self.inner.worker.call_and_wait(what, call, rx).await
    }

    /// Claims `lease` for `holder` for `duration`, or extends it if `holder` holds it already
    /// (an extension never shortens the stored term). Fails with [`Error::ClaimDenied`] when
    /// another holder holds it.
    pub async fn claim(
        &self,
        lease: &str,
        holder: &str,
        duration: Duration,
    ) -> Result<Token, Error> {
        let span = tracing::debug_span!("claim", %lease, %holder, ?duration, epoch = tracing::field::Empty);
        self.claim_in(lease, holder, duration, span.clone())
            .instrument(span)
            .await
    }

    async fn claim_in(
        &self,
        lease: &str,
        holder: &str,
        duration: Duration,
        span: tracing::Span,
    ) -> Result<Token, Error> {
        let started = tokio::time::Instant::now();
        let rec = self.inner.substrate.recorder();
        let claim = |outcome| Operation::Claim {
            lease: lease.to_owned(),
            holder: holder.to_owned(),
            duration,
            outcome,
        };
        let call = record::invoke(rec, || claim(None));
        let (l, h) = (lease.to_owned(), holder.to_owned());
        let answer = self
            .answer("claim", move |m, req, now| {
                m.handle_claim(req, &l, &h, duration, now)
            })
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                let unknown = matches!(error, Error::Unanswered { .. });
                let outcome = ClaimOutcome::Failed {
                    error: error.to_string(),
                };
                record::complete(rec, call, unknown, || claim(Some(outcome)));
                return Err(error);
            }
        };
        if let Some((outcome, unknown)) = claim_outcome(&answer) {
            record::complete(rec, call, unknown, || claim(Some(outcome)));
        }
        metrics::histogram!("tenure_lease_claim_seconds").record(started.elapsed().as_secs_f64());
        match answer {
            ManagerOutput::Claimed {
                lease,
                holder,
                epoch,
                local_deadline,
                global_expiry,
                ..
            } => {
                span.record("epoch", epoch.0);
                let validity = self
                    .inner
                    .substrate
                    .clock()
                    .instant_of(local_deadline)
                    .saturating_duration_since(Instant::now());
                metrics::gauge!("tenure_lease_validity_seconds", "lease" => lease.clone())
                    .set(validity.as_secs_f64());
                Ok(Token {
                    leases: self.clone(),
                    lease,
                    holder,
                    epoch,
                    local_deadline,
                    global_expiry,
                })
            }
            ManagerOutput::Denied { lease, holder, .. } => {
                Err(Error::ClaimDenied { lease, holder })
            }
            ManagerOutput::Failed { error, .. } => Err(Error::Lease(error)),
            other => Err(Error::Store(format!(
                "unexpected answer to a claim: {other:?}"
            ))),
        }
    }

    /// The epoch with which `holder` holds `lease`, or `None` if it does not.
    pub async fn check(&self, lease: &str, holder: &str) -> Result<Option<Epoch>, Error> {
        let (l, h) = (lease.to_owned(), holder.to_owned());
        let answer = self
            .answer("check", move |m, req, now| m.handle_check(req, &l, &h, now))
            .await?;
        match answer {
            ManagerOutput::Checked { held, .. } => Ok(held),
            ManagerOutput::Failed { error, .. } => Err(Error::Lease(error)),
            other => Err(Error::Store(format!(
                "unexpected answer to a check: {other:?}"
            ))),
        }
    }

    /// Every lease of the namespace this manager knows to be held, with its holder, epoch and
    /// global expiry: its cache, no I/O (Juju's `Leases()`). The cache is as of the manager's
    /// last refresh, made at each expiry sweep (at most every `max_sleep`, and as each known
    /// term may end), plus its own claims and releases since: another manager's claim shows
    /// up at the next sweep. For one lease's holder *now*, use [`Leases::check`].
    pub async fn holders(&self) -> Result<BTreeMap<String, Holding>, Error> {
        let (tx, rx) = oneshot::channel();
        let call: ManagerCall = Box::new(move |m, _, _| {
            let _ = tx.send(holdings(m));
            Effects::none()
        });
        self.inner.worker.call_and_wait("holders", call, rx).await
    }

    /// [`Leases::holders`] as a `watch` receiver that changes whenever the manager's view
    /// does (a claim, extension, release or expiry, a sweep that found another manager's
    /// claim). Current when returned.
    pub async fn holder_changes(
        &self,
    ) -> Result<watch::Receiver<BTreeMap<String, Holding>>, Error> {
        let rx = self.inner.holders.subscribe();
        // One step of the worker with a subscriber publishes the current view.
        let (tx, done) = oneshot::channel();
        let call: ManagerCall = Box::new(move |_, _, _| {
            let _ = tx.send(());
            Effects::none()
        });
        self.inner
            .worker
            .call_and_wait("holder_changes", call, done)
            .await?;
        Ok(rx)
    }

    /// Claims `lease` for `holder`, waiting up to `timeout` for another holder's term to end
    /// (expire, or be released) if need be: the blocking acquire of etcd's mutex or Curator's
    /// `acquire(time)`, next to [`Leases::claim`]'s single try. A race lost to another waiter
    /// and transient store errors are retried until the deadline; the lease is looked at again
    /// at least every [`ACQUIRE_POLL`], so a release made through another manager is seen
    /// promptly. Fails with [`Error::Timeout`] if another still holds it at the deadline, and
    /// answers within `timeout` plus one call bound.
    pub async fn acquire(
        &self,
        lease: &str,
        holder: &str,
        duration: Duration,
        timeout: Duration,
    ) -> Result<Token, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let failed = match self.claim(lease, holder, duration).await {
                Ok(token) => return Ok(token),
                Err(e @ Error::ClaimDenied { .. }) => e,
                Err(e) if e.is_transient() => e,
                Err(e) => return Err(e),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(match failed {
                    Error::ClaimDenied { .. } => Error::Timeout(timeout),
                    other => other,
                });
            }
            // Wake when the manager sees the term end, or to look again; after a wait that
            // failed (the store unreachable), at the next poll, not at once.
            let next_look = Instant::now() + left.min(ACQUIRE_POLL);
            let waited = tokio::time::timeout_at(next_look, self.wait_until_expired(lease)).await;
            if matches!(waited, Ok(Err(_))) {
                tokio::time::sleep_until(next_look).await;
            }
        }
    }

    /// Resolves once `lease` is observed not held (expired, or never claimed). Cancel it by
    /// dropping the future (for example in `tokio::select!` or with a timeout).
    pub async fn wait_until_expired(&self, lease: &str) -> Result<(), Error> {
        let l = lease.to_owned();
        let (req, call, rx) = self.request(move |m, req, now| m.handle_wait_expired(req, &l, now));
        self.inner.worker.call(call).await?;
        let mut guard = CancelWait {
            leases: self,
            req,
            armed: true,
        };
        let out = rx.await.map_err(|_| Error::Stopped("lease manager"));
        guard.armed = false;
        match out? {
            ManagerOutput::WaitEnded { .. } => Ok(()),
            ManagerOutput::Failed { error, .. } => Err(Error::Lease(error)),
            ManagerOutput::WaitCancelled { .. } => Err(Error::Lease(ManagerError::Stopped(
                "the wait was cancelled".into(),
            ))),
            other => Err(Error::Store(format!(
                "unexpected answer to a wait: {other:?}"
            ))),
        }
    }

    /// Stops the manager: pending requests fail with `Stopped`, and the task is joined. Leases
    /// held through it stay held until they expire: release them first ([`Token::release`])
    /// to hand them over at once.
    pub async fn shutdown(&self) {
        self.inner
            .worker
            .shutdown(Box::new(|m, _, now| m.handle_stop(now)))
            .await;
    }
}

/// Cancels a wait in the manager when its future is dropped before it resolved.
struct CancelWait<'a> {
    leases: &'a Leases,
    req: RequestId,
    armed: bool,
}

impl Drop for CancelWait<'_> {
    fn drop(&mut self) {
        if self.armed {
            let req = self.req;
            // If the queue is full the wait stays registered until the lease is released; its
            // answer then goes nowhere. Harmless.
            let _ = self
                .leases
                .inner
                .worker
                .caller()
                .try_call(Box::new(move |m, w, now| {
                    w.pending.remove(&req);
                    m.handle_cancel_wait(req, now)
                }));
        }
    }
}

/// A random identifier like `writer-3f2a9c...`, unique per process with overwhelming odds.
pub(crate) fn random_id(prefix: &str) -> String {
    format!("{prefix}-{:016x}", rand::random::<u64>())
}
