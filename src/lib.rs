//! # Tenure: coordination primitives on MongoDB, as pure state machines
//!
//! Tenure gives services a global virtual clock, named leases with fencing epochs, leadership
//! built on leases, and presence (who is alive), all on a shared MongoDB. This crate is the
//! **sans-I/O core**: every protocol is a value that takes events (API calls, timer firings,
//! results of store operations) together with the current local time, and returns
//! [`effects::Effects`] — store operations to issue and notifications to deliver. Nothing here
//! reads a clock, sleeps, draws random numbers from the OS or touches a socket, so the same code
//! is driven by the model checker (`tenure-models`), the deterministic simulator (`tenure-sim`)
//! and the MongoDB adapter (`tenure-mongo`).
//!
//! The reference semantics are those of Juju's MongoDB-era design (docs/PROTOCOLS.md); where
//! Tenure goes further (fencing epochs, idempotent presence bits, resolved unknown outcomes) the
//! module docs say so.
//!
//! # Layout
//! - [`time`]: local time, global time, and the holder's safe-deadline arithmetic;
//! - [`validate`]: names, holders and durations;
//! - [`actor`]: the one interface every executor drives actors through ([`actor::Actor`],
//!   [`actor::Node`]);
//! - [`effects`]: what a call returns ([`effects::Effects`]: store requests, notifications);
//! - [`fault`]: the fault model's switches, named alike everywhere;
//! - [`substrate`]: documents and operations as data, and [`substrate::MemoryStore`];
//! - [`clock`]: the global clock updater, reader and watcher (PROTOCOLS.md §1);
//! - [`lease`]: the lease store client and manager (§2-§3);
//! - [`leadership`]: the leadership tracker and the unit that wires it to a manager (§4);
//! - [`presence`]: pinger, batcher, watcher and pruner (§5);
//! - [`mutant`]: the deliberately broken variants checkers must catch;
//! - [`property`]: the invariants, stated once;
//! - [`history`]: the recorded-history format and its checks;
//! - [`timeline`]: a run told step by step, as counterexamples and replays are printed;
//! - [`jitter`]: seeded jitter, so the core stays deterministic.
//!
//! # Example: one manager claims a lease on the reference store
//!
//! ```
//! use std::time::Duration;
//! use tenure::actor::Actor; // handle_reply, handle_timeout, next_deadline
//! use tenure::lease::{LeaseManager, ManagerConfig, ManagerOutput, RequestId};
//! use tenure::substrate::MemoryStore;
//! use tenure::time::LocalTime;
//!
//! let mut store = MemoryStore::new();
//! let mut manager = LeaseManager::new(ManagerConfig::new("app", "controller-0")).unwrap();
//! let now = LocalTime(0);
//! let mut fx = manager.handle_start(now);
//! fx.extend(manager.handle_claim(RequestId(1), "db", "unit-0", Duration::from_secs(60), now));
//! // Execute requests until the manager has nothing more to ask.
//! let mut outputs = Vec::new();
//! while !fx.requests.is_empty() || !fx.notifications.is_empty() {
//!     outputs.extend(fx.notifications.drain(..));
//!     let mut next = tenure::effects::Effects::none();
//!     for req in fx.requests.drain(..) {
//!         next.extend(manager.handle_reply(req.id, store.apply(&req.op), now));
//!     }
//!     fx = next;
//! }
//! assert!(outputs.iter().any(|o| matches!(o, ManagerOutput::Claimed { holder, .. } if holder == "unit-0")));
//! ```

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod actor;
pub mod clock;
pub mod effects;
pub mod fault;
pub mod history;
pub mod jitter;
pub mod leadership;
pub mod lease;
pub mod mutant;
pub mod presence;
pub mod property;
pub mod substrate;
pub mod time;
pub mod timeline;
pub mod validate;
