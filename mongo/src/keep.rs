//! Keeping a lease: a task renews a [`Token`] while half its duration is left, and a
//! cancellation token fires the moment the holder can no longer be sure it holds the lease. For
//! a plain lease, what [`crate::Leadership`]'s tenure is for leadership.

use crate::error::Error;
use crate::lease::Token;
use std::time::Duration;
use tenure::lease::keep::{renewal_keeps_term, renewal_lead, renewal_retry_delay};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

/// A lease kept alive by renewals. Stop acting as the holder the moment [`KeptLease::lost`]
/// fires. Dropping it stops the renewals (the lease then lapses at its deadline).
#[derive(Debug)]
pub struct KeptLease {
    current: watch::Receiver<Token>,
    lost: CancellationToken,
    stop: CancellationToken,
    task: Option<JoinHandle<Token>>,
}

impl Token {
    /// Keeps this lease: renews it for `duration` each time half of that is left before the
    /// local deadline (the core's `lease::keep` rules, shared with leadership), until stopped.
    /// [`KeptLease::lost`] fires when a deadline passes without a renewal (the store
    /// unreachable too long, the manager stopped, the term lost): from then on the holder must
    /// not act as the holder. Renewals keep the epoch; a renewal that would start a new term
    /// (the old one ended meanwhile) counts as lost. Fails outside a tokio runtime, or for a
    /// duration the manager would refuse.
    pub fn keep_alive(self, duration: Duration) -> Result<KeptLease, Error> {
        tenure::validate::check_lease_duration(duration)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let (tx, current) = watch::channel(self.clone());
        let (lost, stop) = (CancellationToken::new(), CancellationToken::new());
        let task = runtime.spawn(renew(self, duration, tx, lost.clone(), stop.clone()));
        Ok(KeptLease {
            current,
            lost,
            stop,
            task: Some(task),
        })
    }
}

impl KeptLease {
    /// The latest token (its local deadline moves later with each renewal).
    pub fn token(&self) -> Token {
        self.current.borrow().clone()
    }

    /// Fires the moment the lease can no longer be guaranteed: stop acting as the holder.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops renewing and returns the latest token, still good until its local deadline.
    pub async fn stop(mut self) -> Token {
        self.stop.cancel();
        let last = self.token();
        match self.task.take() {
            Some(task) => task.await.unwrap_or(last),
            None => last,
        }
    }

    /// Stops renewing and releases the lease ([`Token::release`]): stop acting first.
    pub async fn release(self) -> Result<bool, Error> {
        self.stop().await.release().await
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What ends a wait in [`renew`].
enum Woke {
    Due,
    Stopped,
    Lapsed,
}

/// Sleeps until `at`, unless stopped first or the deadline of `token` passes first.
async fn wait(at: Instant, token: &Token, stop: &CancellationToken) -> Woke {
    let deadline = token.local_deadline();
    tokio::select! {
        biased;
        () = stop.cancelled() => Woke::Stopped,
        () = sleep_until(deadline) => Woke::Lapsed,
        () = sleep_until(at) => Woke::Due,
    }
}

/// The renewal task: returns the last token when stopped or lost.
async fn renew(
    mut token: Token,
    duration: Duration,
    current: watch::Sender<Token>,
    lost: CancellationToken,
    stop: CancellationToken,
) -> Token {
    let (lead, retry) = (renewal_lead(duration), renewal_retry_delay(duration));
    let mut next = token.local_deadline().checked_sub(lead);
    loop {
        let at = next.unwrap_or_else(Instant::now);
        match wait(at, &token, &stop).await {
            Woke::Stopped => return token,
            Woke::Lapsed => break,
            Woke::Due => {}
        }
        let renewal = tokio::select! {
            biased;
            () = stop.cancelled() => return token,
            () = sleep_until(token.local_deadline()) => break,
            r = token.leases().claim(token.lease(), token.holder(), duration) => r,
        };
        match renewal {
            Ok(renewed) if renewal_keeps_term(token.epoch(), renewed.epoch()) => {
                token = renewed;
                current.send_replace(token.clone());
                next = token.local_deadline().checked_sub(lead);
            }
            Ok(_) => break,
            Err(e) if e.is_transient() => {
                tracing::debug!(lease = token.lease(), error = %e, "renewal failed; retrying");
                next = Some(Instant::now() + retry);
            }
            Err(e) => {
                tracing::warn!(lease = token.lease(), error = %e, "renewal refused; the lease lapses at its deadline");
                match wait(token.local_deadline(), &token, &stop).await {
                    Woke::Stopped => return token,
                    Woke::Lapsed | Woke::Due => break,
                }
            }
        }
    }
    tracing::warn!(
        lease = token.lease(),
        holder = token.holder(),
        "kept lease lost"
    );
    lost.cancel();
    token
}
