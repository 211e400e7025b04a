//! One read of global time (PROTOCOLS.md §1.2, `Reader.Now`).

use super::{decode_stored, ClockError, CLOCK_ID};
use crate::substrate::{Collection, Op, OpResult, ReadConcern, Reply};
use crate::time::GlobalTime;

/// Builds global-time reads and decodes their results. Stateless: there is no caching.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reader;

impl Reader {
    /// The read of the clock document. Decisions (claims, extensions, expiries) must use
    /// [`ReadConcern::Linearizable`]: a stale read shortens the lease guarantee by its staleness.
    pub fn request(concern: ReadConcern) -> Op {
        Op::Read {
            coll: Collection::Clock,
            id: CLOCK_ID.to_owned(),
            concern,
        }
    }

    /// Global time from the result of [`Reader::request`]. A missing document reads as the
    /// epoch, the value it will have once created.
    pub fn decode(result: &OpResult) -> Result<GlobalTime, ClockError> {
        match result {
            OpResult::Ok(Reply::Doc(doc)) => Ok(decode_stored(doc.as_ref())?),
            other => Err(ClockError::Store {
                context: "reading global time".to_owned(),
                cause: other.failure(),
            }),
        }
    }
}
