//! Tenure on MongoDB: the production adapter.
//!
//! The protocols live in the pure core (`tenure`); this crate executes their effects with the
//! official `mongodb` driver on `tokio` and gives services an async API. It holds no protocol
//! logic of its own (DESIGN.md, "Layout").
//!
//! - [`Substrate`]: the connection; refuses a standalone server unless told otherwise, maps each
//!   store operation to one MongoDB command with majority writes and linearizable reads, and
//!   reports a write whose reply was lost as *outcome unknown* for the protocol to resolve;
//! - [`clock`]: read global time, keep it ticking ([`ClockUpdater`]), watch it;
//! - [`lease`]: claim, extend, check, acquire with a timeout, wait until expired, release,
//!   keep alive, fenced writes ([`Leases`], [`Token`], [`KeptLease`]);
//! - [`leadership`]: claim, wait to lead or to follow, resign, and a [`Tenure`] cancelled when
//!   leadership can no longer be guaranteed, with its fencing epoch ([`Leadership`]);
//! - [`presence`]: pingers, the shared batcher, watchers with alive/dead streams, the pruner,
//!   model isolation and removal ([`Presence`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use tenure_mongo::{ClockUpdater, Leases, Substrate};
//!
//! # async fn run() -> Result<(), tenure_mongo::Error> {
//! let substrate = Substrate::builder("mongodb://127.0.0.1:27017/?replicaSet=rs0")
//!     .connect()
//!     .await?;
//! // Leases are timed in global time: keep at least one updater running per deployment.
//! let updater = ClockUpdater::builder().spawn(&substrate)?;
//! let leases = Leases::builder("my-service").build(&substrate)?;
//! match leases.claim("db-migrations", "host-a", Duration::from_secs(30)).await {
//!     Ok(token) => {
//!         // Act as the holder until token.local_deadline(), no longer; guard writes to shared
//!         // data with token.epoch() (see Token::fenced_update_one).
//!         println!("holder with {} until {:?}", token.epoch(), token.local_deadline());
//!     }
//!     Err(tenure_mongo::Error::ClaimDenied { holder, .. }) => println!("{holder} holds it"),
//!     Err(e) => return Err(e),
//! }
//! leases.shutdown().await;
//! updater.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod clock;
mod convert;
mod error;
mod fence;
mod keep;
pub mod leadership;
pub mod lease;
pub mod live;
pub mod presence;
pub mod race;
pub mod record;
mod runtime;
mod substrate;

pub use clock::{ClockHealth, ClockUpdater, ClockWatch, ClockWatchBuilder};
pub use error::{redact, Error};
pub use fence::Fenced;
pub use keep::KeptLease;
pub use leadership::{Leadership, LeadershipState, Tenure};
pub use lease::{Holding, Leases, Token, ACQUIRE_POLL};
pub use presence::{Presence, PresenceBuilder, PresencePinger, PresenceWatch, Pruned};
pub use record::Recorder;
pub use runtime::{align_real_time, real_time_origin, LocalClock};
pub use substrate::{Substrate, SubstrateBuilder, CALL_MARGIN, OP_TIMEOUT_MAX};

/// The driver, at the version this crate is built with: build a client for
/// [`Substrate::with_client`], and name the collections of fenced writes, with it.
pub use mongodb;
/// The core's types a service names (so it need not depend on `tenure` itself).
pub use tenure::lease::{Epoch, ManagerError, RetryConfig};
pub use tenure::time::SkewBounds;
