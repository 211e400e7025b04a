//! The lease workload: each client, a lease manager of its own, contends for a few leases. It
//! claims one at random; holding it, it acts for a random part of the term, then releases it or
//! lets it lapse (and leaves that lease alone till its deadline); denied, it backs off a little
//! or waits for the lease, so lapsed terms pass to waiting rivals. Before it gives the term up
//! it writes the lease's data document, fenced by its epoch, as a holder guards its downstream
//! writes. The history shows L6 (exclusion over the holders' beliefs) and F1 (epochs of
//! grants, and no stale fenced write accepted after a newer one; a client paused past its term
//! tests that).

use super::{Client, Counts};
use crate::error::Error;
use crate::{Fenced, Leases, Substrate, Token};
use mongodb::bson::doc;
use rand::Rng;
use std::time::Duration;
use tokio::time::{sleep, Instant};

/// The collection of the leases' data documents, one per lease (`_id` the lease's name),
/// which holders write fenced.
pub(super) const DATA: &str = "live_data";
/// The field that carries a data document's fencing epoch.
const FENCE: &str = "epoch";

/// Creates the data documents the lease clients write fenced.
pub(super) async fn create_data(admin: &Substrate, leases: usize) -> Result<(), Error> {
    let docs = (0..leases).map(|k| doc! { "_id": format!("l{k}") });
    admin
        .database()
        .collection::<mongodb::bson::Document>(DATA)
        .insert_many(docs)
        .await
        .map_err(|source| Error::Driver {
            context: "creating the leases' data documents",
            source,
        })?;
    Ok(())
}

/// One client until `deadline`. Like a service that gives up an old handle late, it keeps the
/// token of a term it let lapse and, granted the same lease again in a newer term, releases
/// the old token first: a release that ignored the token's epoch would end the new
/// term under its holder. Denied, it backs off, or (half the time) waits for the lease
/// ([`Leases::acquire`]), so that a lapsed term passes to a rival as soon as it may.
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
        let lease = next_lease(&mut rng, w.leases, lapsed.as_ref()).await;
        n.bump("claims");
        let claimed = match leases.claim(&lease, &holder, w.term).await {
            Err(Error::ClaimDenied { .. }) if rng.random_bool(0.5) => {
                n.bump("denied");
                n.bump("waits");
                leases.acquire(&lease, &holder, w.term, w.term * 2).await
            }
            other => other,
        };
        match claimed {
            Ok(token) => {
                n.bump("granted");
                let stale = lapsed.take_if(|(l, old)| *l == lease && old.epoch() < token.epoch());
                if let Some((_, old)) = stale {
                    n.tally(old.release().await, "stale releases");
                }
                lapsed = hold(&substrate, token, w.term, &mut rng, &mut n).await;
            }
            Err(Error::ClaimDenied { .. }) => {
                n.bump("denied");
                sleep(Duration::from_millis(rng.random_range(20..200))).await;
            }
            Err(Error::Timeout(_)) => n.bump("waits timed out"),
            Err(e) => {
                n.failed(&e);
                sleep(Duration::from_millis(50)).await;
            }
        }
    }
    leases.shutdown().await;
    Ok(n)
}

/// Acts as the holder for a random part of the `term`, writes the lease's data document fenced
/// by the token's epoch, then releases the lease (a third of the time), or lets it lapse and
/// returns the token: lapses are the handovers that timing decides.
async fn hold(
    substrate: &Substrate,
    token: Token,
    term: Duration,
    rng: &mut impl Rng,
    n: &mut Counts,
) -> Option<(String, Token)> {
    sleep(term.mul_f64(rng.random_range(0.0..0.6))).await;
    let data = substrate
        .database()
        .collection::<mongodb::bson::Document>(DATA);
    let filter = doc! { "_id": token.lease() };
    let update = doc! { "$set": { "by": token.holder() } };
    match token.fenced_update_one(&data, FENCE, filter, update).await {
        Ok(Fenced::Written) => n.bump("fenced writes"),
        Ok(_) => n.bump("fenced out"),
        Err(e) => n.failed(&e),
    }
    if rng.random_bool(1.0 / 3.0) {
        n.tally(token.release().await, "released");
        None
    } else {
        Some((token.lease().to_owned(), token))
    }
}

/// The lease to claim next, at random. A term this client let lapse is left alone until its
/// local deadline, as a holder that stopped would leave it: claimed again sooner, it would be
/// extended, and no term would ever lapse into a rival's hands (the handover a deadline
/// measured from the wrong instant breaks). With no other lease, the client waits it out.
/// Past the deadline it comes back for that lease half the time, as a restarted service
/// would: granted a newer term of it, it holds a stale token of the same lease.
async fn next_lease(rng: &mut impl Rng, leases: usize, lapsed: Option<&(String, Token)>) -> String {
    let any = |rng: &mut dyn rand::RngCore, skip: Option<usize>| {
        let k = rng.random_range(0..leases - usize::from(skip.is_some()));
        format!("l{}", skip.map_or(k, |s| k + usize::from(k >= s)))
    };
    let Some((lease, token)) = lapsed else {
        return any(rng, None);
    };
    let k = lease.strip_prefix('l').and_then(|k| k.parse().ok());
    match (token.is_valid(), leases) {
        (true, 1) => {
            tokio::time::sleep_until(token.local_deadline()).await;
            lease.clone()
        }
        (true, _) => any(rng, k),
        (false, _) if rng.random_bool(0.5) => lease.clone(),
        (false, _) => any(rng, None),
    }
}
