//! Running seeds: one seeded run ([`simulate`]) is a faulty phase, then a quiet phase in which
//! every fault stops, paused processes resume and the drivers stop calling (TigerBeetle's
//! VOPR: safety, then liveness), then the checks over the whole run. Many seeds run on several
//! threads ([`run_seeds`]); each is its own world, so the results do not depend on how many.

use crate::config::SimConfig;
use crate::faults::FaultRates;
use crate::observe::{Drives, Found, Milestone};
use crate::rng::Rng;
use crate::trace::Stats;
use crate::workload::{presence_config, Drive, LEASE_NS};
use crate::world::{Ev, World};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tenure::actor::{Node, Note};
use tenure::mutant::Protocol;
use tenure::property::PropertyId;
use tenure::substrate::Collection;
use tenure::time::nanos;
use tenure::timeline::{BeliefFrame, Frame, LeaseFrame, ProcFrame};

/// The quiet phase's length: longer than every bounded-liveness window.
pub const QUIET: Duration = Duration::from_secs(40);

/// What one seed's run came to.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The configuration run.
    pub config: SimConfig,
    /// The fault rates of this run (swarm testing draws them per seed).
    pub faults: FaultRates,
    /// Properties broken, the earliest first (the run stops at the first).
    pub found: Vec<Found>,
    /// What happened, counted.
    pub stats: Stats,
    /// Simulated time, ns (both phases).
    pub sim_ns: u64,
    /// The hash of every event in order: one seed, one hash.
    pub trace_hash: String,
    /// Milestones reached.
    pub reached: BTreeSet<Milestone>,
    /// Why the run did not finish, if it did not.
    pub unfinished: Option<String>,
    /// The last steps, when replaying.
    #[serde(skip)]
    pub frames: Vec<Frame>,
}

impl Report {
    /// Whether a property failed (or the run could not finish).
    pub fn failed(&self) -> bool {
        !self.found.is_empty() || self.unfinished.is_some()
    }

    /// The first property broken.
    pub fn first(&self) -> Option<&Found> {
        self.found.first()
    }
}

/// Runs `config` with `seed`; `frames`: keep the last steps as a timeline (replays).
pub fn simulate(config: &SimConfig, seed: u64, frames: bool) -> Report {
    let mut rng = Rng::new(seed);
    let mut options = rng.fork();
    let faults = if config.swarm {
        config.faults.swarm(&mut options)
    } else {
        config.faults
    };
    let mut world = World::new(config.clone(), faults, rng, Drive::default(), frames);
    world.populate();
    if world.trace.framing() {
        world.trace.mark(0, "the processes start");
        world.push_frame();
    }
    let end = nanos(config.sim_time);
    let mut finished = world.run_until(end);
    if finished && !world.observer.failed() {
        world.quiet = true;
        world.observer.quiet_since = Some(world.real);
        world
            .trace
            .mark(world.real, "faults stop; paused processes resume");
        world.resume_all();
        world.hand_over();
        world.schedule(world.real, Ev::Sample);
        finished = world.run_until(end + nanos(QUIET));
        if finished && !world.observer.failed() {
            world.flush_all();
            finished =
                world.run_until(world.real + 2 * nanos(presence_config(config).flush_interval));
            let drives = Drives {
                clock: !world.procs.is_empty() && config.updaters > 0,
                leases: config.workload.drives(Protocol::Lease),
                presence: config.workload.drives(Protocol::Presence),
            };
            let real = world.real;
            world.observer.finish(real, &world.store, drives);
            if world.trace.framing() {
                world
                    .trace
                    .mark(real, "end of the run: the checks over all of it");
                world.push_frame();
            }
        }
    }
    Report {
        seed,
        config: config.clone(),
        faults,
        found: world.observer.found(),
        stats: world.stats.clone(),
        sim_ns: world.real,
        trace_hash: format!("{:016x}", world.trace.hash()),
        reached: world.observer.reached.clone(),
        unfinished: (!finished).then(|| {
            format!(
                "the run needed more than {} events (a livelock, or a configuration too large for one run)",
                crate::world::EVENTS_MAX
            )
        }),
        frames: world.trace.frames(),
    }
}

impl World {
    /// Every agent flushes what it holds (the end of the run: P2 compares settled bits).
    fn flush_all(&mut self) {
        for p in 0..self.procs.len() {
            if matches!(self.procs[p].node, Node::Agent(_)) {
                self.call(p, |n, now| match n {
                    Node::Agent(a) => a.handle_flush(now).map(Note::Agent),
                    _ => Default::default(),
                });
            }
        }
    }

    /// The world as a timeline frame, after what the trace noted since the last one.
    pub(crate) fn push_frame(&mut self) {
        let action = self.trace.take_pending();
        let real = self.real;
        let procs = self
            .procs
            .iter()
            .map(|p| ProcFrame {
                name: p.name.clone(),
                local: p.now(real).0,
                paused: p.paused,
            })
            .collect();
        let leases = (0..self.config.leases)
            .map(|k| {
                let id = tenure::lease::lease_id(LEASE_NS, &format!("l{k}"));
                LeaseFrame::stored(
                    format!("l{k}"),
                    self.store.get(Collection::Leases, &id),
                    LEASE_NS,
                )
            })
            .collect();
        let beliefs = self
            .observer
            .live_beliefs(real)
            .into_iter()
            .map(|t| BeliefFrame {
                holder: t.holder,
                lease: t.lease,
                epoch: t.epoch.0,
                until: t.until_real,
            })
            .collect();
        let violations = self
            .observer
            .found()
            .iter()
            .map(|f| f.violation.to_string())
            .collect();
        let global = tenure::clock::decode_stored(
            self.store.get(Collection::Clock, tenure::clock::CLOCK_ID),
        )
        .map_or(0, |g| g.0);
        self.trace.push(Frame {
            step: 0,
            action,
            real,
            global,
            procs,
            leases,
            beliefs,
            violations,
        });
    }
}

/// Runs every seed of `seeds` on `jobs` threads, calling `done` after each (from any thread).
/// Results come back in seed order, whatever `jobs` is.
pub fn run_seeds(
    config: &SimConfig,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    done: &(dyn Fn(&Report) + Sync),
) -> Vec<Report> {
    let n = usize::try_from(seeds.end.saturating_sub(seeds.start)).unwrap_or(usize::MAX);
    let next = AtomicU64::new(seeds.start);
    let out: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; n]);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let report = simulate(config, seed, false);
                done(&report);
                let i = usize::try_from(seed - seeds.start).unwrap_or(usize::MAX);
                if let Ok(mut out) = out.lock() {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(report);
                    }
                }
            });
        }
    });
    out.into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

/// What many seeds came to.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Actor calls, over every seed.
    pub events: u64,
    /// Simulated seconds, over every seed.
    pub sim_secs: f64,
    /// Per property broken: the seeds that broke it.
    pub violations: BTreeMap<String, Vec<u64>>,
    /// Seeds that did not finish.
    pub unfinished: Vec<u64>,
    /// How often each fault struck, over every seed.
    pub faults: BTreeMap<&'static str, u64>,
    /// How often each protocol path was taken, over every seed.
    pub paths: BTreeMap<&'static str, u64>,
    /// Milestones reached by at least one seed.
    pub reached: BTreeSet<Milestone>,
}

impl Summary {
    /// The summary of `reports`.
    pub fn of(reports: &[Report]) -> Summary {
        let mut s = Summary::default();
        for r in reports {
            s.seeds += 1;
            s.events += r.stats.events;
            s.sim_secs += r.sim_ns as f64 / 1e9;
            for f in &r.found {
                s.violations
                    .entry(property_name(f.violation.property))
                    .or_default()
                    .push(r.seed);
            }
            if r.unfinished.is_some() {
                s.unfinished.push(r.seed);
            }
            for (k, v) in &r.stats.faults {
                *s.faults.entry(k).or_default() += v;
            }
            for (k, v) in &r.stats.paths {
                *s.paths.entry(k).or_default() += v;
            }
            s.reached.extend(r.reached.iter().copied());
        }
        s
    }

    /// Whether every seed passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.unfinished.is_empty()
    }
}

/// "L6 lease exclusion".
pub fn property_name(p: PropertyId) -> String {
    p.to_string()
}
