//! The lease workload: each client, a lease manager of its own, contends for a few leases. It
//! claims one at random; holding it, it acts for a random part of the term, then releases it or
//! lets it lapse; denied, it backs off a little. The history shows L6 (exclusion over the
//! holders' beliefs) and F1 (epochs).

use super::{Client, Counts};
use crate::error::Error;
use crate::{Leases, Token};
use rand::Rng;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// One client until `deadline`. Like a service that gives up an old handle late, it keeps the
/// token of a term it let lapse and, granted the same lease again in a newer term, sometimes
/// releases the old token first: a release that ignored the token's epoch would end the new
/// term under its holder.
pub(super) async fn client(c: Client) -> Result<Counts, Error> {
    let Client {
        substrate,
        index: i,
        workload: w,
        mut rng,
        deadline,
    } = c;
    let leases = Leases::builder("live")
        .writer(format!("live-{i}"))
        .skew(w.skew)
        .max_sleep(w.term)
        .mutant(w.mutant)
        .build(&substrate)?;
    let holder = format!("client-{i}");
    let mut n = Counts::default();
    let mut lapsed: Option<(String, Token)> = None;
    while Instant::now() < deadline {
        let lease = format!("l{}", rng.random_range(0..w.leases));
        n.bump("claims");
        match leases.claim(&lease, &holder, w.term).await {
            Ok(token) => {
                n.bump("granted");
                let stale = lapsed.take_if(|(l, old)| *l == lease && old.epoch() < token.epoch());
                if let Some((_, old)) = stale.filter(|_| rng.random_bool(0.5)) {
                    n.tally(old.release().await, "stale releases");
                }
                sleep(w.term.mul_f64(rng.random_range(0.0..0.6))).await;
                if rng.random_bool(0.5) {
                    n.tally(token.release().await, "released");
                } else {
                    lapsed = Some((lease, token));
                }
            }
            Err(Error::ClaimDenied { .. }) => {
                n.bump("denied");
                sleep(Duration::from_millis(rng.random_range(20..200))).await;
            }
            Err(e) => {
                n.failed(&e);
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
    leases.shutdown().await;
    Ok(n)
}
