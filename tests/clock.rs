//! Reference behaviours of the global clock (PROTOCOLS.md §1), driven through the sans-I/O
//! actors on the reference store with explicit times.

mod common;

use common::{secs, Clock, Fault, Node, Note, Sim};
use std::time::Duration;
use tenure::actor::Actor;
use tenure::clock::watcher::WatcherOutput;
use tenure::clock::{
    stall_threshold, ClockError, ClockWatcher, Reader, Updater, UpdaterConfig, UpdaterOutput,
    WatcherConfig, CLOCK_ID,
};
use tenure::substrate::{fields, Collection, Document, OpResult, ReadConcern, Reply, Value};
use tenure::time::GlobalTime;

fn config() -> UpdaterConfig {
    UpdaterConfig {
        update_interval: Duration::from_secs(1),
        backoff_delay: Duration::from_secs(30),
        mutant: None,
    }
}

fn updater_outputs(sim: &Sim, node: usize) -> Vec<UpdaterOutput> {
    sim.notes_of(node)
        .into_iter()
        .filter_map(|n| match n {
            Note::Updater(u) => Some(u),
            _ => None,
        })
        .collect()
}

fn start_updater(sim: &mut Sim, clock: Clock) -> usize {
    let n = sim.add(Node::Updater(Updater::new(config()).unwrap()), clock);
    sim.call(n, |a, now| match a {
        Node::Updater(u) => common::split(u.handle_start(now), Note::Updater),
        _ => unreachable!(),
    });
    n
}

/// Goal: ensure creates `{_id: "g", time: 0}` and leaves an existing clock alone.
/// Method: start one updater on an empty store, another on a store holding time 42.
#[test]
fn ensure_creates_the_document_and_keeps_an_existing_one() {
    let mut sim = Sim::new();
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    assert_eq!(
        updater_outputs(&sim, n),
        [UpdaterOutput::Ready {
            base: GlobalTime(0)
        }]
    );
    assert_eq!(sim.global(), GlobalTime(0));

    let mut sim = Sim::new();
    sim.store.put(
        Collection::Clock,
        Document::new(CLOCK_ID, fields([("time", Value::Int(42))])),
    );
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    assert_eq!(
        updater_outputs(&sim, n),
        [UpdaterOutput::Ready {
            base: GlobalTime(42)
        }]
    );
}

/// Goal: the updater advances by the local time elapsed since it last observed the clock.
/// Method: a 10%-fast local clock ticks every local second (every 0.909 real s) and adds one
/// local second each time, so after 10 real seconds global time reads 11 s.
#[test]
fn advance_adds_local_time_since_last_observation() {
    let mut sim = Sim::new();
    let n = start_updater(
        &mut sim,
        Clock {
            rate_ppm: 100_000,
            offset: 7,
        },
    );
    sim.run_until(secs(1));
    let outs = updater_outputs(&sim, n);
    let Some(UpdaterOutput::Advanced {
        from: GlobalTime(0),
        to,
        elapsed,
    }) = outs.last()
    else {
        panic!("{outs:?}")
    };
    assert_eq!(*elapsed, Duration::from_nanos(to.0));
    assert!(
        elapsed.as_nanos().abs_diff(1_000_000_000) <= 1,
        "{elapsed:?}"
    );
    sim.run_until(secs(10) + common::ms(1));
    assert!(
        sim.global().0.abs_diff(11_000_000_000) <= 11,
        "{:?}",
        sim.global()
    );
}

/// Goal: one advance adds at most `step_max` (max of interval and backoff), so a paused updater
/// cannot make global time jump by the whole pause: lease holders budget for S = `step_max`.
/// Method: pause the updater for 100 s, resume it; its next write adds 30 s (the backoff), not
/// 100 s, and later writes go back to one interval each.
#[test]
fn a_paused_updater_advances_by_at_most_step_max() {
    let mut sim = Sim::new();
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.run_until(secs(2));
    assert_eq!(sim.global(), GlobalTime(secs(2)));
    sim.set_paused(n, true);
    sim.run_until(secs(102));
    assert_eq!(sim.global(), GlobalTime(secs(2)), "paused: no writes");
    sim.set_paused(n, false);
    sim.settle();
    assert_eq!(config().step_max(), Duration::from_secs(30));
    assert_eq!(sim.global(), GlobalTime(secs(32)));
    sim.run_until(secs(104));
    assert_eq!(sim.global(), GlobalTime(secs(34)));
}

/// Goal: two updaters racing on one base: exactly one swap wins; the loser refreshes its base
/// and backs off for BackoffDelay (PROTOCOLS.md §1.3 step 3).
/// Method: hold both advances in flight, then deliver them in turn.
#[test]
fn concurrent_advance_one_wins_loser_refreshes_and_backs_off() {
    let mut sim = Sim::new();
    let a = start_updater(&mut sim, Clock::EXACT);
    let b = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    sim.real = secs(1);
    sim.fire(a);
    sim.fire(b);
    assert_eq!(sim.in_flight().len(), 2);
    sim.deliver(0, Fault::Applied);
    sim.deliver(0, Fault::Applied); // b's swap fails and b issues its refresh read
    sim.settle();
    assert!(matches!(
        updater_outputs(&sim, a).last(),
        Some(UpdaterOutput::Advanced { .. })
    ));
    assert_eq!(
        updater_outputs(&sim, b).last(),
        Some(&UpdaterOutput::Conflict {
            observed: GlobalTime(secs(1))
        })
    );
    let Node::Updater(u) = &sim.procs[b].node else {
        unreachable!()
    };
    assert_eq!(u.base(), Some(GlobalTime(secs(1))));
    assert_eq!(u.next_deadline(), Some(tenure::time::LocalTime(secs(31))));
}

/// Goal: any other outcome discards the updater ("must be treated as invalid"), which is rebuilt
/// after the backoff; a lost write is harmless because the retry's swap uses a fresh base.
/// Method: make the advance's reply ambiguous.
#[test]
fn unknown_outcome_discards_and_rebuilds_the_updater() {
    let mut sim = Sim::new();
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    sim.real = secs(1);
    sim.fire(n);
    sim.deliver(0, Fault::Ambiguous);
    let outs = updater_outputs(&sim, n);
    let Some(UpdaterOutput::Failed(ClockError::Store { context, cause })) = outs.last() else {
        panic!("{outs:?}")
    };
    assert!(
        context.starts_with("updating global clock: adding 1.000s to current time 0.000s"),
        "{context}"
    );
    assert_eq!(cause.message(), "outcome unknown");
    // Rebuilt after BackoffDelay, it observes the applied write and goes on from there.
    sim.run_until(secs(31));
    assert!(updater_outputs(&sim, n).contains(&UpdaterOutput::Ready {
        base: GlobalTime(secs(1))
    }));
}

/// Goal: an updater stopped while its advance is in flight says that write's outcome is
/// unknown (it may still apply, and no reply will tell), so a history does not miss it (G2);
/// an idle updater stops silently.
/// Method: stop one updater after it sent its advance, and one that is idle.
#[test]
fn stopping_with_an_advance_in_flight_reports_it_unknown() {
    let mut sim = Sim::new();
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    sim.real = secs(1);
    sim.fire(n);
    let stop = |sim: &mut Sim| {
        sim.call(n, |a, now| match a {
            Node::Updater(u) => common::split(u.handle_stop(now), Note::Updater),
            _ => unreachable!(),
        })
    };
    stop(&mut sim);
    assert_eq!(
        updater_outputs(&sim, n).last(),
        Some(&UpdaterOutput::AdvanceUnknown {
            from: GlobalTime(0),
            to: GlobalTime(secs(1))
        })
    );
    let before = updater_outputs(&sim, n).len();
    stop(&mut sim);
    assert_eq!(
        updater_outputs(&sim, n).len(),
        before,
        "an idle stop says nothing"
    );
}

/// Goal: a corrupt clock document is reported with its `_id`, never overwritten.
#[test]
fn corrupt_clock_document_is_reported_not_repaired() {
    let mut sim = Sim::new();
    sim.store.put(
        Collection::Clock,
        Document::new(CLOCK_ID, fields([("time", Value::Str("soon".into()))])),
    );
    let n = start_updater(&mut sim, Clock::EXACT);
    sim.settle();
    let outs = updater_outputs(&sim, n);
    let Some(UpdaterOutput::Failed(e)) = outs.first() else {
        panic!("{outs:?}")
    };
    assert!(
        e.to_string().contains("\"g\"") && e.to_string().contains("time"),
        "{e}"
    );
    assert_eq!(
        sim.store
            .get(Collection::Clock, CLOCK_ID)
            .unwrap()
            .get("time"),
        Some(&Value::Str("soon".into()))
    );
}

/// Goal: invalid configuration is refused with a message naming the field.
#[test]
fn invalid_config_names_the_field() {
    let e = Updater::new(UpdaterConfig {
        update_interval: Duration::ZERO,
        ..config()
    })
    .unwrap_err();
    assert!(e.to_string().contains("update interval"), "{e}");
    let e = Updater::new(UpdaterConfig {
        backoff_delay: Duration::from_secs(86_400),
        ..config()
    })
    .unwrap_err();
    assert!(e.to_string().contains("backoff delay"), "{e}");
}

/// Goal: the reader returns the epoch for a missing document and propagates store errors.
#[test]
fn reader_reads_missing_as_epoch() {
    assert_eq!(
        Reader::decode(&OpResult::Ok(Reply::Doc(None))),
        Ok(GlobalTime(0))
    );
    assert!(Reader::decode(&OpResult::Unknown).is_err());
    assert!(matches!(
        Reader::request(ReadConcern::Linearizable),
        tenure::substrate::Op::Read { .. }
    ));
}

/// Goal: the watcher polls at once, then every interval, and emits only strictly later values.
/// Method: an updater every 1 s and a watcher every 400 ms: repeats are suppressed.
#[test]
fn watcher_emits_only_strictly_later_values() {
    let mut sim = Sim::new();
    start_updater(&mut sim, Clock::EXACT);
    let w = sim.add(
        Node::ClockWatcher(
            ClockWatcher::new(WatcherConfig {
                poll_interval: Duration::from_millis(400),
                stall_after: None,
                mutant: None,
            })
            .unwrap(),
        ),
        Clock::EXACT,
    );
    sim.run_until(secs(5));
    let values: Vec<GlobalTime> = sim
        .notes_of(w)
        .into_iter()
        .filter_map(|n| match n {
            Note::ClockWatcher(WatcherOutput::Time(t)) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(values.first(), Some(&GlobalTime(0)));
    assert!(values.windows(2).all(|w| w[1] > w[0]), "{values:?}");
    assert!(values.len() >= 5, "{values:?}");
}

/// Goal: a watcher reports a stalled clock once, after the threshold and not before, and the
/// next advance ends the stall (item 9 of the production-readiness issue: with no updater
/// advancing global time, no lease ever expires, and nothing else would say so).
/// Method: the only updater is paused from 5 s to 12 s; the watcher polls every 400 ms with a
/// 3 s threshold.
#[test]
fn watcher_reports_a_stalled_clock_once_and_its_end() {
    let mut sim = Sim::new();
    let u = start_updater(&mut sim, Clock::EXACT);
    let watcher = ClockWatcher::new(WatcherConfig {
        poll_interval: Duration::from_millis(400),
        stall_after: Some(secs_d(3)),
        mutant: None,
    })
    .unwrap();
    let w = sim.add(Node::ClockWatcher(watcher), Clock::EXACT);
    let stalls = |sim: &Sim| -> Vec<(GlobalTime, Duration)> {
        sim.notes_of(w)
            .into_iter()
            .filter_map(|n| match n {
                Note::ClockWatcher(WatcherOutput::Stalled {
                    global_time,
                    stalled_for,
                }) => Some((global_time, stalled_for)),
                _ => None,
            })
            .collect()
    };
    sim.run_until(secs(5));
    assert!(stalls(&sim).is_empty(), "an advancing clock is not stalled");
    sim.set_paused(u, true);
    let stuck_at = sim.global();
    sim.run_until(secs(7));
    assert!(
        stalls(&sim).is_empty(),
        "2 s without an advance is within 3 s"
    );
    sim.run_until(secs(12));
    let reported = stalls(&sim);
    assert_eq!(reported.len(), 1, "one report per stall: {reported:?}");
    assert_eq!(reported[0].0, stuck_at);
    assert!(reported[0].1 >= secs_d(3), "{reported:?}");
    assert!(is_stalled(&sim, w));
    sim.set_paused(u, false);
    sim.run_until(secs(15));
    assert!(!is_stalled(&sim, w), "the next advance ends the stall");
    assert_eq!(stalls(&sim).len(), 1);
}

fn secs_d(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn is_stalled(sim: &Sim, node: usize) -> bool {
    match sim.node(node) {
        Node::ClockWatcher(w) => w.is_stalled(),
        _ => panic!("node {node} is not a clock watcher"),
    }
}

/// Goal: a stall threshold not above the poll interval is refused, naming both.
#[test]
fn a_stall_threshold_within_one_poll_is_refused() {
    let e = ClockWatcher::new(WatcherConfig {
        poll_interval: secs_d(1),
        stall_after: Some(secs_d(1)),
        mutant: None,
    })
    .unwrap_err();
    assert!(e.to_string().contains("poll interval"), "{e}");
    let healthy = stall_threshold(&config());
    assert!(healthy > config().update_interval + config().backoff_delay);
}
