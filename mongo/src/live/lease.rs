//! The lease workload: each client, a lease manager of its own, contends for a few leases. It
//! claims one at random; holding it, it acts for a random part of the term, then releases it or
//! lets it lapse; denied, it backs off a little. Before it gives the term up it writes the
//! lease's data document, fenced by its epoch, as a holder guards its downstream writes. The
//! history shows L6 (exclusion over the holders' beliefs) and F1 (epochs of grants, and no
//! stale fenced write accepted after a newer one; a client paused past its term tests that).

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
    let data = substrate
        .database()
        .collection::<mongodb::bson::Document>(DATA);
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
                let filter = doc! { "_id": &lease };
                let update = doc! { "$set": { "by": &holder } };
                match token.fenced_update_one(&data, FENCE, filter, update).await {
                    Ok(Fenced::Written) => n.bump("fenced writes"),
                    Ok(_) => n.bump("fenced out"),
                    Err(e) => n.failed(&e),
                }
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
