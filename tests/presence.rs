//! Reference behaviours of presence (PROTOCOLS.md §5): pinger, batcher, watcher, pruner, model
//! isolation, on the reference store with explicit times.

mod common;

use common::presence::{
    batcher, config, kill, pinger, prune, pruner, route, run_until, start, stop, watch, watcher,
    watcher_ref,
};
use common::{secs, Clock, Fault, Node, Note, Sim};
use std::collections::BTreeSet;
use std::time::Duration;
use tenure::actor::Actor;
use tenure::presence::batcher::BatcherOutput;
use tenure::presence::{
    decode_bits, encode_seq, Batcher, BatcherConfig, Ping, Pinger, PingerOutput, PresenceConfig,
    WatcherOutput, BATCH_MAX,
};
use tenure::property::presence::p7_isolated;
use tenure::substrate::{Collection, Op};

/// Server time starts at 1000 s so slots are positive and away from zero.
fn sim() -> Sim {
    let mut s = Sim::new();
    s.store.set_server_time(secs(1000));
    s
}

fn changes(sim: &Sim, w: usize) -> Vec<(String, bool)> {
    sim.notes_of(w)
        .into_iter()
        .filter_map(|n| match n {
            Note::PresenceWatcher(WatcherOutput::Change { key, alive, .. }) => Some((key, alive)),
            _ => None,
        })
        .collect()
}

fn ping(model: &str, slot: i64, field: &str, bit: i64) -> Ping {
    Ping {
        model: model.into(),
        slot,
        field: field.into(),
        bit,
    }
}

fn pinger_outputs(sim: &Sim, n: usize) -> Vec<PingerOutput> {
    sim.notes_of(n)
        .into_iter()
        .filter_map(|x| match x {
            Note::Pinger(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// Goal: each start takes a new, larger sequence (P1), registers its being, and pings once per
/// slot, never twice in one slot.
#[test]
fn pinger_takes_new_sequences_and_pings_once_per_slot() {
    let mut sim = sim();
    let p = pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    sim.settle();
    assert!(pinger_outputs(&sim, p).contains(&PingerOutput::Started { seq: 1 }));
    assert_eq!(
        sim.store
            .get(Collection::PresenceBeings, "m:1")
            .unwrap()
            .get("key"),
        Some(&"unit-0".into())
    );
    // 120 s is 4 slots (the server clock starts at slot 990 and does not move; local time does).
    sim.run_until(secs(120));
    let slots: Vec<i64> = pinger_outputs(&sim, p)
        .into_iter()
        .filter_map(|o| match o {
            PingerOutput::Ping(ping) => Some(ping.slot),
            _ => None,
        })
        .collect();
    let distinct: BTreeSet<_> = slots.iter().copied().collect();
    assert_eq!(
        slots.len(),
        distinct.len(),
        "a slot was pinged twice: {slots:?}"
    );
    assert_eq!(slots, [990, 1020, 1050, 1080, 1110]);
    stop(&mut sim, p);
    start(&mut sim, p);
    sim.settle();
    assert!(pinger_outputs(&sim, p).contains(&PingerOutput::Started { seq: 2 }));
    let again = pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    sim.settle();
    assert!(pinger_outputs(&sim, again).contains(&PingerOutput::Started { seq: 3 }));
    sim.call(p, |a, now| match a {
        Node::Pinger(x) => common::split(x.handle_start(now), Note::Pinger),
        _ => unreachable!(),
    });
    assert_eq!(
        pinger_outputs(&sim, p).last(),
        Some(&PingerOutput::Failed("pinger already started".into()))
    );
}

/// Goal: the batcher ORs pings per slot document and field, flushes within 0.8-1.2 intervals,
/// and never puts more than BATCH_MAX documents in one bulk.
#[test]
fn batcher_merges_and_chunks() {
    let cfg = BatcherConfig {
        flush_interval: Duration::from_secs(1),
        jitter_seed: Some(7),
        mutant: None,
    };
    let mut b = Batcher::new(cfg).unwrap();
    let now = tenure::time::LocalTime(0);
    for seq in 0..200u64 {
        let (f, bit) = encode_seq(seq);
        let _ = b.handle_ping(&ping("m", 30, &f, bit), now);
    }
    for slot in 0..(BATCH_MAX as i64 + 5) {
        let _ = b.handle_ping(&ping("n", slot * 30, "0", 1), now);
    }
    let due = b.next_deadline().unwrap();
    assert!(due.0 >= 800_000_000 && due.0 < 1_200_000_000, "{due:?}");
    assert!(
        b.handle_timeout(tenure::time::LocalTime(due.0 - 1))
            .is_empty(),
        "early timeouts do nothing"
    );
    let fx = b.handle_timeout(due);
    assert_eq!(fx.requests.len(), 2);
    let mut store = tenure::substrate::MemoryStore::new();
    for r in &fx.requests {
        let Op::BulkUpsert { updates, .. } = &r.op else {
            panic!()
        };
        assert!(updates.len() <= BATCH_MAX);
        store.apply(&r.op);
    }
    let doc = store.get(Collection::PresencePings, "m:30").unwrap();
    assert_eq!(decode_bits(doc, "alive").unwrap(), (0..200).collect());
}

/// Goal: the flush lag counts from the oldest ping of the bulk to its acknowledgement, and a
/// bulk that is re-sent after an unknown outcome keeps its first ping's time.
#[test]
fn flush_lag_counts_from_the_oldest_ping() {
    use tenure::substrate::OpResult;
    use tenure::time::LocalTime;
    let cfg = BatcherConfig {
        flush_interval: Duration::from_secs(1),
        jitter_seed: None,
        mutant: None,
    };
    let mut b = Batcher::new(cfg).unwrap();
    let at = |s: f64| LocalTime((s * 1e9) as u64);
    let _ = b.handle_ping(&ping("m", 30, "0", 1), at(0.0));
    let _ = b.handle_ping(&ping("m", 30, "0", 2), at(0.5));
    let fx = b.handle_timeout(at(1.0));
    assert_eq!(fx.requests.len(), 1);
    let lost = b.handle_reply(fx.requests[0].id, OpResult::Unknown, at(1.2));
    assert!(matches!(
        lost.notifications.as_slice(),
        [BatcherOutput::Requeued { docs: 1, .. }]
    ));
    let _ = b.handle_ping(&ping("m", 60, "0", 1), at(1.5));
    let fx = b.handle_flush(at(2.0));
    let mut store = tenure::substrate::MemoryStore::new();
    let reply = store.apply(&fx.requests[0].op);
    let done = b.handle_reply(fx.requests[0].id, reply, at(2.25));
    assert_eq!(
        done.notifications,
        vec![BatcherOutput::Flushed {
            bulk: fx.requests[0].id,
            docs: 2,
            lag: Duration::from_millis(2250)
        }]
    );
    assert_eq!(b.next_deadline(), None, "nothing left to flush");
}

/// Goal: a flush whose outcome is unknown is re-sent, and with `$bit or` the stored bits still
/// equal the OR of the pings (P2).
#[test]
fn unknown_flush_is_resent_harmlessly() {
    let mut sim = sim();
    let b = batcher(&mut sim);
    let mut seen = 0;
    let p = pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    sim.settle();
    route(&mut sim, b, &mut seen);
    sim.real = secs(2);
    sim.fire(b);
    sim.deliver(0, Fault::Ambiguous);
    assert!(matches!(
        sim.log().notes.last().unwrap().2,
        Note::Batcher(BatcherOutput::Requeued { .. })
    ));
    sim.real = secs(4);
    sim.settle();
    let doc = sim.store.get(Collection::PresencePings, "m:990").unwrap();
    assert_eq!(decode_bits(doc, "alive").unwrap(), BTreeSet::from([1]));
    let _ = p;
}

/// Goal: a pinging key is alive; a stopped key is reported dead once its pings age out of the
/// two-slot window; a killed key is dead at the next sync; events alternate and start with the
/// current state (P4).
#[test]
fn watcher_reports_alive_then_dead() {
    let mut sim = sim();
    let b = batcher(&mut sim);
    let mut seen = 0;
    let w = watcher(&mut sim, &config("m"), None);
    watch(&mut sim, w, "unit-0");
    let p = pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    let q = pinger(&mut sim, &config("m"), "unit-1", Clock::EXACT, None);
    watch(&mut sim, w, "unit-1");
    // The server clock moves with real time from here on.
    for t in 0..=95 {
        sim.store.set_server_time(secs(1000 + t));
        run_until(&mut sim, b, &mut seen, secs(t));
    }
    assert!(watcher_ref(&sim, w).alive("unit-0"));
    assert_eq!(
        changes(&sim, w)[..2],
        [("unit-0".to_owned(), false), ("unit-1".to_owned(), false)]
    );
    assert!(changes(&sim, w).contains(&("unit-0".to_owned(), true)));
    stop(&mut sim, p);
    kill(&mut sim, q);
    sim.settle();
    // Killed: dead at the next sync. Stopped: dead within two slots plus a sync period.
    for t in 96..=200 {
        sim.store.set_server_time(secs(1000 + t));
        run_until(&mut sim, b, &mut seen, secs(t));
        if t == 130 {
            assert!(
                !watcher_ref(&sim, w).alive("unit-1"),
                "killed key still alive at {t}"
            );
        }
    }
    assert!(!watcher_ref(&sim, w).alive("unit-0"));
    let c = changes(&sim, w);
    for key in ["unit-0", "unit-1"] {
        let mine: Vec<bool> = c
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, a)| *a)
            .collect();
        assert_eq!(mine, [false, true, false], "{key}: {c:?}");
    }
}

/// Goal: a watcher started after a key began pinging never reports it dead first: a watch
/// registered before the watcher's first sync gets its first event from that sync (P4, P5).
/// Method: let a key ping for a few seconds, then start a watcher and watch it.
#[test]
fn a_fresh_watcher_waits_for_its_first_sync_before_reporting() {
    let mut sim = sim();
    let b = batcher(&mut sim);
    let mut seen = 0;
    pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    for t in 0..=5 {
        sim.store.set_server_time(secs(1000 + t));
        run_until(&mut sim, b, &mut seen, secs(t));
    }
    let w = watcher(&mut sim, &config("m"), None);
    watch(&mut sim, w, "unit-0");
    assert_eq!(changes(&sim, w), [], "no event before the first sync");
    for t in 6..=8 {
        sim.store.set_server_time(secs(1000 + t));
        run_until(&mut sim, b, &mut seen, secs(t));
    }
    assert_eq!(changes(&sim, w), [("unit-0".to_owned(), true)]);
}

/// Goal: with a short period (4 s slots, a flush every second), a key that pings steadily is
/// never reported dead, even by a watcher that syncs just after every slot boundary, while
/// Juju's ping interval (the `presence-juju-ping-interval` mutant: 3.75 s here) is reported dead.
/// Method: a minute of 10 ms steps, pings handed to the batcher at once, the watcher asked to
/// sync 10 ms after each boundary.
#[test]
fn a_short_period_never_reports_a_steadily_pinging_key_dead() {
    use tenure::mutant::Mutant;
    let short = PresenceConfig {
        period: Duration::from_secs(4),
        ..config("m")
    };
    assert!(short.ping_interval() < short.juju_ping_interval());
    for (mutant, dies) in [
        (None, false),
        (Some(Mutant::PresenceJujuPingInterval), true),
    ] {
        let mut sim = Sim::new();
        sim.server_epoch = Some(secs(1000));
        let b = batcher(&mut sim);
        let w = watcher(&mut sim, &short, None);
        watch(&mut sim, w, "unit-0");
        pinger(&mut sim, &short, "unit-0", Clock::EXACT, mutant);
        let mut seen = 0;
        for step in 1..=6_000u64 {
            let t = step * 10_000_000;
            run_until(&mut sim, b, &mut seen, t);
            if t % secs(4) == 10_000_000 {
                sim.call(w, |a, now| match a {
                    Node::PresenceWatcher(x) => {
                        common::split(x.handle_start_sync(now), Note::PresenceWatcher)
                    }
                    _ => panic!("not a watcher"),
                });
                sim.settle();
            }
        }
        let seen: Vec<bool> = changes(&sim, w).into_iter().map(|(_, a)| a).collect();
        let alive_at = seen.iter().position(|a| *a).expect("reported alive");
        assert_eq!(
            seen[alive_at..].contains(&false),
            dies,
            "{mutant:?}: {seen:?}"
        );
    }
}

/// Goal: the pruner keeps the last four slots, the newest being of each key and every being a
/// remaining ping references, and deletes the rest (P6); it only touches its own model (P7).
#[test]
fn pruner_keeps_what_is_live() {
    let mut sim = sim();
    let b = batcher(&mut sim);
    let mut seen = 0;
    let p = pinger(&mut sim, &config("m"), "unit-0", Clock::EXACT, None);
    let other = pinger(&mut sim, &config("n"), "unit-0", Clock::EXACT, None);
    for t in 0..=300 {
        sim.store.set_server_time(secs(1000 + t));
        run_until(&mut sim, b, &mut seen, secs(t));
        if t == 100 || t == 200 {
            stop(&mut sim, p);
            start(&mut sim, p);
        }
    }
    let slots = |sim: &Sim, model: &str| -> Vec<String> {
        sim.store
            .documents(Collection::PresencePings)
            .filter(|d| d.id.starts_with(model))
            .map(|d| d.id.clone())
            .collect()
    };
    assert!(slots(&sim, "m:").len() > 4);
    let pr = pruner(&mut sim, &config("m"), None);
    prune(&mut sim, pr, 1290);
    sim.settle();
    assert_eq!(slots(&sim, "m:"), ["m:1200", "m:1230", "m:1260", "m:1290"]);
    let beings: Vec<String> = sim
        .store
        .documents(Collection::PresenceBeings)
        .map(|d| d.id.clone())
        .collect();
    // Sequences are per model. m's sequences 1 and 2 stopped and their last pings (slot 1170 and
    // earlier) were pruned; 3, the newest, stays. Model n's being is untouched.
    assert_eq!(beings, ["m:3", "n:1"]);
    assert!(slots(&sim, "n:").len() > 4);
    let ops: Vec<Op> = sim
        .log()
        .delivered
        .iter()
        .filter(|(n, _)| *n == pr)
        .map(|(_, o)| o.clone())
        .collect();
    assert_eq!(p7_isolated("m", &ops), Ok(()));
    let _ = other;
}

/// Goal: removing a model deletes its documents and no other model's.
#[test]
fn model_removal_is_isolated() {
    let mut sim = sim();
    let b = batcher(&mut sim);
    let mut seen = 0;
    pinger(&mut sim, &config("m"), "k", Clock::EXACT, None);
    pinger(&mut sim, &config("mm"), "k", Clock::EXACT, None);
    run_until(&mut sim, b, &mut seen, secs(3));
    for op in PresenceConfig::new("m").remove_model_ops() {
        sim.store.apply(&op);
    }
    for coll in [
        Collection::PresenceSeqs,
        Collection::PresenceBeings,
        Collection::PresencePings,
    ] {
        let ids: Vec<String> = sim.store.documents(coll).map(|d| d.id.clone()).collect();
        assert!(
            ids.iter().all(|i| i.starts_with("mm:")) && !ids.is_empty(),
            "{coll:?}: {ids:?}"
        );
    }
}

/// Goal: invalid keys and configuration are refused.
#[test]
fn bad_presence_input() {
    assert!(Pinger::new(PresenceConfig::new("m"), "a b", None).is_err());
    assert!(Pinger::new(PresenceConfig::new(""), "k", None).is_err());
    let e = Pinger::new(
        PresenceConfig {
            period: Duration::from_millis(1500),
            ..PresenceConfig::new("m")
        },
        "k",
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("whole seconds"), "{e}");
    // A period too short for its flush interval: 3 s leaves 0.1 s to ping in, under the 1 s
    // flush; 4 s is enough (1.1 s).
    let timing = |period, flush| PresenceConfig {
        period: Duration::from_secs(period),
        flush_interval: Duration::from_millis(flush),
        ..PresenceConfig::new("m")
    };
    let e = timing(3, 1000).validate().unwrap_err().to_string();
    assert!(
        e.contains("too short") && e.contains("flush interval"),
        "{e}"
    );
    assert!(timing(4, 1000).validate().is_ok());
    assert!(timing(1, 250).validate().is_ok());
    assert!(timing(30, 0).validate().is_err());
    assert_eq!(
        timing(30, 1000).ping_interval(),
        Duration::from_millis(23_250)
    );
    assert_eq!(
        timing(4, 1000).ping_interval(),
        Duration::from_millis(1_100)
    );
}
