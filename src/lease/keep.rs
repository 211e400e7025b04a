//! Keeping a lease: when a holder renews, and what a renewal's answer means. Leadership's
//! tracker and the adapter's kept plain lease (`Token::keep_alive`) follow the same rules, so
//! they live here rather than in either.

use super::Epoch;
use std::time::Duration;

/// How much of a claim is left when its holder renews it: half. A renewal granted at once
/// leaves the holder at least half a claim of guarantee; one that fails still has half a claim
/// in which to be retried. Leadership claims twice its claim duration, so it renews with one
/// whole claim duration left (Juju's rule).
pub fn renewal_lead(claimed: Duration) -> Duration {
    claimed / 2
}

/// How long after a renewal that failed for a reason that may pass (the store slow or
/// unreachable) it is tried again: a tenth of the claim, so about five tries fit in the
/// half-claim left before the deadline.
pub fn renewal_retry_delay(claimed: Duration) -> Duration {
    claimed / 10
}

/// Whether a granted renewal continues the term being kept. A different epoch is a new term:
/// the kept one ended in between (expired or released), so its guarantee was broken and the
/// holder must treat the lease as lost even though it holds it again.
pub fn renewal_keeps_term(kept: Epoch, granted: Epoch) -> bool {
    granted == kept
}
