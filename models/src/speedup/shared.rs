//! Copy-on-write state parts with a cached hash, interned so that equal parts are one value.
//!
//! A model state is a handful of parts (the store, each process, the requests in flight, the
//! ghost observations), and the checker holds millions of states whose parts take few values:
//! in the default lease model about 1 million states are made of 83 updater states, 8,197 and
//! 1,146 manager states, 61 stores, 6,935 sets of requests and 7,192 ghosts. So a state holds
//! each part as a pointer ([`Shared`]) to one value kept by an [`Interner`] (hash-consing, as
//! SPIN's collapse compression): a queued state costs its pointers, not its parts. Most steps
//! change one part; the others are shared with the parent state, and each part's hash is
//! computed once, so fingerprinting a state hashes a few words. Kept values are not reference
//! counted (see [`Shared`]): they live until their interner is released, or for the process.

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::mem::ManuallyDrop;
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

/// In this order (`repr(C)`): the hash and the kept flag, read whenever a state is copied or
/// hashed, share the first cache line with the `Arc`'s counts and the start of the value.
#[repr(C)]
struct Node<T> {
    /// The value's hash, or [`UNKNOWN`].
    hash: AtomicU64,
    /// Kept by an [`Interner`]: never changed, never freed, and its copies are not counted.
    kept: AtomicBool,
    value: T,
}

impl<T: Clone> Clone for Node<T> {
    /// A copy to be changed: not kept, hash to be recomputed.
    fn clone(&self) -> Self {
        Node {
            hash: AtomicU64::new(UNKNOWN),
            kept: AtomicBool::new(false),
            value: self.value.clone(),
        }
    }
}

/// A shared, copy-on-write value whose hash is computed once per version. Changing it through
/// `DerefMut` (or [`Shared::make_mut`]) copies it first if anything else holds it.
///
/// Either *fresh* (made during a step, and counted as an `Arc`) or *kept* (interned by an
/// [`Interner`]). A kept value lives as long as its keeper (which holds the count it had when it
/// was kept: for the process, or until [`Interner::release`] at the end of a check), so its
/// copies are not counted: copying and dropping a state no longer increment and decrement,
/// atomically, a counter in each of its parts, which took a tenth of a lease check's time. Kept
/// values are few (tens of thousands for tens of millions of states).
pub struct Shared<T: 'static>(ManuallyDrop<Arc<Node<T>>>);

impl<T: 'static> Shared<T> {
    fn is_kept(&self) -> bool {
        self.0.kept.load(Ordering::Relaxed)
    }

    /// Where the kept value is, if this is an interned part: equal kept parts are one value, so
    /// this identifies the value for as long as the process runs.
    pub fn kept_at(&self) -> Option<usize> {
        self.is_kept().then(|| Arc::as_ptr(&self.0) as usize)
    }

    /// Whether both are the same value in memory (not merely equal values).
    pub fn same(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl<T: Clone + Hash + 'static> Shared<T> {
    /// A new, unshared value.
    pub fn new(value: T) -> Self {
        Shared(ManuallyDrop::new(Arc::new(Node {
            hash: AtomicU64::new(UNKNOWN),
            kept: AtomicBool::new(false),
            value,
        })))
    }

    /// The value to change, copied first if another state (or the interner) holds it.
    pub fn make_mut(&mut self) -> &mut T {
        if self.is_kept() {
            // Its copies are not counted, so it is never unique: copy it.
            *self = Shared::new(self.0.value.clone());
        }
        let node = Arc::make_mut(&mut self.0);
        *node.hash.get_mut() = UNKNOWN;
        &mut node.value
    }

    /// The value's hash (computed at most once per version). Inlined: the checker asks for
    /// the remembered hash of every part of every state it hashes.
    #[inline]
    pub fn fingerprint(&self) -> u64 {
        match self.0.hash.load(Ordering::Relaxed) {
            UNKNOWN => self.compute_fingerprint(),
            known => known,
        }
    }

    #[inline(never)]
    fn compute_fingerprint(&self) -> u64 {
        // Fixed seeds: equal values get equal hashes in every thread and every state that holds
        // them. aHash, as stateright's fingerprints: SipHash costs several times more per byte.
        let computed = ahash::RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3])
            .hash_one(&self.0.value)
            .max(1);
        self.0.hash.store(computed, Ordering::Relaxed);
        computed
    }

    /// Keeps this value (its hash computed first): `self` becomes an uncounted copy, and the
    /// count it held passes to the copy returned, the keeper's, which alone may give it back
    /// ([`Interner::release`]). Holders that counted the value while it was fresh give their
    /// counts back, or not once they see it kept: either way the count stays above zero while
    /// the keeper's copy lives.
    fn keep(&mut self) -> Shared<T> {
        self.fingerprint();
        self.0.kept.store(true, Ordering::Relaxed);
        // SAFETY: a bitwise copy of a pointer whose count it takes over.
        Shared(unsafe { std::ptr::read(&self.0) })
    }
}

impl<T: 'static> Drop for Shared<T> {
    fn drop(&mut self) {
        if !self.is_kept() {
            // SAFETY: a fresh value's count, held by this and given back once.
            unsafe { ManuallyDrop::drop(&mut self.0) }
        }
    }
}

impl<T: 'static> Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: Clone + Hash + 'static> DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.make_mut()
    }
}

impl<T: 'static> Clone for Shared<T> {
    fn clone(&self) -> Self {
        if self.is_kept() {
            // SAFETY: a kept node is never freed, and copies of it are not counted.
            Shared(unsafe { std::ptr::read(&self.0) })
        } else {
            Shared(ManuallyDrop::new(Arc::clone(&self.0)))
        }
    }
}

impl<T: Clone + Hash + 'static> Hash for Shared<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint());
    }
}

impl<T: PartialEq + 'static> PartialEq for Shared<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl<T: Eq + 'static> Eq for Shared<T> {}

impl<T: Clone + Hash + Default + 'static> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T: fmt::Debug + 'static> fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

/// Kept parts by hash.
pub(crate) type KeptByHash<T> =
    DashMap<u64, Shared<T>, BuildHasherDefault<nohash_hasher::NoHashHasher<u64>>>;

/// A kind of part, with the process's table of its kept values.
pub trait Part: Clone + Hash + Eq + Send + Sync + 'static {
    /// Every value of this kind kept so far, by any check.
    fn everywhere() -> &'static KeptByHash<Self>;
}

/// Implements [`Part`] for each type, with a table of its own.
macro_rules! parts {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::speedup::shared::Part for $t {
            fn everywhere() -> &'static $crate::speedup::shared::KeptByHash<Self> {
                static KEPT: ::std::sync::OnceLock<$crate::speedup::shared::KeptByHash<$t>> =
                    ::std::sync::OnceLock::new();
                KEPT.get_or_init($crate::speedup::shared::KeptByHash::default)
            }
        }
    )*};
}
pub(crate) use parts;

/// The one kept value of each distinct part seen in a check.
///
/// By default values are kept for the life of the process, in one table per kind of part
/// ([`Part::everywhere`]) that every check shares: a model checked again finds its parts kept
/// already. This table is then the check's own view of it (which of them it has used), looked
/// in first. An interner [`Interner::for_one_check`] keeps its values itself instead, until
/// [`Interner::release`]: [`crate::run::check`] does so, as it sees every state of its check
/// dropped, so that checks run one after another do not hold each other's parts.
///
/// A part is known by its 64-bit hash, as stateright knows a visited state by its fingerprint:
/// comparing the values themselves, in memory long out of cache, took a quarter of a lease
/// check's time, and two distinct parts share a hash with probability about n²/2⁶⁵ (10⁻⁸ for
/// n = 10⁶), the risk the checker's visited set already takes. Debug builds compare.
pub struct Interner<T: Part> {
    kept: KeptByHash<T>,
    /// Whether `kept` holds the keeper's copies ([`Interner::for_one_check`]) rather than
    /// copies of [`Part::everywhere`]'s.
    own: bool,
}

impl<T: Part> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            kept: DashMap::default(),
            own: false,
        }
    }
}

impl<T: Part> Interner<T> {
    /// Points `part` at the kept value equal to it, keeping it if it is the first.
    pub fn intern(&self, part: &mut Shared<T>) {
        if part.is_kept() {
            return;
        }
        let hash = part.fingerprint();
        if let Some(kept) = self.kept.get(&hash) {
            debug_assert!(**kept == **part, "two parts share a 64-bit hash");
            *part = kept.clone();
            return;
        }
        if self.own {
            // (Another thread may have kept an equal value meanwhile: keep one.)
            let kept = self.kept.entry(hash).or_insert_with(|| part.keep());
            *part = kept.clone();
            return;
        }
        let kept = match T::everywhere().entry(hash) {
            Entry::Occupied(kept) => {
                debug_assert!(**kept.get() == **part, "two parts share a 64-bit hash");
                kept.get().clone()
            }
            Entry::Vacant(slot) => slot.insert(part.keep()).clone(),
        };
        self.kept.insert(hash, kept.clone());
        *part = kept;
    }

    /// An interner that keeps its values itself, until [`Interner::release`].
    pub fn for_one_check() -> Self {
        Interner {
            own: true,
            ..Interner::default()
        }
    }

    /// Frees the values this interner kept ([`Interner::for_one_check`]; otherwise nothing).
    ///
    /// # Safety
    ///
    /// Every copy of every value it kept must be gone: no state, part, memo or model that holds
    /// one may be used or dropped afterwards (they are not counted, and would read freed
    /// memory).
    pub unsafe fn release(&self) {
        if !self.own {
            return;
        }
        self.kept.retain(|_, kept| {
            // Fresh again, so dropping the keeper's copy gives its count back. Holders that
            // counted it while it was fresh and were dropped once it was kept did not give
            // theirs back; none is left (the caller's promise), so they are given back here.
            kept.0.kept.store(false, Ordering::Relaxed);
            let node = Arc::as_ptr(&kept.0);
            while Arc::strong_count(&kept.0) > 1 {
                // SAFETY: a count held by no one, on a node the keeper's copy keeps alive.
                unsafe { Arc::decrement_strong_count(node) };
            }
            false
        });
    }

    /// Distinct values this check has kept (or found kept).
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

impl<T: Part> fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Interner({} kept)", self.kept.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{Interner, Part, Shared};
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    parts!(Vec<i32>, Tracked);

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
        let mut a = Shared::new(vec![1, 2, 7001]);
        interner.intern(&mut a);
        assert!(a.kept_at().is_some());
        let mut b = Shared::new(vec![1]);
        b.extend([2, 7001]);
        assert!(b.kept_at().is_none(), "fresh until interned");
        interner.intern(&mut b);
        assert!(a.same(&b), "b now points at a's kept value");
        assert_eq!(interner.len(), 1);
        b.push(3);
        assert_eq!(*a, vec![1, 2, 7001], "changing b copied it first");
        assert!(b.kept_at().is_none());
        interner.intern(&mut b);
        assert_eq!(interner.len(), 2);
        assert_ne!(a, b);
        // Another check's interner finds the value kept already: one value in the process.
        let other = Interner::default();
        let mut c = Shared::new(vec![1, 2, 7001]);
        other.intern(&mut c);
        assert!(c.same(&a));
        assert_eq!(other.len(), 1);
    }

    /// A value that counts how often a copy of it is freed.
    #[derive(Clone, Debug)]
    struct Tracked(u32, Arc<AtomicUsize>);

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl PartialEq for Tracked {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    impl Eq for Tracked {}

    impl Hash for Tracked {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.0.hash(state);
        }
    }

    #[test]
    fn a_fresh_value_is_freed_with_its_last_holder_and_a_kept_one_never() {
        let freed = Arc::new(AtomicUsize::new(0));
        let count = || freed.load(Ordering::SeqCst);
        let a = Shared::new(Tracked(1, freed.clone()));
        let b = a.clone();
        drop(a);
        assert_eq!(count(), 0, "b still holds it");
        drop(b);
        assert_eq!(count(), 1, "freed with its last holder");

        let mut changed = Shared::new(Tracked(2, freed.clone()));
        let original = changed.clone();
        changed.make_mut().0 = 3;
        assert_eq!(
            ((*original).0, (*changed).0),
            (2, 3),
            "a shared value is copied to change"
        );
        drop((original, changed));
        assert_eq!(count(), 3);

        let interner = Interner::default();
        let mut kept = Shared::new(Tracked(u32::MAX, freed.clone()));
        let fresh_copy = kept.clone();
        interner.intern(&mut kept);
        let copies: Vec<_> = (0..3).map(|_| kept.clone()).collect();
        drop((copies, fresh_copy));
        assert_eq!(count(), 3, "a kept value is never freed");
        let mut copy = kept.clone();
        copy.make_mut().0 = 4;
        assert_eq!((*kept).0, u32::MAX, "changing a kept value copies it");
        drop((copy, kept));
        assert_eq!(count(), 4, "only the changed copy was freed");
        let mut again = Shared::new(Tracked(u32::MAX, freed.clone()));
        Interner::<Tracked>::default().intern(&mut again);
        assert_eq!(count(), 5, "a value found kept frees the fresh one");
        assert!(Tracked::everywhere().contains_key(&again.fingerprint()));
    }

    #[test]
    fn a_checks_own_interner_frees_what_it_kept_on_release() {
        let freed = Arc::new(AtomicUsize::new(0));
        let count = || freed.load(Ordering::SeqCst);
        let interner = Interner::for_one_check();
        let mut a = Shared::new(Tracked(10, freed.clone()));
        let counted = a.clone();
        interner.intern(&mut a);
        let mut b = Shared::new(Tracked(10, freed.clone()));
        interner.intern(&mut b);
        assert!(a.same(&b));
        assert_eq!(count(), 1, "b's fresh copy, found kept");
        assert!(
            !Tracked::everywhere().contains_key(&a.fingerprint()),
            "not the process's"
        );
        drop((a, b, counted));
        assert_eq!(count(), 1, "kept until released");
        // SAFETY: every copy of what it kept was dropped above.
        unsafe { interner.release() };
        assert_eq!(count(), 2, "released");
        assert!(interner.is_empty());
    }
}
