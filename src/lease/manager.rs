//! The lease manager (PROTOCOLS.md §3): serves claims, token checks and waits over one store
//! client, and expires leases whose holders stopped extending.
//!
//! - **Claim** looks the lease up in the cache: absent → claim, held by the same holder →
//!   extend, held by another → deny without a store call. `Invalid` from the store is retried
//!   (the cache is already refreshed) with bounded, jittered exponential backoff; it never
//!   reaches the caller (M3).
//! - **Check** answers from the cache when held and not past its local expiry; otherwise it
//!   reads its lease's document (one linearizable read, never waiting for a refresh or for the
//!   lease's own calls) before saying "not held" or vouching for an expirable lease (M4).
//! - **Wait until expired** resolves after a store call observes the lease absent (M5), or on
//!   cancellation.
//! - **Expiry ticks** happen at `min(last tick + max_sleep, next local expiry)`: refresh, then
//!   expire every lease whose local expiry has passed, in name order. The store refuses early
//!   expiries whatever the manager computed (M7).
//!
//! - **Independent leases**: calls on different leases run at once (up to
//!   [`ManagerConfig::calls_max`]), so a slow claim or expiry of one lease delays no other
//!   (Juju's 2018 manager); the calls of one lease, and refreshes, run in turn.
//!
//! A granted claim carries the holder's **local deadline**, measured from the start of the store
//! call that earned it and shrunk by the configured skew bounds (DESIGN.md, "The arithmetic a
//! holder must get right"), and the fencing epoch.

use super::store::{CallOn, LeaseStore, StoreError, StoreStep, StoreSuccess};
use super::{Epoch, LeaseInfo};
use crate::actor::Actor;
use crate::effects::{Effects, OpId, OpIds, Renumber};
use crate::jitter::Jitter;
use crate::mutant::Mutant;
use crate::substrate::{Collection, CorruptDocument, OpResult, StoreFailure};
use crate::time::{GlobalTime, LocalTime, SkewBounds, RATE_ERROR_PPM_MAX};
use crate::validate::{check_duration, check_lease_duration, check_name, InputError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use thiserror::Error;

/// Most API requests queued in one manager. Past it, callers get [`ManagerError::Overloaded`]
/// rather than unbounded memory growth.
pub const PENDING_MAX: usize = 10_000;

/// The default for [`ManagerConfig::calls_max`].
pub const CALLS_MAX_DEFAULT: usize = 16;

/// The largest [`ManagerConfig::calls_max`] accepted.
pub const CALLS_MAX_LIMIT: usize = 1_000;

/// Identifies one API request; chosen by the caller, echoed in the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId(pub u64);

/// Bounded, jittered exponential backoff for retries after `Invalid` (Juju PR #9706).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RetryConfig {
    /// Attempts per claim before giving up with [`ManagerError::Contended`] (Juju: 10).
    pub attempts_max: u32,
    /// Delay before the first retry (Juju: 50 ms); doubles per attempt.
    pub delay_min: Duration,
    /// Largest delay between retries.
    pub delay_max: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts_max: 10,
            delay_min: Duration::from_millis(50),
            delay_max: Duration::from_secs(5),
        }
    }
}

/// Manager configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ManagerConfig {
    /// The lease namespace served (e.g. `application-leadership`).
    pub namespace: String,
    /// This manager's unique writer id. Two live managers sharing one is undefined behaviour.
    pub writer: String,
    /// Longest time between expiry ticks (Juju: 1 minute): bounds how late an abandoned lease is
    /// noticed even when the cache knows of no leases.
    pub max_sleep: Duration,
    /// Retry policy after `Invalid`.
    pub retry: RetryConfig,
    /// The clock bounds used to compute holders' local deadlines.
    pub skew: SkewBounds,
    /// Most store calls run at once (each on its own lease, plus one refresh); 1 serialises
    /// every call, as Juju's 2016 manager did.
    pub calls_max: usize,
    /// Seed for retry jitter; `None` disables jitter (models).
    pub jitter_seed: Option<u64>,
    /// A deliberately broken variant, for checker tests.
    pub mutant: Option<Mutant>,
}

impl ManagerConfig {
    /// Juju-like defaults for `namespace` and `writer`: one-minute max sleep, default retry,
    /// exact clocks (set `skew` for production).
    pub fn new(namespace: impl Into<String>, writer: impl Into<String>) -> ManagerConfig {
        ManagerConfig {
            namespace: namespace.into(),
            writer: writer.into(),
            max_sleep: Duration::from_secs(60),
            retry: RetryConfig::default(),
            skew: SkewBounds::EXACT,
            calls_max: CALLS_MAX_DEFAULT,
            jitter_seed: None,
            mutant: None,
        }
    }

    /// Checks every field, with messages naming the field.
    pub fn validate(&self) -> Result<(), InputError> {
        check_name("namespace", &self.namespace)?;
        check_name("writer id", &self.writer)?;
        check_duration("max sleep", self.max_sleep, Duration::from_secs(24 * 3600))?;
        check_duration(
            "retry delay_min",
            self.retry.delay_min,
            Duration::from_secs(60),
        )?;
        check_duration(
            "retry delay_max",
            self.retry.delay_max,
            Duration::from_secs(3600),
        )?;
        if self.retry.delay_min > self.retry.delay_max {
            return Err(InputError::InvalidConfig(format!(
                "retry delay_min ({:?}) must not exceed delay_max ({:?})",
                self.retry.delay_min, self.retry.delay_max
            )));
        }
        if self.retry.attempts_max == 0 || self.retry.attempts_max > 1000 {
            return Err(InputError::InvalidConfig(
                "retry attempts_max must be between 1 and 1000".into(),
            ));
        }
        if !(1..=CALLS_MAX_LIMIT).contains(&self.calls_max) {
            return Err(InputError::InvalidConfig(format!(
                "calls_max must be between 1 and {CALLS_MAX_LIMIT}, not {}",
                self.calls_max
            )));
        }
        if self.skew.rate_error_ppm > RATE_ERROR_PPM_MAX {
            return Err(InputError::InvalidConfig(format!(
                "clock rate error {} ppm is above the {RATE_ERROR_PPM_MAX} ppm limit; fix the host clock",
                self.skew.rate_error_ppm
            )));
        }
        Ok(())
    }
}

/// Why a request failed. Expected outcomes (denied, not held) are not errors; see
/// [`ManagerOutput`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The request's arguments were refused before any store call.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Every retry met a concurrent change; try again later.
    #[error("lease {0:?}: state changing too quickly; try again soon")]
    Contended(String),
    /// The outcome of a write could not be determined; nothing may be inferred about the lease.
    #[error("lease {0:?}: outcome unknown; nothing may be inferred, check again")]
    OutcomeUnknown(String),
    /// The claim succeeded but the skew bounds leave no guaranteed time (S ≥ duration).
    #[error("lease {lease:?}: a duration of {duration:?} is not longer than the clock step bound; use a longer duration")]
    NoGuarantee {
        /// The lease.
        lease: String,
        /// The duration asked for.
        duration: Duration,
    },
    /// Too many requests are queued.
    #[error("lease manager overloaded: {PENDING_MAX} requests pending")]
    Overloaded,
    /// The lease's document is corrupt or foreign. Tenure never writes it; repair or remove it
    /// by hand. Calls on every other lease are unaffected.
    #[error(transparent)]
    Corrupt(#[from] CorruptDocument),
    /// The store refused or failed the call (unreachable, not primary, a rejected command). The
    /// manager keeps its state and serves again once the store answers.
    #[error("store unavailable ({0}); the lease manager keeps serving: try again once the store answers")]
    Unavailable(#[source] StoreFailure),
    /// The holder asked to release this very term while the claim ran: the grant is void
    /// (the release ends it). Claim again for a new term.
    #[error("lease {0:?}: its holder released this term while the claim ran; claim again for a new term")]
    ReleasedMeanwhile(String),
    /// The manager has stopped (after [`LeaseManager::handle_stop`]).
    #[error("lease manager stopped: {0}")]
    Stopped(String),
}

impl ManagerError {
    /// Whether the same request may succeed later without anyone changing anything: the store
    /// was unreachable, the outcome unknown, the lease contended or the manager busy. The others
    /// (bad input, a corrupt document, a stopped manager, no guarantee) need a person or a
    /// different request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ManagerError::Contended(_)
                | ManagerError::ReleasedMeanwhile(_)
                | ManagerError::OutcomeUnknown(_)
                | ManagerError::Overloaded
                | ManagerError::Unavailable(_)
        )
    }
}

/// What the manager reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagerOutput {
    /// The holder holds the lease until at least `local_deadline` on this process's clock.
    Claimed {
        /// The request answered.
        req: RequestId,
        /// The lease name.
        lease: String,
        /// The holder.
        holder: String,
        /// The fencing epoch of the term.
        epoch: Epoch,
        /// Until when the holder may believe it holds the lease.
        local_deadline: LocalTime,
        /// When the store call that earned the term began: what the local deadline counts
        /// from, and where a recorded claim begins when no API call wraps it.
        call_start: LocalTime,
        /// Global time read fresh during the call.
        global_read: GlobalTime,
        /// The stored `start + duration`.
        global_expiry: GlobalTime,
    },
    /// Another holder holds the lease; the requester is guaranteed not to hold it.
    Denied {
        /// The request answered.
        req: RequestId,
        /// The lease name.
        lease: String,
        /// The current holder.
        holder: String,
    },
    /// The answer to a token check.
    Checked {
        /// The request answered.
        req: RequestId,
        /// The epoch if held by the asked-for holder (read from the store if the cache could
        /// not say).
        held: Option<Epoch>,
        /// Whether the answer came from a read of the store made during the check, not from
        /// the cache (M4: "not held" only so).
        refreshed: bool,
    },
    /// The holder's term of `epoch` is over: released by this request, or already ended. The
    /// holder stopped acting as the holder when it asked.
    Released {
        /// The request answered.
        req: RequestId,
        /// The lease name.
        lease: String,
        /// The epoch of the term released.
        epoch: Epoch,
        /// Whether this request's write is known to have vacated it (else it had ended, or the
        /// write's reply was lost).
        vacated: bool,
    },
    /// A wait ended because the lease was observed not held.
    WaitEnded {
        /// The request answered.
        req: RequestId,
    },
    /// A wait was cancelled.
    WaitCancelled {
        /// The request answered.
        req: RequestId,
    },
    /// A request failed.
    Failed {
        /// The request answered.
        req: RequestId,
        /// Why.
        error: ManagerError,
    },
    /// This manager expired a lease.
    Expired {
        /// The lease name.
        lease: String,
        /// The epoch of the term that ended.
        epoch: Epoch,
        /// The global time read that justified it.
        global: GlobalTime,
    },
    /// The manager stopped (its owner asked); every pending request was answered with
    /// `Failed(Stopped)`, the one whose store call was in flight included.
    Stopped(ManagerError),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ClaimJob {
    req: RequestId,
    lease: String,
    holder: String,
    duration: Duration,
    attempts: u32,
    not_before: LocalTime,
    /// Whether this claim has read its lease's document (itself, or through an invalid write):
    /// only then may it deny from the cache, which a release elsewhere may have outdated.
    looked: bool,
}

/// A holder giving up its term of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReleaseJob {
    req: RequestId,
    lease: String,
    holder: String,
    epoch: Epoch,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Running {
    Claim {
        job: ClaimJob,
        call_start: LocalTime,
    },
    Release {
        req: RequestId,
        lease: String,
    },
    /// A check reading its lease's document (not a store call: see [`LeaseStore::check_read`]).
    CheckRead {
        req: RequestId,
        lease: String,
        holder: String,
    },
    TickRefresh,
    Expire {
        lease: String,
    },
}

impl Running {
    /// The API request waiting on this store call, if any: it must be answered whatever the
    /// call's fate (a caller left unanswered hangs).
    fn req(&self) -> Option<RequestId> {
        match self {
            Running::Claim { job, .. } => Some(job.req),
            Running::CheckRead { req, .. } | Running::Release { req, .. } => Some(*req),
            Running::TickRefresh | Running::Expire { .. } => None,
        }
    }

    /// The key its store call runs under; `None` for a check's read, which the store does not
    /// track.
    fn on(&self) -> Option<CallOn<'_>> {
        match self {
            Running::Claim { job, .. } => Some(CallOn::Lease(&job.lease)),
            Running::Expire { lease } | Running::Release { lease, .. } => {
                Some(CallOn::Lease(lease))
            }
            Running::TickRefresh => Some(CallOn::Refresh),
            Running::CheckRead { .. } => None,
        }
    }
}

/// What a failed store call means for the request that made it. `Invalid` is the claim's own
/// business (it retries); the rest are answered as they are.
fn failure(lease: &str, e: StoreError) -> ManagerError {
    match e {
        StoreError::Invalid(_) => ManagerError::Contended(lease.to_owned()),
        StoreError::Unknown(_) => ManagerError::OutcomeUnknown(lease.to_owned()),
        StoreError::Corrupt(c) => ManagerError::Corrupt(c),
        StoreError::Store { context, cause } => {
            ManagerError::Unavailable(cause.in_context(&context))
        }
    }
}

/// The answer to `req` on `lease` when its store call ended other than as asked: a store error,
/// or a success of another kind (which the store never gives; said, not asserted).
fn failed(req: RequestId, lease: &str, outcome: Result<StoreSuccess, StoreError>) -> ManagerOutput {
    let error = match outcome {
        Ok(other) => ManagerError::Unavailable(format!("unexpected answer {other:?}").into()),
        Err(e) => failure(lease, e),
    };
    ManagerOutput::Failed { req, error }
}

/// The lease manager actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseManager {
    config: ManagerConfig,
    store: LeaseStore,
    ids: OpIds,
    jitter: Jitter,
    claims: VecDeque<ClaimJob>,
    releases: VecDeque<ReleaseJob>,
    checks: VecDeque<(RequestId, String, String)>,
    waits: BTreeMap<RequestId, String>,
    /// The store calls in progress, by the id of the operation each waits on.
    running: BTreeMap<OpId, Running>,
    last_tick: LocalTime,
    next_tick: Option<LocalTime>,
    stopped: bool,
    last_now: LocalTime,
}

impl Renumber for LeaseManager {
    fn oldest_op_id(&self) -> OpId {
        self.ids.oldest(self.running.keys().copied())
    }

    fn lower_op_ids(&mut self, by: u64) {
        self.running = std::mem::take(&mut self.running)
            .into_iter()
            .map(|(id, r)| (id.lowered(by), r))
            .collect();
        self.ids.lower(by, None);
    }
}

impl Actor for LeaseManager {
    type Output = ManagerOutput;

    /// Only lease documents.
    fn may_write(&self, coll: Collection) -> bool {
        coll == Collection::Leases
    }

    /// When the manager next wants [`LeaseManager::handle_timeout`].
    /// Only what could start then: a tick while no refresh runs, a claim whose lease is idle
    /// (a busy one starts when its call ends), and nothing while `calls_max` calls run.
    fn next_deadline(&self) -> Option<LocalTime> {
        if !self.has_room() {
            return None;
        }
        let tick = self
            .next_tick
            .filter(|_| !self.store.is_busy(CallOn::Refresh));
        let backoff = self
            .claims
            .iter()
            .filter(|c| !self.store.is_busy(CallOn::Lease(&c.lease)))
            .map(|c| c.not_before)
            .min();
        [tick, backoff].into_iter().flatten().min()
    }

    /// Runs the expiry tick or a retry if due; early calls do nothing.
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        self.tick(now);
        self.pump(now)
    }

    /// Takes the result of the outstanding store request. Unknown ids are ignored.
    fn handle_reply(
        &mut self,
        id: OpId,
        result: OpResult,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        self.tick(now);
        if self.stopped {
            return Effects::none();
        }
        let Some(running) = self.running.remove(&id) else {
            return Effects::none();
        };
        let step = match (&running, running.on()) {
            (Running::CheckRead { lease, .. }, _) => {
                StoreStep::Done(self.store.decode_check_read(lease, result))
            }
            (_, Some(on)) => self.store.handle_result(on, result, now),
            (_, None) => StoreStep::Done(Err(StoreError::Store {
                context: "lease manager".into(),
                cause: "a reply for a call the store does not track".into(),
            })),
        };
        let mut fx = self.step(running, step, now);
        fx.extend(self.pump(now));
        fx
    }
}

impl LeaseManager {
    /// A manager that does nothing until [`LeaseManager::handle_start`].
    pub fn new(config: ManagerConfig) -> Result<LeaseManager, InputError> {
        config.validate()?;
        let store = LeaseStore::new(
            config.namespace.clone(),
            config.writer.clone(),
            config.mutant,
        );
        let jitter = config.jitter_seed.map_or(Jitter::NONE, Jitter::seeded);
        Ok(LeaseManager {
            config,
            store,
            ids: OpIds::default(),
            jitter,
            claims: VecDeque::new(),
            releases: VecDeque::new(),
            checks: VecDeque::new(),
            waits: BTreeMap::new(),
            running: BTreeMap::new(),
            last_tick: LocalTime(0),
            next_tick: None,
            stopped: false,
            last_now: LocalTime(0),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The held leases as the cache sees them.
    pub fn leases(&self) -> impl Iterator<Item = (&str, LeaseInfo)> + '_ {
        self.store.leases()
    }

    /// Whether the manager has stopped.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Whether nothing is in flight or queued (waits excepted).
    pub fn is_idle(&self) -> bool {
        self.running.is_empty()
            && self.claims.is_empty()
            && self.releases.is_empty()
            && self.checks.is_empty()
    }

    fn tick(&mut self, now: LocalTime) {
        debug_assert!(
            now >= self.last_now,
            "time went backwards: {now} < {}",
            self.last_now
        );
        self.last_now = self.last_now.max(now);
    }

    /// Starts the manager: an initial refresh, then expiry ticks.
    pub fn handle_start(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        self.tick(now);
        self.last_tick = now;
        self.next_tick = Some(now);
        self.pump(now)
    }

    /// Claims (or extends) `lease` for `holder` for `duration`.
    pub fn handle_claim(
        &mut self,
        req: RequestId,
        lease: &str,
        holder: &str,
        duration: Duration,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        self.tick(now);
        let checked = check_name("lease name", lease)
            .and(check_name("holder", holder))
            .and(check_lease_duration(duration));
        if let Some(fx) = self.refuse(req, checked) {
            return fx;
        }
        let job = ClaimJob {
            req,
            lease: lease.to_owned(),
            holder: holder.to_owned(),
            duration,
            attempts: 0,
            not_before: now,
            looked: false,
        };
        self.claims.push_back(job);
        self.pump(now)
    }

    /// Releases `holder`'s term of `epoch` in `lease` before it expires, so another holder
    /// may claim it at once. The holder must stop acting as the holder before it asks (its
    /// token is spent whatever the answer). Safe whatever the token's age: only that exact
    /// term is vacated, never another holder's or a later one.
    pub fn handle_release(
        &mut self,
        req: RequestId,
        lease: &str,
        holder: &str,
        epoch: Epoch,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        self.tick(now);
        let checked = check_name("lease name", lease).and(check_name("holder", holder));
        if let Some(fx) = self.refuse(req, checked) {
            return fx;
        }
        self.releases.push_back(ReleaseJob {
            req,
            lease: lease.to_owned(),
            holder: holder.to_owned(),
            epoch,
        });
        self.pump(now)
    }

    /// Checks whether `holder` holds `lease`.
    pub fn handle_check(
        &mut self,
        req: RequestId,
        lease: &str,
        holder: &str,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        self.tick(now);
        if let Some(fx) = self.refuse(
            req,
            check_name("lease name", lease).and(check_name("holder", holder)),
        ) {
            return fx;
        }
        self.checks
            .push_back((req, lease.to_owned(), holder.to_owned()));
        self.pump(now)
    }

    /// Waits until `lease` is not held.
    pub fn handle_wait_expired(
        &mut self,
        req: RequestId,
        lease: &str,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        self.tick(now);
        if let Some(fx) = self.refuse(req, check_name("lease name", lease)) {
            return fx;
        }
        self.waits.insert(req, lease.to_owned());
        let mut fx = self.release_waits();
        fx.extend(self.pump(now));
        fx
    }

    /// Cancels a wait; a no-op if it already ended.
    pub fn handle_cancel_wait(&mut self, req: RequestId, now: LocalTime) -> Effects<ManagerOutput> {
        self.tick(now);
        let mut fx = Effects::none();
        if self.waits.remove(&req).is_some() {
            fx.notify(ManagerOutput::WaitCancelled { req });
        }
        fx
    }

    /// Stops the manager, answering every pending request.
    pub fn handle_stop(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        self.tick(now);
        self.die(ManagerError::Stopped("stopped by its owner".into()))
    }

    fn refuse(
        &mut self,
        req: RequestId,
        checked: Result<(), InputError>,
    ) -> Option<Effects<ManagerOutput>> {
        let error = match checked {
            Err(e) => ManagerError::Input(e),
            Ok(()) if self.stopped => ManagerError::Stopped("no longer serving requests".into()),
            Ok(())
                if self.claims.len()
                    + self.releases.len()
                    + self.checks.len()
                    + self.waits.len()
                    >= PENDING_MAX =>
            {
                ManagerError::Overloaded
            }
            Ok(()) => return None,
        };
        let mut fx = Effects::none();
        fx.notify(ManagerOutput::Failed { req, error });
        Some(fx)
    }

    /// Whether another store call may start.
    fn has_room(&self) -> bool {
        !self.stopped && self.running.len() < self.config.calls_max
    }

    /// Starts what can start: the expiry tick if due, then checks (answered from the cache, or
    /// by a read of their lease), then claims whose backoff has passed and whose lease has no call running.
    fn pump(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        if self.stopped {
            return fx;
        }
        if self.next_tick.is_some_and(|t| t <= now)
            && self.has_room()
            && !self.store.is_busy(CallOn::Refresh)
        {
            fx.extend(self.start_tick(now));
        }
        fx.extend(self.pump_checks(now));
        fx.extend(self.pump_releases(now));
        fx.extend(self.pump_claims(now));
        fx
    }

    /// Starts every release whose lease has no call running, oldest first.
    fn pump_releases(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        let mut i = 0;
        while i < self.releases.len() && self.has_room() {
            if self.store.is_busy(CallOn::Lease(&self.releases[i].lease)) {
                i += 1;
                continue;
            }
            let Some(job) = self.releases.remove(i) else {
                break;
            };
            let step = self.store.start_release(&job.lease, &job.holder, job.epoch);
            let running = Running::Release {
                req: job.req,
                lease: job.lease,
            };
            fx.extend(self.step(running, step, now));
        }
        fx
    }

    fn start_tick(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        self.last_tick = now;
        self.next_tick = None;
        // The mutant trusts its cached projection of global time instead of re-reading.
        let step = if self.config.mutant == Some(Mutant::LeaseExpireOnLocalClock) {
            StoreStep::Done(Ok(StoreSuccess::Refreshed))
        } else {
            self.store.start_refresh()
        };
        self.step(Running::TickRefresh, step, now)
    }

    /// Answers the checks the cache can; starts a refresh for the first that needs one if none
    /// runs. The others wait, in order, for a refresh of their own.
    fn pump_checks(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        let mut waiting = VecDeque::new();
        while let Some((req, lease, holder)) = self.checks.pop_front() {
            let cached = self
                .store
                .cached(&lease)
                .and_then(|d| d.holder().map(|h| (h == holder, d.epoch)));
            match cached {
                // Past its local expiry another manager may have expired it: read the store first.
                Some((true, epoch))
                    if !self.store.may_have_ended(&lease, now, &self.config.skew) =>
                {
                    fx.notify(ManagerOutput::Checked {
                        req,
                        held: Some(epoch),
                        refreshed: false,
                    })
                }
                _ if self.config.mutant == Some(Mutant::ManagerNotHeldWithoutRefresh) => {
                    fx.notify(ManagerOutput::Checked {
                        req,
                        held: None,
                        refreshed: false,
                    })
                }
                _ if !self.has_room() => waiting.push_back((req, lease, holder)),
                _ => {
                    let step = StoreStep::Issue(self.store.check_read(&lease));
                    let running = Running::CheckRead { req, lease, holder };
                    fx.extend(self.step(running, step, now));
                }
            }
        }
        self.checks = waiting;
        fx
    }

    /// Starts every claim that can start, oldest first.
    fn pump_claims(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        let mut i = 0;
        while i < self.claims.len() && self.has_room() {
            let c = &self.claims[i];
            if c.not_before > now || self.store.is_busy(CallOn::Lease(&c.lease)) {
                i += 1;
                continue;
            }
            let Some(job) = self.claims.remove(i) else {
                break;
            };
            fx.extend(self.start_claim(job, now));
        }
        fx
    }

    fn start_claim(&mut self, job: ClaimJob, now: LocalTime) -> Effects<ManagerOutput> {
        let step = match self.store.cached(&job.lease).and_then(|d| d.holder()) {
            None => self
                .store
                .start_claim(&job.lease, &job.holder, job.duration, now),
            Some(h) if h == job.holder => {
                self.store
                    .start_extend(&job.lease, &job.holder, job.duration, now)
            }
            // Another holder in the cache: it may have released the lease since. Look first.
            Some(_) if !job.looked => self.store.start_look(&job.lease),
            Some(h) => {
                // Held by another in a fresh view: deny without a store write (M2).
                let mut fx = Effects::none();
                fx.notify(ManagerOutput::Denied {
                    req: job.req,
                    lease: job.lease,
                    holder: h.to_owned(),
                });
                return fx;
            }
        };
        let running = Running::Claim {
            job,
            call_start: now,
        };
        self.step(running, step, now)
    }

    /// Issues the store's next operation, or finishes the running job.
    fn step(
        &mut self,
        running: Running,
        step: StoreStep,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        match step {
            StoreStep::Issue(op) => {
                debug_assert!(
                    running.on().is_none_or(|on| self.store.is_busy(on)),
                    "the store tracks the call"
                );
                let req = self.ids.request(op);
                self.running.insert(req.id, running);
                Effects {
                    requests: vec![req],
                    notifications: Vec::new(),
                }
            }
            StoreStep::Done(outcome) => {
                let mut fx = self.finish(running, outcome, now);
                fx.extend(self.release_waits());
                fx
            }
        }
    }

    fn finish(
        &mut self,
        running: Running,
        outcome: Result<StoreSuccess, StoreError>,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        // No store error stops the manager: each answers the request that met it, and the
        // rest of the namespace is served as before (a corrupt document costs only its lease,
        // an unreachable store only the calls made while it is down).
        let mut fx = Effects::none();
        match running {
            Running::Claim { job, call_start } => {
                fx.extend(self.finish_claim(job, call_start, outcome, now));
                // A tick skips a lease while its call runs: look at it again now.
                self.schedule_tick(now);
            }
            Running::CheckRead { req, lease, holder } => {
                let answer = match outcome {
                    Ok(StoreSuccess::Read { doc }) => ManagerOutput::Checked {
                        req,
                        held: doc
                            .filter(|d| d.holder() == Some(holder.as_str()))
                            .map(|d| d.epoch),
                        refreshed: true,
                    },
                    other => failed(req, &lease, other),
                };
                fx.notify(answer);
            }
            Running::Release { req, lease } => {
                fx.notify(match outcome {
                    Ok(StoreSuccess::Released { epoch, vacated }) => ManagerOutput::Released {
                        req,
                        lease,
                        epoch,
                        vacated,
                    },
                    other => failed(req, &lease, other),
                });
                self.schedule_tick(now);
            }
            Running::TickRefresh => {
                // Judged when the refresh answers, not when the tick began: the refresh dates its
                // local expiries from its own clock read, sent after the tick began, so an
                // expired lease's may lie after the tick's start and would never be due. A
                // refresh whose outcome is unknown expires nothing: the schedule looks again
                // soon if a lease is due.
                if outcome.is_ok() {
                    fx.extend(self.expire_due(now));
                }
                self.schedule_tick(now);
            }
            Running::Expire { lease } => {
                if let Ok(StoreSuccess::Expired { epoch }) = outcome {
                    fx.notify(ManagerOutput::Expired {
                        lease,
                        epoch,
                        global: self.store.global_time(),
                    });
                }
                // Invalid is ignored: the refreshed cache is picked up on the next tick, which
                // comes soon if the lease is still due.
                self.schedule_tick(now);
            }
        }
        fx
    }

    /// Starts the expiry of every lease due by `now`, in name order, that has no call running
    /// (one that does is judged again at the next tick), while there is room.
    fn expire_due(&mut self, now: LocalTime) -> Effects<ManagerOutput> {
        let due: Vec<String> = self
            .store
            .local_expiries()
            .filter(|(name, at)| *at <= now && !self.store.is_busy(CallOn::Lease(name)))
            .map(|(name, _)| name.to_owned())
            .collect();
        let mut fx = Effects::none();
        for lease in due {
            if !self.has_room() {
                break;
            }
            let step = self.store.start_expire(&lease, now);
            fx.extend(self.step(Running::Expire { lease }, step, now));
        }
        fx
    }

    /// `next = min(last tick + max_sleep, the earliest local expiry)`, but never sooner than
    /// `retry.delay_min` after the last tick: while global time stalls at a lease's expiry, the
    /// recomputed local expiry stays a few nanoseconds ahead and the manager would otherwise
    /// spin. A local expiry already past counts too: the lease is still cached because its
    /// refresh or expiry failed or raced, and waiting for max_sleep would keep an abandoned
    /// lease held far past its expiry (M6).
    fn schedule_tick(&mut self, now: LocalTime) {
        let cap = self.last_tick.after(self.config.max_sleep);
        let floor = self
            .last_tick
            .after(self.config.retry.delay_min.min(self.config.max_sleep));
        // A lease being expired is left out: its expiry's reply reschedules.
        let soonest = self
            .store
            .local_expiries()
            .filter(|(name, _)| !self.store.is_busy(CallOn::Lease(name)))
            .map(|(_, at)| at)
            .min()
            .filter(|_| self.config.mutant != Some(Mutant::ManagerSleepsPastExpiry));
        let next = soonest.map_or(cap, |s| s.min(cap)).max(floor).max(now);
        self.next_tick = Some(self.next_tick.map_or(next, |t| t.min(next)));
    }

    fn finish_claim(
        &mut self,
        mut job: ClaimJob,
        call_start: LocalTime,
        outcome: Result<StoreSuccess, StoreError>,
        now: LocalTime,
    ) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        match outcome {
            Ok(StoreSuccess::Holds { epoch, .. }) if self.release_pending(&job, epoch) => {
                fx.notify(ManagerOutput::Failed {
                    req: job.req,
                    error: ManagerError::ReleasedMeanwhile(job.lease),
                });
            }
            Ok(StoreSuccess::Holds { epoch, term, read }) => {
                debug_assert_eq!(
                    term.holder, job.holder,
                    "a granted term belongs to the requester"
                );
                let from = if self.config.mutant == Some(Mutant::LeaseDeadlineFromCallEnd) {
                    now
                } else {
                    call_start
                };
                match self.config.skew.local_deadline(from, job.duration) {
                    Some(local_deadline) => fx.notify(ManagerOutput::Claimed {
                        req: job.req,
                        lease: job.lease,
                        holder: job.holder,
                        epoch,
                        local_deadline,
                        call_start,
                        global_read: read,
                        global_expiry: term.expiry(),
                    }),
                    None => fx.notify(ManagerOutput::Failed {
                        req: job.req,
                        error: ManagerError::NoGuarantee {
                            lease: job.lease,
                            duration: job.duration,
                        },
                    }),
                }
                // (The caller reschedules: wake no later than the new expiry, 2019+.)
            }
            Ok(_) => fx.notify(ManagerOutput::Failed {
                req: job.req,
                error: ManagerError::OutcomeUnknown(job.lease),
            }),
            // A look (or a raced write) refreshed the cache: decide again, at once, the first
            // time; a look is not a failed attempt.
            Err(StoreError::Invalid(_)) if !job.looked => {
                job.looked = true;
                self.claims.push_front(job);
            }
            Err(StoreError::Invalid(_)) => {
                job.attempts += 1;
                if job.attempts >= self.config.retry.attempts_max {
                    fx.notify(ManagerOutput::Failed {
                        req: job.req,
                        error: ManagerError::Contended(job.lease),
                    });
                } else {
                    let exp = job.attempts.saturating_sub(1).min(20);
                    let base = self
                        .config
                        .retry
                        .delay_min
                        .saturating_mul(1 << exp)
                        .min(self.config.retry.delay_max);
                    let delay = if job.attempts == 1 {
                        Duration::ZERO
                    } else {
                        self.jitter.scale(base, 800_000, 1_200_000)
                    };
                    job.not_before = now.after(delay);
                    self.claims.push_front(job);
                }
            }
            Err(e) => fx.notify(ManagerOutput::Failed {
                req: job.req,
                error: failure(&job.lease, e),
            }),
        }
        fx
    }

    /// Whether `job`'s holder has asked to release its term of `epoch` in the job's lease: a
    /// grant of that term answered now would outlive the release queued behind it.
    fn release_pending(&self, job: &ClaimJob, epoch: Epoch) -> bool {
        self.releases
            .iter()
            .any(|r| r.lease == job.lease && r.holder == job.holder && r.epoch == epoch)
    }

    /// Ends the waits whose lease the cache shows not held (released), or corrupt (failed:
    /// a corrupt lease is not a released one, and waiting on it would never end).
    fn release_waits(&mut self) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        let store = &self.store;
        let ended: Vec<(RequestId, Option<ManagerError>)> = self
            .waits
            .iter()
            .filter_map(|(r, l)| match store.corrupt(l) {
                Some(c) => Some((*r, Some(ManagerError::Corrupt(c.clone())))),
                None if store.cached(l).and_then(|d| d.holder()).is_none() => Some((*r, None)),
                None => None,
            })
            .collect();
        for (req, error) in ended {
            self.waits.remove(&req);
            fx.notify(match error {
                None => ManagerOutput::WaitEnded { req },
                Some(error) => ManagerOutput::Failed { req, error },
            });
        }
        fx
    }

    fn die(&mut self, error: ManagerError) -> Effects<ManagerOutput> {
        let mut fx = Effects::none();
        if self.stopped {
            return fx;
        }
        self.stopped = true;
        self.next_tick = None;
        // The request whose store call is in flight first: its reply will be ignored.
        let running = std::mem::take(&mut self.running);
        let reqs = running
            .into_values()
            .filter_map(|r| r.req())
            .chain(self.claims.drain(..).map(|c| c.req))
            .chain(self.releases.drain(..).map(|r| r.req))
            .chain(self.checks.drain(..).map(|c| c.0))
            .chain(std::mem::take(&mut self.waits).into_keys());
        for req in reqs.collect::<Vec<_>>() {
            fx.notify(ManagerOutput::Failed {
                req,
                error: error.clone(),
            });
        }
        fx.notify(ManagerOutput::Stopped(error));
        fx
    }
}
