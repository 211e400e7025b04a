//! Copy-on-write state parts with a cached hash, interned so that equal parts are one value.
//!
//! A model state is a handful of parts (the store, each process, the requests in flight, the
//! ghost observations), and the checker holds millions of states whose parts take few values:
//! in the default lease model about 1 million states are made of 83 updater states, 8,197 and
//! 1,146 manager states, 61 stores, 6,935 sets of requests and 7,192 ghosts. So a state holds
//! each part as a pointer ([`Shared`]) to one value kept by an [`Interner`] (hash-consing, as
//! SPIN's collapse compression): a queued state costs its pointers, not its parts. Most steps
//! change one part; the others are shared with the parent state, and each part's hash is
//! computed once, so fingerprinting a state hashes a few words.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

struct Node<T> {
    /// The value's hash, or [`UNKNOWN`].
    hash: AtomicU64,
    /// This node is the one an [`Interner`] keeps for its value (and so is never changed).
    canonical: AtomicBool,
    value: T,
}

impl<T: Clone> Clone for Node<T> {
    /// A copy to be changed: not canonical, hash to be recomputed.
    fn clone(&self) -> Self {
        Node {
            hash: AtomicU64::new(UNKNOWN),
            canonical: AtomicBool::new(false),
            value: self.value.clone(),
        }
    }
}

/// A shared, copy-on-write value whose hash is computed once per version. Changing it through
/// `DerefMut` (or [`Shared::make_mut`]) copies it first if anything else holds it.
pub struct Shared<T>(Arc<Node<T>>);

impl<T: Clone + Hash> Shared<T> {
    /// A new, unshared value.
    pub fn new(value: T) -> Self {
        Shared(Arc::new(Node {
            hash: AtomicU64::new(UNKNOWN),
            canonical: AtomicBool::new(false),
            value,
        }))
    }

    /// The value to change, copied first if another state (or the interner) holds it.
    pub fn make_mut(&mut self) -> &mut T {
        let node = Arc::make_mut(&mut self.0);
        *node.hash.get_mut() = UNKNOWN;
        *node.canonical.get_mut() = false;
        &mut node.value
    }

    /// Where the kept value is, if this is an interned part: equal kept parts are one value, so
    /// this identifies the value for as long as its [`Interner`] lives.
    pub fn kept_at(&self) -> Option<usize> {
        self.0
            .canonical
            .load(Ordering::Relaxed)
            .then_some(Arc::as_ptr(&self.0) as usize)
    }

    /// Whether both are the same value in memory (not merely equal values).
    pub fn same(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The value's hash (computed at most once per version).
    pub fn fingerprint(&self) -> u64 {
        let known = self.0.hash.load(Ordering::Relaxed);
        if known != UNKNOWN {
            return known;
        }
        // Fixed seeds: equal values get equal hashes in every thread and every state that holds
        // them. aHash, as stateright's fingerprints: SipHash costs several times more per byte.
        let computed = ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3])
            .hash_one(&self.0.value)
            .max(1);
        self.0.hash.store(computed, Ordering::Relaxed);
        computed
    }
}

impl<T> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: Clone + Hash> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.make_mut()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(Arc::clone(&self.0))
    }
}

impl<T: Clone + Hash> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint());
    }
}

impl<T: PartialEq> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
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
        self.0.value.fmt(f)
    }
}

/// The one kept value of each distinct part seen in a check. Entries live as long as the
/// interner (one check): the parts of visited states are few, and keeping them is what lets
/// every later state share them.
///
/// A part is known by its 64-bit hash, as stateright knows a visited state by its fingerprint:
/// comparing the values themselves, in memory long out of cache, took a quarter of a lease
/// check's time, and two distinct parts share a hash with probability about n²/2⁶⁵ (10⁻⁸ for
/// n = 10⁶), the risk the checker's visited set already takes. Debug builds compare.
pub struct Interner<T> {
    kept: DashMap<u64, Shared<T>, BuildHasherDefault<nohash_hasher::NoHashHasher<u64>>>,
}

impl<T: Clone + Hash + Eq> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            kept: DashMap::default(),
        }
    }
}

impl<T: Clone + Hash + Eq> Interner<T> {
    /// Points `part` at the kept value equal to it, keeping it if it is the first.
    pub fn intern(&self, part: &mut Shared<T>) {
        if part.0.canonical.load(Ordering::Relaxed) {
            return;
        }
        match self.kept.entry(part.fingerprint()) {
            Entry::Occupied(kept) => {
                debug_assert!(**kept.get() == **part, "two parts share a 64-bit hash");
                *part = kept.get().clone();
            }
            Entry::Vacant(slot) => {
                part.0.canonical.store(true, Ordering::Relaxed);
                slot.insert(part.clone());
            }
        }
    }

    /// Distinct values kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

impl<T: Clone + Hash + Eq> fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interner({} kept)", self.kept.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{Interner, Shared};
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    use std::sync::Arc;

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
        b.push(4);
        assert_ne!(a, b);
        assert_ne!(hash_of(&a), hash_of(&b), "the hash follows the change");
        b.make_mut().pop();
        assert_eq!(a, b);
        assert_eq!(hash_of(&a), hash_of(&b));
        assert_eq!(*a, vec![1, 2, 3], "the shared original is untouched");
    }

    #[test]
    fn interning_makes_equal_parts_one_value_and_never_changes_a_kept_one() {
        let interner = Interner::default();
        let mut a = Shared::new(vec![1, 2]);
        interner.intern(&mut a);
        let mut b = Shared::new(vec![1]);
        b.push(2);
        interner.intern(&mut b);
        assert!(Arc::ptr_eq(&a.0, &b.0), "b now points at a's kept value");
        assert_eq!(interner.len(), 1);
        b.push(3);
        assert_eq!(*a, vec![1, 2], "changing b copied it first");
        interner.intern(&mut b);
        assert_eq!(interner.len(), 2);
        assert_ne!(a, b);
    }
}
