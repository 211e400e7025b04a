//! Leadership (PROTOCOLS.md §4): one unit's view of whether it leads its application.
//!
//! A [`Leadership`] handle drives the core's [`Unit`] (a tracker wired to its own lease manager)
//! in a tokio task. While the unit leads, it holds a [`Tenure`]: a [`CancellationToken`] that is
//! cancelled the moment leadership can no longer be guaranteed (the guaranteed tenure runs out
//! without a renewal, the unit becomes a minion, or the tracker stops), and the leadership
//! lease's fencing [`Epoch`]. Do leader-only work under the token and stop when it fires; fence
//! leader-only writes with [`Tenure::fenced_update_one`], so a deposed leader's late write
//! cannot land after its successor's.

use crate::error::Error;
use crate::fence::{Fence, Fenced};
use crate::lease::{claim_outcome, observe_manager_output, random_id, DEFAULT_SKEW};
use crate::record::{self, CallId, Recorder};
use crate::runtime::{Call, LocalClock, Router, Worker};
use crate::substrate::Substrate;
use mongodb::bson::Document as BsonDocument;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tenure::history::Operation;
use tenure::leadership::{TicketId, TicketKind, TrackerConfig, TrackerOutput, Unit, UnitOutput};
use tenure::lease::{Epoch, ManagerError, ManagerOutput};
use tenure::lease::{ManagerConfig, RetryConfig};
use tenure::time::SkewBounds;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The lease namespace leadership uses unless told otherwise (Juju's).
pub const DEFAULT_NAMESPACE: &str = "application-leadership";

/// The default guaranteed tenure of a `true` answer (Juju's uniter: 30 s); the lease is claimed
/// for twice that and renewed when half of it is left.
pub const DEFAULT_CLAIM_DURATION: Duration = Duration::from_secs(30);

/// Where this unit stands.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum LeadershipState {
    /// No claim has answered yet, or the last tenure lapsed before its renewal answered.
    Unknown,
    /// This unit leads, guaranteed until `until`; `tenure` is cancelled when that guarantee ends.
    Leader {
        /// End of the current guarantee (moves later with each renewal).
        until: Instant,
        /// This tenure: cancelled the moment leadership can no longer be guaranteed.
        tenure: Tenure,
    },
    /// Another unit leads.
    Minion,
    /// The tracker stopped (shutdown, or a store failure it could not get past).
    Stopped(String),
}

impl LeadershipState {
    /// Whether this unit leads (and its tenure has not been cancelled).
    pub fn is_leader(&self) -> bool {
        matches!(self, LeadershipState::Leader { tenure, .. } if !tenure.is_cancelled())
    }
}

/// One tenure of leadership: what a leader holds while it may act as leader.
#[derive(Clone, Debug)]
pub struct Tenure {
    token: CancellationToken,
    epoch: Epoch,
    application: Arc<str>,
    substrate: Substrate,
}

impl Tenure {
    /// Cancelled the moment this unit can no longer be guaranteed to lead: stop leader-only
    /// work then.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
    /// Resolves when the tenure ends (see [`Tenure::token`]).
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }
    /// Whether the tenure has ended.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
    /// The leadership lease's fencing epoch: larger than every earlier leader's (renewals keep
    /// it).
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
    /// A leader-only update of one document of the user's `collection`, refused once a leader
    /// of a later epoch has written it: as [`crate::Token::fenced_update_one`], with this
    /// tenure's epoch. After the tenure ended nothing is written ([`Fenced::Superseded`]).
    pub async fn fenced_update_one(
        &self,
        collection: &mongodb::Collection<BsonDocument>,
        fence_field: &str,
        filter: BsonDocument,
        update: BsonDocument,
    ) -> Result<Fenced, Error> {
        let fence = Fence {
            substrate: &self.substrate,
            lease: &self.application,
            epoch: self.epoch,
        };
        let valid = !self.token.is_cancelled();
        fence
            .update_one(valid, collection, fence_field, filter, update)
            .await
    }
}

/// The current term's guard: cancelled when the tracker reports that its tenure ended (lapsed,
/// another unit leads, or it stopped).
struct Term {
    tenure: Tenure,
}

/// A ticket's caller, and its recorded call and history ticket id if recording.
type WaitingTicket = (oneshot::Sender<bool>, Option<(CallId, TicketId)>);

struct UnitRouter {
    tickets: HashMap<TicketId, WaitingTicket>,
    claim_duration: Duration,
    /// What each claim asks for ([`TrackerConfig::lease_duration`]).
    lease_duration: Duration,
    recorder: Option<Recorder>,
    state: watch::Sender<LeadershipState>,
    term: Option<Term>,
    application: String,
    unit: String,
    clock: LocalClock,
    substrate: Substrate,
    /// The caller of [`Leadership::resign`], answered with its release's outcome.
    resigned: Option<oneshot::Sender<Result<bool, ManagerError>>>,
    /// The leader's name as this unit's last claim learnt it ([`Leadership::leader`]).
    leader: watch::Sender<Option<String>>,
}

impl UnitRouter {
    fn end_term(&mut self) {
        if let Some(term) = self.term.take() {
            term.tenure.token.cancel();
        }
    }

    fn ticket(&self, ticket: TicketId, kind: TicketKind, value: Option<bool>) -> Operation {
        Operation::Ticket {
            application: self.application.clone(),
            unit: self.unit.clone(),
            ticket,
            kind,
            claim_duration: self.claim_duration,
            value,
        }
    }

    /// Leads until `until` in `epoch`: a renewal moves the current term's end; a new term (or
    /// a new epoch) gets a fresh tenure. The tracker, not a timer here, decides when the term
    /// lapses.
    fn lead_until(&mut self, until: Instant, epoch: Epoch) {
        let tenure = match &self.term {
            Some(term) if !term.tenure.is_cancelled() && term.tenure.epoch == epoch => {
                term.tenure.clone()
            }
            _ => {
                self.end_term();
                tracing::info!(application = %self.application, unit = %self.unit, epoch = epoch.0, "became leader");
                metrics::counter!("tenure_leadership_transitions_total", "to" => "leader")
                    .increment(1);
                let tenure = Tenure {
                    token: CancellationToken::new(),
                    epoch,
                    application: Arc::from(self.application.as_str()),
                    substrate: self.substrate.clone(),
                };
                self.term = Some(Term {
                    tenure: tenure.clone(),
                });
                tenure
            }
        };
        self.publish(LeadershipState::Leader { until, tenure });
    }

    /// Every claim answer names the leader: this unit if granted, the holder if denied. A
    /// unit that stopped knows no leader.
    fn learn_leader(&mut self, out: &ManagerOutput) {
        let leader = match out {
            ManagerOutput::Claimed { holder, .. } | ManagerOutput::Denied { holder, .. } => {
                Some(holder)
            }
            _ => return,
        };
        self.leader.send_if_modified(|known| {
            let changed = known.as_ref() != leader;
            if changed {
                *known = leader.cloned();
            }
            changed
        });
    }

    /// Publishes the state, and the 0/1 gauge `tenure_is_leader{application, unit}` with it.
    fn publish(&mut self, state: LeadershipState) {
        let leads = if state.is_leader() { 1.0 } else { 0.0 };
        metrics::gauge!("tenure_is_leader", "application" => self.application.clone(), "unit" => self.unit.clone())
            .set(leads);
        self.state.send_replace(state);
    }
}

impl UnitRouter {
    /// Records a claim the tracker made, as one call from the start of the store call that
    /// earned a grant (perhaps long before, if the unit was paused), or at a denial.
    fn record_claim(&self, m: &ManagerOutput) {
        let (Some(rec), Some((outcome, unknown))) = (&self.recorder, claim_outcome(m)) else {
            return;
        };
        let (lease, holder, began) = match m {
            ManagerOutput::Claimed {
                lease,
                holder,
                call_start,
                ..
            } => (lease, holder, Some(*call_start)),
            ManagerOutput::Denied { lease, holder, .. } => (lease, holder, None),
            _ => return,
        };
        let claim = |outcome| Operation::Claim {
            lease: lease.clone(),
            holder: holder.clone(),
            duration: self.lease_duration,
            outcome,
        };
        let call = match began {
            Some(at) => rec.invoke_at(claim(None), at),
            None => rec.invoke(claim(None)),
        };
        record::complete(Some(rec), Some(call), unknown, || claim(Some(outcome)));
    }
}

impl Router<Unit> for UnitRouter {
    fn route(&mut self, out: UnitOutput) {
        match out {
            UnitOutput::Manager(m) => {
                observe_manager_output(&m);
                self.learn_leader(&m);
                self.record_claim(&m);
            }
            UnitOutput::Tracker(TrackerOutput::Ticket { id, value, kind }) => {
                if let Some((tx, recorded)) = self.tickets.remove(&id) {
                    if let Some((call, as_id)) = recorded {
                        record::complete(self.recorder.as_ref(), Some(call), false, || {
                            self.ticket(as_id, kind, Some(value))
                        });
                    }
                    let _ = tx.send(value);
                }
            }
            UnitOutput::Tracker(TrackerOutput::BecameLeader { until, epoch }) => {
                self.lead_until(self.clock.instant_of(until), epoch);
            }
            UnitOutput::Tracker(TrackerOutput::Lapsed { .. }) => {
                tracing::warn!(application = %self.application, unit = %self.unit, "leadership lapsed before its renewal was granted");
                metrics::counter!("tenure_leadership_transitions_total", "to" => "lapsed")
                    .increment(1);
                self.end_term();
                self.publish(LeadershipState::Unknown);
            }
            UnitOutput::Tracker(TrackerOutput::BecameMinion) => {
                if self.term.is_some() {
                    tracing::info!(application = %self.application, unit = %self.unit, "lost leadership");
                }
                metrics::counter!("tenure_leadership_transitions_total", "to" => "minion")
                    .increment(1);
                self.end_term();
                self.publish(LeadershipState::Minion);
            }
            UnitOutput::Tracker(TrackerOutput::Stopped(why)) => {
                record::event(self.recorder.as_ref(), || Operation::TrackerStopped {
                    application: self.application.clone(),
                    unit: self.unit.clone(),
                });
                tracing::info!(application = %self.application, unit = %self.unit, reason = %why, "leadership tracker stopped");
                self.leader.send_replace(None);
                self.end_term();
                self.publish(LeadershipState::Stopped(why));
            }
            UnitOutput::Resigned(outcome) => {
                tracing::info!(application = %self.application, unit = %self.unit, ?outcome, "resigned");
                if let Some(tx) = self.resigned.take() {
                    let _ = tx.send(outcome);
                }
            }
            // Claims and release-waits are routed to the manager inside the unit.
            UnitOutput::Tracker(TrackerOutput::Claim { .. })
            | UnitOutput::Tracker(TrackerOutput::WaitReleased { .. }) => {}
        }
    }
}

/// Builder for [`Leadership`]. Validated at [`LeadershipBuilder::build`]: the claim duration must
/// exceed both the clock step bound (or no tenure is left to guarantee) and the longest retry
/// delay (or a renewal could not be retried before the tenure lapses).
#[derive(Clone, Debug)]
pub struct LeadershipBuilder {
    application: String,
    unit: String,
    claim_duration: Duration,
    namespace: String,
    writer: String,
    skew: SkewBounds,
    retry: RetryConfig,
    cancel: CancellationToken,
    mutant: Option<tenure::mutant::Mutant>,
}

impl LeadershipBuilder {
    /// A deliberately broken variant of the tracker (the names `tenure check --list-mutants`
    /// prints), so that a live check can show it catches it. Never in production.
    pub fn mutant(mut self, mutant: Option<tenure::mutant::Mutant>) -> Self {
        self.mutant = mutant;
        self
    }

    /// The guaranteed tenure of a `true` answer (default 30 s).
    pub fn claim_duration(mut self, d: Duration) -> Self {
        self.claim_duration = d;
        self
    }
    /// The lease namespace (default `application-leadership`).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = ns.into();
        self
    }
    /// Clock bounds (default as for [`crate::Leases`]).
    pub fn skew(mut self, skew: SkewBounds) -> Self {
        self.skew = skew;
        self
    }
    /// Retry policy for claims meeting a concurrent change.
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }
    /// A token whose cancellation stops the tracker (default: a fresh one).
    pub fn cancellation(mut self, token: CancellationToken) -> Self {
        self.cancel = token;
        self
    }

    /// Validates and starts the tracker; its first claim follows at once.
    pub fn build(self, substrate: &Substrate) -> Result<Leadership, Error> {
        let mut manager = ManagerConfig::new(self.namespace, self.writer);
        manager.skew = self.skew;
        manager.retry = self.retry;
        manager.jitter_seed = Some(rand::random());
        let tracker = TrackerConfig {
            application: self.application.clone(),
            unit: self.unit.clone(),
            claim_duration: self.claim_duration,
            mutant: self.mutant,
        };
        let lease_duration = tracker.lease_duration();
        let unit = Unit::new(manager, tracker)?;
        let (state_tx, state) = watch::channel(LeadershipState::Unknown);
        let (leader_tx, leader) = watch::channel(None);
        let router = UnitRouter {
            tickets: HashMap::new(),
            claim_duration: self.claim_duration,
            lease_duration,
            recorder: substrate.recorder().cloned(),
            state: state_tx,
            term: None,
            application: self.application,
            unit: self.unit,
            clock: substrate.clock(),
            substrate: substrate.clone(),
            resigned: None,
            leader: leader_tx,
        };
        let start: Call<Unit, UnitRouter> = Box::new(|u, _, now| u.handle_start(now));
        let worker = Worker::spawn(
            "leadership",
            unit,
            router,
            substrate.clone(),
            start,
            self.cancel,
        )?;
        Ok(Leadership {
            inner: Arc::new(Inner {
                worker,
                state,
                leader,
            }),
        })
    }
}

struct Inner {
    worker: Worker<Unit, UnitRouter>,
    state: watch::Receiver<LeadershipState>,
    leader: watch::Receiver<Option<String>>,
}

/// One unit's leadership of one application; cheap to clone.
///
/// ```no_run
/// use tenure_mongo::{Leadership, Substrate};
///
/// # async fn run(substrate: Substrate) -> Result<(), tenure_mongo::Error> {
/// let unit = Leadership::builder("billing", "billing-0").build(&substrate)?;
/// loop {
///     let tenure = unit.wait_leader().await?;
///     // Leader-only work, stopped the moment leadership can no longer be guaranteed.
///     tokio::select! {
///         _ = tenure.cancelled() => continue,
///         _ = run_billing(tenure.epoch()) => break,
///     }
/// }
/// unit.resign().await?; // hand over at once on shutdown
/// # Ok(())
/// # }
/// # async fn run_billing(_: tenure_mongo::Epoch) {}
/// ```
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("state", &*self.inner.state.borrow())
            .finish()
    }
}

impl Leadership {
    /// A builder for `unit`'s leadership of `application` (a random unit id if you have none:
    /// see [`Leadership::random_unit`]).
    pub fn builder(application: impl Into<String>, unit: impl Into<String>) -> LeadershipBuilder {
        LeadershipBuilder {
            application: application.into(),
            unit: unit.into(),
            claim_duration: DEFAULT_CLAIM_DURATION,
            namespace: DEFAULT_NAMESPACE.into(),
            writer: random_id("leadership"),
            skew: DEFAULT_SKEW,
            retry: RetryConfig::default(),
            cancel: CancellationToken::new(),
            mutant: None,
        }
    }

    /// A random unit id, unique per process with overwhelming odds.
    pub fn random_unit() -> String {
        random_id("unit")
    }

    /// The current state, as a `watch` receiver (see [`LeadershipState`]).
    pub fn state(&self) -> watch::Receiver<LeadershipState> {
        self.inner.state.clone()
    }

    /// The leader's unit name as this unit last learnt it, as a `watch` receiver that changes
    /// with each new leader: every claim this unit makes (each sweep, at least once a claim
    /// duration) is granted (this unit leads) or denied naming the leader. `None` before the
    /// first answer and once the tracker stopped. A name to address the leader by, not a
    /// guarantee: only a [`Tenure`] is that.
    pub fn leader(&self) -> watch::Receiver<Option<String>> {
        self.inner.leader.clone()
    }

    /// A ticket of `kind`, answered when the tracker resolves it. Waits are unbounded (drop
    /// the future to give up); a claim is bounded by the substrate's call bound.
    async fn ticket(&self, kind: TicketKind) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        let call: Call<Unit, UnitRouter> = Box::new(move |u, r, now| {
            let (id, fx) = u.handle_ticket(kind, now);
            // Ticket ids are per tracker; the history numbers them per recorder.
            let recorded = r.recorder.as_ref().map(|rec| {
                let as_id = TicketId(rec.unique());
                (rec.invoke(r.ticket(as_id, kind, None)), as_id)
            });
            r.tickets.insert(id, (tx, recorded));
            fx
        });
        match kind {
            TicketKind::ClaimLeader => {
                self.inner
                    .worker
                    .call_and_wait("claim_leader", call, rx)
                    .await
            }
            _ => {
                self.inner.worker.call(call).await?;
                rx.await.map_err(|_| Error::Stopped("leadership tracker"))
            }
        }
    }

    fn tenure(&self) -> Option<Tenure> {
        match &*self.inner.state.borrow() {
            LeadershipState::Leader { tenure, .. } if !tenure.is_cancelled() => {
                Some(tenure.clone())
            }
            _ => None,
        }
    }

    fn stopped(&self) -> Error {
        match &*self.inner.state.borrow() {
            LeadershipState::Stopped(why) => {
                Error::Store(format!("leadership tracker stopped: {why}"))
            }
            _ => Error::Stopped("leadership tracker"),
        }
    }

    /// "Do I lead now, for at least the claim duration?" `Some(tenure)` if so (renewing first if
    /// a renewal is due), `None` if another unit leads.
    pub async fn claim_leader(&self) -> Result<Option<Tenure>, Error> {
        if self.ticket(TicketKind::ClaimLeader).await? {
            Ok(self.tenure())
        } else if matches!(&*self.inner.state.borrow(), LeadershipState::Stopped(_)) {
            Err(self.stopped())
        } else {
            Ok(None)
        }
    }

    /// Resolves when this unit leads, with the token of its tenure.
    pub async fn wait_leader(&self) -> Result<Tenure, Error> {
        loop {
            if !self.ticket(TicketKind::WaitLeader).await? {
                return Err(self.stopped());
            }
            // A tenure that ended between the answer and now: wait for the next one.
            if let Some(t) = self.tenure() {
                return Ok(t);
            }
        }
    }

    /// Resolves when another unit leads.
    pub async fn wait_minion(&self) -> Result<(), Error> {
        if self.ticket(TicketKind::WaitMinion).await? {
            Ok(())
        } else {
            Err(self.stopped())
        }
    }

    /// Steps down for good, as on shutdown in a rolling deploy: the tenure ends at once, then
    /// the leadership lease is released, so another unit leads at its next sweep (within a
    /// claim duration) instead of after the lease expires (up to two). Then the tracker stops
    /// as with [`Leadership::shutdown`]. `Ok(true)` if the lease was released, `Ok(false)` if
    /// this unit held none. On an error (the store unreachable) the lease simply expires.
    /// Answers within the substrate's call bound.
    pub async fn resign(&self) -> Result<bool, Error> {
        let (tx, rx) = oneshot::channel();
        let call: Call<Unit, UnitRouter> = Box::new(move |u, r, now| {
            // Every belief of this unit ends now, whatever the release's fate.
            record::event(r.recorder.as_ref(), || Operation::Release {
                lease: r.application.clone(),
                holder: r.unit.clone(),
                epoch: None,
            });
            r.resigned = Some(tx);
            u.handle_resign(now)
        });
        let outcome = self.inner.worker.call_and_wait("resign", call, rx).await;
        self.shutdown().await;
        outcome?.map_err(Error::Lease)
    }

    /// Stops the tracker (pending waits fail, the tenure token is cancelled) and joins its task.
    /// The leadership lease is not released: it expires, and another unit takes over then (see
    /// [`Leadership::resign`] to hand over at once).
    pub async fn shutdown(&self) {
        self.inner
            .worker
            .shutdown(Box::new(|u, _, now| u.handle_stop(now)))
            .await;
    }
}
