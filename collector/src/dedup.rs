//! Recognising events that were already delivered.
//!
//! Sources re-read on purpose (overlap windows for late events) and by accident (a restart from the
//! last checkpoint). Event ids are hashed to 128 bits with a per-installation random seed, so the
//! persisted set is small and nobody can craft an id that collides with another to hide it.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Hashes event ids with the installation's seed (kept in the checkpoint).
#[derive(Debug, Clone, Copy)]
pub struct IdHasher {
    seed: u64,
}

impl IdHasher {
    pub fn new(seed: u64) -> Self {
        IdHasher { seed }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn hash(&self, id: &str) -> u128 {
        xxh3_128_with_seed(id.as_bytes(), self.seed)
    }
}

/// Members are already seeded 128-bit hashes, unpredictable to whoever writes the ids, so the set
/// uses their low bits as they are instead of hashing them a second time with SipHash.
#[derive(Debug, Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys other than u128, which this set never holds.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u128(&mut self, hash: u128) {
        self.0 = hash as u64;
    }
}

/// A bounded first-in-first-out set of id hashes. An id is remembered for the source's re-read
/// span (the time within which the source may read its event again), and among the newest
/// `floor` ids; never more than `capacity` ids. An id forgotten before its span ended because of
/// the capacity is counted: its event, read again, would be delivered twice.
#[derive(Debug)]
pub struct DedupSet {
    capacity: usize,
    floor: usize,
    /// None: the source may read an event again for as long as it runs.
    span: Option<Duration>,
    order: VecDeque<(u128, Instant)>,
    members: HashSet<u128, BuildHasherDefault<Prehashed>>,
    forgotten_early: u64,
}

/// How long an id is needed, and how many are kept whatever their age.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub capacity: usize,
    /// Kept whatever their age: the ids a crash can make the source read again.
    pub floor: usize,
    /// How long an id is needed after it was remembered; None: every id, for now.
    pub span: Option<Duration>,
}

impl DedupSet {
    pub fn new(window: Window) -> Self {
        let initial = window.capacity.min(1 << 16);
        DedupSet {
            capacity: window.capacity,
            floor: window.floor.min(window.capacity),
            span: window.span,
            order: VecDeque::with_capacity(initial),
            members: HashSet::with_capacity_and_hasher(initial, BuildHasherDefault::default()),
            forgotten_early: 0,
        }
    }

    /// Restores a set from hashes listed oldest first; their span starts now, since the source
    /// may read their events again from its restored cursor.
    pub fn from_hashes(window: Window, hashes: impl IntoIterator<Item = u128>) -> Self {
        let mut set = DedupSet::new(window);
        for hash in hashes {
            set.insert(hash);
        }
        set
    }

    /// Remembers `hash`; answers false when it was already known.
    pub fn insert(&mut self, hash: u128) -> bool {
        if !self.members.insert(hash) {
            return false;
        }
        let now = Instant::now();
        self.order.push_back((hash, now));
        while let Some(&(oldest, at)) = self.order.front() {
            let expired = self.span.is_some_and(|span| now.duration_since(at) >= span);
            if self.order.len() > self.capacity {
                if !expired {
                    self.forgotten_early += 1;
                }
            } else if !(expired && self.order.len() > self.floor) {
                break;
            }
            self.order.pop_front();
            self.members.remove(&oldest);
        }
        true
    }

    pub fn contains(&self, hash: u128) -> bool {
        self.members.contains(&hash)
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// How long ids are needed from now on (see [`Window::span`]).
    pub fn set_span(&mut self, span: Option<Duration>) {
        self.span = span;
    }

    /// The most ids remembered.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Ids forgotten because of the capacity while their source could still read them again.
    pub fn forgotten_early(&self) -> u64 {
        self.forgotten_early
    }

    /// The remembered hashes, oldest first, leaving out the newest `skip_newest` (ids of batches that
    /// are dispatched but not yet committed must not be persisted).
    pub fn oldest_first(&self, skip_newest: usize) -> impl Iterator<Item = u128> + '_ {
        let keep = self.order.len().saturating_sub(skip_newest);
        self.order.iter().take(keep).map(|&(hash, _)| hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_recognised() {
        let hasher = IdHasher::new(7);
        let mut set = DedupSet::new(Window {
            capacity: 10,
            floor: 0,
            span: None,
        });
        assert!(set.insert(hasher.hash("a")));
        assert!(!set.insert(hasher.hash("a")));
        assert!(set.insert(hasher.hash("b")));
    }

    #[test]
    fn the_oldest_ids_are_forgotten_beyond_capacity() {
        let mut set = DedupSet::new(Window {
            capacity: 3,
            floor: 0,
            span: None,
        });
        for h in 0..5u128 {
            set.insert(h);
        }
        assert_eq!(set.len(), 3);
        assert!(!set.contains(0) && !set.contains(1));
        assert!(set.contains(4));
        assert_eq!(set.oldest_first(0).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(set.oldest_first(1).collect::<Vec<_>>(), vec![2, 3]);
        // Needed for as long as the source runs: both were forgotten too early.
        assert_eq!(set.forgotten_early(), 2);
    }

    #[test]
    fn ids_are_kept_for_the_span_and_forgotten_after_it_beyond_the_floor() {
        let window = Window {
            capacity: 100,
            floor: 2,
            span: Some(Duration::from_millis(50)),
        };
        let mut set = DedupSet::new(window);
        for h in 0..10u128 {
            set.insert(h);
        }
        assert_eq!(set.len(), 10, "within the span every id is kept");
        std::thread::sleep(Duration::from_millis(60));
        set.insert(10);
        // Past the span only the floor of newest ids stays, besides the new one.
        assert_eq!(set.oldest_first(0).collect::<Vec<_>>(), vec![9, 10]);
        assert_eq!(set.forgotten_early(), 0, "nothing was needed any more");

        // A span longer than the capacity holds: reported, never over the capacity.
        let mut small = DedupSet::new(Window {
            capacity: 4,
            floor: 2,
            span: Some(Duration::from_secs(3600)),
        });
        for h in 0..10u128 {
            small.insert(h);
        }
        assert_eq!(small.len(), 4);
        assert_eq!(small.forgotten_early(), 6);
    }

    #[test]
    fn different_seeds_give_different_hashes() {
        assert_ne!(IdHasher::new(1).hash("x"), IdHasher::new(2).hash("x"));
    }
}
