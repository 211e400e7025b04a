//! The models in fast configurations: the correct protocols pass every property with every
//! fault of their default set (and reach every milestone), and every mutant fails the property
//! it is meant to break in its protocol's default configuration.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;
use tenure::mutant::{Mutant, Protocol};
use tenure_models::run::{check, CheckOptions, CheckReport, Cutoff, Kind, Outcome, Stop};
use tenure_models::ModelConfig;

fn run(config: &ModelConfig, stop: Stop) -> CheckReport {
    let options = CheckOptions {
        stop,
        ..CheckOptions::default()
    };
    check(config, &options, &mut |_| {})
}

/// Each property's name and outcome.
fn verdicts(r: &CheckReport) -> Vec<(&'static str, Outcome)> {
    r.properties.iter().map(|p| (p.name, p.outcome)).collect()
}

fn assert_all_pass(config: &ModelConfig) -> CheckReport {
    let r = run(config, Stop::Exhausted);
    assert!(r.complete, "{config}: the search did not finish");
    for p in &r.properties {
        assert_eq!(
            p.outcome,
            Outcome::Pass,
            "{}: {:?}",
            p.name,
            p.counterexample
        );
    }
    eprintln!(
        "{config}: {} unique states in {:?}",
        r.unique_states, r.elapsed
    );
    r
}

#[test]
fn clock_model_passes_with_its_default_faults() {
    assert_all_pass(&ModelConfig::default_for(Protocol::Clock));
}

#[test]
fn lease_model_passes_with_its_default_faults() {
    // One tick shorter than the default horizon: every fault and milestone, half the states.
    let config = ModelConfig {
        horizon: 5,
        ..ModelConfig::default_for(Protocol::Lease)
    };
    assert_all_pass(&config);
}

/// Early releases, with every default fault: a release ends only the term it names (a stale
/// token's release, or one delayed past a restart of its manager, ends nothing), and another
/// holder claims a released lease at once without two holders ever overlapping.
#[test]
fn lease_model_releases_only_the_term_released() {
    let config = ModelConfig {
        horizon: 5,
        ..ModelConfig::release_safety()
    };
    let r = assert_all_pass(&config);
    assert!(r.property(tenure::property::PropertyId::L6).is_some());
}

/// Bounded liveness M6 needs a longer horizon than the default lease configuration has: one
/// holder claims, extends and stops, and its lease must be expired in time, with every default
/// fault (a lost refresh read once stopped the manager for good; an expiry that failed waited
/// for max_sleep).
#[test]
fn lease_model_expires_abandoned_leases_in_bounded_time() {
    let config = ModelConfig::expiry_liveness();
    let r = assert_all_pass(&config);
    assert!(r.property(tenure::property::PropertyId::M6).is_some());
}

#[test]
fn leadership_model_passes_with_its_default_faults() {
    let config = ModelConfig {
        horizon: 5,
        ..ModelConfig::default_for(Protocol::Leadership)
    };
    assert_all_pass(&config);
}

/// Bounded liveness T6 needs the leader's term to run out within the horizon: a paused leader
/// frees the lease, and the unit waiting to lead must claim it within two ticks.
#[test]
fn leadership_model_serves_a_waiting_candidate() {
    let config = ModelConfig::service_liveness();
    let r = assert_all_pass(&config);
    assert!(r.property(tenure::property::PropertyId::T6).is_some());
}

#[test]
fn presence_model_passes_with_its_default_faults() {
    assert_all_pass(&ModelConfig::default_for(Protocol::Presence));
}

/// Short slots (4 s, with a 1 s flush) and a watcher that syncs the instant each slot begins:
/// a pinging key is still never reported dead, with every default fault, because the ping
/// interval leaves room for a flush and a resend before the slot ends. Juju's interval fails
/// here (the `presence-juju-ping-interval` mutant, checked with the other mutants).
#[test]
fn short_slots_keep_a_pinging_key_alive() {
    let config = ModelConfig {
        mutant: None,
        ..ModelConfig::for_mutant(Mutant::PresenceJujuPingInterval)
    };
    let r = assert_all_pass(&config);
    assert!(r.property(tenure::property::PropertyId::P5).is_some());
}

/// A pinger paused for longer than P5's window lets its key die, as it should: P5 ("pinging
/// keys stay alive") counts only time in which the pinger runs. (It once counted from the
/// pinger's start through the pause: a false failure, first seen at horizon 40 s with 8 s
/// slots; 4 s slots show it sooner. Slots must stay longer than the ping interval.)
#[test]
fn a_paused_pinger_may_be_reported_dead() {
    use tenure_models::{Fault, FaultSet};
    let config = ModelConfig {
        presence_period: Duration::from_secs(4),
        horizon: 24,
        kills_per_pinger: 0,
        prunes: 0,
        faults: FaultSet::NONE.with(Fault::Pause),
        ..ModelConfig::default_for(Protocol::Presence)
    };
    let r = run(&config, Stop::Exhausted);
    assert!(r.complete);
    let p5 = r.property(tenure::property::PropertyId::P5).unwrap();
    assert_eq!(p5.outcome, Outcome::Pass, "{:?}", p5.counterexample);
    let died = tenure_models::Milestone::KeyDied.name();
    assert_eq!(
        r.properties
            .iter()
            .find(|p| p.name == died)
            .map(|p| p.outcome),
        Some(Outcome::Pass),
        "the pause lets the key die"
    );
}

fn assert_mutants_caught(protocol: Protocol) {
    let mut missed = Vec::new();
    for m in Mutant::of(protocol) {
        let r = run(&ModelConfig::for_mutant(m), Stop::FailureOf(m.breaks()));
        let p = r
            .property(m.breaks())
            .expect("the model checks the mutant's property");
        eprintln!(
            "{m}: {} {} after {} states",
            p.name, p.outcome, r.unique_states
        );
        if p.outcome != Outcome::Fail {
            missed.push(m.name());
        }
    }
    assert!(missed.is_empty(), "mutants not caught: {missed:?}");
}

#[test]
fn every_clock_mutant_fails_its_property() {
    assert_mutants_caught(Protocol::Clock);
}

#[test]
fn every_lease_mutant_fails_its_property() {
    assert_mutants_caught(Protocol::Lease);
}

#[test]
fn every_leadership_mutant_fails_its_property() {
    assert_mutants_caught(Protocol::Leadership);
}

#[test]
fn every_presence_mutant_fails_its_property() {
    assert_mutants_caught(Protocol::Presence);
}

/// The predictions for real servers: a server whose compare-and-swap is not atomic (FerretDB),
/// and `w:1` writes under failover, both break lease exclusion.
#[test]
fn non_atomic_cas_and_rollback_break_lease_exclusion() {
    use tenure_models::{Fault, FaultSet};
    for fault in [Fault::NonAtomicCas, Fault::Rollback] {
        let config = ModelConfig {
            faults: FaultSet::NONE.with(fault),
            ..ModelConfig::default_for(Protocol::Lease)
        };
        let r = run(&config, Stop::FailureOf(tenure::property::PropertyId::L6));
        let p = r.property(tenure::property::PropertyId::L6).unwrap();
        assert_eq!(p.outcome, Outcome::Fail, "{fault}");
        let steps = p.counterexample.as_ref().map_or(0, Vec::len);
        eprintln!(
            "{fault}: L6 counterexample of {steps} steps after {} states",
            r.unique_states
        );
    }
}

/// Symmetry reduction merges states that differ only in the order of interchangeable updaters
/// (three on exact clocks here: up to 3! orders), and keeps every verdict.
#[test]
fn symmetry_reduction_merges_interchangeable_updaters_and_keeps_verdicts() {
    let plain = ModelConfig {
        updaters: 3,
        rate_error_ppm: 0,
        horizon: 4,
        ..ModelConfig::default_for(Protocol::Clock)
    };
    let reduced = ModelConfig {
        symmetry: true,
        ..plain.clone()
    };
    let (p, r) = (run(&plain, Stop::Exhausted), run(&reduced, Stop::Exhausted));
    assert!(p.complete && r.complete);
    assert_eq!(verdicts(&p), verdicts(&r));
    assert_eq!(r.outcome(), Outcome::Pass);
    let factor = p.unique_states as f64 / r.unique_states as f64;
    eprintln!(
        "symmetry: {} → {} unique states (×{factor:.2})",
        p.unique_states, r.unique_states
    );
    assert!(factor > 3.0, "three interchangeable updaters: ×{factor:.2}");

    // A mutant is still caught.
    let broken = ModelConfig {
        mutant: Some(Mutant::ClockBlindWrite),
        ..reduced
    };
    let b = run(&broken, Stop::FailureOf(Mutant::ClockBlindWrite.breaks()));
    let g2 = b.property(Mutant::ClockBlindWrite.breaks()).unwrap();
    assert_eq!(g2.outcome, Outcome::Fail);
}

/// A protocol's default configuration over a horizon short enough to search twice, with a
/// reduction and without, in a test.
fn cross_check_config(protocol: Protocol) -> ModelConfig {
    let default = ModelConfig::default_for(protocol);
    ModelConfig {
        horizon: match protocol {
            Protocol::Lease => 4,
            Protocol::Leadership => 5,
            Protocol::Presence => 16,
            Protocol::Clock => default.horizon,
        },
        ..default
    }
}

/// Partial-order reduction (on by default) explores fewer states and changes no verdict: every
/// protocol in a short configuration with its default faults, checked with and without it, has
/// the same outcome for every property (each `always` passes; presence's horizon here is too
/// short for a prune, so that milestone fails both ways). The mutant tests above run with it.
#[test]
fn partial_order_reduction_keeps_every_verdict() {
    for protocol in Protocol::ALL {
        let reduced = cross_check_config(protocol);
        assert!(reduced.partial_order, "on by default");
        let plain = ModelConfig {
            partial_order: false,
            ..reduced.clone()
        };
        let (r, p) = (run(&reduced, Stop::Exhausted), run(&plain, Stop::Exhausted));
        assert!(r.complete && p.complete);
        assert_eq!(verdicts(&r), verdicts(&p), "{protocol}");
        let always = |x: &&tenure_models::run::PropertyResult| x.kind == Kind::Always;
        assert!(
            r.properties
                .iter()
                .filter(always)
                .all(|x| x.outcome == Outcome::Pass),
            "{protocol}: {:?}",
            verdicts(&r)
        );
        eprintln!(
            "{protocol}: partial-order reduction {} → {} unique states",
            p.unique_states, r.unique_states
        );
        assert!(r.unique_states <= p.unique_states, "{protocol}");
        if matches!(protocol, Protocol::Lease | Protocol::Leadership) {
            assert!(
                r.unique_states * 10 < p.unique_states * 9,
                "{protocol}: under 10% fewer states"
            );
        }
    }
}

/// Renumbering operation ids (`ModelConfig::renumber`) only merges states that differ in how
/// many operations came before: with it and without, every protocol gets the same verdict for
/// every property, and the lease and leadership models lose over a quarter of their states.
/// (Every mutant is caught with it on: the tests above.)
#[test]
fn renumbering_operation_ids_keeps_every_verdict() {
    for renumbered in Protocol::ALL.map(cross_check_config) {
        assert!(renumbered.renumber, "on by default");
        let plain = ModelConfig {
            renumber: false,
            ..renumbered.clone()
        };
        let (r, p) = (
            run(&renumbered, Stop::Exhausted),
            run(&plain, Stop::Exhausted),
        );
        assert!(r.complete && p.complete);
        assert_eq!(verdicts(&r), verdicts(&p), "{renumbered}");
        eprintln!(
            "{renumbered}: renumbering {} → {} unique states",
            p.unique_states, r.unique_states
        );
        assert!(r.unique_states <= p.unique_states, "{renumbered}");
        if matches!(renumbered.protocol, Protocol::Lease | Protocol::Leadership) {
            assert!(
                r.unique_states * 4 < p.unique_states * 3,
                "{renumbered}: under 25% fewer states"
            );
        }
    }
}

/// A search stopped by a limit says which and settles nothing it did not see: with one thread
/// too (stateright's own timeout only acts when work is handed across threads).
#[test]
fn time_and_memory_limits_stop_the_search_with_unknown_verdicts() {
    let config = ModelConfig::default_for(Protocol::Lease);
    let limits = [
        (Some(Duration::from_millis(200)), None),
        // Below what the process already holds: the first look stops the search.
        (None, Some(1)),
    ];
    for (timeout, memory_limit) in limits {
        let options = CheckOptions {
            threads: 1,
            timeout,
            memory_limit,
            stop: Stop::Exhausted,
        };
        let r = check(&config, &options, &mut |_| {});
        assert!(!r.complete);
        match (r.cutoff, timeout) {
            (Some(Cutoff::Timeout(t)), Some(want)) => assert_eq!(t, want),
            (Some(Cutoff::MemoryLimit { limit, resident }), None) => {
                assert_eq!(limit, 1);
                assert!(resident > limit);
            }
            (other, _) => panic!("stopped by {other:?} with {options:?}"),
        }
        assert!(
            r.elapsed < Duration::from_secs(30),
            "the search did not stop soon after the limit: {:?}",
            r.elapsed
        );
        assert_eq!(r.outcome(), Outcome::Unknown);
        assert!(r.unique_states < 6_000_000, "the whole space was explored");
    }
}

/// A search that runs to the end (no mutant) reports each failed property's first, shortest
/// counterexample, as one stopped at that property's first counterexample does: every state
/// after a violation carries it, and the checker must not keep the last one it saw.
#[test]
fn an_exhaustive_search_reports_the_shortest_counterexample() {
    use tenure::property::PropertyId::L6;
    use tenure_models::{Fault, FaultSet};
    let config = ModelConfig {
        faults: FaultSet::NONE.with(Fault::NonAtomicCas),
        ..ModelConfig::default_for(Protocol::Lease)
    };
    let steps = |stop| {
        let options = CheckOptions {
            threads: 1,
            stop,
            ..CheckOptions::default()
        };
        let r = check(&config, &options, &mut |_| {});
        let p = r.property(L6).expect("the lease model checks L6");
        assert_eq!(p.outcome, Outcome::Fail);
        p.counterexample.as_ref().map_or(0, Vec::len)
    };
    let (exhaustive, first) = (steps(Stop::Exhausted), steps(Stop::FailureOf(L6)));
    assert!(first > 0);
    assert_eq!(exhaustive, first);
}

/// States are made of few distinct parts, each kept once (interning): the lease model's
/// hundreds of thousands of states share a few thousand processes and stores.
#[test]
fn states_share_their_parts() {
    use tenure_models::stateright::{Checker, Model};
    use tenure_models::TenureModel;
    let model = TenureModel::new(ModelConfig {
        horizon: 3,
        ..ModelConfig::default_for(Protocol::Lease)
    });
    let unique = model
        .clone()
        .checker()
        .spawn_bfs()
        .join()
        .unique_state_count();
    let [stores, procs, flights, ghosts] = model.distinct_parts();
    eprintln!("{unique} states: {stores} stores, {procs} processes, {flights} request sets, {ghosts} ghosts");
    assert!(unique > 100_000);
    for kept in [stores, procs, flights, ghosts] {
        assert!(kept > 0 && kept * 10 < unique, "{kept} kept of {unique}");
    }
}

/// A check of some properties observes only what they need (`ModelConfig::only`): following
/// the same steps, a check of lease exclusion keeps none of the clock's history that G2 and G3
/// read, while the full check does; the verdict on exclusion is the same.
#[test]
fn checking_some_properties_observes_only_what_they_need() {
    use tenure::property::PropertyId;
    use tenure_models::stateright::Model;
    use tenure_models::{CheckedProperty, TenureModel};
    let full = ModelConfig::default_for(Protocol::Lease);
    let some = ModelConfig {
        only: Some(vec![CheckedProperty::Always(PropertyId::L6)]),
        ..full.clone()
    };
    let (all, l6) = (
        TenureModel::new(full.clone()),
        TenureModel::new(some.clone()),
    );
    let (mut s, mut t) = (all.initial(), l6.initial());
    let mut actions = Vec::new();
    for _ in 0..200 {
        if s.ghost.clock_write_last.is_some() {
            break;
        }
        actions.clear();
        all.actions(&s, &mut actions);
        // The last action: a tick once nothing else is left, so time and the clock move on.
        let a = *actions.last().expect("a step to take");
        s = all.next_state(&s, a).expect("a successor");
        t = l6.next_state(&t, a).expect("a successor");
    }
    assert!(
        s.ghost.clock_write_last.is_some() && s.ghost.clock_lowest.is_some(),
        "the full check saw the clock advance"
    );
    assert_eq!(t.ghost.clock_write_last, None);
    assert_eq!(t.ghost.clock_lowest, None);
    assert_eq!(s.store, t.store, "the same steps");
    let exclusion = |r: &CheckReport| {
        r.property(PropertyId::L6)
            .map(|p| p.outcome)
            .expect("L6 is checked")
    };
    let (a, b) = (run(&full, Stop::Exhausted), run(&some, Stop::Exhausted));
    assert!(a.complete && b.complete);
    assert_eq!(
        (exclusion(&a), exclusion(&b)),
        (Outcome::Pass, Outcome::Pass)
    );
    assert!(b.unique_states <= a.unique_states);
}
