//! The connection to MongoDB and the executor of the core's store operations.
//!
//! Every [`Op`] becomes exactly one MongoDB command (DESIGN.md, "The substrate"):
//! writes with `w:"majority", j:true` and a `wtimeout`, decision reads with
//! `readConcern:"linearizable"` and `maxTimeMS`. What comes back is the core's [`OpResult`]; the
//! one judgement made here is which failures leave a write's outcome **unknown** (timeouts,
//! network errors, write concern errors): those are reported as [`OpResult::Unknown`] and the
//! protocol resolves them by re-reading, never by guessing.

use crate::convert::{cas_filter, doc_from_bson, doc_to_bson, selector_filter, update_to_bson};
use crate::error::{describe, redact, server_code, Error};
use crate::record::{self, Recorder};
use crate::runtime::LocalClock;
use mongodb::bson::{doc, Bson, Document as BsonDocument};
use mongodb::error::{ErrorKind, WriteFailure, NO_WRITES_PERFORMED};
use mongodb::options::{
    Acknowledgment, ClientOptions, CollectionOptions, IndexOptions,
    ReadConcern as MongoReadConcern, ReturnDocument, WriteConcern,
};
use mongodb::{Client, Collection as MongoCollection, Database, IndexModel};
use std::sync::Arc;
use std::time::Duration;
use tenure::history::Operation;
use tenure::substrate::{Collection, Document, Op, OpResult, ReadConcern, Reply, StoreFailure};

/// Longest accepted per-operation timeout: beyond it a lost server stalls every protocol for
/// longer than any lease is likely to last.
pub const OP_TIMEOUT_MAX: Duration = Duration::from_secs(300);

/// What a call may take beyond the op timeout: room for the driver to give up on its own
/// first and for the worker's bookkeeping, small enough that a caller is not kept waiting.
pub const CALL_MARGIN: Duration = Duration::from_secs(1);

/// MongoDB error codes that mean the server refused a write before applying it.
const REFUSED_BEFORE_WRITE: [i32; 8] = [
    2,     // BadValue
    9,     // FailedToParse
    13,    // Unauthorized
    14,    // TypeMismatch
    20,    // IllegalOperation
    10107, // NotWritablePrimary
    13435, // NotPrimaryNoSecondaryOk
    13436, // NotPrimaryOrSecondary
];

/// How to connect. Build with [`Substrate::builder`].
#[derive(Clone, Debug)]
pub struct SubstrateBuilder {
    uri: String,
    database: String,
    collection_prefix: String,
    op_timeout: Duration,
    allow_standalone_unsafe: bool,
    app_name: Option<String>,
    recorder: Option<Recorder>,
    clock: LocalClock,
    /// A client the caller built (its pool, auth and TLS), used instead of the URI.
    client: Option<Client>,
}

impl SubstrateBuilder {
    /// The local clock every worker built on this substrate reads (default: the host's
    /// monotonic clock, [`LocalClock::SYSTEM`]). A skewed clock stands in for a drifting host
    /// in live checks; tests pause it with `tokio::time::pause()`.
    pub fn clock(mut self, clock: LocalClock) -> Self {
        self.clock = clock;
        self
    }

    /// Record every store operation, and every protocol outcome of the workers built on this
    /// substrate, into `recorder` (see [`crate::record`]).
    pub fn recorder(mut self, recorder: Recorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// The database holding Tenure's collections (default `tenure`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Prefix of Tenure's collection names (default `tenure.`: `tenure.clock`, `tenure.leases`,
    /// `tenure.presence.pings`, ...). Different prefixes isolate deployments in one database.
    pub fn collection_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.collection_prefix = prefix.into();
        self
    }

    /// Bound on every store operation (default 5 s): `wtimeout` of writes, `maxTimeMS` of reads,
    /// and the client-side deadline after which the outcome is unknown. Every public call of
    /// the adapter answers within [`Substrate::call_bound`] (this plus [`CALL_MARGIN`]), however
    /// many store operations it needs and whatever the server does.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// The driver's `appName` (shows up in server logs and scopes test failpoints).
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = Some(name.into());
        self
    }

    /// Accept a standalone server (no replica set). **Unsafe**: a standalone offers neither
    /// majority write concern nor linearizable reads, so a failover or a crash can roll back a
    /// grant and two holders can overlap. FerretDB presents as one. Off by default.
    pub fn allow_standalone_unsafe(mut self, allow: bool) -> Self {
        self.allow_standalone_unsafe = allow;
        self
    }

    /// Connects, checks the server is a replica-set member (or that the unsafe opt-in is set),
    /// and creates Tenure's indexes if missing.
    pub async fn connect(self) -> Result<Substrate, Error> {
        if self.op_timeout.is_zero() || self.op_timeout > OP_TIMEOUT_MAX {
            return Err(Error::Input(
                tenure::validate::InputError::InvalidDuration {
                    what: "op timeout",
                    value: self.op_timeout,
                    reason: format!("must be positive and at most {OP_TIMEOUT_MAX:?}"),
                },
            ));
        }
        tenure::validate::check_name("database", &self.database)?;
        let (client, hosts) = match self.client.clone() {
            Some(client) => (client, "the client given".to_owned()),
            None => self.client_from_uri().await?,
        };
        let hello = client
            .database("admin")
            .run_command(doc! { "hello": 1 })
            .await
            .map_err(|e| Error::Unreachable {
                hosts: hosts.clone(),
                reason: redact(&e.to_string()),
            })?;
        let replica_set =
            hello.get_str("setName").is_ok() || hello.get_str("msg") == Ok("isdbgrid");
        if !replica_set && !self.allow_standalone_unsafe {
            return Err(Error::Standalone { hosts });
        }
        if !replica_set {
            tracing::warn!(%hosts, "connected to a standalone server: no majority writes or linearizable reads, leases are NOT safe");
        }
        let db = client.database(&self.database);
        let colls = Collection::ALL.map(|c| {
            Coll::new(
                &db,
                &self.collection_prefix,
                c,
                self.op_timeout,
                replica_set,
            )
        });
        let substrate = Substrate {
            inner: Arc::new(Inner {
                client,
                db,
                colls,
                op_timeout: self.op_timeout,
                hosts,
                replica_set,
                recorder: self.recorder.inspect(|r| r.set_clock(self.clock)),
                clock: self.clock,
            }),
        };
        substrate.ensure_indexes().await?;
        Ok(substrate)
    }

    /// A client for the URI, and its hosts (for messages).
    async fn client_from_uri(&self) -> Result<(Client, String), Error> {
        let mut options = ClientOptions::parse(&self.uri)
            .await
            .map_err(|e| Error::InvalidUri(redact(&e.to_string())))?;
        let hosts = options
            .hosts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Unless the URI says otherwise, no call waits on the driver longer than the op timeout
        // (its defaults are 30 s to select a server and 10 s to connect).
        if options.server_selection_timeout.is_none() {
            options.server_selection_timeout = Some(self.op_timeout);
        }
        if options.connect_timeout.is_none() {
            options.connect_timeout = Some(self.op_timeout);
        }
        if self.app_name.is_some() {
            options.app_name = self.app_name.clone();
        }
        let client =
            Client::with_options(options).map_err(|e| Error::InvalidUri(redact(&e.to_string())))?;
        Ok((client, hosts))
    }
}

/// One Tenure collection, with a handle per read concern.
#[derive(Debug)]
struct Coll {
    name: String,
    linearizable: MongoCollection<BsonDocument>,
    majority: MongoCollection<BsonDocument>,
    local: MongoCollection<BsonDocument>,
    /// For writes: the write concern and no read concern (a read concern on findAndModify
    /// makes SecantusDB drop more of its upsert replies).
    write: MongoCollection<BsonDocument>,
}

impl Coll {
    fn new(
        db: &Database,
        prefix: &str,
        which: Collection,
        op_timeout: Duration,
        replica_set: bool,
    ) -> Coll {
        let name = format!("{prefix}{}", collection_suffix(which));
        let write_concern = WriteConcern::builder()
            .w(Acknowledgment::Majority)
            .journal(true)
            .w_timeout(op_timeout)
            .build();
        let with = |rc: Option<MongoReadConcern>| {
            let options = CollectionOptions::builder()
                .write_concern(write_concern.clone())
                .read_concern(rc)
                .build();
            db.collection_with_options::<BsonDocument>(&name, options)
        };
        // A standalone refuses linearizable and majority reads; it has nothing better than local.
        let (lin, maj) = if replica_set {
            (
                Some(MongoReadConcern::linearizable()),
                Some(MongoReadConcern::majority()),
            )
        } else {
            (None, None)
        };
        Coll {
            write: with(None),
            linearizable: with(lin),
            majority: with(maj),
            local: with(Some(MongoReadConcern::local())),
            name,
        }
    }

    fn read(&self, concern: ReadConcern) -> &MongoCollection<BsonDocument> {
        match concern {
            ReadConcern::Linearizable => &self.linearizable,
            ReadConcern::Majority => &self.majority,
            ReadConcern::Local => &self.local,
        }
    }
}

fn collection_suffix(c: Collection) -> &'static str {
    match c {
        Collection::Clock => "clock",
        Collection::Leases => "leases",
        Collection::PresenceSeqs => "presence.seqs",
        Collection::PresenceBeings => "presence.beings",
        Collection::PresencePings => "presence.pings",
    }
}

#[derive(Debug)]
struct Inner {
    client: Client,
    db: Database,
    colls: [Coll; 5],
    op_timeout: Duration,
    hosts: String,
    replica_set: bool,
    recorder: Option<Recorder>,
    clock: LocalClock,
}

/// A connection to the MongoDB deployment Tenure runs on; cheap to clone.
#[derive(Clone, Debug)]
pub struct Substrate {
    inner: Arc<Inner>,
}

impl Substrate {
    /// How to connect to `uri` (a `mongodb://` or `mongodb+srv://` connection string).
    pub fn builder(uri: impl Into<String>) -> SubstrateBuilder {
        SubstrateBuilder {
            uri: uri.into(),
            database: "tenure".into(),
            collection_prefix: "tenure.".into(),
            op_timeout: Duration::from_secs(5),
            allow_standalone_unsafe: false,
            app_name: None,
            recorder: None,
            clock: LocalClock::SYSTEM,
            client: None,
        }
    }

    /// How to use a driver `client` you already have (its connection pool, authentication,
    /// TLS and timeouts): the same checks and settings as [`Substrate::builder`], without a
    /// URI. Its `app_name` and server-selection timeout are the client's own; every call of
    /// Tenure's is still bounded by [`Substrate::call_bound`].
    pub fn with_client(client: Client) -> SubstrateBuilder {
        SubstrateBuilder {
            client: Some(client),
            ..Substrate::builder("")
        }
    }

    /// The driver client, for the user's own operations (and [`crate::lease::Token`]'s
    /// fenced writes).
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The database holding Tenure's collections.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// The MongoDB name of a logical collection.
    pub fn collection_name(&self, c: Collection) -> &str {
        &self.coll(c).name
    }

    /// The per-operation timeout.
    pub fn op_timeout(&self) -> Duration {
        self.inner.op_timeout
    }

    /// The longest any store operation or public call takes to answer: the op timeout plus
    /// [`CALL_MARGIN`]. A call that needs more store operations than fit answers
    /// [`Error::Unanswered`], its outcome unknown.
    pub fn call_bound(&self) -> Duration {
        self.inner.op_timeout + CALL_MARGIN
    }

    /// Runs one public call (`call` names it in the error) for at most [`Self::call_bound`].
    /// The worker behind the call carries on; only the caller stops waiting.
    pub(crate) async fn bounded<T>(
        &self,
        call: &'static str,
        answer: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let after = self.call_bound();
        tokio::time::timeout(after, answer)
            .await
            .unwrap_or(Err(Error::Unanswered { call, after }))
    }

    /// Whether the server is a replica-set member (false only under the unsafe opt-in).
    pub fn is_replica_set(&self) -> bool {
        self.inner.replica_set
    }

    /// The recorder attached at connection, if any.
    pub fn recorder(&self) -> Option<&Recorder> {
        self.inner.recorder.as_ref()
    }

    /// The local clock its workers read.
    pub fn clock(&self) -> LocalClock {
        self.inner.clock
    }

    /// The hosts connected to, without credentials.
    pub fn hosts(&self) -> &str {
        &self.inner.hosts
    }

    fn coll(&self, c: Collection) -> &Coll {
        let i = Collection::ALL.iter().position(|x| *x == c).unwrap_or(0);
        &self.inner.colls[i]
    }

    async fn ensure_indexes(&self) -> Result<(), Error> {
        // createIndexes is idempotent: an index that exists with the same spec is left alone.
        let by_namespace = IndexModel::builder()
            .keys(doc! { "namespace": 1 })
            .options(
                IndexOptions::builder()
                    .name("tenure_namespace".to_owned())
                    .build(),
            )
            .build();
        self.coll(Collection::Leases)
            .write
            .create_index(by_namespace)
            .await
            .map_err(|source| Error::Driver {
                context: "creating Tenure's index on the leases collection",
                source,
            })?;
        Ok(())
    }

    /// Runs one store operation and reports what became of it. Never panics; bounded by the
    /// op timeout.
    pub async fn execute(&self, op: &Op) -> OpResult {
        let rec = self.recorder();
        let store = |result: Option<String>| Operation::Store {
            verb: op.verb().to_owned(),
            id: op_id(op),
            result,
        };
        let call = record::invoke(rec, || store(None));
        let bound = self.call_bound();
        let result = match tokio::time::timeout(bound, self.run(op)).await {
            Ok(r) => r,
            Err(_) if op.is_write() => OpResult::Unknown,
            Err(_) => OpResult::Failed(format!("{} timed out after {bound:?}", op.verb()).into()),
        };
        let unknown = result == OpResult::Unknown;
        record::complete(rec, call, unknown, || store(Some(result.to_string())));
        result
    }

    async fn run(&self, op: &Op) -> OpResult {
        let t = self.inner.op_timeout;
        let result = match op {
            Op::Read { coll, id, concern } => {
                let c = self.coll(*coll);
                match c
                    .read(*concern)
                    .find_one(doc! { "_id": id })
                    .max_time(t)
                    .await
                {
                    Ok(None) => return OpResult::Ok(Reply::Doc(None)),
                    Ok(Some(d)) => {
                        return match doc_from_bson(*coll, d) {
                            Ok(d) => OpResult::Ok(Reply::Doc(Some(d))),
                            Err(e) => OpResult::Failed(e.to_string().into()),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Find {
                coll,
                selector,
                concern,
            } => {
                let c = self.coll(*coll);
                let found = c
                    .read(*concern)
                    .find(selector_filter(selector))
                    .sort(doc! { "_id": 1 })
                    .max_time(t)
                    .await;
                match found {
                    Ok(cursor) => {
                        use futures_util::TryStreamExt;
                        match cursor.try_collect::<Vec<_>>().await {
                            Ok(docs) => {
                                return OpResult::Ok(Reply::Docs(decode_found(*coll, docs)))
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Op::Insert { coll, doc } => self
                .coll(*coll)
                .write
                .insert_one(doc_to_bson(doc))
                .await
                .map(|_| OpResult::Ok(Reply::Done)),
            Op::Update {
                coll,
                id,
                expect,
                update,
                upsert,
                return_new,
            } => {
                // An upsert that finds no document inserts one; if a concurrent upsert inserted
                // it first, the insert fails with a duplicate key and nothing was applied. Try
                // once more, now that the document exists (as mongod does itself since 4.2):
                // it matches, or it did not match and fails the same way again.
                let mut tried = self
                    .update(*coll, id, expect, update, *upsert, *return_new)
                    .await;
                if *upsert && tried.as_ref().is_err_and(is_duplicate_key) {
                    tried = self
                        .update(*coll, id, expect, update, *upsert, *return_new)
                        .await;
                }
                tried.or_else(|e| {
                    if *upsert && is_duplicate_key(&e) {
                        // The present document does not match `expect`.
                        Ok(OpResult::PreconditionFailed)
                    } else {
                        Err(e)
                    }
                })
            }
            Op::Delete { coll, id, expect } => self
                .coll(*coll)
                .write
                .delete_one(cas_filter(id, expect))
                .await
                .map(|r| {
                    if r.deleted_count > 0 {
                        OpResult::Ok(Reply::Done)
                    } else {
                        OpResult::PreconditionFailed
                    }
                }),
            Op::DeleteMany { coll, selector } => self
                .coll(*coll)
                .write
                .delete_many(selector_filter(selector))
                .await
                .map(|r| OpResult::Ok(Reply::Count(r.deleted_count))),
            Op::BulkUpsert { coll, updates } => return self.bulk_upsert(*coll, updates).await,
            Op::ServerTime => {
                return match self.inner.db.run_command(doc! { "hello": 1 }).await {
                    Ok(reply) => match reply.get_datetime("localTime") {
                        Ok(t) => match u64::try_from(t.timestamp_millis()) {
                            Ok(ms) => OpResult::Ok(Reply::Time(ms.saturating_mul(1_000_000))),
                            Err(_) => {
                                OpResult::Failed(format!("server time {t} is before 1970").into())
                            }
                        },
                        Err(_) => {
                            OpResult::Failed("the server's hello reply has no localTime".into())
                        }
                    },
                    Err(e) => OpResult::Failed(StoreFailure::caused_by(describe(&e), e)),
                }
            }
        };
        match result {
            Ok(r) => r,
            Err(e) => classify(&e, op),
        }
    }

    /// One conditional update (`update` or, for `return_new`, `findAndModify`).
    async fn update(
        &self,
        coll: Collection,
        id: &str,
        expect: &tenure::substrate::Fields,
        update: &tenure::substrate::Update,
        upsert: bool,
        return_new: bool,
    ) -> Result<OpResult, mongodb::error::Error> {
        let c = &self.coll(coll).write;
        let filter = cas_filter(id, expect);
        let update = update_to_bson(id, update);
        if return_new {
            let found = c
                .find_one_and_update(filter, update)
                .upsert(upsert)
                .return_document(ReturnDocument::After)
                .max_time(self.inner.op_timeout)
                .await?;
            Ok(match found {
                // An upsert always leaves a document to return. SecantusDB 0.7.0b3 sometimes
                // answers racing upserts with none although it applied them: unknown, not
                // "not applied".
                None if upsert => {
                    tracing::warn!(
                        id,
                        "the server answered an upsert with no document; outcome unknown"
                    );
                    OpResult::Unknown
                }
                None => OpResult::PreconditionFailed,
                Some(d) => match doc_from_bson(coll, d) {
                    Ok(d) => OpResult::Ok(Reply::Doc(Some(d))),
                    // Applied, but what is there now is not ours to interpret.
                    Err(e) => OpResult::Failed(e.to_string().into()),
                },
            })
        } else {
            let r = c.update_one(filter, update).upsert(upsert).await?;
            Ok(if r.matched_count > 0 || r.upserted_id.is_some() {
                OpResult::Ok(Reply::Done)
            } else {
                OpResult::PreconditionFailed
            })
        }
    }

    /// One unordered `update` command carrying every upsert: one round trip, one bulk write.
    async fn bulk_upsert(
        &self,
        coll: Collection,
        updates: &[(String, tenure::substrate::Update)],
    ) -> OpResult {
        if updates.is_empty() {
            return OpResult::Ok(Reply::Count(0));
        }
        let statements: Vec<Bson> = updates
            .iter()
            .map(|(id, u)| {
                Bson::Document(
                    doc! { "q": { "_id": id }, "u": update_to_bson(id, u), "upsert": true },
                )
            })
            .collect();
        let wtimeout = i64::try_from(self.inner.op_timeout.as_millis()).unwrap_or(i64::MAX);
        let command = doc! {
            "update": self.coll(coll).name.clone(),
            "updates": statements,
            "ordered": false,
            "writeConcern": { "w": "majority", "j": true, "wtimeout": wtimeout },
        };
        match self.inner.db.run_command(command).await {
            Ok(reply) => {
                if reply.get("writeConcernError").is_some() {
                    return OpResult::Unknown;
                }
                if let Ok(errors) = reply.get_array("writeErrors") {
                    if !errors.is_empty() {
                        // Some upserts may have been applied: unknown, and safe to resend
                        // (presence's `$bit: {or}` upserts are idempotent).
                        tracing::warn!(errors = errors.len(), "bulk upsert had write errors");
                        return OpResult::Unknown;
                    }
                }
                let n = reply
                    .get_i32("n")
                    .map(i64::from)
                    .or_else(|_| reply.get_i64("n"))
                    .unwrap_or(0);
                OpResult::Ok(Reply::Count(u64::try_from(n).unwrap_or(0)))
            }
            Err(e) => classify(
                &e,
                &Op::BulkUpsert {
                    coll,
                    updates: Vec::new(),
                },
            ),
        }
    }
}

/// The `_id` an operation addresses, if one.
fn op_id(op: &Op) -> Option<String> {
    match op {
        Op::Read { id, .. } | Op::Update { id, .. } | Op::Delete { id, .. } => Some(id.clone()),
        Op::Insert { doc, .. } => Some(doc.id.clone()),
        Op::Find { .. } | Op::DeleteMany { .. } | Op::BulkUpsert { .. } | Op::ServerTime => None,
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    server_code(e) == Some(11000)
}

/// What a driver error says about the operation: refused (nothing happened), duplicate key, or
/// unknown (it may have been applied).
fn classify(e: &mongodb::error::Error, op: &Op) -> OpResult {
    // The driver's error rides along as the source, so a caller can still match on it.
    let failed = || {
        let message = format!("{}: {}", op.verb(), describe(e));
        OpResult::Failed(StoreFailure::caused_by(message, e.clone()))
    };
    if is_duplicate_key(e) {
        return OpResult::DuplicateKey;
    }
    if !op.is_write() || e.contains_label(NO_WRITES_PERFORMED) {
        return failed();
    }
    match &*e.kind {
        // A write error is the server's verdict on the write itself: it was not applied.
        ErrorKind::Write(WriteFailure::WriteError(_)) => failed(),
        ErrorKind::Command(c) if REFUSED_BEFORE_WRITE.contains(&c.code) => failed(),
        ErrorKind::InvalidArgument { .. } | ErrorKind::BsonSerialization(_) => failed(),
        // Write concern errors, timeouts, network errors, server selection after a first attempt:
        // the write may have happened.
        _ => {
            tracing::debug!(op = op.verb(), error = %describe(e), "outcome unknown");
            metrics::counter!("tenure_unknown_outcomes_total", "op" => op.verb()).increment(1);
            OpResult::Unknown
        }
    }
}

/// The documents a find returned, as core documents. One whose `_id` is not a string is no
/// Tenure document (every Tenure `_id` is a string) and is left out, with a warning, rather
/// than failing the read for every other document.
fn decode_found(coll: Collection, docs: Vec<BsonDocument>) -> Vec<Document> {
    docs.into_iter()
        .filter_map(|d| match doc_from_bson(coll, d) {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(error = %e, "a document that is not Tenure's was left out of a read");
                None
            }
        })
        .collect()
}
