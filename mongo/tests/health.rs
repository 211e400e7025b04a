//! Health a service can alert on: a stalled global clock (no updater advancing it, so no lease
//! ever expires) and whether this unit leads, as states, errors and metrics.

mod common;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::sync::OnceLock;
use std::time::Duration;
use tenure::time::SkewBounds;
use tenure_mongo::{ClockHealth, ClockUpdater, ClockWatch, Error, Leadership, LeadershipState};
use tokio::time::timeout;

/// The process-wide metrics recorder the adapter reports to in this test binary.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder
            .install()
            .expect("the only recorder of this binary");
        snapshotter
    })
}

/// The value of gauge `name` whose labels include every pair of `labels`.
fn gauge(name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let snapshot = snapshotter().snapshot().into_vec();
    snapshot.into_iter().find_map(|(key, _, _, value)| {
        let key = key.key();
        let wanted = key.name() == name
            && labels
                .iter()
                .all(|(k, v)| key.labels().any(|l| l.key() == *k && l.value() == *v));
        match value {
            DebugValue::Gauge(g) if wanted => Some(g.into_inner()),
            _ => None,
        }
    })
}

async fn health_becomes(watch: &ClockWatch, what: &str, f: impl Fn(&ClockHealth) -> bool) {
    let mut rx = watch.health_changes();
    timeout(Duration::from_secs(10), rx.wait_for(|h| f(h)))
        .await
        .unwrap_or_else(|_| panic!("the clock is never seen {what}: {:?}", watch.health()))
        .expect("watch running");
}

/// Goal: with no updater, a watch reports the clock stalled (state, error, metric 1); once an
/// updater runs, it reports it advancing again (metric 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_without_an_updater_is_reported_stalled_until_one_runs() {
    snapshotter();
    let s = live!("health_clock_stall");
    let watch = ClockWatch::builder()
        .poll_interval(Duration::from_millis(50))
        .stall_after(Duration::from_millis(500))
        .spawn(&s)
        .expect("valid watch");
    health_becomes(&watch, "stalled", |h| {
        matches!(h, ClockHealth::Stalled { .. })
    })
    .await;
    match watch.health().ensure_advancing() {
        Err(e @ Error::ClockStalled { stalled_for, .. }) => {
            assert!(stalled_for >= Duration::from_millis(500), "{e}");
            assert!(e.to_string().contains("start a ClockUpdater"), "{e}");
        }
        other => panic!("a stalled clock is an error: {other:?}"),
    }
    assert_eq!(gauge("tenure_clock_stalled", &[]), Some(1.0));

    let updater = ClockUpdater::builder()
        .update_interval(Duration::from_millis(50))
        .backoff_delay(Duration::from_millis(100))
        .spawn(&s)
        .expect("updater");
    health_becomes(&watch, "advancing", |h| {
        matches!(h, ClockHealth::Advancing { .. })
    })
    .await;
    assert!(watch.health().ensure_advancing().is_ok());
    assert_eq!(gauge("tenure_clock_stalled", &[]), Some(0.0));
    updater.shutdown().await;
    watch.shutdown().await;
}

/// Goal: a watch's cancellation token stops it, as every other handle's does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_clock_watch_stops() {
    let s = live!("health_cancel");
    let cancel = tokio_util::sync::CancellationToken::new();
    let watch = ClockWatch::builder()
        .poll_interval(Duration::from_millis(50))
        .cancellation(cancel.clone())
        .spawn(&s)
        .expect("valid watch");
    let mut health = watch.health_changes();
    health.changed().await.expect("a first poll answers");
    cancel.cancel();
    let ended = timeout(Duration::from_secs(5), async {
        while health.changed().await.is_ok() {}
    });
    ended
        .await
        .expect("the watch's task ended and dropped its sender");
}

/// Goal: a stall threshold not above the poll interval is refused before any I/O.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_threshold_within_one_poll_is_refused() {
    let s = live!("health_bad_threshold");
    let e = ClockWatch::builder()
        .poll_interval(Duration::from_secs(2))
        .stall_after(Duration::from_secs(1))
        .spawn(&s)
        .err()
        .expect("refused");
    assert!(matches!(e, Error::Input(_)), "{e}");
    assert!(e.to_string().contains("poll interval"), "{e}");
}

/// Goal: the `tenure_is_leader` gauge is 1 exactly while this unit leads, 0 once it resigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_is_leader_gauge_follows_leadership() {
    snapshotter();
    let s = live!("health_is_leader");
    let clock = ClockUpdater::builder()
        .update_interval(Duration::from_millis(20))
        .backoff_delay(Duration::from_millis(100))
        .spawn(&s)
        .expect("updater");
    let unit = Leadership::builder("gauged", "gauged-0")
        .claim_duration(Duration::from_millis(800))
        .skew(SkewBounds {
            rate_error_ppm: 500,
            clock_step_max: Duration::from_millis(100),
        })
        .retry(tenure_mongo::RetryConfig {
            attempts_max: 10,
            delay_min: Duration::from_millis(10),
            delay_max: Duration::from_millis(100),
        })
        .build(&s)
        .expect("valid leadership");
    let labels = [("application", "gauged"), ("unit", "gauged-0")];
    let mut state = unit.state();
    timeout(
        Duration::from_secs(10),
        state.wait_for(LeadershipState::is_leader),
    )
    .await
    .expect("the only unit leads")
    .expect("tracker running");
    assert_eq!(gauge("tenure_is_leader", &labels), Some(1.0));
    unit.resign().await.expect("resign");
    timeout(Duration::from_secs(10), state.wait_for(|s| !s.is_leader()))
        .await
        .expect("resigning ends leadership")
        .expect("tracker running");
    assert_eq!(gauge("tenure_is_leader", &labels), Some(0.0));
    clock.shutdown().await;
}
