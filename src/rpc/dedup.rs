//! The `_unique_id` duplicate filter. oslo keeps the last 16 ids per listener; we keep
//! more, since redeliveries after a reconnect can arrive later than that.
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

pub struct UniqueIds {
    capacity: usize,
    inner: Mutex<(VecDeque<String>, HashSet<String>)>,
}

impl UniqueIds {
    pub fn new(capacity: usize) -> Self {
        UniqueIds { capacity: capacity.max(1), inner: Mutex::new((VecDeque::new(), HashSet::new())) }
    }

    /// Records `id`; false when it was already there.
    pub fn insert(&self, id: &str) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, set) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() == self.capacity {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        order.push_back(id.to_string());
        set.insert(id.to_string());
        true
    }

    /// Forgets `id`, so a later redelivery of the same message is processed again
    /// (used when a request could not be started and goes back to the queue).
    pub fn forget(&self, id: &str) {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (order, set) = &mut *guard;
        if set.remove(id) {
            order.retain(|x| x != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_duplicates_within_capacity() {
        let u = UniqueIds::new(2);
        assert!(u.insert("a"));
        assert!(!u.insert("a"));
        assert!(u.insert("b"));
        assert!(u.insert("c")); // evicts a
        assert!(u.insert("a"));
        u.forget("a");
        assert!(u.insert("a"));
    }
}
