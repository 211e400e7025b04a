//! Deliberately broken protocol variants that the checkers must catch (DESIGN.md, "Mutants").
//!
//! Each actor's configuration carries `mutant: Option<Mutant>`; an actor consults it only at the
//! one spot its mutant changes, so the correct protocol and every mutant share all other code.
//! A checker that finds no counterexample for a mutant is itself broken.

use crate::property::PropertyId;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The protocol families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The global clock (PROTOCOLS.md §1).
    Clock,
    /// The lease store and manager (§2, §3).
    Lease,
    /// The leadership tracker (§4).
    Leadership,
    /// Presence (§5).
    Presence,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 4] = [
        Protocol::Clock,
        Protocol::Lease,
        Protocol::Leadership,
        Protocol::Presence,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Clock => "clock",
            Protocol::Lease => "lease",
            Protocol::Leadership => "leadership",
            Protocol::Presence => "presence",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! mutants {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal, $proto:ident, $prop:ident; )*) => {
        /// A named, deliberately broken protocol variant.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum Mutant {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Mutant {
            /// Every mutant, in a stable order.
            pub const ALL: &'static [Mutant] = &[$(Mutant::$variant),*];

            /// The kebab-case name used by `--mutant` and in reports.
            pub fn name(self) -> &'static str {
                match self { $(Mutant::$variant => $name,)* }
            }

            /// The protocol the mutant breaks.
            pub fn protocol(self) -> Protocol {
                match self { $(Mutant::$variant => Protocol::$proto,)* }
            }

            /// The property a checker must report violated.
            pub fn breaks(self) -> PropertyId {
                match self { $(Mutant::$variant => PropertyId::$prop,)* }
            }

            /// What the mutant gets wrong, in one sentence (its doc comment).
            pub fn description(self) -> String {
                let lines: &[&str] = match self { $(Mutant::$variant => &[$($doc),*],)* };
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            }
        }
    };
}

mutants! {
    /// The updater writes `base + d` without requiring the document to still hold `base`.
    ClockBlindWrite = "clock-blind-write", Clock, G2;
    /// The updater adds local time elapsed since it *started*, not since it last observed the
    /// clock, so global time runs ahead of real time.
    ClockElapsedSinceStart = "clock-elapsed-since-start", Clock, G3;
    /// The watcher emits every value it polls, repeats included.
    ClockWatcherRepeats = "clock-watcher-repeats", Clock, G5;
    /// An updater whose store call failed (an outcome unknown included) is discarded and never
    /// rebuilt, so one lost reply stops a lone updater's clock for good.
    ClockUpdaterGivesUp = "clock-updater-gives-up", Clock, G6;
    /// Expiry is judged by the manager's local deadline, without reading global time.
    LeaseExpireOnLocalClock = "lease-expire-on-local-clock", Lease, L4;
    /// The holder's local deadline is measured from the end of the call, not its start.
    LeaseDeadlineFromCallEnd = "lease-deadline-from-call-end", Lease, L6;
    /// An extension always writes, even when it makes the lease end earlier.
    LeaseExtendMayShorten = "lease-extend-may-shorten", Lease, L3;
    /// Claims and extensions use the cached global time instead of a fresh read.
    LeaseStaleGlobalRead = "lease-stale-global-read", Lease, L5;
    /// Expiry removes the lease without asserting the exact version it judged.
    LeaseExpireAnyVersion = "lease-expire-any-version", Lease, L4;
    /// A claim after expiry starts the fencing epoch again from 1.
    LeaseEpochReuse = "lease-epoch-reuse", Lease, F1;
    /// A release vacates whatever term its holder has, whatever the token's epoch: a stale
    /// token given up after its holder claimed again ends the holder's newer term, under it.
    LeaseReleaseAnyEpoch = "lease-release-any-epoch", Lease, L6;
    /// A token answers "not held" from the cache without refreshing first.
    ManagerNotHeldWithoutRefresh = "manager-not-held-without-refresh", Lease, M4;
    /// The manager's expiry ticks ignore the leases it knows and come only every `max_sleep`,
    /// so an abandoned lease stays held long after it expired.
    ManagerSleepsPastExpiry = "manager-sleeps-past-expiry", Lease, M6;
    /// The tracker claims for `duration` instead of `2 × duration`.
    LeadershipSingleDuration = "leadership-single-duration", Leadership, T5;
    /// The tracker measures its tenure from the end of the claim and trusts that over the
    /// manager's deadline.
    LeadershipRenewFromClaimEnd = "leadership-renew-from-claim-end", Leadership, T1;
    /// `claim_leader` answers from the flag without running an overdue renewal first.
    LeadershipAnswerWithoutRenewal = "leadership-answer-without-renewal", Leadership, T1;
    /// A minion keeps re-claiming every claim duration and starts a release-waiter on every
    /// denial.
    LeadershipSecondReleaseWaiter = "leadership-second-release-waiter", Leadership, T3;
    /// A minion whose release-waiter returns does not claim: a free lease stays free.
    LeadershipIgnoresRelease = "leadership-ignores-release", Leadership, T6;
    /// A unit's manager sweeps only at its own `max_sleep`, not every claim duration: a lease
    /// its leader released on resigning stays free until the old term would have expired.
    LeadershipSweepAtMaxSleep = "leadership-sweep-at-max-sleep", Leadership, T6;
    /// Pings are written with `$inc` and a flush whose outcome is unknown is sent again.
    PresenceIncResend = "presence-inc-resend", Presence, P2;
    /// The watcher reads only the current slot, so a key flaps dead at every slot boundary.
    PresenceOneSlotWindow = "presence-one-slot-window", Presence, P5;
    /// The pruner deletes pings older than one slot, including the previous, live one.
    PresencePruneRecentSlots = "presence-prune-recent-slots", Presence, P6;
    /// The pruner also deletes the newest being of a key.
    PresencePruneNewestBeing = "presence-prune-newest-being", Presence, P6;
    /// Pings come every 0.75 × (period + 1 s), Juju's interval, whatever the flush interval: a
    /// slot's ping may come too late to be stored before the slot ends, so a watcher syncing
    /// then reports a steadily pinging key dead.
    PresenceJujuPingInterval = "presence-juju-ping-interval", Presence, P5;
}

impl Mutant {
    /// The mutants of one protocol.
    pub fn of(protocol: Protocol) -> impl Iterator<Item = Mutant> {
        Mutant::ALL
            .iter()
            .copied()
            .filter(move |m| m.protocol() == protocol)
    }
}

impl fmt::Display for Mutant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown mutant name; lists the closest known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mutant {given:?}; known mutants: {}", known.join(", "))]
pub struct UnknownMutant {
    /// What was asked for.
    pub given: String,
    /// Known names sharing the asked-for prefix, or all names.
    pub known: Vec<&'static str>,
}

impl FromStr for Mutant {
    type Err = UnknownMutant;
    fn from_str(s: &str) -> Result<Mutant, UnknownMutant> {
        if let Some(m) = Mutant::ALL.iter().find(|m| m.name() == s) {
            return Ok(*m);
        }
        let prefix = s.split('-').next().unwrap_or("");
        let mut known: Vec<_> = Mutant::ALL
            .iter()
            .map(|m| m.name())
            .filter(|n| n.starts_with(prefix))
            .collect();
        if known.is_empty() {
            known = Mutant::ALL.iter().map(|m| m.name()).collect();
        }
        Err(UnknownMutant {
            given: s.to_owned(),
            known,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut names: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mutant::ALL.len());
        for m in Mutant::ALL {
            assert_eq!(m.name().parse::<Mutant>(), Ok(*m));
            assert!(m.name().starts_with(m.protocol().name()) || m.name().starts_with("manager"));
            assert!(m.description().ends_with('.'), "{m}: {}", m.description());
        }
    }

    #[test]
    fn at_least_three_per_protocol() {
        for p in Protocol::ALL {
            assert!(Mutant::of(p).count() >= 3, "{p}");
        }
    }

    #[test]
    fn the_readme_counts_them_right() {
        let readme: Vec<&str> = include_str!("../README.md").split_whitespace().collect();
        let n = |p| Mutant::of(p).count();
        let stated = format!(
            "({} today: {} of the clock, {} of leases, {} of leadership, {} of presence)",
            Mutant::ALL.len(),
            n(Protocol::Clock),
            n(Protocol::Lease),
            n(Protocol::Leadership),
            n(Protocol::Presence)
        );
        assert!(
            readme.join(" ").contains(&stated),
            "README.md's Mutants section should say {stated:?}"
        );
    }

    #[test]
    fn unknown_name_suggests_neighbours() {
        let e = "lease-typo".parse::<Mutant>().unwrap_err();
        assert!(e.known.iter().all(|n| n.starts_with("lease")));
        assert!(e.to_string().contains("lease-epoch-reuse"));
    }
}
