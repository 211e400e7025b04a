//! Live checking (issue 18): the lease workload through the fault proxy, under the server's
//! failpoints and step-downs, a kill and restart, and skewed client clocks, on a SecantusDB of
//! its own for 90 s; the recorded history must pass every property it has data for, over at
//! least 10,000 store operations (about 15,000 are made; 60 s made 9,957 once in CI).

mod common;

use std::sync::Arc;
use std::time::Duration;
use tenure::history::{CheckParams, History, Phase};
use tenure::property::PropertyId;
use tenure_mongo::live::faults::{LiveFault, ServerFault};
use tenure_mongo::live::{LeaseWorkload, LiveTarget};

const PORT: &str = "27157";
/// Store operations the run must make, at least.
const OPERATIONS_MIN: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_workload_passes_under_every_live_fault() {
    let dir = common::root().join("target/live-test-store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a store directory");
    let dir = dir.display().to_string();
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);
    let server = ["secantus", "--port", PORT, "--test-commands", "--dir", &dir];
    let Some(uri) = common::own_server("live_faults", &server) else {
        return;
    };
    let restart_args: Vec<String> = server.iter().map(|s| s.to_string()).collect();
    let restart = Arc::new(move || {
        common::substrate_script(&["stop", "secantus", "--port", PORT, "--kill"])?;
        let mut start = vec!["start"];
        start.extend(restart_args.iter().map(String::as_str));
        common::substrate_script(&start).map(|_| ())
    });
    let workload = LeaseWorkload {
        clients: 12,
        leases: 6,
        duration: Duration::from_secs(90),
        seed: 11,
        faults: LiveFault::ALL.iter().copied().collect(),
        ..LeaseWorkload::default()
    };
    let target = LiveTarget {
        uri,
        database: common::fresh_db("live_faults"),
        allow_standalone: false,
        restart: Some(restart),
        driver_retries: false,
    };
    let run = workload
        .run(&target, |_| {})
        .await
        .expect("the workload runs");
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);

    let verdicts = run.history.check(CheckParams {
        rate_error_ppm: workload.skew.rate_error_ppm,
    });
    let checked: Vec<PropertyId> = verdicts.iter().map(|(p, _)| *p).collect();
    for p in [
        PropertyId::G1,
        PropertyId::G2,
        PropertyId::L6,
        PropertyId::F1,
    ] {
        assert!(checked.contains(&p), "{p:?} had no data: {checked:?}");
    }
    let failed: Vec<String> = verdicts
        .iter()
        .filter_map(|(_, v)| v.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(failed.is_empty(), "{failed:?}");

    let operations = run.history.store_operations();
    eprintln!(
        "live_faults: {operations} store operations, {:?}, proxy {:?}, {} server faults",
        run.report,
        run.proxy,
        run.fired.len()
    );
    assert!(
        operations >= OPERATIONS_MIN,
        "{operations} store operations"
    );
    assert_eq!(run.dropped, 0);
    assert!(
        run.report.granted > 0 && run.report.denied > 0,
        "{:?}",
        run.report
    );

    // Every fault struck: the proxy's, each kind of server fault, and the clocks' skew.
    for fate in ["lost", "ambiguous", "delay", "sever"] {
        assert!(
            run.proxy.get(fate).is_some_and(|n| *n > 0),
            "{fate}: {:?}",
            run.proxy
        );
    }
    let struck = |f: fn(&ServerFault) -> bool| {
        run.fired
            .iter()
            .any(|x| f(&x.event.fault) && x.result.is_ok())
    };
    assert!(struck(|f| matches!(f, ServerFault::Failpoint { .. })));
    assert!(struck(|f| matches!(f, ServerFault::StepDown { .. })));
    assert!(struck(|f| matches!(f, ServerFault::Restart)));
    let rates: std::collections::BTreeSet<i32> = run.clocks.iter().map(|c| c.1).collect();
    assert!(rates.len() > 2, "{:?}", run.clocks);
    // Unknown outcomes happened, and the history says so.
    assert!(run
        .history
        .entries
        .iter()
        .any(|e| e.phase == Phase::Unknown));

    // The history reads back as written.
    let again = History::from_jsonl(&run.history.to_jsonl()).expect("a history");
    assert_eq!(again, run.history);
}
