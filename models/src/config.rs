//! What one model run checks: the protocol, its size, its faults and its time bounds.

use crate::harness::faults::{Fault, FaultSet};
use crate::properties::CheckedProperty;
use std::fmt;
use std::time::Duration;
use tenure::mutant::{Mutant, Protocol};

/// Hard limits that keep every configuration's state space finite and its indices small.
pub const PROCESSES_MAX: u8 = 6;
/// Most leases one model tracks.
pub const LEASES_MAX: u8 = 4;
/// Most leadership tickets per unit.
pub const TICKETS_MAX: u8 = 4;
/// Longest horizon, in ticks.
pub const HORIZON_MAX: u32 = 200;

/// A model configuration. Defaults per protocol come from [`ModelConfig::default_for`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelConfig {
    /// The protocol under check (lease and leadership run on the real clock).
    pub protocol: Protocol,
    /// Clock updaters.
    pub updaters: u8,
    /// Lease managers (each serves one holder, `h<i>`).
    pub managers: u8,
    /// Lease names (`l<k>`).
    pub leases: u8,
    /// Real time passes in ticks of this length; due timers fire at the first tick at or after
    /// their deadline, which is a legal (late) schedule.
    pub tick: Duration,
    /// Real time ends after this many ticks (stateright's `within_boundary`).
    pub horizon: u32,
    /// Real time advances to the next timer deadline (at most one tick) instead of a whole
    /// tick, so timers fire exactly on time. Presence needs it: its timing margins are smaller
    /// than a tick's lateness.
    pub exact_timers: bool,
    /// Clock rate error ρ in ppm: each process runs slow, fast or exact by ρ
    /// ([`ModelConfig::rate_ppm`]).
    pub rate_error_ppm: u32,
    /// The clock updaters' interval (and backoff).
    pub update_interval: Duration,
    /// Claims ask for this duration.
    pub lease_duration: Duration,
    /// `h0`'s later claims (extensions) ask for this, shorter, duration: the store must extend
    /// *to* the later expiry and never shorten (L3).
    pub extend_duration: Duration,
    /// Claims (or extensions) holder `h0` may make per lease in one run: two let it extend.
    pub claims_first_holder: u8,
    /// Claims each other holder may make per lease in one run.
    pub claims_per_holder: u8,
    /// Leadership tickets each unit may be given in one run.
    pub tickets_per_unit: u8,
    /// Presence pingers (keys `k<i>`); the presence model also runs one batcher, one watcher
    /// watching every key, and one pruner.
    pub pingers: u8,
    /// Presence slot length (whole seconds).
    pub presence_period: Duration,
    /// Server time at real time zero, in seconds (presence numbers its slots from server
    /// time). It sets where slot boundaries fall against the watcher's syncs (every period
    /// from real time zero).
    pub server_epoch_secs: u64,
    /// Graceful stops (with a dead marker) each pinger may make, each followed by a restart.
    pub kills_per_pinger: u8,
    /// Prune passes in one run.
    pub prunes: u8,
    /// Token checks holder `h0` may make of lease `l0` in one run (M4; checks by the other
    /// holders would multiply the state space and reveal nothing new).
    pub checks: u8,
    /// Releases holder `h0` may make of lease `l0` in one run, each giving up the token of its
    /// first grant there (stale once `h0` claimed again after an expiry, which a release must
    /// leave alone). In the leadership model: resignations of unit `h0` (its tracker stops and
    /// it releases the term its manager knows).
    pub releases: u8,
    /// Faults that may be injected.
    pub faults: FaultSet,
    /// How many fault events one run may contain (each lost or ambiguous reply, rollback, stale
    /// read, non-atomic write, pause and crash uses one).
    pub fault_budget: u8,
    /// A deliberately broken variant of the protocol, or `None` for the real one.
    pub mutant: Option<Mutant>,
    /// Symmetry reduction over interchangeable processes (see [`crate::speedup::symmetry`]); the search
    /// is then depth first.
    pub symmetry: bool,
    /// Partial-order reduction: a step that commutes with everything that can happen before it
    /// is explored alone (see [`crate::speedup::reduction`]). On by default; off to cross-check.
    pub partial_order: bool,
    /// Renumber each process's operation ids from 0 whenever nothing else in the state refers
    /// to them (`TenureModel::alone`), so that states differing only in how many operations
    /// came before are one state. On by default; off to cross-check.
    pub renumber: bool,
    /// Check only these properties (`None`: every property the configuration checks). Fewer
    /// properties are evaluated in each state, and what only the others read is not observed
    /// (the clock's history for G2, G3 and G6, the samples for M6, the free lease for T6), so
    /// states that differ only in it are one; every state the chosen properties tell apart is
    /// kept.
    pub only: Option<Vec<CheckedProperty>>,
}

/// A configuration that cannot be checked, with the field to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid model configuration: {0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    /// The default configuration of `protocol`: small enough to finish in seconds on 2 cores,
    /// with the faults that matter to it.
    pub fn default_for(protocol: Protocol) -> ModelConfig {
        let base = ModelConfig {
            protocol,
            updaters: 2,
            managers: 0,
            leases: 0,
            tick: Duration::from_secs(1),
            horizon: 8,
            exact_timers: false,
            rate_error_ppm: 100_000,
            update_interval: Duration::from_secs(1),
            lease_duration: Duration::from_secs(3),
            extend_duration: Duration::from_millis(1500),
            claims_first_holder: 0,
            claims_per_holder: 0,
            checks: 0,
            releases: 0,
            tickets_per_unit: 0,
            pingers: 0,
            presence_period: Duration::from_secs(2),
            // One second before a slot boundary, so the first slot is old enough to prune
            // within the horizon.
            server_epoch_secs: 1_007,
            kills_per_pinger: 0,
            prunes: 0,
            faults: [Fault::Ambiguous, Fault::Lost, Fault::Pause, Fault::Crash]
                .into_iter()
                .collect(),
            fault_budget: 1,
            mutant: None,
            symmetry: false,
            partial_order: true,
            renumber: true,
            only: None,
        };
        match protocol {
            Protocol::Clock => ModelConfig { horizon: 6, ..base },
            // Units claim for 2 × 2 s through their own managers; each may ask one question.
            Protocol::Leadership => ModelConfig {
                updaters: 1,
                managers: 2,
                leases: 1,
                horizon: 6,
                lease_duration: Duration::from_secs(2),
                tickets_per_unit: 1,
                ..base
            },
            // One key pinging into 8 s slots (it restarts once, so beings are superseded), no
            // clock; the pruner may run once. P5's window is at most two slots and a tick, so
            // a horizon of 28 s leaves room for a report it covers.
            Protocol::Presence => ModelConfig {
                updaters: 0,
                pingers: 1,
                presence_period: Duration::from_secs(8),
                exact_timers: true,
                horizon: 28,
                kills_per_pinger: 1,
                prunes: 1,
                ..base
            },
            Protocol::Lease => ModelConfig {
                updaters: 1,
                managers: 2,
                leases: 1,
                horizon: 6,
                claims_first_holder: 2,
                claims_per_holder: 1,
                checks: 1,
                releases: 0,
                ..base
            },
        }
    }

    /// The default configuration in which `mutant` must produce a counterexample: its
    /// protocol's default with the mutant switched on (and, where the default would hide the
    /// bug, the smallest change that shows it).
    pub fn for_mutant(mutant: Mutant) -> ModelConfig {
        let base = ModelConfig {
            mutant: Some(mutant),
            ..ModelConfig::default_for(mutant.protocol())
        };
        match mutant {
            // A second updater would keep the clock going: the lone one must not give up.
            Mutant::ClockUpdaterGivesUp => ModelConfig {
                updaters: 1,
                ..base
            },
            // M6 needs a horizon that fits a claim, its expiry and the window after it.
            Mutant::ManagerSleepsPastExpiry => ModelConfig {
                mutant: Some(mutant),
                ..ModelConfig::expiry_liveness()
            },
            // Releases are checked in their own configuration.
            Mutant::LeaseReleaseAnyEpoch => ModelConfig {
                mutant: Some(mutant),
                ..ModelConfig::release_safety()
            },
            // T6 needs a horizon that fits the leader's term and the window after it.
            Mutant::LeadershipIgnoresRelease | Mutant::LeadershipSweepAtMaxSleep => ModelConfig {
                mutant: Some(mutant),
                ..ModelConfig::service_liveness()
            },
            // Short slots (Juju's interval, 3.75 s, against 1.1 s), and a watcher that syncs
            // right at each slot boundary: the slot that just ended must already be stored.
            Mutant::PresenceJujuPingInterval => ModelConfig {
                presence_period: Duration::from_secs(4),
                server_epoch_secs: 1_008,
                horizon: 16,
                ..base
            },
            _ => base,
        }
    }

    /// The lease configuration in which M6 (abandoned leases expire in bounded time) is checked:
    /// one holder that claims and extends, then stops, and a horizon long enough for its lease
    /// to expire and the window after that to close.
    pub fn expiry_liveness() -> ModelConfig {
        ModelConfig {
            managers: 1,
            checks: 0,
            releases: 0,
            horizon: 13,
            ..ModelConfig::default_for(Protocol::Lease)
        }
    }

    /// The lease configuration in which early releases are checked: the default, with `h0`
    /// releasing the token of its first grant once (stale if it claimed again after an
    /// expiry) instead of checking it. Both at once would multiply the state space by five;
    /// M4 is checked in the default configuration.
    pub fn release_safety() -> ModelConfig {
        ModelConfig {
            checks: 0,
            releases: 1,
            ..ModelConfig::default_for(Protocol::Lease)
        }
    }

    /// The leadership configuration in which T6 (a waiting candidate is served once the lease
    /// is free) is checked: two units given no tickets (the units claim and wait by
    /// themselves), unit `h0` may resign once, every default fault, and a horizon long enough
    /// for a paused leader's term to run out (a paused leader is what leaves the lease free
    /// while the other unit waits; a crashed one claims again as it restarts) and the window
    /// after that to close.
    pub fn service_liveness() -> ModelConfig {
        ModelConfig {
            tickets_per_unit: 0,
            releases: 1,
            lease_duration: Duration::from_secs(3),
            horizon: 11,
            ..ModelConfig::default_for(Protocol::Leadership)
        }
    }

    /// Processes in the model: updaters, managers and pingers (plus the clock watcher, or the
    /// presence batcher, watcher and pruner).
    pub fn processes(&self) -> u8 {
        self.updaters + self.managers + self.pingers
    }

    /// The local clock rate, in ppm off real time, of manager `i` (`manager`) or of any other
    /// process `i`: managers run slow, fast, exact, slow, ... by ρ, the others (updaters first)
    /// fast, slow, exact, ..., so that the first updater's fast clock meets the first holder's
    /// slow one, the case the skew margin exists for.
    pub fn rate_ppm(&self, i: usize, manager: bool) -> i64 {
        let rho = i64::from(self.rate_error_ppm);
        let order = if manager {
            [-rho, rho, 0]
        } else {
            [rho, -rho, 0]
        };
        order[i % 3]
    }

    /// The clock step bound S lease holders budget for: the updaters' cap on one step.
    pub fn clock_step_max(&self) -> Duration {
        self.update_interval
    }

    /// Checks sizes and durations against the limits, naming the field to change.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.updaters == 0 && self.protocol != Protocol::Presence {
            return err(format!(
                "--updaters must be at least 1: the {} protocol runs on the clock",
                self.protocol
            ));
        }
        if self.protocol == Protocol::Presence
            && (self.pingers == 0 || self.pingers > 7 || self.updaters + self.managers > 0)
        {
            return err(
                "the presence model runs 1 to 7 pingers and no updaters or managers".into(),
            );
        }
        if self.protocol == Protocol::Presence {
            if let Err(e) = crate::protocol::presence::config_of(self).validate() {
                return err(e.to_string());
            }
        }
        if self.processes() > PROCESSES_MAX {
            return err(format!(
                "{} processes (updaters + managers) exceed the limit of {PROCESSES_MAX}",
                self.processes()
            ));
        }
        if matches!(self.protocol, Protocol::Lease | Protocol::Leadership)
            && (self.managers == 0 || self.leases == 0)
        {
            return err(format!(
                "the {} model needs --managers and --leases of at least 1",
                self.protocol
            ));
        }
        if self.protocol == Protocol::Leadership && self.leases != 1 {
            return err("the leadership model has one application (--leases 1)".into());
        }
        if self.tickets_per_unit > 0 && self.protocol != Protocol::Leadership {
            return err("--tickets applies to the leadership model only".into());
        }
        if self.checks > 0 && self.protocol != Protocol::Lease {
            return err("--checks applies to the lease model only".into());
        }
        if self.releases > 0 && !matches!(self.protocol, Protocol::Lease | Protocol::Leadership) {
            return err("--releases applies to the lease and leadership models only".into());
        }
        if self.tickets_per_unit > TICKETS_MAX {
            return err(format!(
                "--tickets {} exceeds {TICKETS_MAX} per unit",
                self.tickets_per_unit
            ));
        }
        if self.leases > LEASES_MAX {
            return err(format!("--leases {} exceeds {LEASES_MAX}", self.leases));
        }
        if self.horizon == 0 || self.horizon > HORIZON_MAX {
            return err(format!(
                "--horizon {} must be between 1 and {HORIZON_MAX} ticks",
                self.horizon
            ));
        }
        if self.tick.is_zero() || self.update_interval.is_zero() || self.lease_duration.is_zero() {
            return err("tick, update interval and lease duration must be positive".into());
        }
        for (what, d) in [
            ("lease duration", self.lease_duration),
            ("extension duration", self.extend_duration),
        ] {
            if d <= self.clock_step_max() {
                return err(format!(
                    "the {what} ({d:?}) must exceed the clock step bound ({:?})",
                    self.clock_step_max()
                ));
            }
        }
        if self.rate_error_ppm > tenure::time::RATE_ERROR_PPM_MAX {
            return err(format!(
                "rate error {} ppm exceeds {} ppm",
                self.rate_error_ppm,
                tenure::time::RATE_ERROR_PPM_MAX
            ));
        }
        if let Some(only) = &self.only {
            // The properties a configuration checks depend on its protocol, faults and horizon.
            let checkable = crate::harness::TenureModel::new(self.clone()).checkable();
            if let Some(p) = only.iter().find(|p| !checkable.contains(p)) {
                return err(format!(
                    "--only {p}: this {} configuration does not check it; it checks {}",
                    self.protocol,
                    crate::properties::keys(checkable)
                ));
            }
            if only.is_empty() {
                return err("--only needs at least one property".into());
            }
        }
        if let Some(m) = self.mutant {
            if m.protocol() != self.protocol {
                return err(format!(
                    "mutant {m} belongs to the {} protocol, not {}",
                    m.protocol(),
                    self.protocol
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for ModelConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.protocol {
            Protocol::Clock => format!("{} updater(s) + watcher", self.updaters),
            Protocol::Lease => format!(
                "{} updater(s), {} manager(s), {} lease(s)",
                self.updaters, self.managers, self.leases
            ),
            Protocol::Leadership => format!(
                "{} updater(s), {} unit(s) (tracker + manager), {} ticket(s) each",
                self.updaters, self.managers, self.tickets_per_unit
            ),
            Protocol::Presence => format!(
                "{} pinger(s) + batcher + watcher + pruner, {:?} slots",
                self.pingers, self.presence_period
            ),
        };
        write!(
            f,
            "{}: {who}, horizon {} × {:?}{}, ρ {} ppm, faults {} (budget {})",
            self.protocol,
            self.horizon,
            self.tick,
            if self.exact_timers {
                " (timers exact)"
            } else {
                ""
            },
            self.rate_error_ppm,
            self.faults,
            self.fault_budget
        )?;
        if let Some(m) = self.mutant {
            write!(f, ", mutant {m}")?;
        }
        if self.symmetry {
            write!(f, ", symmetry reduction")?;
        }
        if !self.partial_order {
            write!(f, ", no partial-order reduction")?;
        }
        if !self.renumber {
            write!(f, ", operation ids as issued")?;
        }
        if let Some(only) = &self.only {
            write!(
                f,
                ", only {}",
                crate::properties::keys(only.iter().copied())
            )?;
        }
        Ok(())
    }
}
