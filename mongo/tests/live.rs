//! Live checking (issue 18): every protocol's workload at once (clock, lease, leadership,
//! presence; 16 clients each) through the fault proxy, under the server's failpoints and
//! step-downs, kills and restarts, and skewed client clocks, on a SecantusDB of its own for
//! 130 s. The recorded history must pass every property it has data for, and each protocol's
//! clients must have made at least 10,000 store operations (100 s made 11,567 for presence,
//! the fewest, on the development machine once one write acknowledgement in ten came late).

mod common;

use std::sync::Arc;
use std::time::Duration;
use tenure::history::{CheckParams, History, Phase};
use tenure::mutant::Protocol;
use tenure::property::PropertyId;
use tenure_mongo::live::faults::{LiveFault, ServerFault};
use tenure_mongo::live::{checks, LiveTarget, Workload};

const PORT: &str = "27157";
/// Store operations each protocol's clients must make, at least.
const OPERATIONS_MIN: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_passes_under_every_live_fault() {
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
    let workload = Workload {
        protocols: Protocol::ALL.into_iter().collect(),
        clients: 16,
        leases: 8,
        duration: Duration::from_secs(130),
        seed: 11,
        // Every fault but the client processes' (`tenure live --processes` has those).
        faults: LiveFault::ALL
            .iter()
            .copied()
            .filter(|f| !f.needs_processes())
            .collect(),
        ..Workload::default()
    };
    let target = LiveTarget {
        uri,
        database: common::fresh_db("live_faults"),
        allow_standalone: false,
        restart: Some(restart),
        driver_retries: false,
        client_command: None,
    };
    let run = workload
        .run(&target, |_| {})
        .await
        .expect("the workload runs");
    let _ = common::substrate_script(&["stop", "secantus", "--port", PORT]);

    let mut verdicts = run.history.check(CheckParams {
        rate_error_ppm: workload.skew.rate_error_ppm,
    });
    let g3 = run
        .history
        .check_clock_rate(workload.skew.rate_error_ppm, workload.skew.clock_step_max);
    verdicts.push((PropertyId::G3, g3.expect("clock reads")));
    let checked: Vec<PropertyId> = verdicts.iter().map(|(p, _)| *p).collect();
    for p in Protocol::ALL.iter().flat_map(|p| checks(*p)) {
        assert!(checked.contains(p), "{p:?} had no data: {checked:?}");
    }
    let failed: Vec<String> = verdicts
        .iter()
        .filter_map(|(_, v)| v.as_ref().err().map(ToString::to_string))
        .collect();
    if !failed.is_empty() {
        // Kept for `tenure live --check` and a picture of the violation.
        let saved = common::root().join("target/live-test-history.jsonl");
        let _ = std::fs::write(&saved, run.history.to_jsonl());
        panic!("{failed:?}; history: {}", saved.display());
    }

    let operations: Vec<(Protocol, usize)> = Protocol::ALL
        .iter()
        .map(|p| (*p, run.operations(*p)))
        .collect();
    eprintln!(
        "live_faults: store operations {operations:?}, {:?}, proxy {:?}, {} server faults",
        run.counts,
        run.proxy,
        run.fired.len()
    );
    for (p, n) in &operations {
        assert!(*n >= OPERATIONS_MIN, "{p}: {n} store operations");
    }
    assert_eq!(run.dropped, 0);
    // Each workload did what it is for: contention, leaders and followers, keys dying.
    let count = |p: Protocol, what: &str| run.counts.get(&p).map_or(0, |c| c.get(what));
    for (p, what) in [
        (Protocol::Clock, "updater restarts"),
        (Protocol::Lease, "granted"),
        (Protocol::Lease, "denied"),
        (Protocol::Leadership, "led"),
        (Protocol::Leadership, "followed"),
        (Protocol::Leadership, "resigned"),
        (Protocol::Presence, "killed"),
        (Protocol::Presence, "stopped"),
        (Protocol::Presence, "watch events"),
    ] {
        assert!(count(p, what) > 0, "{p} {what}: {:?}", run.counts);
    }

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
    let rates: std::collections::BTreeSet<i32> = run.processes.iter().map(|p| p.rate_ppm).collect();
    assert!(rates.len() > 2, "{:?}", run.processes);
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
