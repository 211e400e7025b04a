//! Which properties a configuration checks, and the windows of its bounded-liveness
//! properties (G6, M6, T6), worked out from the configuration.

use super::TenureModel;
use crate::harness::faults::Fault;
use crate::properties::CheckedProperty;
use crate::protocol::Milestone;
use std::time::Duration;
use tenure::mutant::Protocol;
use tenure::property::PropertyId;

/// The bounded-liveness properties a configuration checks, worked out once from it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Checks {
    /// G6.
    pub(super) progress: bool,
    /// M6.
    pub(super) expiry: bool,
    /// T6.
    pub(super) service: bool,
}

impl TenureModel {
    /// Whether G6 (the clock's bounded liveness) is checked: in the clock model, unless requests
    /// may be delayed without end (`delay` has no budget: a request held forever is a partition,
    /// under which no progress is promised).
    pub fn checks_progress(&self) -> bool {
        self.checks.progress
    }

    /// Works out, once (in `new`), whether G6 is checked.
    pub(super) fn progress_checked(&self) -> bool {
        self.config.protocol == Protocol::Clock && !self.config.faults.has(Fault::Delay)
    }

    /// Whether M6 (abandoned leases expire in bounded time) is checked: in the lease model,
    /// unless requests may be delayed without end, and only if the horizon leaves room for a
    /// claim, its expiry and the window after it (the default 6 s horizon does not).
    pub fn checks_expiry(&self) -> bool {
        self.checks.expiry
    }

    /// Works out, once (in `new`), whether M6 is checked.
    pub(super) fn expiry_checked(&self) -> bool {
        let needed = self.config.lease_duration
            + self.config.clock_step_max()
            + self.expiry_window()
            + self.config.tick * 2;
        self.config.protocol == Protocol::Lease
            && !self.config.faults.has(Fault::Delay)
            && u128::from(self.horizon_ns()) >= needed.as_nanos()
    }

    /// M6's window after global time passes a lease's expiry (or the last fault ends). The
    /// manager waits out the rest of the term on its own clock, which may run slow, counting
    /// from when it handled the reply that dated the term: a reply handled late (after a
    /// pause) restarts that wait, so up to a whole term on the slowest clock; global time may
    /// also jump by one clock step. Its timer then fires at the first tick after that (one
    /// tick), and the check runs at the start of a tick, before the timers due in it (one tick
    /// more); the refresh and the expiry complete within the tick.
    pub fn expiry_window(&self) -> Duration {
        self.on_slowest_clock(self.config.lease_duration)
            + self.config.clock_step_max()
            + self.config.tick * 2
    }

    /// Whether T6 (a waiting candidate is served once the leadership lease is free) is checked:
    /// in the leadership model, unless requests may be delayed without end, and only if the
    /// horizon leaves room for the leader's term to run out and the window after it (the
    /// default 6 s horizon does not).
    pub fn checks_service(&self) -> bool {
        self.checks.service
    }

    /// Works out, once (in `new`), whether T6 is checked.
    pub(super) fn service_checked(&self) -> bool {
        let term = self.config.lease_duration * 2;
        let needed = self.on_slowest_clock(term)
            + self.config.clock_step_max()
            + self.service_window(false)
            + self.config.tick;
        self.config.protocol == Protocol::Leadership
            && !self.config.faults.has(Fault::Delay)
            && u128::from(self.horizon_ns()) >= needed.as_nanos()
    }

    /// T6's window after the lease is freed (or the last fault ends). The unit whose manager
    /// expired the lease is told at once and claims within the tick; a unit that learns of it
    /// from its manager's next expiry tick or its own renewal timer (both due by then) claims
    /// at the next tick: two ticks. A lease its leader `released` (resigned) is learnt of only
    /// by a sweep, due within the core's sweep interval on the slowest clock, and then the same.
    pub fn service_window(&self, released: bool) -> Duration {
        let sweep = match released {
            true => self.on_slowest_clock(self.tracker_config(0).sweep_interval()),
            false => Duration::ZERO,
        };
        sweep + self.config.tick * 2
    }

    /// Whether the model remembers when the last fault ended (G6, M6 and T6 windows start
    /// there).
    pub(crate) fn tracks_quiet(&self) -> bool {
        [PropertyId::G6, PropertyId::M6, PropertyId::T6]
            .into_iter()
            .any(|id| self.observes(id))
    }

    /// G6's window: an updater's interval and backoff on the slowest local clock, plus two
    /// ticks (a timer fires at the first tick at or after its deadline, and the write it starts
    /// completes within that tick).
    pub fn progress_window(&self) -> Duration {
        let local = self.config.update_interval + self.updater_config().backoff_delay;
        self.on_slowest_clock(local) + self.config.tick * 2
    }

    /// The properties this model's protocol checks, `always` first.
    pub fn checked_properties(&self) -> Vec<PropertyId> {
        use PropertyId::*;
        match self.config.protocol {
            Protocol::Clock if self.checks_progress() => vec![G1, G2, G3, G5, G6],
            Protocol::Clock => vec![G1, G2, G3, G5],
            Protocol::Leadership if self.checks_service() => {
                vec![G1, G2, G3, L2, L3, L4, L6, F1, T1, T3, T4, T5, T6]
            }
            Protocol::Leadership => vec![G1, G2, G3, L2, L3, L4, L6, F1, T1, T3, T4, T5],
            Protocol::Presence => vec![P1, P2, P4, P5, P6],
            _ if self.checks_expiry() => vec![G1, G2, G3, L2, L3, L4, L5, L6, F1, M4, M6],
            _ => vec![G1, G2, G3, L2, L3, L4, L5, L6, F1, M4],
        }
    }

    /// Every property this configuration can check, `always` first.
    pub fn checkable(&self) -> Vec<CheckedProperty> {
        let always = self
            .checked_properties()
            .into_iter()
            .map(CheckedProperty::Always);
        let sometimes = self
            .milestones()
            .into_iter()
            .map(CheckedProperty::Sometimes);
        always.chain(sometimes).collect()
    }

    /// The properties this check checks: those of `ModelConfig::only`, or all it can.
    pub fn selected(&self) -> Vec<CheckedProperty> {
        let mut all = self.checkable();
        if let Some(only) = &self.config.only {
            all.retain(|p| only.contains(p));
        }
        all
    }

    /// The milestones whose `sometimes` properties show the model is not vacuous.
    pub fn milestones(&self) -> Vec<Milestone> {
        match self.config.protocol {
            Protocol::Clock => vec![Milestone::ClockAdvanced, Milestone::WatcherEmitted],
            Protocol::Presence => vec![
                Milestone::KeyAlive,
                Milestone::KeyDied,
                Milestone::SlotsPruned,
            ],
            // Without tickets nobody asks claim_leader.
            Protocol::Leadership => {
                let mut m = vec![Milestone::LeadershipMoved, Milestone::BecameMinion];
                if self.config.tickets_per_unit > 0 {
                    m.push(Milestone::LeaderConfirmed);
                }
                if self.config.releases > 0 {
                    m.push(Milestone::LeaseReleased);
                }
                m
            }
            // A lone holder is never denied.
            _ if self.config.managers < 2 => vec![
                Milestone::LeaseClaimed,
                Milestone::HolderChanged,
                Milestone::LeaseExpired,
            ],
            _ => {
                let mut m = vec![
                    Milestone::LeaseClaimed,
                    Milestone::HolderChanged,
                    Milestone::LeaseExpired,
                    Milestone::ClaimDenied,
                ];
                if self.config.releases > 0 {
                    m.push(Milestone::LeaseReleased);
                }
                m
            }
        }
    }
}
