//! The leadership workload: each client is a unit of one of a few applications (one
//! leadership lease each). A unit lives a few claim durations: it asks whether it leads, waits
//! to lead or to follow, each with a timeout, and ends by resigning or by simply stopping, and
//! the next unit of that client starts. The history shows T1 (a true answer is backed by a
//! claim duration of tenure), T4 (every ticket resolves once, false after the stop), and, from
//! the trackers' own claims, L6 and F1.

use super::{Client, Counts, Workload};
use crate::error::Error;
use crate::{Leadership, RetryConfig};
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;
use tokio::time::{sleep, timeout, Instant};

/// One client until `deadline`: unit after unit.
pub(super) async fn client(c: Client) -> Result<Counts, Error> {
    let Client {
        substrate,
        index: i,
        workload: w,
        mut rng,
        deadline,
    } = c;
    let mut n = Counts::default();
    let application = format!("app{}", i % w.leases);
    let claim_duration = claim_duration(&w);
    let mut life = 0;
    while Instant::now() < deadline {
        let unit = Leadership::builder(&application, format!("unit-{i}-{life}"))
            .claim_duration(claim_duration)
            .skew(w.skew)
            .retry(retry(claim_duration))
            .mutant(w.mutant)
            .build(&substrate)?;
        n.bump("units");
        let end = deadline.min(Instant::now() + claim_duration * rng.random_range(2..12));
        while Instant::now() < end {
            ask(&unit, claim_duration, &mut rng, &mut n).await;
        }
        if rng.random_bool(0.5) {
            n.tally(unit.resign().await, "resigned");
        } else {
            unit.shutdown().await;
        }
        life += 1;
    }
    Ok(n)
}

/// The units' claim duration: half the workload's term, so that a leadership lease (twice the
/// claim duration) lasts one term, as a lease client's does.
fn claim_duration(w: &Workload) -> Duration {
    w.term / 2
}

/// Claims that meet a concurrent change retry within a quarter of the claim duration (the
/// default's 5 s would outlast the workload's short claims).
fn retry(claim_duration: Duration) -> RetryConfig {
    RetryConfig {
        attempts_max: 10,
        delay_min: Duration::from_millis(20),
        delay_max: claim_duration / 4,
    }
}

/// One question to the unit, as a service would ask it.
async fn ask(unit: &Leadership, claim_duration: Duration, rng: &mut StdRng, n: &mut Counts) {
    let patience = claim_duration.mul_f64(rng.random_range(0.2..2.0));
    match rng.random_range(0..3) {
        0 => match unit.claim_leader().await {
            Ok(Some(_tenure)) => {
                n.bump("led");
                sleep(claim_duration.mul_f64(rng.random_range(0.0..0.5))).await;
            }
            Ok(None) => {
                n.bump("followed");
                sleep(Duration::from_millis(rng.random_range(20..200))).await;
            }
            Err(e) => n.failed(&e),
        },
        1 => match timeout(patience, unit.wait_leader()).await {
            Ok(r) => n.tally(r, "waited to lead"),
            Err(_) => n.bump("gave up waiting"),
        },
        _ => match timeout(patience, unit.wait_minion()).await {
            Ok(r) => n.tally(r, "waited to follow"),
            Err(_) => n.bump("gave up waiting"),
        },
    }
}
