//! The executor: one tokio task per core actor, carrying its effects to MongoDB, and the local
//! clock the actors read.
//!
//! Each worker task owns its actor and loops over four events: an API call from a handle, the
//! reply to one of the actor's store requests, the actor's timer, and shutdown. Every store
//! request runs as its own task so a slow server never blocks the actor's API or its timer. The
//! actor decides everything; this module only moves data and time (STYLE.md §7.1).

use crate::substrate::Substrate;
use std::sync::OnceLock;
use std::time::Duration;
use tenure::actor::Actor;
use tenure::effects::{Effects, OpId};
use tenure::substrate::OpResult;
use tenure::time::{DriftingClock, LocalTime, RATE_ERROR_PPM_MAX};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Calls queued per worker before callers wait for room.
pub(crate) const CALLS_QUEUED_MAX: usize = 1024;

/// A process's local clock, as the core's actors read it: monotonic nanoseconds since one
/// origin per process (so local deadlines from different workers compare), read from tokio's
/// clock (so `tokio::time::pause()` stops it in tests), and optionally skewed by a rate error
/// and an offset, as a drifting host clock would be (live checks inject skew to exercise the
/// protocols' margins). Every worker of one [`Substrate`] reads the same clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalClock {
    drift: DriftingClock,
}

impl Default for LocalClock {
    fn default() -> Self {
        LocalClock::SYSTEM
    }
}

impl LocalClock {
    /// The host's monotonic clock, unskewed.
    pub const SYSTEM: LocalClock = LocalClock {
        drift: DriftingClock::EXACT,
    };

    /// The host's clock running `rate_ppm` parts per million fast (negative: slow) and reading
    /// `offset` ahead. The rate error must be within the core's limit (10%).
    pub fn skewed(rate_ppm: i32, offset: Duration) -> Result<LocalClock, crate::Error> {
        if rate_ppm.unsigned_abs() > RATE_ERROR_PPM_MAX {
            return Err(crate::Error::Input(
                tenure::validate::InputError::InvalidConfig(format!(
                    "clock rate error {rate_ppm} ppm is beyond the {RATE_ERROR_PPM_MAX} ppm limit"
                )),
            ));
        }
        Ok(LocalClock {
            drift: DriftingClock {
                rate_ppm: i64::from(rate_ppm),
                offset: nanos(offset),
            },
        })
    }

    /// The local time now.
    pub fn now(&self) -> LocalTime {
        self.drift.local(nanos(origin().elapsed()))
    }

    /// The instant at which this clock reads `t`.
    pub fn instant_of(&self, t: LocalTime) -> Instant {
        origin() + Duration::from_nanos(self.drift.real_of(t))
    }
}

/// The host's monotonic time since the origin, in nanoseconds: the real time of recorded
/// histories, shared by every clock of the process whatever its skew, and by every process
/// aligned to one origin ([`align_real_time`]).
pub(crate) fn real_now() -> u64 {
    monotonic_ns().saturating_sub(real_time_origin())
}

/// The host's monotonic clock (`CLOCK_MONOTONIC`, which `Instant` reads too), in nanoseconds
/// since boot: the same number in every process of the host.
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// The origin of local clocks: each process's own (tokio's clock, so paused tests stop it).
fn origin() -> Instant {
    static LOCAL_ORIGIN: OnceLock<Instant> = OnceLock::new();
    *LOCAL_ORIGIN.get_or_init(Instant::now)
}

static ORIGIN: OnceLock<u64> = OnceLock::new();

/// Where this process's recorded real time starts, on the host's monotonic clock (fixed by the
/// first recording, or by [`align_real_time`]). Hand it to the client processes of one run.
pub fn real_time_origin() -> u64 {
    *ORIGIN.get_or_init(monotonic_ns)
}

/// Starts this process's recorded real time at `origin` (another process's
/// [`real_time_origin`]), so their histories share one real time. Must come before anything is
/// recorded; `false` if the origin was already fixed elsewhere.
pub fn align_real_time(origin: u64) -> bool {
    ORIGIN.set(origin).is_ok() || ORIGIN.get() == Some(&origin)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What a worker runs: a core actor (the one driver interface, `tenure::actor::Actor`) that
/// can move to a task.
pub(crate) trait Driven: Actor<Output: Send + 'static> + Send + 'static {}
impl<A: Actor<Output: Send + 'static> + Send + 'static> Driven for A {}

/// Where a worker's notifications go (waiting callers, watch channels, logs).
pub(crate) trait Router<A: Driven>: Send + 'static {
    fn route(&mut self, output: A::Output);

    /// After each step, with the actor: for a router that publishes some of its state (a
    /// snapshot read with the actor's own accessors, never a rule restated).
    fn settled(&mut self, _actor: &A) {}
}

/// An API call: runs inside the worker task with the actor, its router and the current time.
pub(crate) type Call<A, R> =
    Box<dyn FnOnce(&mut A, &mut R, LocalTime) -> Effects<<A as Actor>::Output> + Send>;

enum Msg<A: Driven, R> {
    Call(Call<A, R>),
    /// The last call: its effects' notifications are delivered, then the worker ends.
    Last(Call<A, R>),
}

/// A running worker: a handle to send calls, and its task.
pub(crate) struct Worker<A: Driven, R> {
    name: &'static str,
    calls: mpsc::Sender<Msg<A, R>>,
    cancel: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Bounds the calls that wait for an answer.
    substrate: Substrate,
}

impl<A: Driven, R: Router<A>> Worker<A, R> {
    /// Starts `actor` with `start` as its first call. `cancel` stops it at once (in-flight store
    /// operations are abandoned; their outcome stays unknown to this process). Fails outside a
    /// tokio runtime.
    pub(crate) fn spawn(
        name: &'static str,
        actor: A,
        router: R,
        substrate: Substrate,
        start: Call<A, R>,
        cancel: CancellationToken,
    ) -> Result<Worker<A, R>, crate::Error> {
        // Not tokio::spawn, which panics outside a runtime: a misplaced call gets an error.
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| crate::Error::NoRuntime)?;
        let (tx, rx) = mpsc::channel(CALLS_QUEUED_MAX);
        let task = runtime.spawn(run(
            name,
            actor,
            router,
            substrate.clone(),
            start,
            rx,
            cancel.clone(),
        ));
        Ok(Worker {
            name,
            calls: tx,
            cancel,
            task: tokio::sync::Mutex::new(Some(task)),
            substrate,
        })
    }

    /// Queues a call.
    pub(crate) async fn call(&self, call: Call<A, R>) -> Result<(), crate::Error> {
        self.calls
            .send(Msg::Call(call))
            .await
            .map_err(|_| crate::Error::Stopped(self.name))
    }

    /// Queues `call` and waits for what it sends on `answer`, at most the substrate's call bound
    /// ([`Substrate::bounded`]; `what` names the public call in the error).
    pub(crate) async fn call_and_wait<T>(
        &self,
        what: &'static str,
        call: Call<A, R>,
        answer: oneshot::Receiver<T>,
    ) -> Result<T, crate::Error> {
        self.bounded(what, async {
            self.call(call).await?;
            answer.await.map_err(|_| crate::Error::Stopped(self.name))
        })
        .await
    }

    /// Runs a public call of this worker for at most the substrate's call bound.
    pub(crate) async fn bounded<T>(
        &self,
        what: &'static str,
        call: impl std::future::Future<Output = Result<T, crate::Error>>,
    ) -> Result<T, crate::Error> {
        self.substrate.bounded(what, call).await
    }

    /// Runs `last` (say, the actor's stop), delivers its notifications, and waits for the task.
    pub(crate) async fn shutdown(&self, last: Call<A, R>) {
        if self.calls.send(Msg::Last(last)).await.is_err() {
            self.cancel.cancel();
        }
        if let Some(task) = self.task.lock().await.take() {
            if let Err(e) = task.await {
                tracing::error!(worker = self.name, error = %e, "worker task failed");
            }
        }
    }

    /// Whether the worker still runs.
    pub(crate) fn is_running(&self) -> bool {
        !self.calls.is_closed()
    }

    /// A cheap handle that queues calls from elsewhere (another worker's router, a drop guard).
    pub(crate) fn caller(&self) -> Caller<A, R> {
        Caller {
            name: self.name,
            calls: self.calls.clone(),
        }
    }
}

/// Queues calls to a worker without owning it: the worker stops when its owner shuts it down,
/// whatever callers remain.
pub(crate) struct Caller<A: Driven, R> {
    name: &'static str,
    calls: mpsc::Sender<Msg<A, R>>,
}

impl<A: Driven, R> Clone for Caller<A, R> {
    fn clone(&self) -> Self {
        Caller {
            name: self.name,
            calls: self.calls.clone(),
        }
    }
}

impl<A: Driven, R> Caller<A, R> {
    /// Queues a call without waiting; `false` if the worker is gone or its queue is full.
    pub(crate) fn try_call(&self, call: Call<A, R>) -> bool {
        match self.calls.try_send(Msg::Call(call)) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(worker = self.name, error = %e, "call dropped");
                false
            }
        }
    }
}

impl<A: Driven, R> Drop for Worker<A, R> {
    fn drop(&mut self) {
        // A handle dropped without shutdown must not leave a task running forever.
        self.cancel.cancel();
    }
}

async fn run<A: Driven, R: Router<A>>(
    name: &'static str,
    mut actor: A,
    mut router: R,
    substrate: Substrate,
    start: Call<A, R>,
    mut calls: mpsc::Receiver<Msg<A, R>>,
    cancel: CancellationToken,
) {
    let clock = substrate.clock();
    let mut in_flight: JoinSet<(OpId, OpResult)> = JoinSet::new();
    let mut fx = start(&mut actor, &mut router, clock.now());
    let mut last = false;
    loop {
        for req in fx.requests.drain(..) {
            let substrate = substrate.clone();
            in_flight.spawn(async move {
                let started = Instant::now();
                let result = substrate.execute(&req.op).await;
                tracing::trace!(op = req.op.verb(), %result, elapsed = ?started.elapsed(), "store operation");
                (req.id, result)
            });
        }
        for n in fx.notifications.drain(..) {
            router.route(n);
        }
        router.settled(&actor);
        if last {
            break;
        }
        let wake = actor.next_deadline().map(|t| clock.instant_of(t));
        fx = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(joined) = in_flight.join_next() => match joined {
                Ok((id, result)) => actor.handle_reply(id, result, clock.now()),
                Err(e) => {
                    // execute() never panics; if it ever did, the actor would wait forever for
                    // this reply, so stop loudly rather than hang.
                    tracing::error!(worker = name, error = %e, "store task failed; stopping");
                    break;
                }
            },
            msg = calls.recv() => match msg {
                Some(Msg::Call(call)) => call(&mut actor, &mut router, clock.now()),
                Some(Msg::Last(call)) => {
                    last = true;
                    call(&mut actor, &mut router, clock.now())
                }
                None => break,
            },
            () = sleep_until(wake), if wake.is_some() => actor.handle_timeout(clock.now()),
        };
    }
    calls.close();
    in_flight.abort_all();
    tracing::debug!(worker = name, "stopped");
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the local clock is tokio's (a paused test clock stops it; advancing moves it by
    /// exactly as much), and a skewed clock runs its rate fast or slow from its offset.
    #[tokio::test(start_paused = true)]
    async fn the_local_clock_follows_tokio_time_and_its_skew() {
        let exact = LocalClock::SYSTEM;
        let fast = LocalClock::skewed(100_000, Duration::from_secs(5)).expect("within limits");
        let slow = LocalClock::skewed(-100_000, Duration::ZERO).expect("within limits");
        let (e0, f0, s0) = (exact.now(), fast.now(), slow.now());
        assert!(
            f0 >= e0.after(Duration::from_secs(5)),
            "the offset reads ahead"
        );
        assert_eq!(exact.now(), e0, "paused time stands still");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(exact.now().since(e0), Duration::from_secs(10));
        let near = |d: Duration, secs: u64| {
            d.abs_diff(Duration::from_secs(secs)) <= Duration::from_micros(2)
        };
        assert!(near(fast.now().since(f0), 11), "{:?}", fast.now().since(f0));
        assert!(near(slow.now().since(s0), 9), "{:?}", slow.now().since(s0));
        let later = fast.now().after(Duration::from_secs(11));
        let at = fast.instant_of(later);
        assert!(near(at - Instant::now(), 10), "{:?}", at - Instant::now());
        assert!(LocalClock::skewed(200_000, Duration::ZERO).is_err());
    }
}
