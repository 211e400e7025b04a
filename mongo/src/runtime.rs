//! The executor: one tokio task per core actor, carrying its effects to MongoDB.
//!
//! Each worker task owns its actor and loops over four events: an API call from a handle, the
//! reply to one of the actor's store requests, the actor's timer, and shutdown. Every store
//! request runs as its own task so a slow server never blocks the actor's API or its timer. The
//! actor decides everything; this module only moves data and time (STYLE.md §7.1).

use crate::substrate::Substrate;
use std::sync::OnceLock;
use std::time::Duration;
use tenure::effects::{Effects, OpId};
use tenure::substrate::OpResult;
use tenure::time::LocalTime;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Calls queued per worker before callers wait for room.
pub(crate) const CALLS_QUEUED_MAX: usize = 1024;

/// This process's monotonic clock, as the core's local time: nanoseconds since the first call.
/// One origin per process, so local deadlines from different workers compare.
pub fn local_now() -> LocalTime {
    LocalTime(nanos(origin().elapsed()))
}

/// The instant a local time stands for.
pub fn instant_of(t: LocalTime) -> Instant {
    origin() + Duration::from_nanos(t.0)
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    Instant::from_std(*ORIGIN.get_or_init(std::time::Instant::now))
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The part of the core's actor grammar (STYLE.md §7.1) the executor drives.
pub(crate) trait Actor: Send + 'static {
    type Output: Send + 'static;
    fn next_deadline(&self) -> Option<LocalTime>;
    fn handle_timeout(&mut self, now: LocalTime) -> Effects<Self::Output>;
    fn handle_reply(&mut self, id: OpId, result: OpResult, now: LocalTime)
        -> Effects<Self::Output>;
}

/// Where a worker's notifications go (waiting callers, watch channels, logs).
pub(crate) trait Router<O>: Send + 'static {
    fn route(&mut self, output: O);
}

/// An API call: runs inside the worker task with the actor, its router and the current time.
pub(crate) type Call<A, R> =
    Box<dyn FnOnce(&mut A, &mut R, LocalTime) -> Effects<<A as Actor>::Output> + Send>;

enum Msg<A: Actor, R> {
    Call(Call<A, R>),
    /// The last call: its effects' notifications are delivered, then the worker ends.
    Last(Call<A, R>),
}

/// A running worker: a handle to send calls, and its task.
pub(crate) struct Worker<A: Actor, R> {
    name: &'static str,
    calls: mpsc::Sender<Msg<A, R>>,
    cancel: CancellationToken,
    task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

impl<A: Actor, R: Router<A::Output>> Worker<A, R> {
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
            substrate,
            start,
            rx,
            cancel.clone(),
        ));
        Ok(Worker {
            name,
            calls: tx,
            cancel,
            task: tokio::sync::Mutex::new(Some(task)),
        })
    }

    /// Queues a call.
    pub(crate) async fn call(&self, call: Call<A, R>) -> Result<(), crate::Error> {
        self.calls
            .send(Msg::Call(call))
            .await
            .map_err(|_| crate::Error::Stopped(self.name))
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
pub(crate) struct Caller<A: Actor, R> {
    name: &'static str,
    calls: mpsc::Sender<Msg<A, R>>,
}

impl<A: Actor, R> Clone for Caller<A, R> {
    fn clone(&self) -> Self {
        Caller {
            name: self.name,
            calls: self.calls.clone(),
        }
    }
}

impl<A: Actor, R> Caller<A, R> {
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

impl<A: Actor, R> Drop for Worker<A, R> {
    fn drop(&mut self) {
        // A handle dropped without shutdown must not leave a task running forever.
        self.cancel.cancel();
    }
}

async fn run<A: Actor, R: Router<A::Output>>(
    name: &'static str,
    mut actor: A,
    mut router: R,
    substrate: Substrate,
    start: Call<A, R>,
    mut calls: mpsc::Receiver<Msg<A, R>>,
    cancel: CancellationToken,
) {
    let mut in_flight: JoinSet<(OpId, OpResult)> = JoinSet::new();
    let mut fx = start(&mut actor, &mut router, local_now());
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
        if last {
            break;
        }
        let wake = actor.next_deadline().map(instant_of);
        fx = tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(joined) = in_flight.join_next() => match joined {
                Ok((id, result)) => actor.handle_reply(id, result, local_now()),
                Err(e) => {
                    // execute() never panics; if it ever did, the actor would wait forever for
                    // this reply, so stop loudly rather than hang.
                    tracing::error!(worker = name, error = %e, "store task failed; stopping");
                    break;
                }
            },
            msg = calls.recv() => match msg {
                Some(Msg::Call(call)) => call(&mut actor, &mut router, local_now()),
                Some(Msg::Last(call)) => {
                    last = true;
                    call(&mut actor, &mut router, local_now())
                }
                None => break,
            },
            () = sleep_until(wake), if wake.is_some() => actor.handle_timeout(local_now()),
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
