//! The workloads: which processes a run has, how each is built and started (again after a
//! crash), and the drivers that make API calls on them as a service would: holders claiming,
//! extending and checking leases, units asked leadership questions, keys started and stopped,
//! the pruner run now and then.
//!
//! The drivers decide only what to ask; every protocol outcome comes from the core's actors.

use crate::clock::SimClock;
use crate::config::Workload;
use crate::rng::PPM;
use crate::world::{Ev, Proc, Role, World, SERVER_EPOCH};
use std::collections::{BTreeMap, BTreeSet};

/// A leading unit leaves for good at about one ticket in this many (see `World::leaves`).
const LEAVE_ONE_IN: u64 = 40;
use std::time::Duration;
use tenure::actor::{Node, Note};
use tenure::clock::{stall_threshold, ClockWatcher, Updater, UpdaterConfig, WatcherConfig};
use tenure::leadership::{TicketKind, TrackerConfig, Unit};
use tenure::lease::{Epoch, LeaseManager, ManagerConfig, ManagerOutput, RequestId};
use tenure::mutant::Protocol;
use tenure::presence::{
    batcher::BatcherOutput, Agent, AgentOutput, PingerOutput, PresenceConfig, PresenceWatcher,
    Pruner,
};
use tenure::time::{nanos, LocalTime, SkewBounds};

/// The plain leases' namespace.
pub const LEASE_NS: &str = "app";
/// The leadership leases' namespace.
pub const LEADERSHIP_NS: &str = "leadership";
/// The application the units lead.
pub const APPLICATION: &str = "db";
/// The presence model.
pub const PRESENCE_MODEL: &str = "m";
/// The updaters' interval and backoff: the clock step bound S every holder budgets for.
pub const UPDATE_INTERVAL: Duration = Duration::from_secs(1);
/// Durations holders ask for (all well above S).
pub const LEASE_DURATIONS: [Duration; 3] = [
    Duration::from_secs(2),
    Duration::from_secs(5),
    Duration::from_secs(10),
];
/// The units' claim duration (they claim for twice that).
pub const CLAIM_DURATION: Duration = Duration::from_secs(3);

/// A leadership unit's tracker configuration: its windows (T6) come from the same rules.
pub(crate) fn tracker_config(
    unit: String,
    mutant: Option<tenure::mutant::Mutant>,
) -> TrackerConfig {
    TrackerConfig {
        application: APPLICATION.into(),
        unit,
        claim_duration: CLAIM_DURATION,
        mutant,
    }
}
/// The managers' longest sleep: longer than M6's window, so a manager that waits for it is
/// caught (the `manager-sleeps-past-expiry` mutant).
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Presence clocks' rate error bound: presence measures its offset to server time once, so it
/// needs clocks far better than the lease protocol's ρ (README, "Known limit").
pub const PRESENCE_RATE_PPM: u32 = 100;

/// What a driver drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Driver {
    /// Holder `h<i>`, on manager process `p`.
    Holder(usize),
    /// Unit `i`'s questions.
    Tickets(usize),
    /// Keys stopping and starting.
    Keys,
    /// The pruner's passes.
    Prunes,
}

/// A lease holder: at most one call at a time, plus one wait.
#[derive(Clone, Debug)]
pub(crate) struct Holder {
    pub(crate) p: usize,
    pub(crate) name: String,
    busy: Option<RequestId>,
    waiting: Option<RequestId>,
    /// Its beliefs: lease index → the term's epoch and its local deadline.
    held: BTreeMap<u32, (Epoch, LocalTime)>,
    /// Every lease it was ever granted (a former holder checks one when it expires).
    granted: BTreeSet<u32>,
    /// The epochs it was granted in each lease since its process started: the tokens it may
    /// give up (a stale one included, as a service releasing an old token would).
    tokens: BTreeMap<u32, BTreeSet<Epoch>>,
}

/// A presence key and the agent that keeps it alive.
#[derive(Clone, Debug)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) agent: usize,
    /// Whether it should be pinging (started and not stopped).
    pub(crate) wanted: bool,
}

/// The drivers' state.
#[derive(Debug, Default)]
pub(crate) struct Drive {
    pub(crate) drivers: Vec<Driver>,
    pub(crate) holders: Vec<Holder>,
    pub(crate) keys: Vec<Key>,
    /// Process indexes by role.
    pub(crate) units: Vec<usize>,
    pub(crate) agents: Vec<usize>,
    pub(crate) watcher: Option<usize>,
    pub(crate) pruner: Option<usize>,
    /// Processes that left for good (a unit scaled down): never restarted.
    pub(crate) left: BTreeSet<usize>,
    next_req: u64,
}

/// The presence configuration of a run: its slot length, a flush every second.
pub fn presence_config(config: &crate::config::SimConfig) -> PresenceConfig {
    PresenceConfig {
        period: config.presence_period,
        ..PresenceConfig::new(PRESENCE_MODEL)
    }
}

impl World {
    /// Creates every process of the workload, starts them, and schedules the drivers and the
    /// fault ticks.
    pub(crate) fn populate(&mut self) {
        let c = self.config.clone();
        let uses = |p| c.workload.drives(p);
        for i in 0..c.updaters {
            self.spawn(format!("updater-{i}"), Role::Updater(i));
        }
        if c.workload == Workload::Clock {
            self.spawn("clock-watcher".into(), Role::ClockWatcher);
        }
        if uses(Protocol::Lease) {
            for i in 0..c.managers {
                let p = self.spawn(format!("manager-{i} (h{i})"), Role::Manager(i));
                self.drive.holders.push(Holder {
                    p,
                    name: format!("h{i}"),
                    busy: None,
                    waiting: None,
                    held: BTreeMap::new(),
                    granted: BTreeSet::new(),
                    tokens: BTreeMap::new(),
                });
                self.drive.drivers.push(Driver::Holder(i as usize));
            }
        }
        if uses(Protocol::Leadership) {
            for i in 0..c.units {
                let p = self.spawn(format!("unit-{i}"), Role::Unit(i));
                self.drive.units.push(p);
                self.drive.drivers.push(Driver::Tickets(i as usize));
            }
        }
        if uses(Protocol::Presence) {
            for j in 0..c.keys {
                self.drive.keys.push(Key {
                    name: format!("k{j}"),
                    agent: (j % c.agents) as usize,
                    wanted: true,
                });
            }
            for i in 0..c.agents {
                let p = self.spawn(format!("agent-{i}"), Role::Agent(i));
                self.drive.agents.push(p);
            }
            self.drive.watcher = Some(self.spawn("watcher".into(), Role::PresenceWatcher));
            self.drive.pruner = Some(self.spawn("pruner".into(), Role::Pruner));
            self.drive.drivers.push(Driver::Keys);
            self.drive.drivers.push(Driver::Prunes);
        }
        for p in 0..self.procs.len() {
            self.start(p);
        }
        for who in 0..self.drive.drivers.len() {
            let first = self.rng.below(1_000_000_000);
            self.schedule(first, Ev::Act { who: who as u32 });
        }
        self.schedule(0, Ev::FaultTick);
    }

    /// Adds a process of `role` with a clock drawn for it; returns its index.
    fn spawn(&mut self, name: String, role: Role) -> usize {
        let clock = self.clock_for(role);
        let node = self.build(role, 0);
        self.add(Proc::new(name, role, node, clock))
    }

    /// A clock within ±ρ of real time, from an arbitrary offset, changing its rate now and
    /// then (updaters alternate fast and slow, so both extremes meet).
    fn clock_for(&mut self, role: Role) -> SimClock {
        let presence = matches!(role, Role::Agent(_) | Role::PresenceWatcher | Role::Pruner);
        let rho = i64::from(if presence {
            PRESENCE_RATE_PPM.min(self.config.rate_error_ppm)
        } else {
            self.config.rate_error_ppm
        });
        let draw = |rng: &mut crate::rng::Rng| {
            i64::try_from(rng.below(2 * rho.unsigned_abs() + 1)).unwrap_or(0) - rho
        };
        let rate = match role {
            Role::Updater(i) if i % 2 == 0 => rho,
            Role::Updater(_) => -rho,
            _ => draw(&mut self.rng),
        };
        let offset = self.rng.below(1_000_000_000_000);
        let mut clock = SimClock::new(rate, offset);
        if !presence && !matches!(role, Role::Updater(_)) {
            let span = nanos(self.config.sim_time).max(1);
            for _ in 0..2 {
                let at = self.rng.below(span);
                let rate = draw(&mut self.rng);
                clock.change_rate(at, rate);
            }
        }
        clock
    }

    fn skew(&self) -> SkewBounds {
        SkewBounds {
            rate_error_ppm: self.config.rate_error_ppm,
            clock_step_max: UPDATE_INTERVAL,
        }
    }

    /// A fresh actor for `role` in its `incarnation` (a restarted manager is a new writer, as
    /// in the adapter).
    pub(crate) fn build(&mut self, role: Role, incarnation: u32) -> Node {
        let mutant = self.config.mutant;
        let seed = self.rng.below(u64::MAX);
        let built = match role {
            Role::Updater(_) => Updater::new(UpdaterConfig {
                update_interval: UPDATE_INTERVAL,
                backoff_delay: UPDATE_INTERVAL,
                mutant,
            })
            .map(Node::Updater),
            Role::ClockWatcher => ClockWatcher::new(WatcherConfig {
                poll_interval: Duration::from_millis(700),
                // The adapter's default rule, so the summary shows how often updater crashes
                // and pauses stall the clock for longer than a deployment should alert on.
                stall_after: Some(stall_threshold(&UpdaterConfig {
                    update_interval: UPDATE_INTERVAL,
                    backoff_delay: UPDATE_INTERVAL,
                    mutant: None,
                })),
                mutant,
            })
            .map(Node::ClockWatcher),
            Role::Manager(i) => {
                let mut c = ManagerConfig::new(LEASE_NS, format!("ctl-{i}-{incarnation}"));
                c.skew = self.skew();
                c.max_sleep = MAX_SLEEP;
                c.jitter_seed = Some(seed);
                c.mutant = mutant;
                LeaseManager::new(c).map(|m| Node::Manager(Box::new(m)))
            }
            Role::Unit(i) => {
                let mut c =
                    ManagerConfig::new(LEADERSHIP_NS, format!("unit-ctl-{i}-{incarnation}"));
                c.skew = self.skew();
                // The unit sweeps every claim duration whatever this says (its core rule).
                c.max_sleep = MAX_SLEEP;
                c.retry.delay_max = Duration::from_secs(1);
                c.jitter_seed = Some(seed);
                c.mutant = mutant;
                Unit::new(c, tracker_config(format!("u{i}"), mutant))
                    .map(|u| Node::Unit(Box::new(u)))
            }
            Role::Agent(_) => Agent::new(presence_config(&self.config), Some(seed), mutant)
                .map(|a| Node::Agent(Box::new(a))),
            Role::PresenceWatcher => PresenceWatcher::new(presence_config(&self.config), mutant)
                .map(|w| Node::PresenceWatcher(Box::new(w))),
            Role::Pruner => Pruner::new(presence_config(&self.config), mutant)
                .map(|p| Node::Pruner(Box::new(p))),
            // A script brings its own actors, and a scripted process never crashes.
            Role::Scripted => Err(tenure::validate::InputError::InvalidConfig(
                "a scripted process has no role to rebuild".into(),
            )),
        };
        // Every configuration above is fixed and valid; the tests build each role.
        built.unwrap_or_else(|e| panic!("the simulator built an invalid {role:?}: {e}"))
    }

    /// Starts process `p`'s actor (again, after a crash).
    pub(crate) fn start(&mut self, p: usize) {
        match self.procs[p].role {
            Role::Updater(_) => self.call(p, |n, now| match n {
                Node::Updater(u) => u.handle_start(now).map(Note::Updater),
                _ => Default::default(),
            }),
            Role::Manager(i) => {
                if let Some(h) = self.drive.holders.get_mut(i as usize) {
                    // The holder lived in the process: its calls and beliefs died with it.
                    h.busy = None;
                    h.waiting = None;
                    h.held.clear();
                    h.tokens.clear();
                }
                self.call(p, |n, now| match n {
                    Node::Manager(m) => m.handle_start(now).map(Note::Manager),
                    _ => Default::default(),
                })
            }
            Role::Unit(_) => self.call(p, |n, now| match n {
                Node::Unit(u) => u.handle_start(now).map(Note::from),
                _ => Default::default(),
            }),
            Role::Agent(i) => {
                let keys: Vec<String> = self
                    .drive
                    .keys
                    .iter()
                    .filter(|k| k.agent == i as usize && k.wanted)
                    .map(|k| k.name.clone())
                    .collect();
                for key in keys {
                    self.start_key(p, &key);
                }
            }
            Role::PresenceWatcher => {
                let keys: Vec<String> = self.drive.keys.iter().map(|k| k.name.clone()).collect();
                self.call(p, |n, now| {
                    let mut fx = tenure::effects::Effects::none();
                    if let Node::PresenceWatcher(w) = n {
                        for key in &keys {
                            if let Ok((_, more)) = w.handle_watch(key, now) {
                                fx.extend(more.map(Note::PresenceWatcher));
                            }
                        }
                    }
                    fx
                });
            }
            Role::ClockWatcher | Role::Pruner | Role::Scripted => self.rearm(p),
        }
    }

    fn start_key(&mut self, p: usize, key: &str) {
        self.observer.key_wanted(key, true);
        self.call(p, |n, now| match n {
            Node::Agent(a) => a
                .handle_start(key, now)
                .unwrap_or_default()
                .map(Note::Agent),
            _ => Default::default(),
        });
    }

    /// A driver's turn: it makes at most one call, then waits a while.
    pub(crate) fn act(&mut self, who: u32) {
        if self.quiet {
            return;
        }
        let Some(driver) = self.drive.drivers.get(who as usize).copied() else {
            return;
        };
        let pause = match driver {
            Driver::Holder(i) => {
                self.holder_acts(i);
                // Uniform around the mean: 0.05 to 1.5 times two means.
                let mean = 1_000_000_000 / u64::from(self.config.holder_calls_per_sec.max(1));
                self.rng.range(mean / 20, mean * 3 / 2)
            }
            Driver::Tickets(i) => {
                self.unit_asked(i);
                self.rng.range(500_000_000, 5_000_000_000)
            }
            Driver::Keys => {
                self.key_switches();
                self.rng.range(1_000_000_000, 10_000_000_000)
                    / u64::from(self.config.keys.clamp(1, 1_000)).max(1)
                    * 10
            }
            Driver::Prunes => {
                self.prune();
                nanos(presence_config(&self.config).period)
                    * u64::from(self.config.prune_every.max(1))
            }
        };
        self.schedule(self.real + pause.max(1_000_000), Ev::Act { who });
    }

    fn holder_acts(&mut self, i: usize) {
        let Some(h) = self.drive.holders.get(i) else {
            return;
        };
        let p = h.p;
        if self.procs[p].paused || h.busy.is_some() {
            return;
        }
        let k = if self.config.own_leases {
            (i as u32) % self.config.leases
        } else {
            self.rng.below(u64::from(self.config.leases)) as u32
        };
        let now = self.procs[p].now(self.real);
        let holds = h.held.get(&k).is_some_and(|(_, d)| *d > now);
        let waiting = h.waiting.is_some();
        let roll = self.rng.below(100);
        let lease = format!("l{k}");
        if self.config.own_leases {
            return self.claim(i, &lease);
        }
        match (holds, roll) {
            (true, 0..=59) | (false, 0..=49) => self.claim(i, &lease),
            (true, 60..=79) | (false, 50..=64) => self.check(i, &lease),
            // Waiting on a lease one holds is how a holder learns it has gone (M5 then checks
            // the manager against its own grant).
            (false, 65..=74) | (true, 80..=84) if !waiting => self.wait(i, &lease),
            (true, 85..=89) | (false, 75..=77) => self.release(i, k),
            _ => {}
        }
    }

    /// Holder `i` gives up one of its tokens of lease `l<k>`, perhaps a stale one: it stops
    /// acting on that term at once, whatever the answer.
    fn release(&mut self, i: usize, k: u32) {
        let tokens: Vec<Epoch> = self.drive.holders[i]
            .tokens
            .get(&k)
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default();
        if tokens.is_empty() {
            return;
        }
        let epoch = tokens[self.rng.below(tokens.len() as u64) as usize];
        let req = self.next_req();
        let lease = format!("l{k}");
        let h = &mut self.drive.holders[i];
        h.busy = Some(req);
        if h.held.get(&k).is_some_and(|(e, _)| *e == epoch) {
            h.held.remove(&k);
        }
        let (p, holder) = (h.p, h.name.clone());
        self.observer
            .release_called(self.real, p, &lease, &holder, epoch);
        self.call(p, |n, now| match n {
            Node::Manager(m) => m
                .handle_release(req, &lease, &holder, epoch, now)
                .map(Note::Manager),
            _ => Default::default(),
        });
    }

    /// A leading unit shuts down for good, as in a scale-down, while another remains, and a
    /// waiting unit must take over (T6): half the time it just stops and the lease it leaves
    /// expires; otherwise it resigns, releasing the lease, which the others learn of only by a
    /// sweep of their managers.
    fn leaves(&mut self, p: usize, resigns: bool) -> bool {
        let leads = matches!(&self.procs[p].node, Node::Unit(u) if u.tracker().is_leader());
        if !leads || self.drive.left.len() + 2 > self.drive.units.len() {
            return false;
        }
        self.drive.left.insert(p);
        let name = self.procs[p].name.clone();
        if !resigns {
            self.trace
                .mark(self.real, &format!("{name} leaves for good"));
            self.call(p, |n, now| match n {
                Node::Unit(u) => u.handle_stop(now).map(Note::from),
                _ => Default::default(),
            });
        } else {
            self.trace
                .mark(self.real, &format!("{name} resigns and leaves for good"));
            if let Node::Unit(u) = &self.procs[p].node {
                let unit = u.tracker().unit().to_owned();
                self.observer.resign_called(self.real, p, &unit);
            }
            self.call(p, |n, now| match n {
                Node::Unit(u) => u.handle_resign(now).map(Note::from),
                _ => Default::default(),
            });
        }
        true
    }

    /// As the quiet phase begins, in half the runs, the leader resigns (a rolling deploy's
    /// last step): T6 then times the successor against one sweep, not the old lease's expiry.
    pub(crate) fn hand_over(&mut self) {
        if self.drive.units.len() < 2 || self.rng.below(2) == 0 {
            return;
        }
        let leader = self.drive.units.iter().copied().find(|&p| {
            !self.drive.left.contains(&p)
                && matches!(&self.procs[p].node, Node::Unit(u) if u.tracker().is_leader())
        });
        if let Some(p) = leader {
            self.leaves(p, true);
        }
    }

    fn next_req(&mut self) -> RequestId {
        self.drive.next_req += 1;
        RequestId(self.drive.next_req)
    }

    fn claim(&mut self, i: usize, lease: &str) {
        let req = self.next_req();
        let d = if self.config.own_leases {
            LEASE_DURATIONS[LEASE_DURATIONS.len() - 1]
        } else {
            LEASE_DURATIONS[self.rng.below(LEASE_DURATIONS.len() as u64) as usize]
        };
        let h = &mut self.drive.holders[i];
        h.busy = Some(req);
        let (p, holder) = (h.p, h.name.clone());
        self.observer
            .claim_called(self.real, req, lease, d, &self.store);
        self.call(p, |n, now| match n {
            Node::Manager(m) => m
                .handle_claim(req, lease, &holder, d, now)
                .map(Note::Manager),
            _ => Default::default(),
        });
    }

    fn check(&mut self, i: usize, lease: &str) {
        let req = self.next_req();
        let h = &mut self.drive.holders[i];
        h.busy = Some(req);
        let (p, holder) = (h.p, h.name.clone());
        self.observer.check_called(req, lease, &holder, &self.store);
        self.call(p, |n, now| match n {
            Node::Manager(m) => m.handle_check(req, lease, &holder, now).map(Note::Manager),
            _ => Default::default(),
        });
    }

    /// Holder `i` checks lease `k` now, unless it is busy or paused.
    pub(crate) fn check_if_idle(&mut self, i: usize, k: u32) {
        let Some(h) = self.drive.holders.get(i) else {
            return;
        };
        if self.quiet || h.busy.is_some() || self.procs[h.p].paused {
            return;
        }
        self.check(i, &format!("l{k}"));
    }

    /// Manager `p` expired lease `lease`: each former holder served by another manager checks
    /// it a few milliseconds later, as a service would on hearing the lease has gone.
    fn former_holders_check(&mut self, p: usize, lease: &str) {
        let Some(k) = lease.strip_prefix('l').and_then(|k| k.parse::<u32>().ok()) else {
            return;
        };
        let former: Vec<usize> = (self.drive.holders.iter().enumerate())
            .filter(|(_, h)| h.p != p && h.granted.contains(&k))
            .map(|(i, _)| i)
            .collect();
        for i in former {
            let at = self.real + self.rng.range(0, 5_000_000);
            self.schedule(
                at,
                Ev::Check {
                    holder: i as u32,
                    lease: k,
                },
            );
        }
    }

    fn wait(&mut self, i: usize, lease: &str) {
        let req = self.next_req();
        let h = &mut self.drive.holders[i];
        h.waiting = Some(req);
        let p = h.p;
        self.observer.wait_called(req, lease);
        self.call(p, |n, now| match n {
            Node::Manager(m) => m.handle_wait_expired(req, lease, now).map(Note::Manager),
            _ => Default::default(),
        });
    }

    fn unit_asked(&mut self, i: usize) {
        let Some(&p) = self.drive.units.get(i) else {
            return;
        };
        if self.procs[p].paused || self.drive.left.contains(&p) {
            return;
        }
        if self.rng.below(LEAVE_ONE_IN) == 0 {
            let resigns = self.rng.below(2) == 0;
            if self.leaves(p, resigns) {
                return;
            }
        }
        let kind = [
            TicketKind::ClaimLeader,
            TicketKind::WaitLeader,
            TicketKind::WaitMinion,
        ][self.rng.below(3) as usize];
        let issued = self.call_only(p, |n, now| match n {
            Node::Unit(u) => {
                let (id, fx) = u.handle_ticket(kind, now);
                Some((id, fx.map(Note::from)))
            }
            _ => None,
        });
        if let Some((id, fx)) = issued {
            // Noted before its effects: a ticket may be answered at once.
            let proc = &self.procs[p];
            self.observer
                .ticket_issued(self.real, p, &proc.clock, id, kind);
            self.absorb(p, fx);
        }
    }

    fn key_switches(&mut self) {
        let n = self.drive.keys.len() as u64;
        let Some(j) = usize::try_from(self.rng.below(n)).ok() else {
            return;
        };
        let Some(key) = self.drive.keys.get(j).cloned() else {
            return;
        };
        let p = self.drive.agents[key.agent];
        if self.procs[p].paused {
            return;
        }
        if key.wanted {
            self.drive.keys[j].wanted = false;
            self.observer.key_wanted(&key.name, false);
            let kill = self.rng.chance(PPM / 2);
            self.call(p, |n, now| match n {
                Node::Agent(a) if kill => a.handle_kill(&key.name, now).map(Note::Agent),
                Node::Agent(a) => a.handle_stop(&key.name, now).map(Note::Agent),
                _ => Default::default(),
            });
        } else {
            self.drive.keys[j].wanted = true;
            self.start_key(p, &key.name);
        }
    }

    fn prune(&mut self) {
        let Some(p) = self.drive.pruner else {
            return;
        };
        if self.procs[p].paused {
            return;
        }
        let config = presence_config(&self.config);
        let slot = tenure::presence::SlotClock::measured(SERVER_EPOCH, LocalTime(0))
            .slot(LocalTime(self.real), config.period_secs());
        let started = match &self.procs[p].node {
            Node::Pruner(x) => !x.is_running(),
            _ => false,
        };
        if started {
            self.observer.prune_started(slot, &self.store);
        }
        self.call(p, |n, now| match n {
            Node::Pruner(x) => x.handle_prune(slot, now).map(Note::Pruner),
            _ => Default::default(),
        });
    }

    /// What the drivers learn from a note of process `p`: holders their answers, keys their
    /// pingers' fate.
    pub(crate) fn drive_note(&mut self, p: usize, note: &Note) {
        match note {
            Note::Manager(out) => {
                let Role::Manager(i) = self.procs[p].role else {
                    return;
                };
                let now = self.procs[p].now(self.real);
                if let Some(h) = self.drive.holders.get_mut(i as usize) {
                    holder_learns(h, out, now);
                }
                if let ManagerOutput::Expired { lease, .. } = out {
                    self.former_holders_check(p, lease);
                }
            }
            Note::Agent(AgentOutput::Batcher(BatcherOutput::Requeued { .. })) => {
                let keys = self.keys_of(p);
                self.observer.flush_requeued(self.real, &keys);
            }
            Note::Agent(AgentOutput::Pinger {
                key,
                output: PingerOutput::Failed(_),
            }) => {
                // A start that failed is tried again by the driver later.
                if let Some(k) = self.drive.keys.iter_mut().find(|k| &k.name == key) {
                    k.wanted = false;
                }
                self.observer.key_wanted(key, false);
            }
            _ => {}
        }
    }
}

/// A holder takes in its manager's answer.
fn holder_learns(h: &mut Holder, out: &ManagerOutput, now: LocalTime) {
    let lease_index = |lease: &str| lease.strip_prefix('l').and_then(|k| k.parse::<u32>().ok());
    match out {
        ManagerOutput::Claimed {
            req,
            lease,
            epoch,
            local_deadline,
            ..
        } if h.busy == Some(*req) => {
            h.busy = None;
            if let Some(k) = lease_index(lease) {
                h.held.insert(k, (*epoch, *local_deadline));
                h.granted.insert(k);
                h.tokens.entry(k).or_default().insert(*epoch);
            }
        }
        ManagerOutput::Denied { req, lease, .. } if h.busy == Some(*req) => {
            h.busy = None;
            if let Some(k) = lease_index(lease) {
                h.held.remove(&k);
            }
        }
        ManagerOutput::Checked { req, .. }
        | ManagerOutput::Released { req, .. }
        | ManagerOutput::Failed { req, .. }
            if h.busy == Some(*req) =>
        {
            h.busy = None;
        }
        ManagerOutput::WaitEnded { req }
        | ManagerOutput::WaitCancelled { req }
        | ManagerOutput::Failed { req, .. }
            if h.waiting == Some(*req) =>
        {
            h.waiting = None;
        }
        _ => {}
    }
    h.held.retain(|_, (_, d)| *d > now);
}
