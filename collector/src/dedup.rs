//! Recognising events that were already delivered.
//!
//! Sources re-read on purpose (overlap windows for late events) and by accident (a restart from the
//! last checkpoint). Event ids are hashed to 128 bits with a per-installation random seed, so the
//! persisted set is small and nobody can craft an id that collides with another to hide it.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

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

/// A bounded first-in-first-out set of id hashes: the newest `capacity` ids are remembered.
#[derive(Debug)]
pub struct DedupSet {
    capacity: usize,
    order: VecDeque<u128>,
    members: HashSet<u128, BuildHasherDefault<Prehashed>>,
}

impl DedupSet {
    pub fn new(capacity: usize) -> Self {
        DedupSet {
            capacity,
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            members: HashSet::with_capacity_and_hasher(
                capacity.min(1 << 16),
                BuildHasherDefault::default(),
            ),
        }
    }

    /// Restores a set from hashes listed oldest first.
    pub fn from_hashes(capacity: usize, hashes: impl IntoIterator<Item = u128>) -> Self {
        let mut set = DedupSet::new(capacity);
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
        self.order.push_back(hash);
        if self.order.len() > self.capacity
            && let Some(evicted) = self.order.pop_front()
        {
            self.members.remove(&evicted);
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

    /// The remembered hashes, oldest first, leaving out the newest `skip_newest` (ids of batches that
    /// are dispatched but not yet committed must not be persisted).
    pub fn oldest_first(&self, skip_newest: usize) -> impl Iterator<Item = u128> + '_ {
        let keep = self.order.len().saturating_sub(skip_newest);
        self.order.iter().take(keep).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_id_is_recognised() {
        let hasher = IdHasher::new(7);
        let mut set = DedupSet::new(10);
        assert!(set.insert(hasher.hash("a")));
        assert!(!set.insert(hasher.hash("a")));
        assert!(set.insert(hasher.hash("b")));
    }

    #[test]
    fn the_oldest_ids_are_forgotten_beyond_capacity() {
        let mut set = DedupSet::new(3);
        for h in 0..5u128 {
            set.insert(h);
        }
        assert_eq!(set.len(), 3);
        assert!(!set.contains(0) && !set.contains(1));
        assert!(set.contains(4));
        assert_eq!(set.oldest_first(0).collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(set.oldest_first(1).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn different_seeds_give_different_hashes() {
        assert_ne!(IdHasher::new(1).hash("x"), IdHasher::new(2).hash("x"));
    }
}
