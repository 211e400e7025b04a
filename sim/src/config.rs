//! What a simulated run runs: which protocols, how many of each process, for how long, under
//! which faults. A configuration and a seed determine the run.

use crate::faults::{survivable, FaultRates};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;
use tenure::mutant::{Mutant, Protocol};

/// Most processes of one kind (and keys) a run may have: bounds memory and the event queue.
pub const PROCESSES_MAX: u32 = 1_000;
/// Most presence keys.
pub const KEYS_MAX: u32 = 100_000;
/// Most leases.
pub const LEASES_MAX: u32 = 100_000;
/// Longest faulty phase: a simulated day.
pub const SIM_TIME_MAX: Duration = Duration::from_secs(86_400);

/// Which protocols a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Clock updaters and a watcher.
    Clock,
    /// Lease managers, each serving one holder, over the clock.
    Lease,
    /// Leadership units (a tracker and its manager each) over the clock.
    Leadership,
    /// Presence agents (a batcher and its keys' pingers each), a watcher and a pruner.
    Presence,
    /// All of them at once: leadership and plain leases on the clock, and presence.
    All,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Clock,
        Workload::Lease,
        Workload::Leadership,
        Workload::Presence,
        Workload::All,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Clock => "clock",
            Workload::Lease => "lease",
            Workload::Leadership => "leadership",
            Workload::Presence => "presence",
            Workload::All => "all",
        }
    }

    /// The workload that exercises `protocol`.
    pub fn of(protocol: Protocol) -> Workload {
        match protocol {
            Protocol::Clock => Workload::Clock,
            Protocol::Lease => Workload::Lease,
            Protocol::Leadership => Workload::Leadership,
            Protocol::Presence => Workload::Presence,
        }
    }

    /// Whether the run drives `protocol`.
    pub fn drives(self, protocol: Protocol) -> bool {
        self == Workload::All || self == Workload::of(protocol)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Workload {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Workload, ConfigError> {
        Workload::ALL
            .iter()
            .copied()
            .find(|w| w.name() == s)
            .ok_or_else(|| {
                ConfigError(format!(
                    "unknown protocol {s:?}; known: clock, lease, leadership, presence, all"
                ))
            })
    }
}

/// A configuration that cannot run, saying what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid simulation: {0}")]
pub struct ConfigError(pub String);

/// A simulated run's configuration (the seed is given apart: one configuration, many seeds).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct SimConfig {
    /// Which protocols run.
    pub workload: Workload,
    /// Clock updaters (their clocks alternate fast and slow by ρ).
    pub updaters: u32,
    /// Lease managers, each serving one holder `h<i>` that claims, extends and checks.
    pub managers: u32,
    /// Leases the holders use.
    pub leases: u32,
    /// Each holder `h<i>` keeps only lease `l<i mod leases>`, claiming and extending it (no
    /// checks, no waits) for the longest duration: with as many leases as holders nobody
    /// contends, and the claim-and-extend path runs at its fastest (the benchmark's workload).
    pub own_leases: bool,
    /// Calls each holder makes per second, on average.
    pub holder_calls_per_sec: u32,
    /// Leadership units of one application.
    pub units: u32,
    /// Presence agents (processes), each keeping some keys alive.
    pub agents: u32,
    /// Presence keys, spread over the agents.
    pub keys: u32,
    /// Presence slot length (whole seconds, at least 3.9 flush intervals of 1 s).
    pub presence_period: Duration,
    /// Slots between the pruner's passes (Juju prunes about once per 260 syncs; tests prune
    /// often, to judge many passes).
    pub prune_every: u32,
    /// Length of the faulty phase; a quiet phase follows in which faults stop and the
    /// bounded-liveness properties are checked.
    pub sim_time: Duration,
    /// Each fault's rate.
    pub faults: FaultRates,
    /// Whether each seed draws which faults are on, and how often, from `faults`.
    pub swarm: bool,
    /// A deliberately broken variant, to show the simulator catches it.
    pub mutant: Option<Mutant>,
    /// Local clock rate error bound ρ, in ppm: every clock runs within it.
    pub rate_error_ppm: u32,
}

impl SimConfig {
    /// The default run of `workload`: a few of each process, a simulated minute, every fault
    /// the protocols must survive, swarm on.
    pub fn default_for(workload: Workload) -> SimConfig {
        let uses = |p| workload.drives(p);
        let clocked = uses(Protocol::Lease) || uses(Protocol::Leadership);
        SimConfig {
            workload,
            updaters: if uses(Protocol::Clock) {
                3
            } else if clocked {
                2
            } else {
                0
            },
            managers: if uses(Protocol::Lease) { 3 } else { 0 },
            leases: if uses(Protocol::Lease) { 2 } else { 0 },
            own_leases: false,
            holder_calls_per_sec: 1,
            units: if uses(Protocol::Leadership) { 3 } else { 0 },
            agents: if uses(Protocol::Presence) { 2 } else { 0 },
            keys: if uses(Protocol::Presence) { 6 } else { 0 },
            // Short slots: many slot boundaries per simulated minute, and Juju's ping interval
            // too late in them (the `presence-juju-ping-interval` mutant).
            presence_period: Duration::from_secs(6),
            prune_every: 3,
            sim_time: Duration::from_secs(60),
            faults: FaultRates::of(survivable()),
            swarm: true,
            mutant: None,
            rate_error_ppm: 10_000,
        }
    }

    /// The default run in which `mutant` is caught: its protocol's.
    pub fn for_mutant(mutant: Mutant) -> SimConfig {
        SimConfig {
            mutant: Some(mutant),
            ..SimConfig::default_for(Workload::of(mutant.protocol()))
        }
    }

    /// Named configurations (`--preset`).
    pub fn preset(name: &str) -> Result<SimConfig, ConfigError> {
        match name {
            // The row exhaustive checking cannot reach (beyond 10^11 states at 6 ticks): 3
            // managers, 2 leases, 2 clock updaters (one fast, one slow), ambiguous writes,
            // pauses and crashes.
            "lease-goal" => {
                let mut faults = FaultRates::NONE;
                for f in [
                    tenure::fault::Fault::Ambiguous,
                    tenure::fault::Fault::Pause,
                    tenure::fault::Fault::Crash,
                ] {
                    faults.set(f, crate::faults::default_rate(f));
                }
                Ok(SimConfig {
                    updaters: 2,
                    managers: 3,
                    leases: 2,
                    faults,
                    swarm: false,
                    ..SimConfig::default_for(Workload::Lease)
                })
            }
            // Real sizes: 100 managers on 1,000 leases, 5 updaters.
            "lease-scale" => Ok(SimConfig {
                updaters: 5,
                managers: 100,
                leases: 1_000,
                ..SimConfig::default_for(Workload::Lease)
            }),
            // 10,000 presence keys over 10 agents, with a watcher and a pruner, on Juju's
            // 30 s slots.
            "presence-scale" => Ok(SimConfig {
                agents: 10,
                keys: 10_000,
                presence_period: Duration::from_secs(30),
                prune_every: 20,
                ..SimConfig::default_for(Workload::Presence)
            }),
            // The benchmark's workload: 100 managers each keeping its own lease, 20 calls a
            // second each, no faults.
            "lease-bench" => Ok(SimConfig {
                updaters: 2,
                managers: 100,
                leases: 100,
                own_leases: true,
                holder_calls_per_sec: 20,
                faults: FaultRates::NONE,
                swarm: false,
                ..SimConfig::default_for(Workload::Lease)
            }),
            other => Err(ConfigError(format!(
                "unknown preset {other:?}; known: {}",
                PRESETS.join(", ")
            ))),
        }
    }

    /// Refuses what cannot run, naming the field to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let uses = |p| self.workload.drives(p);
        if (uses(Protocol::Clock) || uses(Protocol::Lease) || uses(Protocol::Leadership))
            && self.updaters == 0
        {
            return err(format!(
                "--updaters must be at least 1: the {} workload runs on the clock",
                self.workload
            ));
        }
        if uses(Protocol::Lease) && (self.managers == 0 || self.leases == 0) {
            return err("the lease workload needs --managers and --leases of at least 1".into());
        }
        if uses(Protocol::Leadership) && self.units == 0 {
            return err("the leadership workload needs --units of at least 1".into());
        }
        if uses(Protocol::Presence) && (self.agents == 0 || self.keys < self.agents) {
            return err("the presence workload needs --agents of at least 1 and --keys of at least --agents".into());
        }
        for (what, n) in [
            ("--updaters", self.updaters),
            ("--managers", self.managers),
            ("--units", self.units),
            ("--agents", self.agents),
        ] {
            if n > PROCESSES_MAX {
                return err(format!("{what} {n} exceeds {PROCESSES_MAX}"));
            }
        }
        if self.keys > KEYS_MAX || self.leases > LEASES_MAX {
            return err(format!(
                "--keys is at most {KEYS_MAX} and --leases at most {LEASES_MAX}"
            ));
        }
        if self.sim_time.is_zero() || self.sim_time > SIM_TIME_MAX {
            return err(format!(
                "--sim-time must be positive and at most a day ({:?} given)",
                self.sim_time
            ));
        }
        if uses(Protocol::Lease) && !(1..=1_000).contains(&self.holder_calls_per_sec) {
            return err("--holder-calls-per-sec must be between 1 and 1000".into());
        }
        if uses(Protocol::Presence) && self.prune_every == 0 {
            return err("--prune-every must be at least 1".into());
        }
        if uses(Protocol::Presence) {
            crate::workload::presence_config(self)
                .validate()
                .map_err(|e| ConfigError(format!("--presence-period: {e}")))?;
        }
        if self.rate_error_ppm > tenure::time::RATE_ERROR_PPM_MAX {
            return err(format!(
                "--rate-error-ppm {} exceeds {} ppm",
                self.rate_error_ppm,
                tenure::time::RATE_ERROR_PPM_MAX
            ));
        }
        if let Some(m) = self.mutant {
            if !self.workload.drives(m.protocol()) {
                return err(format!(
                    "mutant {m} breaks the {} protocol, which the {} workload does not run",
                    m.protocol(),
                    self.workload
                ));
            }
        }
        Ok(())
    }
}

/// The names [`SimConfig::preset`] knows.
pub const PRESETS: [&str; 4] = ["lease-goal", "lease-scale", "lease-bench", "presence-scale"];

impl fmt::Display for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.workload)?;
        let sizes = [
            ("updater", self.updaters),
            ("manager", self.managers),
            ("lease", self.leases),
            ("unit", self.units),
            ("agent", self.agents),
            ("key", self.keys),
        ];
        for (what, n) in sizes.iter().filter(|(_, n)| *n > 0) {
            write!(f, " {n} {what}(s),")?;
        }
        write!(
            f,
            " {} s simulated, ρ {} ppm, faults {}{}",
            self.sim_time.as_secs(),
            self.rate_error_ppm,
            self.faults.set_of(),
            if self.swarm { " (swarm)" } else { "" }
        )?;
        if let Some(m) = self.mutant {
            write!(f, ", mutant {m}")?;
        }
        Ok(())
    }
}
