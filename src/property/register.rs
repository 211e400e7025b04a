//! S1, the store assumption every model makes: each document is a linearizable
//! compare-and-swap register. Checked on recorded histories of store operations, where a write
//! whose reply was lost may or may not have taken effect.
//!
//! General linearizability checkers search the orders of concurrent operations, which grows
//! exponentially with unknown outcomes. Tenure's documents never hold a value twice (each write
//! carries a new version, epoch or timestamp), and then the search is unnecessary:
//!
//! 1. *Which operations took effect* follows from what was observed: a value read, or replaced
//!    by a compare-and-swap that took effect, was written; an unknown-outcome write whose value
//!    nobody observed is taken as not applied (it can only add constraints), except that it may
//!    explain a failed compare-and-swap (see 3), each such write serving one value at most.
//! 2. *The order of values* follows from the compare-and-swaps: `cas(a → b)` puts `b` right
//!    after `a`, so two that took effect from the same `a` are a lost update. Blind writes start
//!    segments, which must not overlap in real time (else the history is unsupported: their
//!    order would need a search).
//! 3. *Whether linearization points exist* is then a chain of interval constraints, solved by
//!    placing every write as early as it can go. A failed compare-and-swap of `x` must take
//!    effect before `x` was written or after it was replaced: it defaults to "after" (which
//!    constrains nothing else) and moves to "before" (a lower bound on `x`'s write) only when
//!    "after" is impossible even at the earliest placement. Bounds only rise, so that choice is
//!    never wrong and the whole check is exact, in O(n log n) plus one pass per round of moves.
//!
//! Timestamps are exact to the nanosecond: operations whose intervals touch may take effect in
//! either order. The verdict agrees with an exhaustive search on random small histories
//! (`tests/register.rs`); where it would need a search itself ([`Unsupported`]) it says so.
//! Tenure's own histories (`tenure_mongo::race::cas_race`) never need one.

use super::{PropertyId, Verdict, Violation};
use std::collections::{BTreeMap, BTreeSet};

/// A value of a register, interned: [`ABSENT`] is the initial value (no document).
pub type ValueId = u32;

/// The register's initial value: the document does not exist.
pub const ABSENT: ValueId = 0;

/// Whether a write took effect, as its caller learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The store said it did (a compare-and-swap that matched, an acknowledged write).
    Yes,
    /// The store said it did not (a compare-and-swap that did not match, a refused write).
    No,
    /// The reply was lost or never came: it may have.
    Unknown,
}

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterAction {
    /// A read that returned `value` (reads without an answer tell nothing and are left out).
    Read {
        /// What it returned.
        value: ValueId,
    },
    /// A blind write of `value`.
    Write {
        /// What it wrote.
        value: ValueId,
        /// Whether it took effect.
        applied: Applied,
    },
    /// A compare-and-swap: `value` replaces `expected` if the register holds `expected`.
    Cas {
        /// The value it had to find.
        expected: ValueId,
        /// The value it wrote.
        value: ValueId,
        /// Whether it matched (and so took effect).
        applied: Applied,
    },
}

/// One operation on one register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterOp {
    /// Where it was recorded (a line number), for messages.
    pub line: usize,
    /// Who called it.
    pub client: String,
    /// Real time of the call (ns).
    pub call_ns: u64,
    /// Real time of the answer (ns); `None` if it never came.
    pub return_ns: Option<u64>,
    /// What it did.
    pub action: RegisterAction,
}

/// A history this check cannot decide without a search (it says which, rather than guess).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// Two writes of one value: which one a read saw is ambiguous.
    #[error("value {value} is written twice (lines {first} and {second}); S1 needs every write to carry a new value, such as a version or an epoch")]
    ValueWrittenTwice {
        /// The value.
        value: String,
        /// The first write's line.
        first: usize,
        /// The second's.
        second: usize,
    },
    /// A write of the initial value.
    #[error("line {line} writes null, which stands for the absent document: write a value")]
    WritesAbsent {
        /// The write's line.
        line: usize,
    },
    /// Blind writes that took effect at overlapping times: their order is not determined.
    #[error("blind writes at lines {first} and {second} took effect concurrently; S1 orders writes by compare-and-swap (or by real time when blind writes do not overlap)")]
    ConcurrentBlindWrites {
        /// One write's line.
        first: usize,
        /// The other's.
        second: usize,
    },
    /// A failed compare-and-swap that only an unknown-outcome write nobody observed could
    /// explain, when placing that write could in turn break another failed swap of its value.
    #[error("the failed compare-and-swap at line {swap} is explained only if the unknown-outcome write at line {write} took effect, but another failed compare-and-swap expects that write's value; deciding this needs a search S1 does not make")]
    UnseenWriteContested {
        /// The failed swap's line.
        swap: usize,
        /// The unseen write's line.
        write: usize,
    },
    /// Failed compare-and-swaps of several values that only unknown-outcome writes nobody
    /// observed could explain, more of them than such writes can serve.
    #[error("failed compare-and-swaps of several values are explained only by unknown-outcome writes nobody observed (line {write} among them), and which one took effect where needs a search S1 does not make (near value {version})")]
    UnseenWritesShared {
        /// A value whose failed swaps need one.
        version: String,
        /// One of the writes (0 when none is left).
        write: usize,
    },
}

/// Checks S1 on the operations of one register (`key`, for messages). `values` names each
/// [`ValueId`] for messages (`values[0]` is the absent document).
pub fn s1_linearizable(
    key: &str,
    ops: &[RegisterOp],
    values: &[String],
) -> Result<Verdict, Unsupported> {
    let register = Register::new(key, ops, values)?;
    let happened = match register.took_effect() {
        Ok(h) => h,
        Err(v) => return Ok(Err(v)),
    };
    let chain = match register.chain(&happened)? {
        Ok(c) => c,
        Err(v) => return Ok(Err(v)),
    };
    register.schedule(&chain, &happened)
}

/// One register's operations, indexed.
struct Register<'a> {
    key: &'a str,
    ops: &'a [RegisterOp],
    values: &'a [String],
    /// The operation that writes each value (unique: checked).
    writer: BTreeMap<ValueId, usize>,
}

/// A position in the chain of values: the value and the operation that wrote it (none for the
/// initial value).
#[derive(Clone, Copy, Debug)]
struct Version {
    value: ValueId,
    writer: Option<usize>,
}

impl<'a> Register<'a> {
    fn new(
        key: &'a str,
        ops: &'a [RegisterOp],
        values: &'a [String],
    ) -> Result<Register<'a>, Unsupported> {
        let mut writer: BTreeMap<ValueId, usize> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            let Some(value) = written(op) else { continue };
            if value == ABSENT {
                return Err(Unsupported::WritesAbsent { line: op.line });
            }
            if let Some(&first) = writer.get(&value) {
                return Err(Unsupported::ValueWrittenTwice {
                    value: values.get(value as usize).cloned().unwrap_or_default(),
                    first: ops[first].line,
                    second: op.line,
                });
            }
            writer.insert(value, i);
        }
        Ok(Register {
            key,
            ops,
            values,
            writer,
        })
    }

    fn violation(&self, detail: String) -> Violation {
        match self.key {
            "" => Violation::new(PropertyId::S1, detail),
            key => Violation::new(PropertyId::S1, format!("key {key}: {detail}")),
        }
    }

    fn name(&self, v: ValueId) -> &str {
        match v {
            ABSENT => "null (absent)",
            _ => self.values.get(v as usize).map_or("?", String::as_str),
        }
    }

    fn describe(&self, i: usize) -> String {
        let op = &self.ops[i];
        let what = match op.action {
            RegisterAction::Read { value } => format!("read → {}", self.name(value)),
            RegisterAction::Write { value, .. } => format!("write {}", self.name(value)),
            RegisterAction::Cas {
                expected, value, ..
            } => format!("cas {} → {}", self.name(expected), self.name(value)),
        };
        let ret = op.return_ns.map_or("never".to_owned(), secs);
        format!(
            "line {} ({}, {what}, called {}, answered {ret})",
            op.line,
            op.client,
            secs(op.call_ns)
        )
    }

    /// Which writes took effect: those that said so, and those whose value was observed (read,
    /// or replaced by a compare-and-swap that took effect), transitively.
    fn took_effect(&self) -> Result<Vec<bool>, Violation> {
        let mut happened: Vec<bool> = self
            .ops
            .iter()
            .map(|op| applied(op) == Some(Applied::Yes))
            .collect();
        let mut seen: Vec<(ValueId, usize)> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match op.action {
                RegisterAction::Read { value } => seen.push((value, i)),
                RegisterAction::Cas { expected, .. } if happened[i] => seen.push((expected, i)),
                _ => {}
            }
        }
        while let Some((value, by)) = seen.pop() {
            if value == ABSENT {
                continue;
            }
            let Some(&w) = self.writer.get(&value) else {
                return Err(self.violation(format!(
                    "{} observed {}, which no operation wrote",
                    self.describe(by),
                    self.name(value)
                )));
            };
            match applied(&self.ops[w]) {
                Some(Applied::No) => {
                    return Err(self.violation(format!(
                        "{} observed {}, but {} was told it did not take effect",
                        self.describe(by),
                        self.name(value),
                        self.describe(w)
                    )))
                }
                _ if happened[w] => {}
                _ => {
                    happened[w] = true;
                    if let RegisterAction::Cas { expected, .. } = self.ops[w].action {
                        seen.push((expected, w));
                    }
                }
            }
        }
        Ok(happened)
    }

    /// The values in the order they were current: from the initial value along the
    /// compare-and-swaps that took effect, then each blind write's segment in real-time order.
    fn chain(&self, happened: &[bool]) -> Result<Result<Vec<Version>, Violation>, Unsupported> {
        let mut next: BTreeMap<ValueId, usize> = BTreeMap::new();
        let mut heads: Vec<usize> = Vec::new();
        for (i, op) in self.ops.iter().enumerate().filter(|(i, _)| happened[*i]) {
            match op.action {
                RegisterAction::Cas { expected, .. } => {
                    if let Some(&other) = next.get(&expected) {
                        return Ok(Err(self.violation(format!(
                            "two compare-and-swaps from {} both took effect (a lost update): {} and {}",
                            self.name(expected),
                            self.describe(other),
                            self.describe(i)
                        ))));
                    }
                    next.insert(expected, i);
                }
                RegisterAction::Write { .. } => heads.push(i),
                RegisterAction::Read { .. } => {}
            }
        }
        heads.sort_by_key(|&i| self.ops[i].call_ns);
        for pair in heads.windows(2) {
            let ends = answered(&self.ops[pair[0]]);
            // Touching intervals may take effect in either order: refused too.
            if ends >= self.ops[pair[1]].call_ns {
                return Err(Unsupported::ConcurrentBlindWrites {
                    first: self.ops[pair[0]].line,
                    second: self.ops[pair[1]].line,
                });
            }
        }
        let mut chain = vec![Version {
            value: ABSENT,
            writer: None,
        }];
        let starts = std::iter::once(None).chain(heads.iter().map(|&h| Some(h)));
        for start in starts {
            if let Some(h) = start {
                chain.push(Version {
                    value: written(&self.ops[h]).unwrap_or(ABSENT),
                    writer: Some(h),
                });
            }
            let mut last = chain.last().map_or(ABSENT, |v| v.value);
            while let Some(w) = next.remove(&last) {
                last = written(&self.ops[w]).unwrap_or(ABSENT);
                chain.push(Version {
                    value: last,
                    writer: Some(w),
                });
            }
        }
        if let Some((expected, &w)) = next.iter().next() {
            return Ok(Err(self.violation(format!(
                "{} took effect, but {} was never current before it",
                self.describe(w),
                self.name(*expected)
            ))));
        }
        Ok(Ok(chain))
    }

    /// Whether every operation can take effect within its interval, in the chain's order.
    fn schedule(&self, chain: &[Version], happened: &[bool]) -> Result<Verdict, Unsupported> {
        let position: BTreeMap<ValueId, usize> = chain
            .iter()
            .enumerate()
            .map(|(i, v)| (v.value, i))
            .collect();
        let mut reads: Vec<Vec<usize>> = vec![Vec::new(); chain.len()];
        let mut failed: Vec<(usize, usize)> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            match op.action {
                RegisterAction::Read { value } => {
                    if let Some(&k) = position.get(&value) {
                        reads[k].push(i);
                    }
                }
                RegisterAction::Cas {
                    expected,
                    applied: Applied::No,
                    ..
                } => {
                    if let Some(&k) = position.get(&expected) {
                        failed.push((k, i));
                    }
                }
                _ => {}
            }
        }
        let (unseen, blind_calls) = self.unseen_writes(chain, happened);
        // Per version, the failed compare-and-swap (latest call) that must precede its write.
        let mut floor: Vec<Option<usize>> = vec![None; chain.len()];
        let mut before: BTreeSet<usize> = BTreeSet::new();
        // A failed swap that only an unseen write with a contested value could explain.
        let mut undecided: Option<(usize, usize)> = None;
        let verdict = |v: Violation, undecided: Option<(usize, usize)>| match undecided {
            None => Ok(Err(v)),
            Some((f, u)) => Err(Unsupported::UnseenWriteContested {
                swap: self.ops[f].line,
                write: self.ops[u].line,
            }),
        };
        loop {
            let at = match self.earliest(chain, &reads, &floor) {
                Ok(at) => at,
                Err(v) => return verdict(v, undecided),
            };
            let mut moved = false;
            // Per version that needs an unseen write: the latest it may land.
            let mut needs: BTreeMap<usize, u64> = BTreeMap::new();
            for &(k, f) in &failed {
                if before.contains(&f) {
                    continue;
                }
                let ret = answered(&self.ops[f]);
                // Replaced by the next value, or by a write nobody saw, placed after the
                // value's reads.
                let after_reads = reads[k]
                    .iter()
                    .map(|&r| self.ops[r].call_ns)
                    .fold(at[k], u64::max);
                let next = at.get(k + 1).copied();
                let replaced_at = |unseen: Option<u64>| match (next, unseen) {
                    (Some(t), Some(u)) => Some(t.min(u.max(after_reads))),
                    (t, u) => t.or(u.map(|u| u.max(after_reads))),
                };
                if next.is_some_and(|t| t <= ret) {
                    continue;
                }
                if replaced_at(unseen[k].clean).is_some_and(|t| t <= ret) {
                    let by = next.map_or(ret, |t| t.min(ret));
                    needs
                        .entry(k)
                        .and_modify(|b| *b = (*b).min(by))
                        .or_insert(by);
                    continue;
                }
                if let Some((call, u)) = unseen[k].contested {
                    if undecided.is_none() && replaced_at(Some(call)).is_some_and(|t| t <= ret) {
                        undecided = Some((f, u));
                    }
                }
                if k == 0 {
                    let v = self.violation(format!(
                        "{} found the register not holding {} although nothing had replaced it by {}",
                        self.describe(f),
                        self.name(chain[k].value),
                        secs(ret)
                    ));
                    return verdict(v, undecided);
                }
                before.insert(f);
                if floor[k].is_none_or(|g| self.ops[g].call_ns < self.ops[f].call_ns) {
                    floor[k] = Some(f);
                }
                moved = true;
            }
            if !moved {
                return self
                    .enough_unseen(chain, &needs, &unseen, &blind_calls)
                    .map(Ok);
            }
        }
    }

    /// Whether distinct unseen writes can serve every version that needs one (`needs`: each
    /// such version and the latest its write may land). A swap from that very value serves
    /// only it; a blind write serves any, once. Versions taken by their deadline, each given the
    /// earliest blind write left, is a matching whenever one exists (the deadlines nest).
    fn enough_unseen(
        &self,
        chain: &[Version],
        needs: &BTreeMap<usize, u64>,
        unseen: &[Unseen],
        blind_calls: &[(u64, usize)],
    ) -> Result<(), Unsupported> {
        let mut by_deadline: Vec<(u64, usize)> = needs.iter().map(|(&k, &by)| (by, k)).collect();
        by_deadline.sort_unstable();
        let mut blind = blind_calls.iter();
        for (by, k) in by_deadline {
            if unseen[k].from_value.is_some_and(|call| call <= by) {
                continue;
            }
            match blind.next() {
                Some(&(call, _)) if call <= by => {}
                other => {
                    return Err(Unsupported::UnseenWritesShared {
                        version: self.name(chain[k].value).to_owned(),
                        write: other.map_or(0, |&(_, op)| self.ops[op].line),
                    })
                }
            }
        }
        Ok(())
    }

    /// The earliest real time at which each version can have been written, or the operation
    /// that cannot take effect within its interval.
    fn earliest(
        &self,
        chain: &[Version],
        reads: &[Vec<usize>],
        floor: &[Option<usize>],
    ) -> Result<Vec<u64>, Violation> {
        let mut at = vec![0u64; chain.len()];
        for k in 0..chain.len() {
            let mut t = floor[k].map_or(0, |f| self.ops[f].call_ns);
            // Every read of the previous value took effect before this write: the latest call.
            let reader = match k {
                0 => None,
                _ => reads[k - 1]
                    .iter()
                    .copied()
                    .max_by_key(|&r| self.ops[r].call_ns),
            };
            if k > 0 {
                t = t.max(at[k - 1]);
                t = reader.map_or(t, |r| t.max(self.ops[r].call_ns));
            }
            if let Some(w) = chain[k].writer {
                t = t.max(self.ops[w].call_ns);
                if answered(&self.ops[w]) < t {
                    let why = match reader.filter(|&r| self.ops[r].call_ns >= t) {
                        Some(r) => format!(
                            "{} was called after it answered and returned the value it replaced",
                            self.describe(r)
                        ),
                        None => self.why_not_before(chain, k, t, floor[k]),
                    };
                    return Err(self.violation(format!(
                        "{} cannot take effect before {}, after it answered: {why}",
                        self.describe(w),
                        secs(t)
                    )));
                }
            }
            at[k] = t;
            if let Some(&r) = reads[k].iter().find(|&&r| answered(&self.ops[r]) < t) {
                return Err(self.violation(format!(
                    "{} returned {}, which cannot have been current before {}: {}",
                    self.describe(r),
                    self.name(chain[k].value),
                    secs(t),
                    self.why_not_before(chain, k, t, floor[k])
                )));
            }
        }
        Ok(at)
    }

    /// Why version `k` cannot be current before `t` (`floor`: a failed compare-and-swap of it
    /// that must have come before it).
    fn why_not_before(&self, chain: &[Version], k: usize, t: u64, floor: Option<usize>) -> String {
        let value = self.name(chain[k].value);
        if let Some(f) = floor.filter(|&f| self.ops[f].call_ns >= t) {
            return format!(
                "{} found the register not holding {value}, and cannot have come after {value} \
                 was replaced",
                self.describe(f)
            );
        }
        match k {
            0 => "the initial value".to_owned(),
            _ => format!(
                "{value} follows {}, which stayed current until every read of it and its \
                 replacement's call",
                self.name(chain[k - 1].value)
            ),
        }
    }

    /// Per version, the writes nobody observed, whose outcome is unknown and which may have
    /// replaced it (one that did would explain a failed compare-and-swap of it): the earliest
    /// call among those whose value no failed compare-and-swap expects (placing one changes
    /// nothing else), and the earliest among the others (placing one could break such a swap:
    /// deciding that needs a search, so it is reported, not guessed). One fits only where the
    /// chain does not continue by compare-and-swap (at the end, or before a blind write), and
    /// must be a blind write or a swap from that very value.
    fn unseen_writes(
        &self,
        chain: &[Version],
        happened: &[bool],
    ) -> (Vec<Unseen>, Vec<(u64, usize)>) {
        let contested: BTreeSet<ValueId> = self
            .ops
            .iter()
            .filter_map(|op| match op.action {
                RegisterAction::Cas {
                    expected,
                    applied: Applied::No,
                    ..
                } => Some(expected),
                _ => None,
            })
            .collect();
        let mut blind = Unseen::default();
        let mut blind_calls: Vec<(u64, usize)> = Vec::new();
        let mut from: BTreeMap<ValueId, Unseen> = BTreeMap::new();
        for (i, op) in self.ops.iter().enumerate() {
            if happened[i] || applied(op) != Some(Applied::Unknown) {
                continue;
            }
            let contested = contested.contains(&written(op).unwrap_or(ABSENT));
            match op.action {
                RegisterAction::Cas { expected, .. } => {
                    let slot = from.entry(expected).or_default();
                    slot.add(op.call_ns, i, contested);
                    if !contested {
                        slot.from_value = slot.clean;
                    }
                }
                _ => {
                    blind.add(op.call_ns, i, contested);
                    if !contested {
                        blind_calls.push((op.call_ns, i));
                    }
                }
            }
        }
        blind_calls.sort_unstable();
        let per_version = (0..chain.len())
            .map(|k| {
                let open = chain.get(k + 1).is_none_or(|next| {
                    next.writer
                        .is_some_and(|w| matches!(self.ops[w].action, RegisterAction::Write { .. }))
                });
                match (open, from.get(&chain[k].value)) {
                    (false, _) => Unseen::default(),
                    (true, Some(cas)) => blind.or(cas),
                    (true, None) => blind,
                }
            })
            .collect();
        (per_version, blind_calls)
    }
}

/// The unseen writes that may follow one version (see [`Register::unseen_writes`]).
#[derive(Clone, Copy, Debug, Default)]
struct Unseen {
    /// The earliest call among those whose value no failed compare-and-swap expects.
    clean: Option<u64>,
    /// The same, among swaps from this very version only (a blind write may serve another).
    from_value: Option<u64>,
    /// The earliest call, and the operation, among the others.
    contested: Option<(u64, usize)>,
}

impl Unseen {
    fn add(&mut self, call: u64, op: usize, contested: bool) {
        if contested {
            if self.contested.is_none_or(|(c, _)| call < c) {
                self.contested = Some((call, op));
            }
        } else {
            self.clean = Some(self.clean.map_or(call, |c| c.min(call)));
        }
    }

    fn or(self, other: &Unseen) -> Unseen {
        let mut both = self;
        both.from_value = other.from_value;
        if let Some(c) = other.clean {
            both.add(c, 0, false);
        }
        if let Some((c, op)) = other.contested {
            both.add(c, op, true);
        }
        both
    }
}

/// The value an operation writes, if it writes.
fn written(op: &RegisterOp) -> Option<ValueId> {
    match op.action {
        RegisterAction::Write { value, .. } | RegisterAction::Cas { value, .. } => Some(value),
        RegisterAction::Read { .. } => None,
    }
}

/// The latest real time at which an operation can have taken effect: its answer, or never for a
/// write whose outcome is unknown (it may still be applied after its caller gave up).
fn answered(op: &RegisterOp) -> u64 {
    match applied(op) {
        Some(Applied::Unknown) => u64::MAX,
        _ => op.return_ns.unwrap_or(u64::MAX),
    }
}

fn applied(op: &RegisterOp) -> Option<Applied> {
    match op.action {
        RegisterAction::Write { applied, .. } | RegisterAction::Cas { applied, .. } => {
            Some(applied)
        }
        RegisterAction::Read { .. } => None,
    }
}

/// Real time as people read it, to the nanosecond.
fn secs(ns: u64) -> String {
    format!("{}.{:09} s", ns / 1_000_000_000, ns % 1_000_000_000)
}
