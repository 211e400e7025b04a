//! Properties over random event sequences, and the mutants that must break them.
//!
//! Goal: for every protocol, random interleavings (deliveries, timer firings, time passing, API
//! calls, lost and ambiguous replies, drifting clocks) on the reference store never violate the
//! protocol's properties, and every mutant of the core violates the property it is meant to break
//! in at least one such sequence.
//! Method: a scenario runner per protocol turns a vector of numbers into a run of the test
//! executor and evaluates the `tenure::property` functions on what it observed. proptest explores
//! the correct protocols; a deterministic seed search finds each mutant's counterexample.

mod common;

use common::lease::manager;
use common::presence as pres;
use common::{secs, Clock, Node, Note, Sim};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tenure::clock::watcher::WatcherOutput as ClockWatcherOutput;
use tenure::clock::{ClockWatcher, Updater, UpdaterConfig, UpdaterOutput, WatcherConfig};
use tenure::jitter::Jitter;
use tenure::leadership::{TicketKind, TrackerConfig, TrackerOutput, Unit};
use tenure::lease::{Epoch, ManagerConfig, ManagerOutput};
use tenure::mutant::{Mutant, Protocol};
use tenure::presence::{Ping, PingerOutput, WatcherOutput};
use tenure::property::lease::{Grant, GrantedTerm, Tenure};
use tenure::property::presence::{PresenceSnapshot, Report};
use tenure::property::{clock, leadership, lease, presence, Violation};
use tenure::substrate::Collection;
use tenure::time::{nanos, GlobalTime, SkewBounds};

/// ρ used by every scenario: local clocks run at 0.95×, 1× or 1.05× real time.
const RHO_PPM: u32 = 50_000;
/// Clocks of the three processes of a scenario.
const CLOCKS: [Clock; 3] = [
    Clock {
        rate_ppm: -50_000,
        offset: 0,
    },
    Clock {
        rate_ppm: 0,
        offset: 0,
    },
    Clock {
        rate_ppm: 50_000,
        offset: 0,
    },
];
/// Longest time one step lets pass.
const STEP_MAX: Duration = Duration::from_secs(1);
/// S: an updater ticks every second but may fire up to one step late, and its clock is exact.
const CLOCK_STEP_MAX: Duration = Duration::from_millis(2_100);

/// What one scenario run found: the violated properties, and the milestones it reached (so that
/// a run that never claims or never expires a lease cannot pass vacuously).
struct Run {
    violations: Vec<Violation>,
    reached: BTreeSet<&'static str>,
}

fn violations(results: impl IntoIterator<Item = Result<(), Violation>>) -> Vec<Violation> {
    results.into_iter().filter_map(Result::err).collect()
}

fn start_updater(sim: &mut Sim, mutant: Option<Mutant>, clock: Clock) -> usize {
    let cfg = UpdaterConfig {
        update_interval: Duration::from_secs(1),
        backoff_delay: Duration::from_secs(1),
        mutant,
    };
    let n = sim.add(Node::Updater(Updater::new(cfg).unwrap()), clock);
    sim.call(n, |a, now| match a {
        Node::Updater(u) => common::split(u.handle_start(now), Note::Updater),
        _ => unreachable!(),
    });
    n
}

/// Delivers every request of the given nodes at once (their operations take no time).
fn settle_nodes(sim: &mut Sim, nodes: &[usize]) {
    for _ in 0..1000 {
        match sim.in_flight.iter().position(|(n, _)| nodes.contains(n)) {
            Some(i) => sim.deliver(i, common::Fault::None),
            None => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Clock

/// G6's window once faults stop: interval plus backoff on the slowest clock, with a margin.
const PROGRESS_WINDOW: Duration = Duration::from_secs(3);

/// A fault that strikes every updater once: the next request of each is lost. Returns the real
/// time of the last strike, when faults stop.
fn strike_every_updater(sim: &mut Sim, ups: &[usize]) -> u64 {
    let mut struck = BTreeSet::new();
    for _ in 0..10_000 {
        if struck.len() == ups.len() {
            break;
        }
        let next = sim
            .in_flight
            .iter()
            .position(|(n, _)| ups.contains(n) && !struck.contains(n));
        match next {
            Some(i) => {
                struck.insert(sim.in_flight[i].0);
                sim.deliver(i, common::Fault::Lost);
            }
            None => {
                sim.real += secs(1) / 20;
                for n in ups {
                    sim.fire(*n);
                }
            }
        }
    }
    assert_eq!(struck.len(), ups.len(), "every updater sends requests");
    sim.real
}

fn run_clock(choices: &[u32], mutant: Option<Mutant>) -> Run {
    let mut sim = Sim::new();
    let ups: Vec<usize> = CLOCKS
        .iter()
        .map(|c| start_updater(&mut sim, mutant, *c))
        .collect();
    let wcfg = WatcherConfig {
        poll_interval: Duration::from_millis(700),
        stall_after: None,
        mutant,
    };
    let w = sim.add(
        Node::ClockWatcher(ClockWatcher::new(wcfg).unwrap()),
        Clock::EXACT,
    );
    for c in choices {
        sim.step(*c, STEP_MAX);
    }
    let quiet_since = strike_every_updater(&mut sim, &ups);
    // Then faults stop and every request completes on time: the clock must move again (G6).
    sim.run_until(sim.real + 10 * secs(1));
    let last_change = sim.clock_samples.last().map_or(0, |(t, _)| *t);
    let progress = clock::g6_progress(last_change, quiet_since, sim.real, PROGRESS_WINDOW);
    let mut writes = Vec::new();
    let mut emitted = Vec::new();
    for (_, node, note) in &sim.notes {
        match note {
            Note::Updater(UpdaterOutput::Advanced { from, to, .. }) if ups.contains(node) => writes
                .push(clock::ClockWrite {
                    from: *from,
                    to: *to,
                }),
            Note::ClockWatcher(ClockWatcherOutput::Time(t)) if *node == w => emitted.push(*t),
            _ => {}
        }
    }
    // S: the largest single step the store saw (each step is bounded by one observation-to-write
    // interval, and those intervals follow one another).
    let step = sim
        .clock_samples
        .windows(2)
        .map(|p| p[1].1 .0.saturating_sub(p[0].1 .0))
        .max()
        .unwrap_or(0);
    let observed: Vec<GlobalTime> = sim.clock_samples.iter().map(|s| s.1).collect();
    let mut reached = BTreeSet::new();
    if !writes.is_empty() {
        reached.insert("clock advanced");
    }
    if sim
        .notes
        .iter()
        .any(|n| matches!(n.2, Note::Updater(UpdaterOutput::Conflict { .. })))
    {
        reached.insert("clock update conflicted");
    }
    if emitted.len() > 1 {
        reached.insert("clock watcher emitted");
    }
    let violations = violations([
        progress,
        clock::g2_chain(GlobalTime(0), &writes),
        clock::g3_rate(&sim.clock_samples, RHO_PPM, Duration::from_nanos(step)),
        clock::g4_only_written_values(GlobalTime(0), &writes, &observed),
        clock::g5_watcher_strictly_later(&emitted),
        clock::g1_monotonic(
            &sim.clock_samples
                .iter()
                .map(|(t, g)| clock::ClockRead {
                    real_start: *t,
                    real_end: *t,
                    value: *g,
                })
                .collect::<Vec<_>>(),
        ),
    ]);
    Run {
        violations,
        reached,
    }
}

// ---------------------------------------------------------------------------------------------
// Lease

const LEASE_DURATIONS: [u64; 3] = [5, 10, 20];

/// Every tenure a manager granted: from the claim's answer until its local deadline, in real
/// time.
/// A holder's release: (real time asked, holder, lease, epoch of the token given up).
type Release = (u64, String, String, Epoch);

/// Every belief granted, each ended early where its holder gave its token up.
fn tenures(sim: &Sim, releases: &[Release]) -> Vec<Tenure> {
    let mut tenures = Vec::new();
    for (real, node, note) in &sim.notes {
        if let Note::Manager(ManagerOutput::Claimed {
            lease,
            holder,
            epoch,
            local_deadline,
            ..
        }) = note
        {
            tenures.push(Tenure {
                lease: lease.clone(),
                holder: holder.clone(),
                epoch: *epoch,
                from_real: *real,
                until_real: sim.real_of(*node, *local_deadline).max(*real),
            });
        }
    }
    for (at, holder, lease, epoch) in releases {
        for t in tenures.iter_mut().filter(|t| {
            t.holder == *holder && t.lease == *lease && t.epoch == *epoch && t.from_real <= *at
        }) {
            t.until_real = t.until_real.min(*at);
        }
    }
    tenures
}

/// The distinct epochs `holder` was granted in `lease`, oldest first.
fn granted_epochs(sim: &Sim, holder: &str, lease: &str) -> Vec<Epoch> {
    let mut epochs: Vec<Epoch> = sim
        .notes
        .iter()
        .filter_map(|(_, _, n)| match n {
            Note::Manager(ManagerOutput::Claimed {
                holder: h,
                lease: l,
                epoch,
                ..
            }) if h == holder && l == lease => Some(*epoch),
            _ => None,
        })
        .collect();
    epochs.dedup();
    epochs
}

/// M6's window in the lease runs: the longest term on the slowest clock, one clock step, and a
/// second to spare.
const EXPIRY_WINDOW: Duration = Duration::from_millis(20_000 * 20 / 19 + 2_100 + 1_000);

/// The end of a lease run: faults stop, every process runs, no holder calls again, and every
/// request completes on time for 40 s. Every lease still held must then be expired within M6's
/// window of global time passing its expiry.
fn abandoned_leases_expire(sim: &mut Sim) -> Vec<Result<(), Violation>> {
    sim.faults = false;
    for n in 0..sim.nodes.len() {
        if sim.nodes[n].paused {
            sim.set_paused(n, false);
        }
    }
    let quiet_since = sim.real;
    sim.run_until(sim.real + 40 * secs(1));
    let held: Vec<_> = sim
        .store
        .documents(Collection::Leases)
        .filter_map(|d| tenure::lease::LeaseDoc::decode(d, "app").ok())
        .filter_map(|d| d.term.map(|t| (d.name, t.expiry())))
        .collect();
    held.into_iter()
        .filter_map(|(name, expiry)| {
            let (passed_at, _) = sim.clock_samples.iter().find(|(_, g)| *g > expiry)?;
            Some(lease::m6_expired_in_time(
                &name,
                expiry,
                *passed_at,
                quiet_since,
                sim.real,
                EXPIRY_WINDOW,
            ))
        })
        .collect()
}

/// T6's window in the leadership runs: a waiting unit learns that the lease is free at its
/// manager's next sweep (every claim duration, 5 s, `TrackerConfig::sweep_interval`) at the
/// latest, and claims at once; two seconds to spare.
const SERVICE_WINDOW: Duration = Duration::from_secs(5 + 2);

/// The end of a leadership run: every process runs and every request completes on time for
/// 40 s, observed each second. Whenever the lease `application` is free while a unit waits to
/// lead (its tracker alive and not leader), it must be claimed within T6's window.
fn candidates_served(
    sim: &mut Sim,
    units: &[usize],
    application: &str,
) -> Vec<Result<(), Violation>> {
    let quiet_since = sim.real;
    let mut free_since = None;
    let mut results = Vec::new();
    for _ in 0..40 {
        sim.run_until(sim.real + secs(1));
        let held = sim
            .store
            .documents(Collection::Leases)
            .filter_map(|d| tenure::lease::LeaseDoc::decode(d, "app").ok())
            .any(|d| d.name == application && d.term.is_some());
        free_since = if held {
            None
        } else {
            free_since.or(Some(sim.real))
        };
        let waiting = units.iter().any(|&u| match sim.node(u) {
            Node::Unit(x) => !x.tracker().is_stopped() && !x.tracker().is_leader(),
            _ => false,
        });
        if let (Some(since), true) = (free_since, waiting) {
            results.push(leadership::t6_served_in_time(
                application,
                since,
                quiet_since,
                sim.real,
                SERVICE_WINDOW,
            ));
        }
    }
    results
}

fn run_lease(choices: &[u32], mutant: Option<Mutant>, faults: bool) -> Run {
    let mut sim = Sim::new();
    let up = start_updater(&mut sim, None, Clock::EXACT);
    let skew = SkewBounds {
        rate_error_ppm: RHO_PPM,
        clock_step_max: CLOCK_STEP_MAX,
    };
    let managers: Vec<usize> = (0..3)
        .map(|i| {
            let mut cfg = ManagerConfig::new("app", format!("ctl-{i}"));
            cfg.skew = skew;
            // Longer than M6's window below, so a manager that waits for it is caught.
            cfg.max_sleep = Duration::from_secs(60);
            cfg.mutant = mutant;
            manager(&mut sim, cfg, CLOCKS[i])
        })
        .collect();
    settle_nodes(&mut sim, &[up]);
    sim.settle();
    sim.faults = faults;
    let mut asked: BTreeMap<u64, (u64, GlobalTime, Duration)> = BTreeMap::new();
    let mut releases: Vec<Release> = Vec::new();
    for (k, c) in choices.iter().enumerate() {
        let req = k as u64;
        match c % 8 {
            6 => {
                let i = (*c as usize / 8) % 3;
                let lease = if (c / 24) % 4 == 0 { "b" } else { "a" };
                let d = Duration::from_secs(LEASE_DURATIONS[(*c as usize / 96) % 3]);
                asked.insert(req, (sim.real, sim.global(), d));
                common::lease::claim(&mut sim, managers[i], req, lease, &format!("h{i}"), d);
            }
            7 => {
                let i = (*c as usize / 8) % 3;
                common::lease::check(
                    &mut sim,
                    managers[i],
                    req,
                    "a",
                    &format!("h{}", (c / 24) % 3),
                );
            }
            // Now and then every updater stops (G4: global time stands still) or comes back.
            5 if (c / 8) % 16 == 0 => sim.set_paused(up, !sim.nodes[up].paused),
            // A manager pauses (GC, SIGSTOP), perhaps in the middle of a call, or resumes.
            5 if (c / 8) % 16 == 1 => {
                let m = managers[(*c as usize / 128) % 3];
                sim.set_paused(m, !sim.nodes[m].paused);
            }
            // A holder gives up a token of "a" it was granted, perhaps a stale one.
            5 if (c / 8) % 16 == 2 || (c / 8) % 16 == 3 => {
                let i = (*c as usize / 128) % 3;
                let holder = format!("h{i}");
                let epochs: Vec<Epoch> = granted_epochs(&sim, &holder, "a");
                if let Some(epoch) = epochs.get((*c as usize / 384) % epochs.len().max(1)) {
                    releases.push((sim.real, holder.clone(), "a".into(), *epoch));
                    common::lease::release(&mut sim, managers[i], req, "a", &holder, epoch.0);
                }
            }
            _ => sim.step(*c, STEP_MAX),
        }
        settle_nodes(&mut sim, &[up]);
    }
    let expiries = abandoned_leases_expire(&mut sim);
    let tenures = tenures(&sim, &releases);
    let mut grants = Vec::new();
    let mut granted = Vec::new();
    let mut checks = Vec::new();
    for (real, _, note) in &sim.notes {
        match note {
            Note::Manager(ManagerOutput::Claimed {
                req,
                lease,
                holder,
                epoch,
                global_expiry,
                ..
            }) => {
                if let Some((at, g, d)) = asked.get(&req.0) {
                    grants.push(Grant {
                        lease: lease.clone(),
                        holder: holder.clone(),
                        epoch: *epoch,
                        invoked_real: *at,
                        granted_real: *real,
                    });
                    granted.push(GrantedTerm {
                        lease: lease.clone(),
                        global_at_call_start: *g,
                        duration: *d,
                        expiry: *global_expiry,
                    });
                }
            }
            Note::Manager(ManagerOutput::Checked {
                held, refreshed, ..
            }) => checks.push((held.is_some(), *refreshed)),
            _ => {}
        }
    }
    let mut reached = BTreeSet::new();
    for (_, _, note) in &sim.notes {
        match note {
            Note::Manager(ManagerOutput::Claimed { .. }) => reached.insert("lease claimed"),
            Note::Manager(ManagerOutput::Denied { .. }) => reached.insert("lease denied"),
            Note::Manager(ManagerOutput::Expired { .. }) => reached.insert("lease expired"),
            Note::Manager(ManagerOutput::Released { vacated: true, .. }) => {
                reached.insert("lease released")
            }
            _ => false,
        };
    }
    if tenures
        .windows(2)
        .any(|t| t[0].lease == t[1].lease && t[0].epoch == t[1].epoch)
    {
        reached.insert("lease extended");
    }
    if grants.iter().any(|g| g.epoch.0 > 1) {
        reached.insert("lease changed holder");
    }
    let violations = violations(
        [
            lease::l6_exclusion(&tenures),
            lease::store_changes(&sim.lease_changes),
            lease::f1_epochs(&grants),
            lease::l5_claim_lasts(&granted),
            lease::m4_not_held_after_refresh(&checks),
        ]
        .into_iter()
        .chain(expiries),
    );
    Run {
        violations,
        reached,
    }
}

// ---------------------------------------------------------------------------------------------
// Leadership

fn run_leadership(choices: &[u32], mutant: Option<Mutant>) -> Run {
    let d = Duration::from_secs(5);
    let mut sim = Sim::new();
    let up = start_updater(&mut sim, None, Clock::EXACT);
    settle_nodes(&mut sim, &[up]);
    let units: Vec<usize> = (0..3).map(|i| start_unit(&mut sim, i, d, mutant)).collect();
    let mut issued: BTreeMap<(usize, u64), u64> = BTreeMap::new();
    let mut given_up: Vec<Release> = Vec::new();
    for c in choices {
        let u = units[(*c as usize / 8) % 3];
        match c % 8 {
            6 => {
                let kind = [
                    TicketKind::ClaimLeader,
                    TicketKind::WaitLeader,
                    TicketKind::WaitMinion,
                ][(*c as usize / 24) % 3];
                let mut id = None;
                sim.call(u, |a, now| match a {
                    Node::Unit(x) => {
                        let (t, fx) = x.handle_ticket(kind, now);
                        id = Some(t.0);
                        common::split(fx, Note::from)
                    }
                    _ => unreachable!("units are units"),
                });
                issued.insert((u, id.expect("a ticket")), sim.real);
            }
            7 => sim.fire(u),
            // Now and then a unit stops for good, or resigns, so leadership has to move.
            5 if (c / 8) % 16 == 0 => {
                let u = units[(*c as usize / 256) % 3];
                leave(&mut sim, u, (c / 4096) % 2 == 0, &mut given_up);
            }
            _ => sim.step(*c, STEP_MAX),
        }
        settle_nodes(&mut sim, &[up]);
    }
    // Half the runs end as a rolling deploy does: the leader resigns as the quiet phase begins,
    // and a waiting unit must take over within a sweep, not when the old lease would expire.
    if choices.first().is_some_and(|c| c % 2 == 1) {
        let leader = units
            .iter()
            .copied()
            .find(|&u| matches!(sim.node(u), Node::Unit(x) if x.tracker().is_leader()));
        if let Some(u) = leader {
            leave(&mut sim, u, true, &mut given_up);
        }
    }
    let mut results = candidates_served(&mut sim, &units, "db");
    let tenures = tenures(&sim, &given_up);
    results.push(lease::l6_exclusion(&tenures));
    let mut answers = Vec::new();
    let mut minion = false;
    for &u in &units {
        let mut events = Vec::new();
        let mut waiters = Vec::new();
        let mut claims = Vec::new();
        for (real, node, note) in &sim.notes {
            if *node != u {
                continue;
            }
            match note {
                Note::Tracker(TrackerOutput::Ticket { id, kind, value }) => {
                    events.push(tenure::property::leadership::TicketEvent::Resolved(
                        *id, *value,
                    ));
                    if *value && *kind == TicketKind::ClaimLeader {
                        let issued_real = issued.get(&(u, id.0)).copied().unwrap_or(*real);
                        // A unit that resigns gives its guarantee up: it is owed none after.
                        let resigned = given_up.iter().filter(|r| r.1 == unit_of(&sim, u));
                        let claim_until_real = resigned.map(|r| r.0).fold(
                            sim.real_of(u, sim.nodes[u].clock.local(issued_real).after(d)),
                            u64::min,
                        );
                        answers.push(tenure::property::leadership::LeaderAnswer {
                            application: "db".into(),
                            unit: unit_of(&sim, u),
                            issued_real,
                            answered_real: *real,
                            claim_until_real,
                        });
                    }
                }
                Note::Tracker(TrackerOutput::WaitReleased { .. }) => waiters.push((*real, 1i8)),
                // A unit's manager waits only for its tracker: each end is a waiter returning.
                Note::Manager(ManagerOutput::WaitEnded { .. })
                | Note::Manager(ManagerOutput::WaitCancelled { .. }) => waiters.push((*real, -1i8)),
                Note::Tracker(TrackerOutput::Claim { duration, .. }) => claims.push(*duration),
                Note::Tracker(TrackerOutput::BecameMinion) => minion = true,
                _ => {}
            }
        }
        waiters.sort_by_key(|(r, delta)| (*r, *delta));
        let mut issued_events: Vec<_> = issued
            .keys()
            .filter(|(x, _)| *x == u)
            .map(|(_, id)| {
                tenure::property::leadership::TicketEvent::Issued(
                    tenure::leadership::TicketId(*id),
                    TicketKind::ClaimLeader,
                )
            })
            .collect();
        issued_events.extend(events);
        results.push(leadership::t4_tickets_once(&issued_events, false));
        results.push(leadership::t3_one_release_waiter(
            &waiters.iter().map(|w| w.1).collect::<Vec<_>>(),
        ));
        results.push(leadership::t5_twice(&claims, d));
    }
    results.push(leadership::t1_backed(&answers, &tenures));
    let mut reached = BTreeSet::new();
    if !answers.is_empty() {
        reached.insert("leader answered");
    }
    if tenures.iter().any(|t| t.holder != tenures[0].holder) {
        reached.insert("leadership moved");
    }
    if minion {
        reached.insert("minion");
    }
    if sim
        .notes
        .iter()
        .any(|(_, _, n)| matches!(n, Note::Resigned(Ok(true))))
    {
        reached.insert("resigned");
    }
    Run {
        violations: violations(results),
        reached,
    }
}

fn unit_name(i: usize) -> String {
    format!("db-{i}")
}

/// The unit name of unit node `u`.
fn unit_of(sim: &Sim, u: usize) -> String {
    match sim.node(u) {
        Node::Unit(x) => x.tracker().unit().to_owned(),
        _ => String::new(),
    }
}

/// Adds and starts unit `db-<i>`: a tracker claiming for `d` through a manager of its own, on
/// the `i`-th clock. The manager asks for the default sweep; the unit decides its own.
fn start_unit(sim: &mut Sim, i: usize, d: Duration, mutant: Option<Mutant>) -> usize {
    let mut manager = ManagerConfig::new("app", format!("ctl-{i}"));
    manager.skew = SkewBounds {
        rate_error_ppm: RHO_PPM,
        clock_step_max: CLOCK_STEP_MAX,
    };
    // A renewal that met a concurrent change must be retried within the claim duration
    // (`TrackerConfig::check_timing`).
    manager.retry.delay_max = Duration::from_secs(1);
    let tracker = TrackerConfig {
        application: "db".into(),
        unit: unit_name(i),
        claim_duration: d,
        mutant,
    };
    let unit = Unit::new(manager, tracker).expect("valid unit");
    let n = sim.add(Node::Unit(Box::new(unit)), CLOCKS[i]);
    sim.call(n, |a, now| match a {
        Node::Unit(x) => common::split(x.handle_start(now), Note::from),
        _ => unreachable!("just added"),
    });
    n
}

/// Unit node `u` leaves for good: it stops, or resigns. A resigning unit gives up every term
/// it was granted at once, whatever its release's fate.
fn leave(sim: &mut Sim, u: usize, resigns: bool, given_up: &mut Vec<Release>) {
    let unit = match sim.node(u) {
        Node::Unit(x) if !x.tracker().is_stopped() => x.tracker().unit().to_owned(),
        _ => return,
    };
    if resigns {
        for epoch in granted_epochs(sim, &unit, "db") {
            given_up.push((sim.real, unit.clone(), "db".to_owned(), epoch));
        }
    }
    sim.call(u, |a, now| match a {
        Node::Unit(x) if resigns => common::split(x.handle_resign(now), Note::from),
        Node::Unit(x) => common::split(x.handle_stop(now), Note::from),
        _ => unreachable!("units are units"),
    });
}

// ---------------------------------------------------------------------------------------------
// Presence

fn snapshot(sim: &Sim, model: &str) -> PresenceSnapshot {
    PresenceSnapshot::of(&sim.store, model)
}

fn run_presence(choices: &[u32], mutant: Option<Mutant>, faults: bool) -> Run {
    let mut sim = Sim::new();
    sim.server_epoch = Some(secs(1000));
    // Juju's 30 s slots, or slots of 4 s, where the ping interval must be shorter than Juju's.
    let period = if choices.first().is_some_and(|c| c % 2 == 1) {
        4
    } else {
        30
    };
    let config = tenure::presence::PresenceConfig {
        period: Duration::from_secs(period),
        ..pres::config("m")
    };
    let bcfg = tenure::presence::BatcherConfig {
        jitter_seed: Some(1),
        mutant,
        ..config.batcher_config()
    };
    let b = sim.add(
        Node::Batcher(Box::new(tenure::presence::Batcher::new(bcfg).unwrap())),
        Clock::EXACT,
    );
    let w = pres::watcher(&mut sim, &config, mutant);
    let pr = pres::pruner(&mut sim, &config, mutant);
    let keys = ["k0", "k1"];
    // Slots come from local time plus an offset measured at start, so drift accumulates between
    // restarts (as in Juju): presence needs clocks far better than ρ = 5%.
    let drift = [
        Clock {
            rate_ppm: -200,
            offset: 0,
        },
        Clock {
            rate_ppm: 200,
            offset: 5,
        },
    ];
    let pingers: Vec<usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| pres::pinger(&mut sim, &config, k, drift[i], mutant))
        .collect();
    for k in keys {
        pres::watch(&mut sim, w, k);
    }
    let mut seen = 0;
    let mut running: BTreeMap<usize, u64> = BTreeMap::new();
    let mut pinging: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    let mut prunes = Vec::new();
    let period = config.period_secs();
    for c in choices {
        match c % 16 {
            13 => {
                let i = (*c as usize / 16) % 2;
                if let Some(from) = running.remove(&pingers[i]) {
                    pinging
                        .entry(keys[i].to_owned())
                        .or_default()
                        .push((from, sim.real));
                }
                if (c / 32) % 2 == 0 {
                    pres::stop(&mut sim, pingers[i])
                } else {
                    pres::kill(&mut sim, pingers[i])
                }
            }
            14 => {
                let i = (*c as usize / 16) % 2;
                pres::start(&mut sim, pingers[i]);
            }
            15 => {
                sim.settle();
                let slot = (1000 + i64::try_from(sim.real / 1_000_000_000).unwrap())
                    .div_euclid(period)
                    * period;
                let before = snapshot(&sim, "m");
                pres::prune(&mut sim, pr, slot);
                sim.settle();
                prunes.push((before, snapshot(&sim, "m"), slot));
            }
            _ => {
                // Time passes in steps of at most a thirtieth of a slot (a second in Juju's
                // slots), and every due timer fires: timers fire that late at most.
                sim.real += (u64::from(*c) * 7_919) % (nanos(config.period) / 30) + 1;
            }
        }
        // Every operation completes promptly (P5 presumes a working database), some with lost
        // or ambiguous replies.
        sim.faults = faults;
        sim.settle_faulty(*c);
        sim.faults = false;
        // Note which pingers are running (registered and pinging), then hand their pings to
        // the batcher.
        for (real, node, note) in &sim.notes[seen..] {
            if let Note::Pinger(PingerOutput::Started { .. }) = note {
                running.insert(*node, *real);
            }
        }
        pres::route(&mut sim, b, &mut seen);
    }
    for (node, from) in running {
        let i = pingers.iter().position(|p| *p == node).unwrap();
        pinging
            .entry(keys[i].to_owned())
            .or_default()
            .push((from, sim.real));
    }
    // P2: every surviving slot document holds exactly the OR of the pings sent to it and
    // acknowledged or still to be resent (the batcher resends until acknowledged).
    sim.faults = false;
    if let Node::Batcher(x) = &mut sim.nodes[b].actor {
        let fx = x.handle_flush(tenure::time::LocalTime(sim.real));
        sim.absorb(b, fx, Note::Batcher);
    }
    settle_nodes(&mut sim, &[b]);
    let mut sent: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (_, _, note) in &sim.notes {
        if let Note::Pinger(PingerOutput::Ping(Ping {
            model,
            slot,
            field,
            bit,
        })) = note
        {
            *sent
                .entry((format!("{model}:{slot}"), field.clone()))
                .or_insert(0) |= bit;
        }
    }
    let mut stored = presence::stored_alive_bits(&sim.store);
    let present: BTreeSet<String> = sim
        .store
        .documents(Collection::PresencePings)
        .map(|d| d.id.clone())
        .collect();
    // Slot documents a prune may have deleted (and a later kill marker re-created) are left out.
    let pruned_below = prunes
        .iter()
        .map(|(_, _, slot)| tenure::presence::oldest_kept_slot(*slot, period))
        .max()
        .unwrap_or(i64::MIN);
    let survived =
        |id: &str| tenure::presence::slot_of_ping_id(id).is_some_and(|s| s >= pruned_below);
    sent.retain(|(id, _), _| present.contains(id) && survived(id));
    stored.retain(|(id, _), _| survived(id));
    let mut events = Vec::new();
    let mut reports = Vec::new();
    let mut seqs: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for (real, node, note) in &sim.notes {
        match note {
            Note::PresenceWatcher(WatcherOutput::Change { watch, key, alive }) => {
                events.push((watch.0, key.clone(), *alive));
                reports.push(Report {
                    key: key.clone(),
                    real: *real,
                    alive: *alive,
                });
            }
            Note::Pinger(PingerOutput::Started { seq }) => {
                seqs.entry(*node).or_default().push(*seq)
            }
            _ => {}
        }
    }
    let mut results = vec![
        presence::p1_sequences(&seqs.into_values().collect::<Vec<_>>()),
        presence::p2_or_of_sent(&sent, &stored),
        presence::p4_alternate(&events),
        // The watcher's two slots, and a step of time.
        presence::p5_pinging_never_dead(
            &pinging,
            &reports,
            nanos(config.alive_window() + config.period / 30),
        ),
    ];
    for (before, after, slot) in &prunes {
        results.push(presence::p6_prune_keeps(before, after, *slot, period));
    }
    let mut reached = BTreeSet::new();
    if events.iter().any(|e| e.2) {
        reached.insert("key alive");
    }
    if events.iter().any(|e| !e.2) {
        reached.insert("key dead");
    }
    if prunes
        .iter()
        .any(|(before, after, _)| after.slots.len() < before.slots.len())
    {
        reached.insert("slots pruned");
    }
    Run {
        violations: violations(results),
        reached,
    }
}

// ---------------------------------------------------------------------------------------------
// The correct protocols hold.

fn cfg() -> ProptestConfig {
    // A fixed seed keeps CI deterministic; the mutant search below covers breadth.
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7e4e_u64),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn clock_never_decreases_nor_loses_increments(choices in prop::collection::vec(any::<u32>(), 0..300)) {
        prop_assert_eq!(run_clock(&choices, None).violations, vec![]);
    }

    #[test]
    fn lease_exclusion_extension_expiry_and_epochs_hold(choices in prop::collection::vec(any::<u32>(), 0..300), faults in any::<bool>()) {
        prop_assert_eq!(run_lease(&choices, None, faults).violations, vec![]);
    }

    #[test]
    fn leadership_answers_are_backed(choices in prop::collection::vec(any::<u32>(), 0..300)) {
        prop_assert_eq!(run_leadership(&choices, None).violations, vec![]);
    }

    #[test]
    fn presence_bits_events_and_pruning_hold(choices in prop::collection::vec(any::<u32>(), 0..400), faults in any::<bool>()) {
        prop_assert_eq!(run_presence(&choices, None, faults).violations, vec![]);
    }
}

// ---------------------------------------------------------------------------------------------
// Every mutant is caught.

fn choices(seed: u64, len: usize) -> Vec<u32> {
    let mut j = Jitter::seeded(seed);
    (0..len)
        .map(|_| u32::try_from(j.ppm()).unwrap() ^ (u32::try_from(j.ppm()).unwrap() << 12))
        .collect()
}

/// Searches seeds for a run of `mutant` that violates its declared property.
fn find_counterexample(mutant: Mutant) -> Option<(u64, Vec<Violation>)> {
    for seed in 0..1000 {
        let cs = choices(seed, 400);
        let found = match mutant.protocol() {
            Protocol::Clock => run_clock(&cs, Some(mutant)),
            Protocol::Lease => run_lease(&cs, Some(mutant), seed % 2 == 1),
            Protocol::Leadership => run_leadership(&cs, Some(mutant)),
            Protocol::Presence => run_presence(&cs, Some(mutant), seed % 2 == 1),
        }
        .violations;
        if found.iter().any(|v| v.property == mutant.breaks()) {
            return Some((seed, found));
        }
    }
    None
}

#[test]
fn every_mutant_breaks_its_property() {
    let mut missed = Vec::new();
    for m in Mutant::ALL {
        match find_counterexample(*m) {
            Some((seed, vs)) => eprintln!(
                "{m}: seed {seed}: {}",
                vs.iter().find(|v| v.property == m.breaks()).unwrap()
            ),
            None => missed.push(m.name()),
        }
    }
    assert!(
        missed.is_empty(),
        "mutants with no counterexample: {missed:?}"
    );
}

/// The correct protocols pass because nothing bad happens, not because nothing happens: random
/// runs reach every milestone the properties talk about.
#[test]
fn random_runs_reach_every_milestone() {
    let mut reached = BTreeSet::new();
    for seed in 0..16 {
        let cs = choices(seed, 300);
        let faults = seed % 2 == 1;
        for run in [
            run_clock(&cs, None),
            run_lease(&cs, None, faults),
            run_leadership(&cs, None),
            run_presence(&cs, None, faults),
        ] {
            assert_eq!(run.violations, vec![], "seed {seed}");
            reached.extend(run.reached);
        }
    }
    let want = [
        "clock advanced",
        "clock update conflicted",
        "clock watcher emitted",
        "lease claimed",
        "lease denied",
        "lease expired",
        "lease released",
        "lease extended",
        "lease changed holder",
        "leader answered",
        "leadership moved",
        "minion",
        "resigned",
        "key alive",
        "key dead",
        "slots pruned",
    ];
    let missing: Vec<_> = want.iter().filter(|m| !reached.contains(*m)).collect();
    assert!(missing.is_empty(), "never reached: {missing:?}");
}
