//! A keyed, deduplicated work queue with per-key exponential backoff: one entry per app, however
//! many events arrive for it; a key being worked on is never handed out twice, and an event that
//! arrives meanwhile runs it once more afterwards.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First retry delay after a failure; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(500);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
}

struct State<K> {
    /// When each queued key is due.
    due: HashMap<K, Instant>,
    /// Keys handed out and not yet done.
    running: HashSet<K>,
    /// Keys that were added while running: they go again when done.
    again: HashSet<K>,
    /// Consecutive failures per key, for the backoff.
    failures: HashMap<K, u32>,
}

impl<K: Clone + Eq + Hash + Ord> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            state: Mutex::new(State {
                due: HashMap::new(),
                running: HashSet::new(),
                again: HashSet::new(),
                failures: HashMap::new(),
            }),
            wake: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    /// Queues `key` to run now (an earlier due time wins; a running key runs again after).
    pub fn add(&self, key: K) {
        self.add_at(key, Instant::now());
    }

    /// Queues `key` to run after `delay`, unless it is already due sooner.
    pub fn add_after(&self, key: K, delay: Duration) {
        self.add_at(key, Instant::now() + delay);
    }

    fn add_at(&self, key: K, at: Instant) {
        let mut state = self.lock();
        if state.running.contains(&key) {
            // Run it again once the current run ends; `done` decides when.
            state.again.insert(key);
        } else {
            let entry = state.due.entry(key).or_insert(at);
            if at < *entry {
                *entry = at;
            }
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Waits for the next due key and marks it running; None once `shutdown` is cancelled.
    pub async fn next(&self, shutdown: &CancellationToken) -> Option<K> {
        loop {
            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                // Earliest due first; ties broken by key order so runs are reproducible.
                let earliest = state
                    .due
                    .iter()
                    .min_by(|(ka, a), (kb, b)| (a, ka).cmp(&(b, kb)))
                    .map(|(k, at)| (*at, k.clone()));
                match earliest {
                    Some((at, key)) if at <= now => {
                        state.due.remove(&key);
                        state.running.insert(key.clone());
                        return Some(key);
                    }
                    Some((at, _)) => Some(at),
                    None => None,
                }
            };
            let notified = self.wake.notified();
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = notified => {}
                _ = sleep_until(wait) => {}
            }
        }
    }

    /// Ends a run. A failure requeues the key with backoff; success resets it. A key added while
    /// it ran is queued again at once.
    pub fn done(&self, key: &K, succeeded: bool) {
        let mut state = self.lock();
        state.running.remove(key);
        let again = state.again.remove(key);
        if succeeded {
            state.failures.remove(key);
            if again {
                state.due.insert(key.clone(), Instant::now());
            }
        } else {
            let failures = state.failures.entry(key.clone()).or_insert(0);
            *failures += 1;
            let delay = backoff(*failures, key);
            let at = if again {
                Instant::now()
            } else {
                Instant::now() + delay
            };
            state.due.insert(key.clone(), at);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Ends a run that should simply go again after `delay` (a removal waiting for pods),
    /// without counting as a failure.
    pub fn done_requeue(&self, key: &K, delay: Duration) {
        let mut state = self.lock();
        state.running.remove(key);
        state.again.remove(key);
        state.due.insert(key.clone(), Instant::now() + delay);
        drop(state);
        self.wake.notify_one();
    }

    /// Keys queued or running.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.due.len() + state.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        // A panic while holding this lock leaves plain maps behind, still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// 0.5s, 1s, 2s … capped at 5 minutes, with up to 20% jitter so that apps failing together do
/// not retry in lockstep. The jitter is derived from the key, so it is stable per app.
fn backoff<K: Hash>(failures: u32, key: &K) -> Duration {
    use std::hash::Hasher;
    let exp = BASE_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    let capped = exp.min(MAX_BACKOFF);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    failures.hash(&mut hasher);
    let jitter_permille = hasher.finish() % 200;
    capped + capped.mul_f64(jitter_permille as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_for_one_key_is_one_run() {
        let q = WorkQueue::default();
        for _ in 0..10 {
            q.add("a");
        }
        q.add("b");
        let token = CancellationToken::new();
        assert_eq!(q.next(&token).await, Some("a"));
        assert_eq!(q.next(&token).await, Some("b"));
        assert_eq!(q.len(), 2, "both running, nothing else queued");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_added_while_running_runs_again_after() {
        let q = WorkQueue::default();
        let token = CancellationToken::new();
        q.add("a");
        assert_eq!(q.next(&token).await, Some("a"));
        q.add("a");
        q.add("a");
        // Not handed out twice while running.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), q.next(&token))
                .await
                .is_err()
        );
        q.done(&"a", true);
        assert_eq!(q.next(&token).await, Some("a"));
        q.done(&"a", true);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_resets() {
        let q = WorkQueue::default();
        let token = CancellationToken::new();
        q.add("a");
        let mut waits = Vec::new();
        for _ in 0..4 {
            let key = q.next(&token).await;
            assert_eq!(key, Some("a"));
            q.done(&"a", false);
            let start = Instant::now();
            assert_eq!(q.next(&token).await, Some("a"));
            waits.push(start.elapsed());
            q.done(&"a", false);
            q.add("a");
        }
        assert_eq!(q.failures(&"a"), 8);
        let key = q.next(&token).await;
        assert_eq!(key, Some("a"));
        q.done(&"a", true);
        assert_eq!(q.failures(&"a"), 0);
        // Each wait at least doubles the base: 0.5s, 2s, 8s, 32s (every second failure measured).
        for (i, w) in waits.iter().enumerate() {
            let base = BASE_BACKOFF * (1 << (2 * i));
            assert!(
                *w >= base && *w <= base.mul_f64(1.2) + Duration::from_millis(1),
                "wait {i}: {w:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_wait_and_shutdown_ends_next() {
        let q = WorkQueue::default();
        let token = CancellationToken::new();
        q.add_after("later", Duration::from_secs(5));
        let start = Instant::now();
        assert_eq!(q.next(&token).await, Some("later"));
        assert!(start.elapsed() >= Duration::from_secs(5));
        token.cancel();
        assert_eq!(q.next(&token).await, None);
    }

    #[test]
    fn backoff_is_capped() {
        assert!(backoff(40, &"x") <= MAX_BACKOFF.mul_f64(1.2));
        assert!(backoff(1, &"x") >= BASE_BACKOFF);
    }
}
