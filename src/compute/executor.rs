//! The per-container executor: operations on one container UUID run strictly one at a
//! time, in the order they were submitted; operations on different UUIDs run
//! concurrently, at most `max_concurrent` at once.
//!
//! zun takes an in-process lock `zun-<uuid>` inside a green thread, and eventlet's lock
//! is not fair, so two casts for one container can run in either order. Here
//! [`Executor::submit`] appends to the UUID's FIFO synchronously, before returning: the
//! RPC layer calls it in delivery order, so arrival order is execution order.
//!
//! - A UUID's queue exists only while it has work; an idle queue is freed.
//! - A running queue holds one concurrency permit only while one job runs; the
//!   semaphore is FIFO, so waiting UUIDs are served in the order they asked.
//! - [`Executor::shutdown`] stops taking work, lets running jobs finish, and drops the
//!   jobs that never started (their submitters see them abandoned).
use crate::admin::Metrics;
use futures_util::future::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, Semaphore};

/// A unit of work. Not polled until its turn comes.
pub type Job = BoxFuture<'static, ()>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ExecutorError {
    #[error("the executor is shutting down")]
    ShuttingDown,
}

#[derive(Default)]
struct State {
    queues: HashMap<String, VecDeque<Job>>,
    closing: bool,
    queued: usize,
    running: usize,
}

pub struct Executor {
    state: Mutex<State>,
    permits: Arc<Semaphore>,
    changed: Notify,
    metrics: Option<Arc<Metrics>>,
}

impl Executor {
    pub fn new(max_concurrent: usize, metrics: Option<Arc<Metrics>>) -> Arc<Self> {
        Arc::new(Executor {
            state: Mutex::new(State::default()),
            permits: Arc::new(Semaphore::new(max_concurrent.max(1))),
            changed: Notify::new(),
            metrics,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish_gauges(&self, st: &State) {
        if let Some(m) = &self.metrics {
            m.executor_queued.set(st.queued as i64);
            m.executor_in_flight.set(st.running as i64);
        }
    }

    /// Appends `job` to `uuid`'s queue. Returns at once; the job runs in its turn.
    pub fn submit(self: &Arc<Self>, uuid: &str, job: Job) -> Result<(), ExecutorError> {
        let mut st = self.lock();
        if st.closing {
            return Err(ExecutorError::ShuttingDown);
        }
        st.queued += 1;
        let start_runner = match st.queues.get_mut(uuid) {
            Some(q) => {
                q.push_back(job);
                false
            }
            None => {
                st.queues.insert(uuid.to_string(), VecDeque::from([job]));
                true
            }
        };
        self.publish_gauges(&st);
        drop(st);
        if start_runner {
            let this = self.clone();
            let uuid = uuid.to_string();
            tokio::spawn(async move { this.run_queue(uuid).await });
        }
        Ok(())
    }

    /// Drains one UUID's queue, one job at a time.
    async fn run_queue(self: Arc<Self>, uuid: String) {
        loop {
            let permit = match self.permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => return,
            };
            let job = {
                let mut st = self.lock();
                if st.closing {
                    // Never started: dropped, so their submitters see them abandoned.
                    if let Some(q) = st.queues.remove(&uuid) {
                        st.queued -= q.len();
                    }
                    self.publish_gauges(&st);
                    drop(st);
                    self.changed.notify_waiters();
                    return;
                }
                let Some(job) = st.queues.get_mut(&uuid).and_then(VecDeque::pop_front) else {
                    st.queues.remove(&uuid);
                    drop(st);
                    self.changed.notify_waiters();
                    return;
                };
                st.queued -= 1;
                st.running += 1;
                self.publish_gauges(&st);
                job
            };
            // A panic inside a job must not take the queue down with it.
            let outcome = tokio::spawn(job).await;
            if let Err(e) = outcome {
                tracing::error!(container = %uuid, error = %e, "operation panicked");
            }
            drop(permit);
            let mut st = self.lock();
            st.running -= 1;
            let empty = st.queues.get(&uuid).is_none_or(VecDeque::is_empty);
            if empty {
                st.queues.remove(&uuid);
            }
            self.publish_gauges(&st);
            drop(st);
            self.changed.notify_waiters();
            if empty {
                return;
            }
        }
    }

    /// (queued, running) right now.
    pub fn load(&self) -> (usize, usize) {
        let st = self.lock();
        (st.queued, st.running)
    }

    /// True while `uuid` has an operation queued or running.
    pub fn is_busy(&self, uuid: &str) -> bool {
        self.lock().queues.contains_key(uuid)
    }

    /// Number of UUIDs with a live queue.
    pub fn live_queues(&self) -> usize {
        self.lock().queues.len()
    }

    /// Stops taking work, drops what has not started, and waits until the running jobs
    /// finish or `deadline` passes. True when everything finished.
    pub async fn shutdown(&self, deadline: Instant) -> bool {
        {
            let mut st = self.lock();
            st.closing = true;
            // Runners waiting for a permit will drop their queues when they wake; drop
            // the rest now.
            let dropped: usize = st.queues.values().map(VecDeque::len).sum();
            for q in st.queues.values_mut() {
                q.clear();
            }
            st.queued -= dropped;
            self.publish_gauges(&st);
        }
        self.wait_idle(deadline).await
    }

    /// Waits until nothing is queued or running, or `deadline`.
    pub async fn wait_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            {
                let st = self.lock();
                if st.running == 0 && st.queued == 0 {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
                let st = self.lock();
                return st.running == 0 && st.queued == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn same_uuid_runs_in_submission_order() {
        let ex = Executor::new(8, None);
        let log = Arc::new(Mutex::new(Vec::new()));
        for i in 0..200u32 {
            let log = log.clone();
            // Earlier jobs sleep longer: an unfair lock would let later ones overtake.
            let delay = Duration::from_micros(((200 - i) * 10) as u64);
            ex.submit(
                "u1",
                Box::pin(async move {
                    tokio::time::sleep(delay).await;
                    log.lock().unwrap().push(i);
                }),
            )
            .unwrap();
        }
        assert!(ex.wait_idle(Instant::now() + Duration::from_secs(30)).await);
        assert_eq!(*log.lock().unwrap(), (0..200).collect::<Vec<_>>());
        assert_eq!(ex.live_queues(), 0, "idle queues are freed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn different_uuids_run_concurrently_within_the_limit() {
        let ex = Executor::new(3, None);
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        for i in 0..12 {
            let (now, peak) = (now.clone(), peak.clone());
            ex.submit(
                &format!("u{i}"),
                Box::pin(async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        }
        assert!(ex.wait_idle(Instant::now() + Duration::from_secs(30)).await);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_finishes_running_and_drops_unstarted() {
        let ex = Executor::new(1, None);
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        ex.submit(
            "a",
            Box::pin(async move {
                let _ = started_tx.send(());
                let _ = release_rx.await;
                d.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        ex.submit(
            "a",
            Box::pin(async move {
                let _ = tx.send(());
            }),
        )
        .unwrap();
        started_rx.await.unwrap();
        let ex2 = ex.clone();
        let stopper = tokio::spawn(async move { ex2.shutdown(Instant::now() + Duration::from_secs(30)).await });
        // Wait until shutdown has begun (new work refused), then release the running job.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ex.submit("b", Box::pin(async {})).is_ok() {
            assert!(Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        release_tx.send(()).unwrap();
        assert!(stopper.await.unwrap());
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert!(rx.await.is_err(), "the unstarted job was dropped, not run");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_its_queue() {
        let ex = Executor::new(2, None);
        ex.submit("p", Box::pin(async { panic!("boom") })).unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        ex.submit(
            "p",
            Box::pin(async move {
                let _ = tx.send(7);
            }),
        )
        .unwrap();
        assert_eq!(rx.await.unwrap(), 7);
    }
}
