//! What the simulator watches, and the core's property functions it hands it to
//! (`tenure::property`): nothing here restates a property, it only gathers their inputs.
//!
//! Checked as the run goes (each at the step that could break it): lease store changes (L2-L4,
//! F1), exclusion of holders' beliefs (L6) and the term a claim earns (L5) at each grant, token
//! checks (M4), clock document changes (G1, G2, G3) and watcher values (G5), leadership claims
//! (T5), release-waiters (T3) and tickets (T4), presence sequences (P1), watch events (P4, P5)
//! and prune passes (P6). At the end: F1 over every grant, T1 over every `claim_leader` answer,
//! P2 once every flush has settled, and the bounded-liveness properties of the quiet phase
//! (G6, M6, T6), sampled each second of it.

use crate::clock::SimClock;
use crate::config::SimConfig;
use crate::workload::{
    presence_config, APPLICATION, CLAIM_DURATION, LEADERSHIP_NS, LEASE_NS, PRESENCE_MODEL,
};
use crate::world::{Proc, Role, SERVER_EPOCH};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tenure::actor::{Node, Note};
use tenure::clock::watcher::WatcherOutput as ClockWatcherOutput;
use tenure::clock::UpdaterOutput;
use tenure::leadership::{TicketId, TicketKind, TrackerOutput};
use tenure::lease::{lease_name_of, Epoch, LeaseDoc, ManagerOutput, RequestId};
use tenure::presence::{AgentOutput, PingerOutput, SlotClock, WatcherOutput};
use tenure::property::clock::{self, ClockWrite};
use tenure::property::leadership::{self, LeaderAnswer, TicketEvent};
use tenure::property::lease::{self, Grant, GrantedTerm, LeaseChange, Tenure};
use tenure::property::presence::{self, PresenceSnapshot, Report};
use tenure::property::{Verdict, Violation};
use tenure::substrate::{Collection, Document, MemoryStore, Op, OpResult, Update, Value};
use tenure::time::{nanos, GlobalTime, LocalTime};

/// A property broken, at real time `real`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Real time (ns) it was found.
    pub real: u64,
    /// The core's account of it.
    pub violation: Violation,
}

/// Something that shows the run exercised a protocol (a run that never reaches them proves
/// little).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Milestone {
    /// The clock advanced.
    ClockAdvanced,
    /// An updater's advance lost a race (another had moved the clock first).
    ClockConflicted,
    /// A clock watcher reported global time at least twice.
    WatcherEmitted,
    /// A lease was granted.
    LeaseClaimed,
    /// A lease changed holder (an epoch above 1).
    HolderChanged,
    /// A holder's term was extended (a grant in the epoch it already held).
    LeaseExtended,
    /// A lease was expired by a manager.
    LeaseExpired,
    /// A claim was denied.
    ClaimDenied,
    /// A holder's release vacated its lease.
    LeaseReleased,
    /// A `claim_leader` ticket was answered true.
    LeaderConfirmed,
    /// A second unit became leader.
    LeadershipMoved,
    /// A unit became a minion (another unit led).
    BecameMinion,
    /// A leader resigned and released its lease.
    Resigned,
    /// A key was reported alive.
    KeyAlive,
    /// A key was reported dead.
    KeyDied,
    /// A prune pass removed slots.
    SlotsPruned,
}

/// The quiet phase's windows (bounded liveness), derived from the workload's timing.
#[derive(Clone, Copy, Debug)]
pub struct Windows {
    /// G6: the updaters' interval and backoff on the slowest clock, and a second to spare.
    pub progress: Duration,
    /// M6: the longest term on the slowest clock, one clock step, and two seconds to spare.
    pub expiry: Duration,
    /// T6 after an expiry: the old term runs out (up to twice the claim duration on the
    /// slowest clock) and the waiting unit's manager expires it; two seconds to spare.
    pub service: Duration,
    /// T6 after a resignation (the lease released): a waiting unit's manager sweeps every
    /// claim duration (the core's `TrackerConfig::sweep_interval`); a second to spare.
    pub handover: Duration,
}

impl Windows {
    fn of(config: &SimConfig) -> Windows {
        let rho = f64::from(config.rate_error_ppm) / 1e6;
        let slow = |d: Duration| d.mul_f64((1.0 + rho) / (1.0 - rho));
        let step = crate::workload::UPDATE_INTERVAL;
        let longest = crate::workload::LEASE_DURATIONS[2];
        let tracker = crate::workload::tracker_config(String::new(), None);
        Windows {
            progress: slow(step * 2) + Duration::from_secs(1),
            expiry: slow(longest) + step + Duration::from_secs(2),
            service: slow(tracker.lease_duration()) + Duration::from_secs(2),
            handover: slow(tracker.sweep_interval()) + Duration::from_secs(1),
        }
    }
}

/// Everything the properties read, gathered as the run goes.
#[derive(Debug)]
pub struct Observer {
    rate_error_ppm: u32,
    windows: Windows,
    presence: tenure::presence::PresenceConfig,
    /// Whether operations complete promptly (no delay fault): P5 is a timing promise that
    /// holds only then (a pinger's flush, or a watcher's offset probe, held for seconds can
    /// make a live key look dead; the ping rule budgets half a flush interval for latency).
    prompt: bool,
    /// Whether stored leases change only through the protocol (no rollback, no non-atomic
    /// compare-and-swap): M5's bound on waits holds only then.
    leases_as_written: bool,
    /// Properties broken, in the order found (one entry per property).
    found: Vec<Found>,
    /// Milestones reached.
    pub reached: BTreeSet<Milestone>,
    // clock
    clock_samples: Vec<(u64, GlobalTime)>,
    clock_lowest: Option<(u64, GlobalTime)>,
    clock_write_last: Option<ClockWrite>,
    watcher_emitted: Option<GlobalTime>,
    // leases, keyed by (namespace, lease)
    tenures: BTreeMap<(String, String), Vec<(usize, Tenure)>>,
    /// Every leadership belief of the run (T1).
    all_tenures: Vec<Tenure>,
    grants: Vec<Grant>,
    /// The epoch of each lease's latest grant (`namespace/lease`).
    granted_epoch: BTreeMap<String, Epoch>,
    calls: BTreeMap<RequestId, (u64, GlobalTime, Duration)>,
    /// Each holder's wait in progress: its lease (M5).
    waits: BTreeMap<RequestId, String>,
    /// Each check in progress: its lease, holder, and whether that holder held the lease in
    /// the store at some instant since the check began (M4).
    checks: BTreeMap<RequestId, (String, String, bool)>,
    // leadership
    waiters: BTreeMap<usize, i8>,
    tickets: BTreeMap<(usize, TicketId), (u64, LocalTime, TicketKind)>,
    answers: Vec<LeaderAnswer>,
    leaders: BTreeSet<usize>,
    /// When each unit's tracker last asked its manager for a claim (F1 orders grants by it).
    unit_claimed_at: BTreeMap<usize, u64>,
    /// Since when the leadership lease has been free (T6), and whether a release freed it.
    free_since: Option<u64>,
    freed_by_release: bool,
    // presence
    /// Every being in the store, by key and by sequence: kept as beings are written, so P6
    /// judges a prune write from the keys it touched instead of decoding every being.
    beings: BTreeMap<String, BTreeSet<u64>>,
    being_keys: BTreeMap<String, (u64, String)>,
    /// Each key's last sequence, and every sequence handed out (P1).
    seqs: BTreeMap<String, u64>,
    all_seqs: BTreeSet<u64>,
    pinging_since: BTreeMap<String, u64>,
    watch_last: BTreeMap<u64, bool>,
    sync_started: Option<u64>,
    sent: BTreeMap<(String, String), i64>,
    /// The running prune pass: its slot, and the sequences it must keep the beings of.
    prune: Option<(i64, BTreeSet<u64>)>,
    pruned_below: i64,
    /// When the quiet phase began (faults stopped).
    pub quiet_since: Option<u64>,
}

fn record(found: &mut Vec<Found>, real: u64, verdict: Verdict) {
    if let Err(v) = verdict {
        if !found.iter().any(|f| f.violation.property == v.property) {
            found.push(Found { real, violation: v });
        }
    }
}

impl Observer {
    /// An observer for a run of `config`.
    pub fn new(config: &SimConfig) -> Observer {
        Observer {
            rate_error_ppm: config.rate_error_ppm,
            windows: Windows::of(config),
            presence: presence_config(config),
            prompt: true,
            leases_as_written: true,
            found: Vec::new(),
            reached: BTreeSet::new(),
            clock_samples: Vec::new(),
            clock_lowest: None,
            clock_write_last: None,
            watcher_emitted: None,
            tenures: BTreeMap::new(),
            all_tenures: Vec::new(),
            grants: Vec::new(),
            granted_epoch: BTreeMap::new(),
            calls: BTreeMap::new(),
            waits: BTreeMap::new(),
            checks: BTreeMap::new(),
            waiters: BTreeMap::new(),
            tickets: BTreeMap::new(),
            answers: Vec::new(),
            leaders: BTreeSet::new(),
            unit_claimed_at: BTreeMap::new(),
            free_since: None,
            freed_by_release: false,
            beings: BTreeMap::new(),
            being_keys: BTreeMap::new(),
            seqs: BTreeMap::new(),
            all_seqs: BTreeSet::new(),
            pinging_since: BTreeMap::new(),
            watch_last: BTreeMap::new(),
            sync_started: None,
            sent: BTreeMap::new(),
            prune: None,
            pruned_below: i64::MIN,
            quiet_since: None,
        }
    }

    /// Tells the observer this run's faults (P5 is checked only when operations are prompt).
    pub(crate) fn faults(&mut self, faults: &crate::faults::FaultRates) {
        self.prompt = !faults.has(tenure::fault::Fault::Delay);
        self.leases_as_written = !faults.has(tenure::fault::Fault::Rollback)
            && !faults.has(tenure::fault::Fault::NonAtomicCas);
    }

    /// Whether any property has failed.
    pub fn failed(&self) -> bool {
        !self.found.is_empty()
    }

    /// The properties broken so far, in the order found.
    pub fn found(&self) -> Vec<Found> {
        self.found.clone()
    }

    fn check(&mut self, real: u64, verdict: Verdict) {
        record(&mut self.found, real, verdict);
    }

    /// A holder's claim begins: L5 needs global time at its start.
    pub(crate) fn claim_called(
        &mut self,
        real: u64,
        req: RequestId,
        _lease: &str,
        duration: Duration,
        store: &MemoryStore,
    ) {
        self.calls.insert(req, (real, global(store), duration));
    }

    /// A holder checks its token (M4): whether it holds the lease in the store now.
    pub(crate) fn check_called(
        &mut self,
        req: RequestId,
        lease: &str,
        holder: &str,
        store: &MemoryStore,
    ) {
        let now = store
            .get(
                Collection::Leases,
                &tenure::lease::lease_id(LEASE_NS, lease),
            )
            .and_then(|d| LeaseDoc::decode(d, LEASE_NS).ok())
            .is_some_and(|d| d.holder() == Some(holder));
        self.checks
            .insert(req, (lease.to_owned(), holder.to_owned(), now));
    }

    /// A holder waits for a lease to expire (M5).
    pub(crate) fn wait_called(&mut self, req: RequestId, lease: &str) {
        self.waits.insert(req, lease.to_owned());
    }

    /// A leadership ticket was issued to the unit of process `p`.
    pub(crate) fn ticket_issued(
        &mut self,
        real: u64,
        p: usize,
        clock: &SimClock,
        id: TicketId,
        kind: TicketKind,
    ) {
        self.tickets
            .insert((p, id), (real, clock.local(real), kind));
    }

    /// One note of process `p`.
    pub(crate) fn note(&mut self, real: u64, p: usize, role: Role, clock: &SimClock, note: &Note) {
        match note {
            Note::Updater(UpdaterOutput::Advanced { .. }) => {
                self.reached.insert(Milestone::ClockAdvanced);
            }
            Note::Updater(UpdaterOutput::Conflict { .. }) => {
                self.reached.insert(Milestone::ClockConflicted);
            }
            Note::Resigned(Ok(true)) => {
                self.reached.insert(Milestone::Resigned);
            }
            Note::ClockWatcher(ClockWatcherOutput::Time(t)) => {
                if let Some(last) = self.watcher_emitted {
                    self.reached.insert(Milestone::WatcherEmitted);
                    self.check(real, clock::g5_watcher_strictly_later(&[last, *t]));
                }
                self.watcher_emitted = Some(*t);
            }
            Note::Manager(out) => self.manager_note(real, p, role, clock, out),
            Note::Tracker(out) => self.tracker_note(real, p, role, clock, out),
            Note::Agent(AgentOutput::Pinger { key, output }) => self.pinger_note(real, key, output),
            Note::PresenceWatcher(out) => self.watcher_note(real, out),
            _ => {}
        }
    }

    fn manager_note(
        &mut self,
        real: u64,
        p: usize,
        role: Role,
        clock: &SimClock,
        out: &ManagerOutput,
    ) {
        let ns = match role {
            Role::Unit(_) => LEADERSHIP_NS,
            _ => LEASE_NS,
        };
        match out {
            ManagerOutput::Claimed {
                req,
                lease,
                holder,
                epoch,
                local_deadline,
                global_expiry,
                ..
            } => {
                self.reached.insert(Milestone::LeaseClaimed);
                if epoch.0 > 1 {
                    self.reached.insert(Milestone::HolderChanged);
                }
                let key = format!("{ns}/{lease}");
                if self.granted_epoch.insert(key, *epoch) == Some(*epoch) {
                    self.reached.insert(Milestone::LeaseExtended);
                }
                let call = self.calls.remove(req).filter(|_| ns == LEASE_NS);
                let invoked = match role {
                    Role::Unit(_) => self.unit_claimed_at.get(&p).copied(),
                    _ => call.map(|(at, _, _)| at),
                };
                if let Some((_, g, d)) = call {
                    let term = GrantedTerm {
                        lease: lease.clone(),
                        global_at_call_start: g,
                        duration: d,
                        expiry: *global_expiry,
                    };
                    self.check(real, lease::l5_claim_lasts(&[term]));
                }
                let tenure = Tenure {
                    lease: lease.clone(),
                    holder: holder.clone(),
                    epoch: *epoch,
                    from_real: real,
                    until_real: clock.real_of(*local_deadline).max(real),
                };
                self.grants.push(Grant {
                    lease: format!("{ns}/{lease}"),
                    holder: holder.clone(),
                    epoch: *epoch,
                    invoked_real: invoked.unwrap_or(real),
                    granted_real: real,
                });
                self.believe(real, p, ns, tenure);
            }
            ManagerOutput::Denied { req, .. } => {
                self.calls.remove(req);
                self.reached.insert(Milestone::ClaimDenied);
            }
            ManagerOutput::Checked {
                req,
                held,
                refreshed,
            } => {
                self.check(
                    real,
                    lease::m4_not_held_after_refresh(&[(held.is_some(), *refreshed)]),
                );
                let check = self.checks.remove(req);
                if let (Some((lease, holder, meanwhile)), Some(_), true) =
                    (check, held, self.leases_as_written)
                {
                    self.check(
                        real,
                        lease::m4_held_while_checked(&lease, &holder, meanwhile),
                    );
                }
            }
            ManagerOutput::Expired { .. } => {
                self.reached.insert(Milestone::LeaseExpired);
            }
            ManagerOutput::Released { vacated: true, .. } => {
                self.reached.insert(Milestone::LeaseReleased);
            }
            ManagerOutput::WaitEnded { .. } | ManagerOutput::WaitCancelled { .. }
                if matches!(role, Role::Unit(_)) =>
            {
                let w = self.waiters.entry(p).or_default();
                *w = (*w - 1).max(0);
            }
            ManagerOutput::WaitEnded { req } => self.wait_ended(real, p, *req),
            ManagerOutput::WaitCancelled { req } => {
                self.waits.remove(req);
            }
            ManagerOutput::Failed { req, .. } => {
                self.calls.remove(req);
                self.waits.remove(req);
                self.checks.remove(req);
            }
            _ => {}
        }
    }

    /// Holder `holder` of manager `p` gives up its token of `lease` in `epoch`: its belief in
    /// that term ends now, whatever the release's fate.
    pub(crate) fn release_called(
        &mut self,
        real: u64,
        p: usize,
        lease: &str,
        holder: &str,
        epoch: Epoch,
    ) {
        let key = (LEASE_NS.to_owned(), lease.to_owned());
        self.end_tenures(key, real, |q, t| {
            q == p && t.holder == holder && t.epoch == epoch
        });
    }

    /// Unit `unit` (process `p`) resigns: its belief in every term of the leadership lease it
    /// holds ends now, whatever its release's fate.
    pub(crate) fn resign_called(&mut self, real: u64, p: usize, unit: &str) {
        let key = (LEADERSHIP_NS.to_owned(), APPLICATION.to_owned());
        self.end_tenures(key, real, |q, t| q == p && t.holder == unit);
        // Nor is it owed the rest of a guarantee it was promised (T1): it gave that up.
        for a in self.answers.iter_mut().filter(|a| a.unit == unit) {
            a.claim_until_real = a.claim_until_real.min(real.max(a.answered_real));
        }
    }

    /// Ends at `real` the beliefs in `key` that `mine` picks and that run past it.
    fn end_tenures(
        &mut self,
        key: (String, String),
        real: u64,
        mine: impl Fn(usize, &Tenure) -> bool,
    ) {
        for (q, t) in self.tenures.entry(key).or_default().iter_mut() {
            if mine(*q, t) && t.until_real > real {
                t.until_real = real.max(t.from_real);
            }
        }
    }

    /// M5 when holder `req`'s wait at manager `p` ends: against the beliefs `p` granted.
    fn wait_ended(&mut self, real: u64, p: usize, req: RequestId) {
        let Some(lease) = self.waits.remove(&req) else {
            return;
        };
        if !self.leases_as_written {
            return;
        }
        let key = (LEASE_NS.to_owned(), lease);
        let granted: Vec<Tenure> = self
            .tenures
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(by, _)| *by == p)
            .map(|(_, t)| t.clone())
            .collect();
        self.check(
            real,
            lease::m5_wait_ends_after_expiry(&key.1, real, &granted),
        );
    }

    /// L6 at each grant: the new belief against the others in its lease still live.
    fn believe(&mut self, real: u64, p: usize, ns: &str, tenure: Tenure) {
        let key = (ns.to_owned(), tenure.lease.clone());
        let live = self.tenures.entry(key).or_default();
        live.retain(|(_, t)| t.until_real > real);
        // An extension of a belief still live is that belief, lasting longer: one entry, so a
        // lease extended many times is not compared with itself many times.
        let same = |(q, t): &&mut (usize, Tenure)| {
            *q == p && t.holder == tenure.holder && t.epoch == tenure.epoch
        };
        match live.iter_mut().find(|e| same(e)) {
            Some((_, t)) => t.until_real = t.until_real.max(tenure.until_real),
            None => live.push((p, tenure.clone())),
        }
        let beliefs: Vec<Tenure> = live.iter().map(|(_, t)| t.clone()).collect();
        if ns == LEADERSHIP_NS {
            // T1 reads the leadership beliefs of the whole run.
            self.all_tenures.push(tenure);
        }
        if beliefs.len() > 1 {
            self.check(real, lease::l6_exclusion(&beliefs));
        }
    }

    fn tracker_note(
        &mut self,
        real: u64,
        p: usize,
        role: Role,
        clock: &SimClock,
        out: &TrackerOutput,
    ) {
        match out {
            TrackerOutput::BecameMinion => {
                self.reached.insert(Milestone::BecameMinion);
            }
            TrackerOutput::Claim { duration, .. } => {
                self.unit_claimed_at.insert(p, real);
                self.check(real, leadership::t5_twice(&[*duration], CLAIM_DURATION))
            }
            TrackerOutput::WaitReleased { .. } => {
                let w = self.waiters.entry(p).or_default();
                *w = w.saturating_add(1);
                let deltas = vec![1i8; usize::try_from(*w).unwrap_or(0)];
                self.check(real, leadership::t3_one_release_waiter(&deltas));
            }
            TrackerOutput::Ticket { id, kind, value } => {
                let Some((issued, issued_local, _)) = self.tickets.remove(&(p, *id)) else {
                    // Resolved twice, or never issued: the core's T4 says which.
                    self.check(
                        real,
                        leadership::t4_tickets_once(&[TicketEvent::Resolved(*id, *value)], false),
                    );
                    return;
                };
                if *kind == TicketKind::ClaimLeader && *value {
                    self.reached.insert(Milestone::LeaderConfirmed);
                    self.answers.push(LeaderAnswer {
                        application: APPLICATION.into(),
                        unit: match role {
                            Role::Unit(i) => format!("u{i}"),
                            _ => format!("p{p}"),
                        },
                        issued_real: issued,
                        answered_real: real,
                        claim_until_real: clock.real_of(issued_local.after(CLAIM_DURATION)),
                    });
                }
            }
            TrackerOutput::BecameLeader { .. } => {
                self.leaders.insert(p);
                if self.leaders.len() > 1 {
                    self.reached.insert(Milestone::LeadershipMoved);
                }
            }
            _ => {}
        }
    }

    fn pinger_note(&mut self, real: u64, key: &str, out: &PingerOutput) {
        match out {
            PingerOutput::Started { seq } => {
                // P1 on what the new sequence could break: this key's order (against its last
                // start) and uniqueness in the model (against every sequence handed out).
                let last = self.seqs.insert(key.to_owned(), *seq);
                let mine: Vec<u64> = last.into_iter().chain([*seq]).collect();
                let twice = !self.all_seqs.insert(*seq);
                let pingers = if twice {
                    vec![mine, vec![*seq]]
                } else {
                    vec![mine]
                };
                self.check(real, presence::p1_sequences(&pingers));
                self.pinging_since.entry(key.to_owned()).or_insert(real);
            }
            PingerOutput::Killed | PingerOutput::Failed(_) => self.stop_pinging(key),
            PingerOutput::Ping(_) => {}
        }
    }

    fn stop_pinging(&mut self, key: &str) {
        self.pinging_since.remove(key);
    }

    /// The driver started (`true`) or stopped a key: a stopped key stops counting as pinging
    /// at once, whatever its pinger still does.
    pub(crate) fn key_wanted(&mut self, key: &str, wanted: bool) {
        if !wanted {
            self.stop_pinging(key);
        }
    }

    fn watcher_note(&mut self, real: u64, out: &WatcherOutput) {
        let WatcherOutput::Change { watch, key, alive } = out else {
            return;
        };
        if let Some(last) = self.watch_last.insert(watch.0, *alive) {
            self.check(
                real,
                presence::p4_alternate(&[
                    (watch.0, key.clone(), last),
                    (watch.0, key.clone(), *alive),
                ]),
            );
        }
        if *alive {
            self.reached.insert(Milestone::KeyAlive);
            return;
        }
        self.reached.insert(Milestone::KeyDied);
        if !self.prompt {
            return;
        }
        // Measured from the sync's start: its slots are the ones that began before it.
        let started = self.sync_started.unwrap_or(real).min(real);
        let config = &self.presence;
        let server = SlotClock::measured(SERVER_EPOCH, LocalTime(0));
        let slot = server.slot(LocalTime(started), config.period_secs());
        let phase = Duration::from_nanos(started.saturating_sub(server.slot_start(slot).0));
        // Slack: late timers, store round trips, and the offsets pingers and the watcher
        // measured once at start.
        let slack = Duration::from_millis(200);
        let window = nanos(config.alive_window_at(phase) + slack) + (real - started);
        // Only the stretch still running can cover the report (every earlier one ended before
        // it), so only that one is handed over.
        let mine = self
            .pinging_since
            .get(key)
            .map(|since| vec![(*since, real + 1)])
            .unwrap_or_default();
        let pinging = BTreeMap::from([(key.clone(), mine)]);
        let report = Report {
            key: key.clone(),
            real,
            alive: false,
        };
        self.check(
            real,
            presence::p5_pinging_never_dead(&pinging, &[report], window),
        );
    }

    /// The presence watcher sent a sync's read (its slots are judged from now).
    pub(crate) fn sync_started(&mut self, real: u64) {
        self.sync_started = Some(real);
    }

    /// A flush was applied to the store: P2's "sent" (what was written with `$bit or`, or
    /// with `$inc` by a broken batcher), and P2 on the documents it wrote.
    pub(crate) fn flush_applied(&mut self, real: u64, op: &Op, store: &MemoryStore) {
        let Op::BulkUpsert {
            coll: Collection::PresencePings,
            updates,
        } = op
        else {
            return;
        };
        let below = self.pruned_below;
        for (id, u) in updates {
            // A slot a prune pass may have deleted, written again late (a requeued flush, a
            // kill marker): its bits before the prune are gone, and P2 leaves it out.
            if tenure::presence::slot_of_ping_id(id).is_none_or(|s| s < below) {
                continue;
            }
            let Update { bit_or, inc, .. } = u;
            let doc = store.get(Collection::PresencePings, id);
            // P2 on the fields this write touched (the others did not change).
            let (mut sent, mut stored) = (BTreeMap::new(), BTreeMap::new());
            for (path, v) in bit_or.iter().chain(inc.iter()) {
                let (Some(field), Value::Int(bit)) = (path.strip_prefix("alive."), v) else {
                    continue;
                };
                let key = (id.clone(), field.to_owned());
                let all = self.sent.entry(key.clone()).or_insert(0);
                *all |= bit;
                sent.insert(key.clone(), *all);
                if let Some(Value::Int(now)) = doc.and_then(|d| d.get(path)) {
                    stored.insert(key, *now);
                }
            }
            self.check(real, presence::p2_or_of_sent(&sent, &stored));
        }
    }

    /// A prune pass begins at `slot`: the beings it must keep are those referenced by the
    /// pings it keeps, as they are now.
    pub(crate) fn prune_started(&mut self, slot: i64, store: &MemoryStore) {
        let period = self.presence.period_secs();
        let referenced = presence::kept_references(store, PRESENCE_MODEL, slot, period);
        self.prune = Some((slot, referenced));
    }

    /// The beings `op` will remove, by `_id` (only a delete of beings removes any).
    pub(crate) fn beings_to_remove(&self, op: &Op, store: &MemoryStore) -> Vec<String> {
        match op {
            Op::DeleteMany {
                coll: Collection::PresenceBeings,
                selector: tenure::substrate::Selector::Ids(ids),
            } => ids
                .iter()
                .filter(|id| store.get(Collection::PresenceBeings, id).is_some())
                .cloned()
                .collect(),
            Op::DeleteMany {
                coll: Collection::PresenceBeings,
                selector,
            } => store
                .documents(Collection::PresenceBeings)
                .filter(|d| selector.matches(d))
                .map(|d| d.id.clone())
                .collect(),
            Op::Delete {
                coll: Collection::PresenceBeings,
                id,
                ..
            } => vec![id.clone()],
            _ => Vec::new(),
        }
    }

    /// Keeps the index of beings as `op` (answered `result`) wrote them.
    pub(crate) fn beings_written(&mut self, op: &Op, result: &OpResult, removed: &[String]) {
        if let (
            Op::Insert {
                coll: Collection::PresenceBeings,
                doc,
            },
            OpResult::Ok(_),
        ) = (op, result)
        {
            if let Ok((seq, key)) = tenure::presence::decode_being(doc) {
                self.beings.entry(key.clone()).or_default().insert(seq);
                self.being_keys.insert(doc.id.clone(), (seq, key));
            }
        }
        if matches!(result, OpResult::Ok(_)) {
            for id in removed {
                if let Some((seq, key)) = self.being_keys.remove(id) {
                    if let Some(seqs) = self.beings.get_mut(&key) {
                        seqs.remove(&seq);
                    }
                }
            }
        }
    }

    /// The keys whose beings a pruner's `op` may delete.
    pub(crate) fn keys_deleted_by(&self, op: &Op, store: &MemoryStore) -> BTreeSet<String> {
        self.beings_to_remove(op, store)
            .iter()
            .filter_map(|id| self.being_keys.get(id).map(|(_, k)| k.clone()))
            .collect()
    }

    /// What P6 compares of the presence documents: the ping slots, and the beings of `keys`
    /// (the only ones a prune write can change).
    pub(crate) fn presence_view(
        &self,
        store: &MemoryStore,
        keys: &BTreeSet<String>,
    ) -> PresenceSnapshot {
        let prefix = format!("{PRESENCE_MODEL}:");
        PresenceSnapshot {
            slots: store
                .documents(Collection::PresencePings)
                .filter(|d| d.id.starts_with(&prefix))
                .filter_map(|d| match d.get("slot") {
                    Some(Value::Int(s)) => Some(*s),
                    _ => None,
                })
                .collect(),
            beings: keys
                .iter()
                .flat_map(|k| {
                    let seqs = self.beings.get(k).into_iter().flatten();
                    seqs.map(move |s| (*s, k.clone()))
                })
                .collect(),
            referenced: BTreeSet::new(),
        }
    }

    /// One write of the running prune pass, with the presence documents just before it (P6 is
    /// judged per write, as the model does: pingers keep writing while a pass runs).
    pub(crate) fn prune_write(
        &mut self,
        real: u64,
        before: &PresenceSnapshot,
        after: &PresenceSnapshot,
    ) {
        let Some((slot, referenced)) = &self.prune else {
            return;
        };
        let period = self.presence.period_secs();
        let after = PresenceSnapshot {
            referenced: referenced.clone(),
            slots: after.slots.clone(),
            beings: after.beings.clone(),
        };
        if after.slots.len() < before.slots.len() {
            self.reached.insert(Milestone::SlotsPruned);
        }
        self.pruned_below = self
            .pruned_below
            .max(tenure::presence::oldest_kept_slot(*slot, period));
        let below = self.pruned_below;
        self.sent
            .retain(|(id, _), _| tenure::presence::slot_of_ping_id(id).is_some_and(|s| s >= below));
        let verdict = presence::p6_prune_keeps(before, &after, *slot, period);
        self.check(real, verdict);
    }

    /// A watched document changed from `before` to `after`: a lease (L2-L4, F1 over the
    /// store's own changes) or the clock (G1; G2 against `base`, what the writer meant to swap
    /// against; G3; and the samples G6 and M6 read).
    pub(crate) fn store_change(
        &mut self,
        real: u64,
        coll: Collection,
        id: &str,
        (before, after): (Option<&Document>, Option<&Document>),
        base: Option<u64>,
        store: &MemoryStore,
    ) {
        match coll {
            Collection::Clock => {
                let g =
                    |d: Option<&Document>| tenure::clock::decode_stored(d).unwrap_or(GlobalTime(0));
                let (g0, g1) = (g(before), g(after));
                // G2 first: a blind write that also moves the clock back is a lost increment
                // before it is a step back.
                if before.is_some() && g1 != g0 {
                    let write = ClockWrite {
                        from: base.map_or(g0, GlobalTime),
                        to: g1,
                    };
                    let verdict = match self.clock_write_last {
                        Some(last) => clock::g2_chain(last.from, &[last, write]),
                        None => clock::g2_chain(write.from, &[write]),
                    };
                    self.check(real, verdict);
                    self.clock_write_last = Some(write);
                }
                self.check(real, clock::g1_stored(g0, g1));
                let sample = (real, g1);
                let both = [self.clock_lowest.unwrap_or(sample), sample];
                self.check(
                    real,
                    clock::g3_rate(&both, self.rate_error_ppm, crate::workload::UPDATE_INTERVAL),
                );
                self.clock_lowest = clock::g3_lowest(&both, self.rate_error_ppm);
                self.clock_samples.push(sample);
            }
            Collection::Leases => {
                let ns = if id.starts_with(LEADERSHIP_NS) {
                    LEADERSHIP_NS
                } else {
                    LEASE_NS
                };
                let decode = |d: Option<&Document>| d.and_then(|d| LeaseDoc::decode(d, ns).ok());
                let change = LeaseChange {
                    before: decode(before),
                    after: decode(after),
                    global: global(store),
                };
                if ns == LEASE_NS {
                    self.held_meanwhile(id, change.after.as_ref());
                }
                self.check(real, lease::store_changes(&[change]));
                if ns == LEADERSHIP_NS && lease_name_of(id) == Some(APPLICATION) {
                    let after = decode(after);
                    let free = after.as_ref().is_none_or(|d| d.term.is_none());
                    if !free {
                        self.free_since = None;
                    } else if self.free_since.is_none() {
                        self.free_since = Some(real);
                        self.freed_by_release = after.is_some_and(|d| d.released_by.is_some());
                    }
                }
            }
            _ => {}
        }
    }

    /// Marks the checks on the lease stored as `id` whose holder now holds it (M4).
    fn held_meanwhile(&mut self, id: &str, after: Option<&LeaseDoc>) {
        let (Some(lease), Some(holder)) = (lease_name_of(id), after.and_then(|d| d.holder()))
        else {
            return;
        };
        for (l, h, seen) in self.checks.values_mut() {
            *seen |= l == lease && h == holder;
        }
    }

    /// An agent paused: its keys (`keys`) stop pinging until it resumes. (A paused holder's
    /// beliefs stand: they are measured on its own clock.)
    pub(crate) fn agent_paused(&mut self, keys: &[String]) {
        for key in keys {
            self.stop_pinging(key);
        }
    }

    /// An agent's flush failed or its outcome is unknown, and was requeued: to a watcher its
    /// keys' pings are as late as if the agent had paused until now, so their pinging
    /// stretches restart now (P5 promises nothing while the store loses writes).
    pub(crate) fn flush_requeued(&mut self, real: u64, keys: &[String]) {
        for key in keys {
            if let Some(since) = self.pinging_since.get_mut(key) {
                *since = real;
            }
        }
    }

    /// An agent resumed: those of its keys whose pinger runs count as pinging again from now.
    pub(crate) fn agent_resumed(&mut self, real: u64, keys: &[String], node: &Node) {
        if let Node::Agent(a) = node {
            for key in keys {
                if a.pinger(key).is_some_and(|x| x.is_running()) {
                    self.pinging_since.entry(key.clone()).or_insert(real);
                }
            }
        }
    }

    /// Process `p` crashed: what lived in it (a holder's beliefs, a unit's tickets and
    /// release-waiter, a watcher's watches) dies with it; an agent's keys stop pinging
    /// ([`Observer::agent_paused`], called with them).
    pub(crate) fn crashed(&mut self, real: u64, p: usize, role: Role) {
        for live in self.tenures.values_mut() {
            for (q, t) in live.iter_mut() {
                if *q == p && t.until_real > real {
                    t.until_real = real.max(t.from_real);
                }
            }
        }
        self.tickets.retain(|(q, _), _| *q != p);
        self.waiters.remove(&p);
        match role {
            Role::PresenceWatcher => self.watch_last.clear(),
            Role::ClockWatcher => self.watcher_emitted = None,
            _ => {}
        }
    }

    /// A quiet-phase sample: T6 while the leadership lease is free and a unit waits to lead.
    pub(crate) fn sample(&mut self, real: u64, procs: &[Proc], _store: &MemoryStore) {
        let (Some(quiet), Some(free)) = (self.quiet_since, self.free_since) else {
            return;
        };
        let waiting = procs.iter().any(|proc| match &proc.node {
            Node::Unit(u) => !proc.paused && !u.tracker().is_stopped() && !u.tracker().is_leader(),
            _ => false,
        });
        if waiting {
            let window = match self.freed_by_release {
                true => self.windows.handover,
                false => self.windows.service,
            };
            let verdict = leadership::t6_served_in_time(APPLICATION, free, quiet, real, window);
            self.check(real, verdict);
        }
    }

    /// The end of the run: what is checked over all of it.
    pub(crate) fn finish(&mut self, real: u64, store: &MemoryStore, drives: Drives) {
        self.check(real, lease::f1_epochs(&self.grants));
        let leadership: Vec<Tenure> = self.all_tenures.clone();
        if !self.answers.is_empty() {
            self.check(real, leadership::t1_backed(&self.answers, &leadership));
        }
        let Some(quiet) = self.quiet_since else {
            return;
        };
        if drives.clock {
            let last = self.clock_samples.last().map_or(0, |s| s.0);
            self.check(
                real,
                clock::g6_progress(last, quiet, real, self.windows.progress),
            );
        }
        if drives.leases {
            self.abandoned_leases_expire(real, quiet, store);
        }
        if drives.presence {
            self.settled_bits(real, store);
        }
    }

    /// M6: every lease still held whose expiry global time passed was expired in time.
    fn abandoned_leases_expire(&mut self, real: u64, quiet: u64, store: &MemoryStore) {
        let held: Vec<(String, GlobalTime)> = store
            .documents(Collection::Leases)
            .filter_map(|d| LeaseDoc::decode(d, LEASE_NS).ok())
            .filter_map(|d| d.term.map(|t| (d.name, t.expiry())))
            .collect();
        for (name, expiry) in held {
            let Some((passed_at, _)) = self.clock_samples.iter().find(|(_, g)| *g > expiry) else {
                continue;
            };
            let verdict = lease::m6_expired_in_time(
                &name,
                expiry,
                *passed_at,
                quiet,
                real,
                self.windows.expiry,
            );
            self.check(real, verdict);
        }
    }

    /// P2: once every flush settled, each slot document holds exactly the OR of the bits
    /// written to it (slots a prune may have deleted are left out).
    fn settled_bits(&mut self, real: u64, store: &MemoryStore) {
        let below = self.pruned_below;
        let kept = |id: &str| tenure::presence::slot_of_ping_id(id).is_some_and(|s| s >= below);
        let present: BTreeSet<&str> = store
            .documents(Collection::PresencePings)
            .map(|d| d.id.as_str())
            .collect();
        let mut sent = self.sent.clone();
        sent.retain(|(id, _), _| present.contains(id.as_str()) && kept(id));
        let mut stored = presence::stored_alive_bits(store);
        stored.retain(|(id, _), _| kept(id));
        self.check(real, presence::p2_or_of_sent(&sent, &stored));
    }

    /// The beliefs still live at real `real`, every lease's.
    pub fn live_beliefs(&self, real: u64) -> Vec<Tenure> {
        self.tenures
            .values()
            .flatten()
            .filter(|(_, t)| t.until_real > real)
            .map(|(_, t)| t.clone())
            .collect()
    }

    /// The quiet phase's windows.
    pub fn windows(&self) -> Windows {
        self.windows
    }

    /// The epochs granted, in order (for reports).
    pub fn grants(&self) -> usize {
        self.grants.len()
    }
}

/// Which protocols ran, for [`Observer::finish`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Drives {
    pub(crate) clock: bool,
    pub(crate) leases: bool,
    pub(crate) presence: bool,
}

/// Global time in the store (the epoch while the clock document is absent).
fn global(store: &MemoryStore) -> GlobalTime {
    tenure::clock::decode_stored(store.get(Collection::Clock, tenure::clock::CLOCK_ID))
        .unwrap_or(GlobalTime(0))
}
