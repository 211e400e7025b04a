//! The benchmark's baseline: the lease protocol of PROTOCOLS.md §1-§3 written by hand as one
//! stateright model, with small integers only (milliseconds, indices), no core, no effects, no
//! strings, no interning: what a careful engineer would write for speed.
//!
//! It follows the core-driven model's default lease configuration *without faults*, step for
//! step: one clock updater (compare-and-swap advances every second, fast clock) and two holders
//! with their managers (slow and fast clocks, ρ = 10%) on one lease; holder `h0` claims, then
//! extends for a shorter time, and checks its token once; `h1` claims once. Each manager runs
//! one store call at a time (refresh = read the lease, then global time; claim or extend = read
//! global time, then a compare-and-swap from the cached version; expire = once global time is
//! past the expiry, a compare-and-swap to vacant), expiry ticks at the earliest local expiry,
//! retries after a conflict, and the holder believes it holds the lease until
//! `call start + (D − S)(1 − ρ)/(1 + ρ)` local. Real time advances in 1 s ticks once no timer
//! is due and nothing is in flight; holders call only at the start of a tick. The property is
//! L6 (lease exclusion) over the holders' beliefs in real time, with the milestones that show
//! the lease is claimed, changes holder and expires.

use stateright::{Model, Property};

/// Real time per tick (ms).
const TICK: u32 = 1000;
/// ρ in parts per thousand.
const RHO: u32 = 100;
/// The updater's interval and backoff, and so `S`, the largest step of global time (ms).
const INTERVAL: u32 = 1000;
/// The managers' longest sleep between expiry ticks (ms).
const MAX_SLEEP: u32 = 30_000;
/// The first retry delay after a conflict (ms).
const RETRY_MIN: u32 = 50;
/// Claims per holder before giving up.
const ATTEMPTS_MAX: u8 = 10;
/// Holders (each with its manager).
const HOLDERS: usize = 2;
/// Claims holder `h0` may make (the second extends), and each other holder.
const CLAIMS: [u8; HOLDERS] = [2, 1];
/// The claim and extension durations (ms).
const DURATION: u32 = 3000;
const EXTEND: u32 = 1500;

/// The hand-written lease model.
#[derive(Clone)]
pub struct BaselineLease {
    /// Real time ends after this many ticks.
    pub horizon: u32,
}

/// A stored term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Term {
    holder: u8,
    start: u32,
    duration: u32,
}

impl Term {
    fn expiry(self) -> u32 {
        self.start + self.duration
    }
}

/// The lease document: its fencing epoch, the current term (none: vacant), the last writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Doc {
    epoch: u8,
    term: Option<Term>,
    writer: u8,
}

/// A store operation in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    ReadClock,
    AdvanceClock {
        base: u32,
        to: u32,
    },
    ReadLease,
    /// Compare-and-swap from `expect` (none: insert) to `new`.
    WriteLease {
        expect: Option<Doc>,
        new: Doc,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reply {
    Clock(u32),
    Lease(Option<Doc>),
    Done,
    Conflict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Updater {
    base: u32,
    observed_at: u32,
    next: u32,
    /// `Some(true)`: an advance in flight; `Some(false)`: a re-read after a conflict.
    waiting: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Claim {
    duration: u32,
    attempts: u8,
    not_before: u32,
}

/// Where a manager's running job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Job {
    /// A refresh for the expiry tick (`check`: for a token check), reading the lease, then
    /// global time with the lease read kept.
    Refresh {
        check: bool,
        read: Option<Option<Doc>>,
    },
    /// A claim or extension reading global time.
    ClaimClock {
        claim: Claim,
        call_start: u32,
    },
    ClaimWrite {
        claim: Claim,
        call_start: u32,
        wrote: Doc,
    },
    /// Re-reading the lease after a failed compare-and-swap (`claim`: of a claim, else of an
    /// expiry).
    Reread {
        claim: Option<(Claim, u32)>,
    },
    ExpireClock,
    ExpireWrite {
        wrote: Doc,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Manager {
    cache: Option<Doc>,
    global: u32,
    read_at: u32,
    running: Option<Job>,
    claim: Option<Claim>,
    check: bool,
    next_tick: Option<u32>,
    last_tick: u32,
}

/// The whole state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    real: u32,
    tick_start: bool,
    clock: u32,
    lease: Option<Doc>,
    updater: Updater,
    managers: [Manager; HOLDERS],
    /// Per process (updater, then managers): its one request in flight.
    flights: [Option<Op>; HOLDERS + 1],
    /// Per holder: calls left (claims, then `h0`'s check), calls awaiting answers, called
    /// this tick.
    claims_left: [u8; HOLDERS],
    check_left: u8,
    awaiting: u8,
    called: u8,
    /// Per holder: the real interval it believes it holds the lease in.
    beliefs: [Option<(u32, u32)>; HOLDERS],
    last_holder: Option<u8>,
    violated: bool,
    /// Milestones: claimed, holder changed, expired.
    reached: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Tick,
    Deliver(u8),
    Fire(u8),
    Claim(u8),
    Check,
}

/// Local clock rates in parts per thousand: the updater fast, then the holders slow and fast.
const RATES: [u32; HOLDERS + 1] = [1000 + RHO, 1000 - RHO, 1000 + RHO];

fn local(p: usize, real: u32) -> u32 {
    (u64::from(real) * u64::from(RATES[p]) / 1000) as u32
}

fn real_of(p: usize, local: u32) -> u32 {
    (u64::from(local) * 1000).div_ceil(u64::from(RATES[p])) as u32
}

impl Manager {
    fn local_expiry(&self) -> Option<u32> {
        let t = self.cache?.term?;
        Some(self.read_at + (t.expiry() + 1).saturating_sub(self.global))
    }

    fn holder(&self) -> Option<u8> {
        self.cache.and_then(|d| d.term).map(|t| t.holder)
    }

    fn note_global(&mut self, g: u32, now: u32) {
        if g >= self.global {
            self.global = g;
            self.read_at = now;
        }
    }

    fn deadline(&self) -> Option<u32> {
        if self.running.is_some() {
            return None;
        }
        let backoff = self.claim.map(|c| c.not_before);
        [self.next_tick, backoff].into_iter().flatten().min()
    }

    fn schedule_tick(&mut self, now: u32) {
        let cap = self.last_tick + MAX_SLEEP;
        let floor = self.last_tick + RETRY_MIN;
        let next = self
            .local_expiry()
            .map_or(cap, |e| e.min(cap))
            .max(floor)
            .max(now);
        self.next_tick = Some(self.next_tick.map_or(next, |t| t.min(next)));
    }
}

/// What a manager tells its holder (or, for an expiry, the milestones).
enum Answer {
    Claimed { until_local: u32 },
    Denied,
    Failed,
    Checked,
    Expired,
}

impl BaselineLease {
    fn deliver(&self, s: &mut State, p: usize, op: Op) {
        let reply = match op {
            Op::ReadClock => Reply::Clock(s.clock),
            Op::AdvanceClock { base, to } if s.clock == base => {
                s.clock = to;
                Reply::Done
            }
            Op::AdvanceClock { .. } => Reply::Conflict,
            Op::ReadLease => Reply::Lease(s.lease),
            Op::WriteLease { expect, new } if s.lease == expect => {
                s.lease = Some(new);
                Reply::Done
            }
            Op::WriteLease { .. } => Reply::Conflict,
        };
        let now = local(p, s.real);
        if p == 0 {
            let u = &mut s.updater;
            u.waiting = None;
            match reply {
                Reply::Done => {
                    if let Op::AdvanceClock { to, .. } = op {
                        (u.base, u.observed_at, u.next) = (to, now, now + INTERVAL);
                    }
                }
                Reply::Conflict => {
                    u.waiting = Some(false);
                    s.flights[0] = Some(Op::ReadClock);
                }
                Reply::Clock(g) => (u.base, u.observed_at, u.next) = (g, now, now + INTERVAL),
                Reply::Lease(_) => {}
            }
            return;
        }
        let m = p - 1;
        let answers = self.manager_reply(s, m, reply, now);
        self.pump(s, m, now, answers);
    }

    /// A manager's job takes a store reply; returns what the holder is told.
    fn manager_reply(&self, s: &mut State, m: usize, reply: Reply, now: u32) -> Vec<Answer> {
        let mg = &mut s.managers[m];
        let Some(job) = mg.running.take() else {
            return Vec::new();
        };
        let mut answers = Vec::new();
        let mut issue = None;
        match (job, reply) {
            (Job::Refresh { check, read: None }, Reply::Lease(doc)) => {
                mg.running = Some(Job::Refresh {
                    check,
                    read: Some(doc),
                });
                issue = Some(Op::ReadClock);
            }
            (
                Job::Refresh {
                    check,
                    read: Some(doc),
                },
                Reply::Clock(g),
            ) => {
                mg.cache = doc;
                mg.note_global(g, now);
                if check {
                    answers.push(Answer::Checked);
                } else if mg.local_expiry().is_some_and(|e| e <= now) {
                    issue = start_expire(mg, m);
                } else {
                    mg.schedule_tick(now);
                }
            }
            (Job::ClaimClock { claim, call_start }, Reply::Clock(g)) => {
                mg.note_global(g, now);
                let term = Term {
                    holder: m as u8,
                    start: g,
                    duration: claim.duration,
                };
                match mg.cache {
                    Some(Doc {
                        term: Some(old), ..
                    }) if old.holder != m as u8 => retry(mg, claim, now, &mut answers),
                    // Extending never shortens: already long enough, nothing to write.
                    Some(Doc {
                        term: Some(old), ..
                    }) if term.expiry() <= old.expiry() => {
                        answers.push(granted(call_start, claim.duration));
                        mg.schedule_tick(now);
                    }
                    cached => {
                        let epoch = match cached {
                            Some(Doc {
                                term: Some(_),
                                epoch,
                                ..
                            }) => epoch,
                            Some(d) => d.epoch + 1,
                            None => 1,
                        };
                        let wrote = Doc {
                            epoch,
                            term: Some(term),
                            writer: m as u8,
                        };
                        mg.running = Some(Job::ClaimWrite {
                            claim,
                            call_start,
                            wrote,
                        });
                        issue = Some(Op::WriteLease {
                            expect: cached,
                            new: wrote,
                        });
                    }
                }
            }
            (
                Job::ClaimWrite {
                    claim,
                    call_start,
                    wrote,
                },
                Reply::Done,
            ) => {
                mg.cache = Some(wrote);
                answers.push(granted(call_start, claim.duration));
                mg.schedule_tick(now);
            }
            (
                Job::ClaimWrite {
                    claim, call_start, ..
                },
                Reply::Conflict,
            ) => {
                mg.running = Some(Job::Reread {
                    claim: Some((claim, call_start)),
                });
                issue = Some(Op::ReadLease);
            }
            (Job::Reread { claim }, Reply::Lease(doc)) => {
                mg.cache = doc;
                match claim {
                    Some((claim, _)) => retry(mg, claim, now, &mut answers),
                    None => mg.schedule_tick(now),
                }
            }
            (Job::ExpireClock, Reply::Clock(g)) => {
                mg.note_global(g, now);
                issue = expire_write(mg, m);
                if issue.is_none() {
                    mg.schedule_tick(now);
                }
            }
            (Job::ExpireWrite { wrote }, Reply::Done) => {
                mg.cache = Some(wrote);
                mg.schedule_tick(now);
                answers.push(Answer::Expired);
            }
            (Job::ExpireWrite { .. }, Reply::Conflict) => {
                mg.running = Some(Job::Reread { claim: None });
                issue = Some(Op::ReadLease);
            }
            _ => unreachable!("a reply that does not fit the job"),
        }
        s.flights[m + 1] = issue;
        answers
    }

    /// Starts the manager's next job if none runs: a check, the expiry tick, then a claim.
    fn pump(&self, s: &mut State, m: usize, now: u32, mut answers: Vec<Answer>) {
        let mg = &mut s.managers[m];
        while mg.running.is_none() {
            if mg.check {
                mg.check = false;
                if mg.holder() == Some(m as u8) {
                    answers.push(Answer::Checked);
                } else {
                    mg.running = Some(Job::Refresh {
                        check: true,
                        read: None,
                    });
                    s.flights[m + 1] = Some(Op::ReadLease);
                }
                continue;
            }
            if mg.next_tick.is_some_and(|t| t <= now) {
                (mg.last_tick, mg.next_tick) = (now, None);
                mg.running = Some(Job::Refresh {
                    check: false,
                    read: None,
                });
                s.flights[m + 1] = Some(Op::ReadLease);
                continue;
            }
            let Some(claim) = mg.claim.filter(|c| c.not_before <= now) else {
                break;
            };
            mg.claim = None;
            match mg.holder() {
                Some(h) if h != m as u8 => answers.push(Answer::Denied),
                _ => {
                    mg.running = Some(Job::ClaimClock {
                        claim,
                        call_start: now,
                    });
                    s.flights[m + 1] = Some(Op::ReadClock);
                }
            }
        }
        for a in answers {
            self.observe(s, m, a);
        }
    }

    /// The holder takes its manager's answer: the ghost state L6 and the milestones read.
    fn observe(&self, s: &mut State, m: usize, a: Answer) {
        let call = match a {
            Answer::Checked => 1 << (HOLDERS + m),
            Answer::Expired => {
                s.reached |= 4;
                return;
            }
            _ => 1 << m,
        };
        s.awaiting &= !call;
        if let Answer::Claimed { until_local } = a {
            let (from, until) = (s.real, real_of(m + 1, until_local).max(s.real));
            for (h, b) in s.beliefs.iter().enumerate() {
                if h != m && b.is_some_and(|(f, u)| f < until && from < u) {
                    s.violated = true;
                }
            }
            s.beliefs[m] = Some((from, until));
            s.reached |= 1;
            if s.last_holder.is_some_and(|h| h != m as u8) {
                s.reached |= 2;
            }
            s.last_holder = Some(m as u8);
        }
    }

    fn fire(&self, s: &mut State, p: usize) {
        let now = local(p, s.real);
        if p == 0 {
            let u = &mut s.updater;
            let to = u.base + (now - u.observed_at).min(INTERVAL);
            u.waiting = Some(true);
            s.flights[0] = Some(Op::AdvanceClock { base: u.base, to });
            return;
        }
        self.pump(s, p - 1, now, Vec::new());
    }

    fn due(&self, s: &State, p: usize) -> bool {
        let now = local(p, s.real);
        if p == 0 {
            return s.updater.waiting.is_none() && s.updater.next <= now;
        }
        s.managers[p - 1].deadline().is_some_and(|d| d <= now)
    }
}

/// A granted claim: the holder's local deadline is `call_start + (D − S)(1 − ρ)/(1 + ρ)`, and
/// there is no guarantee at all once `S ≥ D`.
fn granted(call_start: u32, duration: u32) -> Answer {
    match duration.checked_sub(INTERVAL) {
        Some(d) if d > 0 => Answer::Claimed {
            until_local: call_start + d * (1000 - RHO) / (1000 + RHO),
        },
        _ => Answer::Failed,
    }
}

fn retry(mg: &mut Manager, mut claim: Claim, now: u32, answers: &mut Vec<Answer>) {
    claim.attempts += 1;
    if claim.attempts >= ATTEMPTS_MAX {
        answers.push(Answer::Failed);
        return;
    }
    let delay = if claim.attempts == 1 {
        0
    } else {
        RETRY_MIN << (claim.attempts - 1).min(20)
    };
    claim.not_before = now + delay;
    mg.claim = Some(claim);
}

fn start_expire(mg: &mut Manager, m: usize) -> Option<Op> {
    let expiry = mg.cache?.term?.expiry();
    if mg.global > expiry {
        return expire_write(mg, m);
    }
    mg.running = Some(Job::ExpireClock);
    Some(Op::ReadClock)
}

fn expire_write(mg: &mut Manager, m: usize) -> Option<Op> {
    let old = mg.cache?;
    if mg.global <= old.term?.expiry() {
        return None;
    }
    let wrote = Doc {
        term: None,
        writer: m as u8,
        ..old
    };
    mg.running = Some(Job::ExpireWrite { wrote });
    Some(Op::WriteLease {
        expect: Some(old),
        new: wrote,
    })
}

impl Model for BaselineLease {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        // Started, with the start-up reads done: the updater knows global time 0, each manager
        // refreshed an empty store at local 0 and sleeps until its next tick.
        let manager = Manager {
            cache: None,
            global: 0,
            read_at: 0,
            running: None,
            claim: None,
            check: false,
            next_tick: Some(MAX_SLEEP),
            last_tick: 0,
        };
        vec![State {
            real: 0,
            tick_start: true,
            clock: 0,
            lease: None,
            updater: Updater {
                base: 0,
                observed_at: 0,
                next: INTERVAL,
                waiting: None,
            },
            managers: [manager; HOLDERS],
            flights: [None; HOLDERS + 1],
            claims_left: CLAIMS,
            check_left: 1,
            awaiting: 0,
            called: 0,
            beliefs: [None; HOLDERS],
            last_holder: None,
            violated: false,
            reached: 0,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (p, f) in s.flights.iter().enumerate() {
            if f.is_some() {
                actions.push(Action::Deliver(p as u8));
            }
        }
        let mut due = false;
        for p in 0..=HOLDERS {
            if self.due(s, p) {
                due = true;
                actions.push(Action::Fire(p as u8));
            }
        }
        if s.tick_start {
            for m in 0..HOLDERS {
                let bit = 1 << m;
                if s.claims_left[m] > 0 && (s.awaiting | s.called) & bit == 0 {
                    actions.push(Action::Claim(m as u8));
                }
            }
            let bit = 1 << HOLDERS;
            if s.check_left > 0 && (s.awaiting | s.called) & bit == 0 {
                actions.push(Action::Check);
            }
        }
        let settled = s.flights.iter().all(Option::is_none);
        if s.real < self.horizon * TICK && !due && settled {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        s.tick_start = matches!(action, Action::Tick | Action::Claim(_) | Action::Check);
        match action {
            Action::Tick => {
                s.real += TICK;
                s.called = 0;
                let now = s.real;
                for b in &mut s.beliefs {
                    if b.is_some_and(|(_, u)| u <= now) {
                        *b = None;
                    }
                }
            }
            Action::Deliver(p) => {
                let p = usize::from(p);
                let op = s.flights[p].take()?;
                self.deliver(&mut s, p, op);
            }
            Action::Fire(p) => self.fire(&mut s, usize::from(p)),
            Action::Claim(m) => {
                let m = usize::from(m);
                let extending = m == 0 && s.claims_left[0] < CLAIMS[0];
                s.claims_left[m] -= 1;
                s.awaiting |= 1 << m;
                s.called |= 1 << m;
                let now = local(m + 1, s.real);
                s.managers[m].claim = Some(Claim {
                    duration: if extending { EXTEND } else { DURATION },
                    attempts: 0,
                    not_before: now,
                });
                self.pump(&mut s, m, now, Vec::new());
            }
            Action::Check => {
                s.check_left -= 1;
                let bit = 1 << HOLDERS;
                s.awaiting |= bit;
                s.called |= bit;
                let now = local(1, s.real);
                s.managers[0].check = true;
                self.pump(&mut s, 0, now, Vec::new());
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("L6 lease exclusion", |_, s: &State| !s.violated),
            Property::sometimes("a lease is claimed", |_, s: &State| s.reached & 1 != 0),
            Property::sometimes("a lease changes holder", |_, s: &State| s.reached & 2 != 0),
            Property::sometimes("a lease expires", |_, s: &State| s.reached & 4 != 0),
        ]
    }

    fn within_boundary(&self, s: &State) -> bool {
        s.real <= self.horizon * TICK
    }
}
