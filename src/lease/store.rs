//! The lease store client (PROTOCOLS.md §2.3-§2.4): a cache of one namespace's lease documents
//! plus the last global time read, and the claim / extend / expire / refresh calls.
//!
//! The client is a sub-machine driven by its owner (the [`super::LeaseManager`]): each `start_*`
//! call and each [`LeaseStore::handle_result`] returns a [`StoreStep`], either a store operation
//! to run or the call's outcome. Calls on different leases run independently (Juju's 2018
//! manager ran them in goroutines); at most one call per lease, and one refresh, run at a time
//! ([`CallOn`]), so a lease's own calls stay in order.
//!
//! Juju's transaction runner retried three times; here a failed assert refreshes the one
//! document involved and returns [`StoreError::Invalid`] with the cache up to date, and the
//! manager's bounded retry does the rest. An unknown outcome is resolved by a linearizable
//! re-read of the document, never guessed.
//!
//! A corrupt or foreign document costs only its own lease: the cache remembers it by lease
//! name ([`LeaseStore::corrupt`]), calls on that lease fail with [`StoreError::Corrupt`]
//! naming its `_id`, and every other lease is served as usual. A claim of a lease known corrupt
//! re-reads its document first, so a repaired document is served again without a restart.

use super::{lease_id, lease_name_of, Epoch, LeaseDoc, Term};
use crate::clock::{ClockError, Reader};
use crate::mutant::Mutant;
use crate::substrate::{
    fields, Collection, CorruptDocument, Op, OpResult, ReadConcern, Reply, Selector, StoreFailure,
    Update, Value,
};
use crate::time::{nanos, GlobalTime, LocalTime, SkewBounds};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use thiserror::Error;

/// Why a store call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The cache was stale or the operation is logically impossible now (already held, not
    /// yours, expires in the future). The cache has been refreshed; re-inspect and decide again.
    #[error("invalid lease operation: {0}")]
    Invalid(String),
    /// The write's outcome could not be determined even by re-reading.
    #[error("outcome unknown for {0}; the lease state will be re-read before the next decision")]
    Unknown(String),
    /// A lease document has the wrong shape.
    #[error(transparent)]
    Corrupt(#[from] CorruptDocument),
    /// The store failed.
    #[error("{context}: {cause}")]
    Store {
        /// What the client was doing.
        context: String,
        /// What the store said (the driver's error as its source, from a real store).
        #[source]
        cause: StoreFailure,
    },
}

impl From<ClockError> for StoreError {
    fn from(e: ClockError) -> Self {
        match e {
            ClockError::Corrupt(c) => StoreError::Corrupt(c),
            // Already says what it was doing: said twice, the message reads as a stutter.
            ClockError::Store { context, cause } => StoreError::Store { context, cause },
            other => StoreError::Store {
                context: "reading global time".to_owned(),
                cause: other.to_string().into(),
            },
        }
    }
}

/// A successful store call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSuccess {
    /// The cache was replaced from the store, except for the leases a call was busy with or
    /// learnt about meanwhile.
    Refreshed,
    /// A check's read of its lease ([`LeaseStore::check_read`]): the document, `None` if absent.
    Read {
        /// The lease's document as read.
        doc: Option<LeaseDoc>,
    },
    /// The lease is held by the requested holder, at least until `term.expiry()`.
    Holds {
        /// The epoch of the term.
        epoch: Epoch,
        /// The stored term.
        term: Term,
        /// Global time read fresh during the call (the lower bound of L5).
        read: GlobalTime,
    },
    /// The lease was expired (its document made vacant).
    Expired {
        /// The epoch of the term that ended.
        epoch: Epoch,
    },
    /// The holder's term of `epoch` is over: this call released it (`vacated`), or it had
    /// already ended (expired, released, or a later term began).
    Released {
        /// The epoch of the term released.
        epoch: Epoch,
        /// Whether this call's write is known to have vacated it.
        vacated: bool,
    },
}

/// What a store call is about: the key under which at most one call runs at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOn<'a> {
    /// Re-reading the whole namespace and global time.
    Refresh,
    /// One lease: a claim, an extension or an expiry.
    Lease(&'a str),
}

/// What the owner must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreStep {
    /// Run this operation and hand its result to [`LeaseStore::handle_result`].
    Issue(Op),
    /// The call finished.
    Done(Result<StoreSuccess, StoreError>),
}

/// What the cache says about one lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The holder.
    pub holder: String,
    /// The fencing epoch.
    pub epoch: Epoch,
    /// `start + duration`.
    pub global_expiry: GlobalTime,
    /// The first local instant at which the lease may be expired, judged from the last global
    /// read (it errs late, PROTOCOLS.md §2.4 `Leases()`).
    pub local_expiry: LocalTime,
}

/// A refresh's documents: the decoded ones and the corrupt ones, by lease name.
type Decoded = (
    BTreeMap<String, LeaseDoc>,
    BTreeMap<String, CorruptDocument>,
);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Call {
    /// Reading all documents, then global time.
    RefreshDocs,
    RefreshClock {
        docs: Decoded,
        asked_at: LocalTime,
    },
    /// Claim or extend, reading global time first.
    WriteReadClock {
        name: String,
        holder: String,
        duration: Duration,
        asked_at: LocalTime,
    },
    Write {
        name: String,
        wrote: LeaseDoc,
        read: GlobalTime,
    },
    /// Re-reading one document after a failed or unknown write.
    Reread {
        name: String,
        wrote: Option<LeaseDoc>,
        read: GlobalTime,
        reason: String,
    },
    ExpireReadClock {
        name: String,
        asked_at: LocalTime,
    },
    Expire {
        name: String,
        wrote: LeaseDoc,
    },
    /// Reading one document to decide a release the cache could not decide (`after_write`:
    /// after the release write failed or its outcome was unknown).
    ReleaseRead {
        name: String,
        holder: String,
        epoch: Epoch,
        after_write: bool,
    },
    Release {
        name: String,
        holder: String,
        wrote: LeaseDoc,
    },
}

/// What a release does, given a document of its lease.
enum ReleaseDecision {
    /// The document holds the term: vacate it.
    Vacate(LeaseDoc),
    /// The term is over.
    Ended,
    /// This document cannot tell (absent, or older than the term): read the store.
    Unsure,
}

impl Call {
    /// The lease this call is about, or `None` for a refresh.
    fn lease(&self) -> Option<&str> {
        match self {
            Call::RefreshDocs | Call::RefreshClock { .. } => None,
            Call::WriteReadClock { name, .. }
            | Call::Write { name, .. }
            | Call::Reread { name, .. }
            | Call::ExpireReadClock { name, .. }
            | Call::Expire { name, .. }
            | Call::ReleaseRead { name, .. }
            | Call::Release { name, .. } => Some(name),
        }
    }
}

/// The store client for one namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseStore {
    namespace: String,
    writer: String,
    mutant: Option<Mutant>,
    cache: BTreeMap<String, LeaseDoc>,
    /// Leases whose document is corrupt or foreign, by name: never written, never expired.
    corrupt: BTreeMap<String, CorruptDocument>,
    global: GlobalTime,
    /// When the read that returned `global` was sent: global time may have advanced from
    /// then on, so this, not the reply's arrival, dates it.
    global_asked_at: LocalTime,
    /// The refresh in progress, if any.
    refresh: Option<Call>,
    /// The call in progress on each busy lease.
    calls: BTreeMap<String, Call>,
    /// The leases a call has learnt about since the refresh in progress began: the refresh
    /// may have read them earlier, so it leaves their cache entries alone.
    learnt_meanwhile: BTreeSet<String>,
    /// Leases whose release write's outcome is unknown and whose cached version it targeted is
    /// still the one cached: that write may land at any moment (a timed-out write can apply
    /// later), so the cache cannot vouch for the holder, and an extension must write a new
    /// version rather than keep the one the release would vacate.
    release_unknown: BTreeSet<String>,
}

impl LeaseStore {
    /// A client writing as `writer` in `namespace` (both validated by the manager's config).
    pub fn new(namespace: String, writer: String, mutant: Option<Mutant>) -> LeaseStore {
        LeaseStore {
            namespace,
            writer,
            mutant,
            cache: BTreeMap::new(),
            corrupt: BTreeMap::new(),
            global: GlobalTime(0),
            global_asked_at: LocalTime(0),
            refresh: None,
            calls: BTreeMap::new(),
            learnt_meanwhile: BTreeSet::new(),
            release_unknown: BTreeSet::new(),
        }
    }

    /// The namespace served.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether a call on `on` is in progress (a new one must wait for it).
    pub fn is_busy(&self, on: CallOn<'_>) -> bool {
        match on {
            CallOn::Refresh => self.refresh.is_some(),
            CallOn::Lease(name) => self.calls.contains_key(name),
        }
    }

    /// The cached document of `name`, held or vacant.
    pub fn cached(&self, name: &str) -> Option<&LeaseDoc> {
        self.cache.get(name)
    }

    /// Why `name`'s document cannot be used, if the last read of it found it corrupt.
    pub fn corrupt(&self, name: &str) -> Option<&CorruptDocument> {
        self.corrupt.get(name)
    }

    /// The last global time read.
    pub fn global_time(&self) -> GlobalTime {
        self.global
    }

    /// The held leases in the cache (no I/O).
    pub fn leases(&self) -> impl Iterator<Item = (&str, LeaseInfo)> + '_ {
        self.cache.iter().filter_map(|(name, doc)| {
            let t = doc.term.as_ref()?;
            Some((
                name.as_str(),
                LeaseInfo {
                    holder: t.holder.clone(),
                    epoch: doc.epoch,
                    global_expiry: t.expiry(),
                    local_expiry: self.local_expiry(t.expiry()),
                },
            ))
        })
    }

    /// Each held lease's first local instant at which it may be expired (as in
    /// [`LeaseStore::leases`], without copying names or holders: the manager asks on every call).
    pub fn local_expiries(&self) -> impl Iterator<Item = (&str, LocalTime)> + '_ {
        self.cache.iter().filter_map(|(name, doc)| {
            let t = doc.term.as_ref()?;
            Some((name.as_str(), self.local_expiry(t.expiry())))
        })
    }

    /// Whether `name`'s cached term may have ended by local instant `now`, so the cache cannot
    /// vouch for its holder: a release of it is under way or its outcome unknown, or it may
    /// have expired, judged from the last global read and the skew bounds (global time may run
    /// faster than this clock, and step), after which another manager may expire it at any
    /// moment. The same arithmetic as a holder's local deadline, with the time left.
    pub fn may_have_ended(&self, name: &str, now: LocalTime, skew: &SkewBounds) -> bool {
        let Some(term) = self.cache.get(name).and_then(|doc| doc.term.as_ref()) else {
            return false;
        };
        let releasing = matches!(self.calls.get(name), Some(Call::Release { .. }));
        if releasing || self.release_unknown.contains(name) {
            return true;
        }
        let left = term.expiry().0.saturating_sub(self.global.0);
        skew.local_deadline(self.global_asked_at, Duration::from_nanos(left))
            .is_none_or(|until| until <= now)
    }

    /// The local instant from which global time may be past `expiry`, judged from the last
    /// global read as if global time ran at this clock's rate (the expiry itself re-reads it,
    /// and the store refuses early expiries).
    fn local_expiry(&self, expiry: GlobalTime) -> LocalTime {
        let left = expiry.0.saturating_add(1).saturating_sub(self.global.0);
        LocalTime(self.global_asked_at.0.saturating_add(left))
    }

    /// The read a check makes when the cache cannot answer it: its lease's document alone,
    /// linearizable. Outside the calls tracked here: it changes nothing, so any number run at
    /// once, and a check never waits for a refresh or for its lease's claim or expiry.
    pub fn check_read(&self, name: &str) -> Op {
        self.read_doc(name)
    }

    /// The result of [`LeaseStore::check_read`] on `name`.
    pub fn decode_check_read(
        &self,
        name: &str,
        result: OpResult,
    ) -> Result<StoreSuccess, StoreError> {
        match result {
            OpResult::Ok(Reply::Doc(d)) => {
                let doc = d
                    .map(|d| LeaseDoc::decode(&d, &self.namespace))
                    .transpose()?;
                Ok(StoreSuccess::Read { doc })
            }
            OpResult::Unknown => Err(StoreError::Unknown(format!("reading lease {name:?}"))),
            other => Err(StoreError::Store {
                context: format!("reading lease {name:?}"),
                cause: other.failure(),
            }),
        }
    }

    fn begin(&mut self, call: Call, op: Op) -> StoreStep {
        // The owner starts a call only on a key that is not busy (`is_busy`): two calls on
        // one key would lose one of them, and its caller would never be answered.
        match call.lease().map(str::to_owned) {
            None => {
                assert!(self.refresh.is_none(), "one refresh at a time");
                if matches!(call, Call::RefreshDocs) {
                    self.learnt_meanwhile.clear();
                }
                self.refresh = Some(call);
            }
            Some(name) => {
                let before = self.calls.insert(name, call);
                assert!(before.is_none(), "one store call per lease at a time");
            }
        }
        StoreStep::Issue(op)
    }

    fn fresh_global() -> Op {
        Reader::request(ReadConcern::Linearizable)
    }

    fn read_doc(&self, name: &str) -> Op {
        Op::Read {
            coll: Collection::Leases,
            id: lease_id(&self.namespace, name),
            concern: ReadConcern::Linearizable,
        }
    }

    /// Replaces the cache with every document of the namespace, then reads global time.
    pub fn start_refresh(&mut self) -> StoreStep {
        let op = Op::Find {
            coll: Collection::Leases,
            selector: Selector::FieldEq("namespace".to_owned(), Value::Str(self.namespace.clone())),
            concern: ReadConcern::Linearizable,
        };
        self.begin(Call::RefreshDocs, op)
    }

    /// Reads `name`'s document into the cache, ending in `Invalid` (decide again): what a claim
    /// does before it denies on a cached holder, who may have released the lease since.
    pub fn start_look(&mut self, name: &str) -> StoreStep {
        let look = Call::Reread {
            name: name.to_owned(),
            wrote: None,
            read: self.global,
            reason: format!("lease {name:?} looked at before a denial"),
        };
        self.begin(look, self.read_doc(name))
    }

    /// Claims `name` for `holder` (§2.4 ClaimLease): invalid if the cache shows it held.
    pub fn start_claim(
        &mut self,
        name: &str,
        holder: &str,
        duration: Duration,
        now: LocalTime,
    ) -> StoreStep {
        if let Some(h) = self.cache.get(name).and_then(LeaseDoc::holder) {
            return StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is held by {h:?}"
            ))));
        }
        if self.corrupt.contains_key(name) {
            // Perhaps repaired since: re-read it (Invalid with a fresh cache if so, Corrupt if not).
            let reread = Call::Reread {
                name: name.to_owned(),
                wrote: None,
                read: self.global,
                reason: format!("lease {name:?} was corrupt and has been re-read"),
            };
            return self.begin(reread, self.read_doc(name));
        }
        self.start_write(name, holder, duration, now)
    }

    /// Extends `name` for `holder` (§2.4 ExtendLease): invalid unless the cache shows `holder`.
    pub fn start_extend(
        &mut self,
        name: &str,
        holder: &str,
        duration: Duration,
        now: LocalTime,
    ) -> StoreStep {
        match self.cache.get(name).and_then(LeaseDoc::holder) {
            Some(h) if h == holder => self.start_write(name, holder, duration, now),
            Some(h) => StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is held by {h:?}, not {holder:?}"
            )))),
            None => StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is not held"
            )))),
        }
    }

    fn start_write(
        &mut self,
        name: &str,
        holder: &str,
        duration: Duration,
        now: LocalTime,
    ) -> StoreStep {
        let call = Call::WriteReadClock {
            name: name.to_owned(),
            holder: holder.to_owned(),
            duration,
            asked_at: now,
        };
        if self.mutant == Some(Mutant::LeaseStaleGlobalRead) {
            // Broken: decide on the cached global time instead of reading it fresh.
            let cached = OpResult::Ok(Reply::Doc(Some(crate::substrate::Document::new(
                crate::clock::CLOCK_ID,
                fields([(crate::clock::TIME_FIELD, Value::from(self.global.0))]),
            ))));
            return self.resume(call, cached, now);
        }
        self.begin(call, Self::fresh_global())
    }

    /// Expires `name` (§2.4 ExpireLease): only once global time is strictly past its expiry.
    pub fn start_expire(&mut self, name: &str, now: LocalTime) -> StoreStep {
        let Some(term) = self.cache.get(name).and_then(|d| d.term.as_ref()) else {
            return StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is not held"
            ))));
        };
        if self.global > term.expiry() || self.mutant == Some(Mutant::LeaseExpireOnLocalClock) {
            return self.expire_write(name);
        }
        let call = Call::ExpireReadClock {
            name: name.to_owned(),
            asked_at: now,
        };
        self.begin(call, Self::fresh_global())
    }

    /// Releases `holder`'s term of `epoch` in `name` (Tenure's extension of §2.4): vacates it
    /// with a compare-and-swap on the exact version holding it, so it never ends another
    /// holder's term or a later term of `holder`'s. Decided on the cache when it shows the term
    /// or its end, else on a read of the document.
    pub fn start_release(&mut self, name: &str, holder: &str, epoch: Epoch) -> StoreStep {
        if let Some(c) = self.corrupt.get(name) {
            return StoreStep::Done(Err(StoreError::Corrupt(c.clone())));
        }
        let decision = self.release_decision(self.cache.get(name), holder, epoch);
        self.release_step(name, holder, epoch, decision, false)
    }

    fn release_decision(
        &self,
        doc: Option<&LeaseDoc>,
        holder: &str,
        epoch: Epoch,
    ) -> ReleaseDecision {
        let ignores_epoch = self.mutant == Some(Mutant::LeaseReleaseAnyEpoch);
        match doc {
            Some(d) if d.is_term_of(holder, epoch) => ReleaseDecision::Vacate(d.clone()),
            // Broken: any term of the holder's will do.
            Some(d) if ignores_epoch && d.holder() == Some(holder) => {
                ReleaseDecision::Vacate(d.clone())
            }
            Some(d) if d.has_ended(epoch) => ReleaseDecision::Ended,
            _ => ReleaseDecision::Unsure,
        }
    }

    /// Acts on a release decision; `read` says it was made on a fresh read of the document
    /// (`after_write`: one that followed this release's own write), which must decide.
    fn release_step(
        &mut self,
        name: &str,
        holder: &str,
        epoch: Epoch,
        decision: ReleaseDecision,
        read: bool,
    ) -> StoreStep {
        let ended = Ok(StoreSuccess::Released {
            epoch,
            vacated: false,
        });
        match decision {
            ReleaseDecision::Vacate(old) => {
                let wrote = LeaseDoc {
                    term: None,
                    writer: self.writer.clone(),
                    released_by: Some(holder.to_owned()),
                    ..old.clone()
                };
                let mut op = self.replace(&lease_id(&self.namespace, name), &old, &wrote);
                if self.mutant == Some(Mutant::LeaseReleaseAnyEpoch) {
                    if let Op::Update { expect, .. } = &mut op {
                        expect.retain(|k, _| k == "holder");
                    }
                }
                let call = Call::Release {
                    name: name.to_owned(),
                    holder: holder.to_owned(),
                    wrote,
                };
                self.begin(call, op)
            }
            ReleaseDecision::Ended => {
                self.release_unknown.remove(name);
                StoreStep::Done(ended)
            }
            // A fresh read that cannot tell: absent, or older than the term (rolled back). The
            // term is not in the store: nothing to release.
            ReleaseDecision::Unsure if read => StoreStep::Done(ended),
            ReleaseDecision::Unsure => {
                let call = Call::ReleaseRead {
                    name: name.to_owned(),
                    holder: holder.to_owned(),
                    epoch,
                    after_write: false,
                };
                self.begin(call, self.read_doc(name))
            }
        }
    }

    fn note_global(&mut self, g: GlobalTime, asked_at: LocalTime) {
        if g >= self.global {
            self.global = g;
            self.global_asked_at = asked_at;
        }
    }

    /// Takes the result of the operation last issued on `on`.
    pub fn handle_result(&mut self, on: CallOn<'_>, result: OpResult, now: LocalTime) -> StoreStep {
        let call = match on {
            CallOn::Refresh => self.refresh.take(),
            CallOn::Lease(name) => self.calls.remove(name),
        };
        let Some(call) = call else {
            return StoreStep::Done(Err(StoreError::Store {
                context: "lease store".into(),
                cause: "unexpected reply".into(),
            }));
        };
        let step = self.resume(call, result, now);
        if self.refresh.is_none() {
            // No refresh runs (this one ended, or failed): nothing to protect from it.
            self.learnt_meanwhile.clear();
        }
        step
    }

    fn resume(&mut self, call: Call, result: OpResult, now: LocalTime) -> StoreStep {
        if let (Some(name), Some(_)) = (call.lease(), &self.refresh) {
            self.learnt_meanwhile.insert(name.to_owned());
        }
        match self.advance(call, result, now) {
            Ok(step) => step,
            Err(e) => StoreStep::Done(Err(e)),
        }
    }

    fn advance(
        &mut self,
        call: Call,
        result: OpResult,
        now: LocalTime,
    ) -> Result<StoreStep, StoreError> {
        // A read whose reply was lost (a timeout, a dropped connection) changed nothing and may
        // simply be tried again: an unknown outcome for the caller, never a store failure, which
        // stops the manager.
        if result == OpResult::Unknown {
            let read = match &call {
                Call::RefreshDocs | Call::RefreshClock { .. } => Some("refreshing leases".into()),
                Call::WriteReadClock { name, .. } | Call::ExpireReadClock { name, .. } => {
                    Some(format!("lease {name:?}: reading global time"))
                }
                _ => None,
            };
            if let Some(what) = read {
                return Err(StoreError::Unknown(what));
            }
        }
        match call {
            Call::RefreshDocs => {
                let docs = self.decode_all(result)?;
                let asked_at = now;
                Ok(self.begin(Call::RefreshClock { docs, asked_at }, Self::fresh_global()))
            }
            Call::RefreshClock { docs, asked_at } => {
                let g = Reader::decode(&result)?;
                self.replace_cache(docs);
                self.note_global(g, asked_at);
                Ok(StoreStep::Done(Ok(StoreSuccess::Refreshed)))
            }
            Call::WriteReadClock {
                name,
                holder,
                duration,
                asked_at,
            } => {
                let g = Reader::decode(&result)?;
                self.note_global(g, asked_at);
                self.write_term(name, holder, duration, g)
            }
            Call::Write { name, wrote, read } => match result {
                OpResult::Ok(_) => Ok(self.wrote(name, wrote, read)),
                OpResult::PreconditionFailed | OpResult::DuplicateKey => {
                    let reason = format!("lease {name:?} changed concurrently");
                    let op = self.read_doc(&name);
                    Ok(self.begin(
                        Call::Reread {
                            name,
                            wrote: None,
                            read,
                            reason,
                        },
                        op,
                    ))
                }
                OpResult::Unknown => {
                    let op = self.read_doc(&name);
                    Ok(self.begin(
                        Call::Reread {
                            name,
                            wrote: Some(wrote),
                            read,
                            reason: "write outcome unknown".into(),
                        },
                        op,
                    ))
                }
                OpResult::Failed(cause) => Err(StoreError::Store {
                    context: format!("writing lease {name:?}"),
                    cause,
                }),
            },
            Call::Reread {
                name,
                wrote,
                read,
                reason,
            } => {
                let doc = self.decode_read(&name, result)?;
                match doc {
                    // Our write applied after all: the re-read shows exactly what we wrote.
                    Some(d) if wrote.as_ref() == Some(&d) => Ok(self.wrote(name, d, read)),
                    Some(d)
                        if wrote.as_ref().is_some_and(|w| {
                            w.term.is_none() && d.epoch >= w.epoch && d.term.is_none()
                        }) =>
                    {
                        Ok(self.wrote(name, d, read))
                    }
                    Some(d) => {
                        self.cache.insert(name, d);
                        Err(StoreError::Invalid(reason))
                    }
                    None => {
                        self.cache.remove(&name);
                        Err(StoreError::Invalid(reason))
                    }
                }
            }
            Call::ExpireReadClock { name, asked_at } => {
                let g = Reader::decode(&result)?;
                self.note_global(g, asked_at);
                Ok(self.expire_write(&name))
            }
            Call::Expire { name, wrote } => match result {
                OpResult::Ok(_) => Ok(self.wrote(name, wrote, self.global)),
                OpResult::PreconditionFailed => {
                    let op = self.read_doc(&name);
                    let reason = format!("lease {name:?} changed before it could be expired");
                    Ok(self.begin(
                        Call::Reread {
                            name,
                            wrote: None,
                            read: self.global,
                            reason,
                        },
                        op,
                    ))
                }
                OpResult::Unknown => {
                    let op = self.read_doc(&name);
                    let read = self.global;
                    Ok(self.begin(
                        Call::Reread {
                            name,
                            wrote: Some(wrote),
                            read,
                            reason: "expiry outcome unknown".into(),
                        },
                        op,
                    ))
                }
                other => Err(StoreError::Store {
                    context: format!("expiring lease {name:?}"),
                    cause: other.failure(),
                }),
            },
            Call::Release {
                name,
                holder,
                wrote,
            } => match result {
                OpResult::Ok(_) => Ok(self.wrote(name, wrote, self.global)),
                OpResult::PreconditionFailed | OpResult::Unknown => {
                    // Changed meanwhile, or perhaps vacated by this very write: the document
                    // decides. An unknown write may still land later (see `release_unknown`).
                    if result == OpResult::Unknown {
                        self.release_unknown.insert(name.clone());
                    }
                    let op = self.read_doc(&name);
                    let call = Call::ReleaseRead {
                        name,
                        holder,
                        epoch: wrote.epoch,
                        after_write: true,
                    };
                    Ok(self.begin(call, op))
                }
                other => Err(StoreError::Store {
                    context: format!("releasing lease {name:?}"),
                    cause: other.failure(),
                }),
            },
            Call::ReleaseRead {
                name,
                holder,
                epoch,
                after_write,
            } => {
                let doc = self.decode_read(&name, result)?;
                match &doc {
                    Some(d) => self.cache.insert(name.clone(), d.clone()),
                    None => self.cache.remove(&name),
                };
                let decision = self.release_decision(doc.as_ref(), &holder, epoch);
                match decision {
                    // After its own write: the term is still there, so that write did not
                    // apply (yet); the caller learns the outcome is unknown.
                    ReleaseDecision::Vacate(_) if after_write => {
                        Err(StoreError::Unknown(format!("releasing lease {name:?}")))
                    }
                    decision => Ok(self.release_step(&name, &holder, epoch, decision, true)),
                }
            }
        }
    }

    /// A read of `name`'s document, decoded; a corrupt one is recorded as such.
    fn decode_read(
        &mut self,
        name: &str,
        result: OpResult,
    ) -> Result<Option<LeaseDoc>, StoreError> {
        match result {
            OpResult::Ok(Reply::Doc(d)) => {
                let decoded = d.map(|d| LeaseDoc::decode(&d, &self.namespace));
                if let Some(Err(c)) = decoded {
                    self.cache.remove(name);
                    self.corrupt.insert(name.to_owned(), c.clone());
                    return Err(StoreError::Corrupt(c));
                }
                self.corrupt.remove(name);
                Ok(decoded.transpose()?)
            }
            OpResult::Unknown => Err(StoreError::Unknown(format!("lease {name:?}"))),
            other => Err(StoreError::Store {
                context: format!("re-reading lease {name:?}"),
                cause: other.failure(),
            }),
        }
    }

    /// Takes a refresh's documents, except for the leases a call learnt about, or is learning
    /// about, while the refresh ran: the refresh may have read them before that call's write,
    /// and a cache moved backwards would undo what the call learnt (a wait would end on a lease
    /// just claimed, a check would find an expired lease held).
    fn replace_cache(&mut self, (mut cache, mut corrupt): Decoded) {
        let learnt = std::mem::take(&mut self.learnt_meanwhile);
        // A set: a lease both busy and learnt about must be kept once, not kept then dropped.
        let keep: BTreeSet<&String> = self.calls.keys().chain(&learnt).collect();
        for name in keep {
            match self.cache.get(name) {
                Some(doc) => cache.insert(name.clone(), doc.clone()),
                None => cache.remove(name),
            };
            match self.corrupt.get(name) {
                Some(c) => corrupt.insert(name.clone(), c.clone()),
                None => corrupt.remove(name),
            };
        }
        (self.cache, self.corrupt) = (cache, corrupt);
    }

    /// Every document of the namespace, decoded, and the corrupt ones by lease name. A
    /// document whose `_id` names no lease is nobody's lease and is left out of both.
    fn decode_all(&self, result: OpResult) -> Result<Decoded, StoreError> {
        let OpResult::Ok(Reply::Docs(docs)) = result else {
            return Err(StoreError::Store {
                context: "refreshing leases".into(),
                cause: result.failure(),
            });
        };
        let (mut good, mut corrupt) = (BTreeMap::new(), BTreeMap::new());
        for d in &docs {
            match LeaseDoc::decode(d, &self.namespace) {
                Ok(l) => {
                    good.insert(l.name.clone(), l);
                }
                Err(c) => {
                    if let Some(name) = lease_name_of(&d.id) {
                        corrupt.insert(name.to_owned(), c);
                    }
                }
            }
        }
        Ok((good, corrupt))
    }

    /// Writes `holder`'s term of `duration` from global time `g` into lease `name`, from the
    /// cached document: an extension of the holder's own term (never shorter: if it would be,
    /// nothing is written), a claim of a vacant lease (the next epoch), or a first claim.
    fn write_term(
        &mut self,
        name: String,
        holder: String,
        duration: Duration,
        g: GlobalTime,
    ) -> Result<StoreStep, StoreError> {
        let cached = self.cache.get(&name).cloned();
        let term = Term {
            holder: holder.clone(),
            start: g,
            duration,
            writer: self.writer.clone(),
        };
        let id = lease_id(&self.namespace, &name);
        let (wrote, op) = match cached {
            Some(old) if old.term.is_some() => {
                let Some(old_term) = old.term.as_ref().filter(|t| t.holder == holder) else {
                    return Err(StoreError::Invalid(format!(
                        "lease {name:?} is held by someone else"
                    )));
                };
                let long_enough = term.expiry() <= old_term.expiry()
                    && self.mutant != Some(Mutant::LeaseExtendMayShorten);
                // A release of this very version may yet land: only a new version is safe.
                if long_enough && self.release_unknown.contains(&name) {
                    return Err(StoreError::Unknown(format!(
                        "lease {name:?}: a release whose outcome is unknown may still land"
                    )));
                }
                // Extending never shortens: if the lease already runs long enough and this
                // writer wrote it, write nothing. A version another writer wrote (another
                // manager, or this one before a restart) may be the target of a release still
                // in flight: take it over with a write of the same term, so that release fails.
                if long_enough && old_term.writer == self.writer {
                    let (epoch, term) = (old.epoch, old_term.clone());
                    return Ok(StoreStep::Done(Ok(StoreSuccess::Holds {
                        epoch,
                        term,
                        read: g,
                    })));
                }
                let term = if long_enough {
                    Term {
                        writer: self.writer.clone(),
                        ..old_term.clone()
                    }
                } else {
                    term
                };
                let wrote = LeaseDoc {
                    term: Some(term),
                    writer: self.writer.clone(),
                    ..old.clone()
                };
                let op = self.replace(&id, &old, &wrote);
                (wrote, op)
            }
            Some(vacant) => {
                let epoch = if self.mutant == Some(Mutant::LeaseEpochReuse) {
                    Epoch(1)
                } else {
                    Epoch(vacant.epoch.0 + 1)
                };
                let wrote = LeaseDoc {
                    name: name.clone(),
                    epoch,
                    term: Some(term),
                    writer: self.writer.clone(),
                    released_by: None,
                };
                let op = self.replace(&id, &vacant, &wrote);
                (wrote, op)
            }
            None => {
                let wrote = LeaseDoc {
                    name: name.clone(),
                    epoch: Epoch(1),
                    term: Some(term),
                    writer: self.writer.clone(),
                    released_by: None,
                };
                let op = Op::Insert {
                    coll: Collection::Leases,
                    doc: wrote.encode(&self.namespace),
                };
                (wrote, op)
            }
        };
        let write = Call::Write {
            name,
            wrote,
            read: g,
        };
        Ok(self.begin(write, op))
    }

    /// A compare-and-swap from `old`'s exact version to `new`.
    fn replace(&self, id: &str, old: &LeaseDoc, new: &LeaseDoc) -> Op {
        let mut set = new.encode(&self.namespace).fields;
        set.remove("namespace");
        set.remove("name");
        let mut unset = if new.term.is_none() {
            vec!["holder".into(), "start".into(), "duration".into()]
        } else {
            Vec::new()
        };
        if old.released_by.is_some() && new.released_by.is_none() {
            unset.push("released_by".into());
        }
        Op::Update {
            coll: Collection::Leases,
            id: id.to_owned(),
            expect: old.version(),
            update: Update {
                set,
                unset,
                ..Update::default()
            },
            upsert: false,
            return_new: false,
        }
    }

    /// Writes the expiry of `name` if global time, as last read, is past its term.
    fn expire_write(&mut self, name: &str) -> StoreStep {
        let Some(old) = self.cache.get(name).cloned() else {
            return StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is not held"
            ))));
        };
        let Some(term) = old.term.clone() else {
            return StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} is not held"
            ))));
        };
        let judged_on_local = self.mutant == Some(Mutant::LeaseExpireOnLocalClock);
        if self.global <= term.expiry() && !judged_on_local {
            return StoreStep::Done(Err(StoreError::Invalid(format!(
                "lease {name:?} expires in the future ({} is not past {})",
                self.global,
                term.expiry()
            ))));
        }
        let wrote = LeaseDoc {
            term: None,
            writer: self.writer.clone(),
            ..old.clone()
        };
        let mut op = self.replace(&lease_id(&self.namespace, name), &old, &wrote);
        if self.mutant == Some(Mutant::LeaseExpireAnyVersion) {
            if let Op::Update { expect, .. } = &mut op {
                expect.retain(|k, _| k == "holder");
            }
        }
        self.begin(
            Call::Expire {
                name: name.to_owned(),
                wrote,
            },
            op,
        )
    }

    fn wrote(&mut self, name: String, doc: LeaseDoc, read: GlobalTime) -> StoreStep {
        let epoch = doc.epoch;
        let outcome = match doc.term.clone() {
            Some(term) => StoreSuccess::Holds { epoch, term, read },
            None if doc.released_by.is_some() => StoreSuccess::Released {
                epoch,
                vacated: true,
            },
            None => StoreSuccess::Expired { epoch },
        };
        // A new version: a release of the old one can no longer land.
        self.release_unknown.remove(&name);
        self.cache.insert(name, doc);
        StoreStep::Done(Ok(outcome))
    }
}

/// The global time a term guarantees at least (`read + duration`), for L5 checks.
pub fn guaranteed_until(read: GlobalTime, duration: Duration) -> GlobalTime {
    GlobalTime(read.0.saturating_add(nanos(duration)))
}
