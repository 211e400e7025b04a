//! The presence workload: each client is an agent with a key of its own. It pings for a
//! while (half the time for long, past P5's window), then stops or is killed (its sequence
//! marked dead at once), rests, and starts again with a new sequence. Its watcher watches
//! every client's key, and the client asks it for a fresh view (a sync) every few tens of
//! milliseconds. Slots are short (2 s) so that keys live and die many times in a run. The
//! history shows P4 (per watch, the current state first, then alive and dead alternating), and
//! P5 in runs whose pings no fault holds up.

use super::{Client, Counts};
use crate::error::Error;
use crate::{Presence, PresenceWatch};
use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::Rng;
use std::time::Duration;
use tokio::time::{sleep, timeout_at, Instant};

/// The presence model every client shares.
const MODEL: &str = "live";
/// The slot length: short, so keys change state often.
const PERIOD: Duration = Duration::from_secs(2);
/// How often each client's batcher flushes (the period must be 3.9 times as long).
const FLUSH_INTERVAL: Duration = Duration::from_millis(400);

/// Slack over the two slots a watcher reads, for P5: the sync's own round trip, late timers,
/// and the offsets to the server's clock each pinger and watcher measured once.
const P5_SLACK: Duration = Duration::from_secs(1);

/// How long a key must have been pinging for every report of it to say alive (P5), in a run
/// whose pings no fault held up: the core's window (the two slots a watcher reads), plus slack.
pub fn alive_window() -> Duration {
    let mut config = tenure::presence::PresenceConfig::new(MODEL);
    config.period = PERIOD;
    config.alive_window() + P5_SLACK
}

/// One client until `deadline`.
pub(super) async fn client(c: Client) -> Result<Counts, Error> {
    let Client {
        substrate,
        index: i,
        workload: w,
        mut rng,
        deadline,
    } = c;
    let presence = Presence::builder(MODEL)
        .period(PERIOD)
        .flush_interval(FLUSH_INTERVAL)
        .mutant(w.mutant)
        .build(&substrate)?;
    let watcher = presence.watcher()?;
    let mut watching = Vec::with_capacity(w.clients);
    for k in 0..w.clients {
        let mut changes = Box::pin(watcher.watch(&key(k)).await?);
        watching.push(tokio::spawn(async move {
            let mut seen = 0_u64;
            while let Ok(Some(_)) = timeout_at(deadline, changes.next()).await {
                seen += 1;
            }
            seen
        }));
    }
    let mut n = Counts::default();
    while Instant::now() < deadline {
        match presence.pinger(&key(i)).await {
            Ok(pinger) => {
                n.bump("pingers");
                // Half the agents stay up long past P5's window, as healthy ones do: only
                // reports after a whole window of pinging judge P5.
                let periods = match rng.random_bool(0.5) {
                    true => rng.random_range(4.0..10.0),
                    false => rng.random_range(0.5..4.0),
                };
                let until = Instant::now() + PERIOD.mul_f64(periods);
                ask(&watcher, &mut rng, until, &mut n).await;
                if rng.random_bool(0.5) {
                    pinger.stop().await;
                    n.bump("stopped");
                } else {
                    n.tally(pinger.kill().await, "killed");
                }
            }
            Err(e) => n.failed(&e),
        }
        let until = Instant::now() + PERIOD.mul_f64(rng.random_range(0.2..3.0));
        ask(&watcher, &mut rng, until, &mut n).await;
    }
    for w in watching {
        let seen = w
            .await
            .map_err(|e| Error::Store(format!("a presence watch failed: {e}")))?;
        n.add_to("watch events", seen);
    }
    watcher.shutdown().await;
    presence.shutdown().await;
    Ok(n)
}

/// Until `until`, asks the watcher for a fresh view now and then, as a service does before it
/// acts on who is alive.
async fn ask(watcher: &PresenceWatch, rng: &mut StdRng, until: Instant, n: &mut Counts) {
    while Instant::now() < until {
        n.tally(watcher.sync().await, "syncs");
        sleep(Duration::from_millis(rng.random_range(20..200))).await;
    }
}

/// Client `i`'s key.
fn key(i: usize) -> String {
    format!("agent-{i}")
}
