//! Copy-on-write state parts with a cached hash.
//!
//! Most steps change one process and leave the store and every other process as they were, so a
//! successor state shares those parts with its parent ([`Arc`]). The checker fingerprints every
//! successor by hashing all of it; caching each part's hash means an unchanged part costs eight
//! bytes to hash instead of a walk over its strings, maps and queues.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// No hash computed yet (a computed 0 is stored as 1).
const UNKNOWN: u64 = 0;

/// The part hashes' seeds (any fixed values do).
const SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// A shared, copy-on-write value whose hash is computed once per version.
pub struct Shared<T> {
    value: Arc<T>,
    hash: AtomicU64,
}

impl<T: Clone + Hash> Shared<T> {
    /// A new, unshared value.
    pub fn new(value: T) -> Self {
        Shared {
            value: Arc::new(value),
            hash: AtomicU64::new(UNKNOWN),
        }
    }

    /// The value to change, copied first if another state shares it; forgets the cached hash.
    pub fn make_mut(&mut self) -> &mut T {
        *self.hash.get_mut() = UNKNOWN;
        Arc::make_mut(&mut self.value)
    }

    /// The value's hash (computed at most once per version).
    pub fn fingerprint(&self) -> u64 {
        let known = self.hash.load(Ordering::Relaxed);
        if known != UNKNOWN {
            return known;
        }
        // Fixed seeds: equal values get equal hashes in every thread and every state that holds
        // them. aHash, as stateright's fingerprints: SipHash costs several times more per byte.
        let computed = ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3])
            .hash_one(&*self.value)
            .max(1);
        self.hash.store(computed, Ordering::Relaxed);
        computed
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            value: Arc::clone(&self.value),
            hash: AtomicU64::new(self.hash.load(Ordering::Relaxed)),
        }
    }
}

impl<T: Clone + Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint());
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value) || self.value == other.value
    }
}

impl<T: Eq> Eq for Shared<T> {}

impl<T: Clone + Hash + Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T: fmt::Debug> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::Shared;
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};

    fn hash_of<T: Hash>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn equal_values_hash_equally_and_a_change_forgets_the_cached_hash() {
        let a = Shared::new(vec![1, 2, 3]);
        let mut b = a.clone();
        assert_eq!(hash_of(&a), hash_of(&b));
        b.make_mut().push(4);
        assert_ne!(a, b);
        assert_ne!(hash_of(&a), hash_of(&b), "the hash follows the change");
        b.make_mut().pop();
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(*a, vec![1, 2, 3], "the shared original is untouched");
    }
}
