//! The `_unique_id` duplicate filter. oslo keeps the last 16 ids per listener; we keep
//! more, since redeliveries after a reconnect can arrive later than that.
//!
//! oslo acknowledges before it runs, so for oslo a repeated id is always a copy of a
//! message already settled. Here a message is settled only after its outcome, so a
//! copy can arrive while the first one still runs (the broker redelivers everything a
//! closed channel held). Acknowledging that copy at once would lose the message if the
//! process died before the first one finished; so the filter remembers whether the
//! first copy is still *running* and hands the copy a [`Held`] ticket that resolves to
//! the first copy's settlement.
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::oneshot;

/// How the first copy of a message was settled; a held copy is settled the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Its outcome is durable: the copy is acknowledged and dropped.
    Acked,
    /// Rejected as poison: the copy is rejected too.
    Rejected,
    /// Handed back to the broker unstarted: the copy goes back too (requeued).
    Requeued,
}

/// A copy waiting for the first one to settle. If the filter forgets the id without
/// settling it (eviction), the ticket resolves to [`Settlement::Requeued`].
pub struct Held(oneshot::Receiver<Settlement>);

impl Held {
    pub async fn settlement(self) -> Settlement {
        self.0.await.unwrap_or(Settlement::Requeued)
    }
}

/// What [`UniqueIds::insert`] found.
pub enum Seen {
    /// First time: the caller runs it and must call [`UniqueIds::settle`] afterwards.
    New,
    /// The first copy still runs: settle this one like it, when it is settled.
    Running(Held),
    /// The first copy is settled: drop this one.
    Settled,
}

enum Entry {
    Running(Vec<oneshot::Sender<Settlement>>),
    Settled,
}

pub struct UniqueIds {
    capacity: usize,
    inner: Mutex<(VecDeque<String>, HashMap<String, Entry>)>,
}

impl UniqueIds {
    pub fn new(capacity: usize) -> Self {
        UniqueIds { capacity: capacity.max(1), inner: Mutex::new((VecDeque::new(), HashMap::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (VecDeque<String>, HashMap<String, Entry>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `id` as running, or says what became of its first copy.
    pub fn insert(&self, id: &str) -> Seen {
        let mut guard = self.lock();
        let (order, map) = &mut *guard;
        match map.get_mut(id) {
            Some(Entry::Settled) => return Seen::Settled,
            Some(Entry::Running(waiters)) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                return Seen::Running(Held(rx));
            }
            None => {}
        }
        if order.len() >= self.capacity {
            if let Some(old) = order.pop_front() {
                // A running entry evicted: its waiters see `Requeued` (dropped senders).
                map.remove(&old);
            }
        }
        order.push_back(id.to_string());
        map.insert(id.to_string(), Entry::Running(Vec::new()));
        Seen::New
    }

    /// The first copy of `id` was settled: held copies follow it. A requeued message
    /// is forgotten, so its redelivery is processed again.
    pub fn settle(&self, id: &str, how: Settlement) {
        let mut guard = self.lock();
        let (order, map) = &mut *guard;
        let waiters = match how {
            Settlement::Requeued => {
                let old = map.remove(id);
                if old.is_some() {
                    order.retain(|x| x != id);
                }
                old
            }
            _ => map.get_mut(id).map(|e| std::mem::replace(e, Entry::Settled)),
        };
        drop(guard);
        if let Some(Entry::Running(waiters)) = waiters {
            for w in waiters {
                let _ = w.send(how);
            }
        }
    }

    /// Forgets `id`, so a later redelivery of the same message is processed again
    /// (used when a request could not be started and goes back to the queue).
    pub fn forget(&self, id: &str) {
        self.settle(id, Settlement::Requeued);
    }

    /// Ids remembered now (running or settled).
    pub fn len(&self) -> usize {
        self.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_new(s: Seen) -> bool {
        matches!(s, Seen::New)
    }

    #[test]
    fn drops_duplicates_within_capacity() {
        let u = UniqueIds::new(2);
        assert!(is_new(u.insert("a")));
        u.settle("a", Settlement::Acked);
        assert!(matches!(u.insert("a"), Seen::Settled));
        assert!(is_new(u.insert("b")));
        assert!(is_new(u.insert("c"))); // evicts a
        assert!(is_new(u.insert("a")));
        u.forget("a");
        assert!(is_new(u.insert("a")));
    }

    #[tokio::test]
    async fn a_copy_of_a_running_message_follows_its_settlement() {
        let u = UniqueIds::new(8);
        assert!(is_new(u.insert("a")));
        let Seen::Running(held) = u.insert("a") else { panic!("expected a held copy") };
        let Seen::Running(held2) = u.insert("a") else { panic!("expected a held copy") };
        u.settle("a", Settlement::Rejected);
        assert_eq!(held.settlement().await, Settlement::Rejected);
        assert_eq!(held2.settlement().await, Settlement::Rejected);
        assert!(matches!(u.insert("a"), Seen::Settled));

        assert!(is_new(u.insert("b")));
        let Seen::Running(held) = u.insert("b") else { panic!("expected a held copy") };
        u.settle("b", Settlement::Requeued);
        assert_eq!(held.settlement().await, Settlement::Requeued);
        assert!(is_new(u.insert("b")), "a requeued message runs again when it comes back");
    }

    #[tokio::test]
    async fn eviction_of_a_running_id_requeues_its_copies() {
        let u = UniqueIds::new(1);
        assert!(is_new(u.insert("a")));
        let Seen::Running(held) = u.insert("a") else { panic!("expected a held copy") };
        assert!(is_new(u.insert("b")));
        assert_eq!(held.settlement().await, Settlement::Requeued);
    }
}
