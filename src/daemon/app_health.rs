//! The daemon's view of each app's health ([`crate::health`]), kept up to date at the cost of
//! the apps that are not healthy: an app is looked at after each of its reconciles (one read of
//! its StatefulSet); only one whose StatefulSet is not all ready and rolled out costs the lists
//! of its namespace (pods, claims, Warning events), and is looked at again with backoff until it
//! is healthy. A healthy app costs nothing until its next reconcile.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::cluster::Cluster;
use crate::health::{Health, Observed, State, assess};
use crate::spec::AppKey;

/// The first look again at an app that is not healthy, doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Inner {
    /// Apps to look at, with when, and the backoff to use after that look.
    due: BTreeMap<AppKey, (Instant, Duration)>,
    health: HashMap<AppKey, Health>,
    /// Apps per state, kept with `health`: read after every reconcile (the STATUS line).
    counts: BTreeMap<State, i64>,
}

impl Inner {
    fn set(&mut self, key: &AppKey, health: Option<Health>) -> Option<Health> {
        if let Some(h) = &health {
            *self.counts.entry(h.state).or_default() += 1;
        }
        let was = match health {
            Some(h) => self.health.insert(key.clone(), h),
            None => self.health.remove(key),
        };
        if let Some(w) = &was {
            *self.counts.entry(w.state).or_default() -= 1;
        }
        was
    }
}

/// Each app's last known health and the looks to come.
#[derive(Default)]
pub struct AppHealth {
    inner: Mutex<Inner>,
    wake: Notify,
}

/// A change of one app's health: what it was (None: never looked at) and what it is.
pub struct Change {
    pub key: AppKey,
    pub was: Option<Health>,
    pub now: Health,
}

impl AppHealth {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Look at `key` soon (after a reconcile: its objects may have changed).
    pub fn schedule(&self, key: &AppKey) {
        self.inner()
            .due
            .insert(key.clone(), (Instant::now(), FIRST_BACKOFF));
        self.wake.notify_one();
    }

    /// The app is gone: no more looks, no health.
    pub fn forget(&self, key: &AppKey) -> Option<Health> {
        let mut inner = self.inner();
        inner.due.remove(key);
        inner.set(key, None)
    }

    pub fn of(&self, key: &AppKey) -> Option<Health> {
        self.inner().health.get(key).cloned()
    }

    /// Apps per health state, every state present (at 0 when none).
    pub fn counts(&self) -> BTreeMap<State, i64> {
        let mut counts: BTreeMap<State, i64> = State::ALL.into_iter().map(|s| (s, 0)).collect();
        counts.extend(self.inner().counts.iter().map(|(s, n)| (*s, *n)));
        counts
    }

    /// How many apps are degraded now.
    pub fn degraded(&self) -> i64 {
        self.inner()
            .counts
            .get(&State::Degraded)
            .copied()
            .unwrap_or(0)
    }

    /// The apps due now, at most `limit`, each with the backoff for its next look.
    fn take_due(&self, limit: usize) -> (Vec<(AppKey, Duration)>, Option<Instant>) {
        let mut inner = self.inner();
        let now = Instant::now();
        let due: Vec<(AppKey, Duration)> = inner
            .due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .take(limit)
            .map(|(k, (_, backoff))| (k.clone(), *backoff))
            .collect();
        for (key, _) in &due {
            inner.due.remove(key);
        }
        let next = inner.due.values().map(|(at, _)| *at).min();
        (due, next)
    }

    /// Records `health` for `key`; the change, when it is one.
    fn record(&self, key: &AppKey, health: Health, backoff: Duration) -> Option<Change> {
        let mut inner = self.inner();
        if !health.is_healthy() && !inner.due.contains_key(key) {
            let at = Instant::now() + backoff;
            inner
                .due
                .insert(key.clone(), (at, (backoff * 2).min(MAX_BACKOFF)));
        }
        let was = inner.set(key, Some(health.clone()));
        (was.as_ref() != Some(&health)).then(|| Change {
            key: key.clone(),
            was,
            now: health,
        })
    }

    /// Looks at the apps as they come due until `shutdown`, telling `on_change` each change.
    pub async fn run(
        &self,
        cluster: &Cluster,
        on_change: impl Fn(Change),
        shutdown: CancellationToken,
    ) {
        loop {
            let (due, next) = self.take_due(8);
            for (key, backoff) in due {
                match look(cluster, &key).await {
                    Ok(health) => {
                        if let Some(change) = self.record(&key, health, backoff) {
                            on_change(change);
                        }
                    }
                    Err(err) => {
                        warn!(app = %key, error = %crate::output::error_chain(&err), "cannot tell the app's health; trying again");
                        self.inner()
                            .due
                            .insert(key, (Instant::now() + backoff, MAX_BACKOFF));
                    }
                }
            }
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = sleep => {}
            }
        }
    }
}

/// One look at one app ([`Cluster::health_of`]).
async fn look(cluster: &Cluster, key: &AppKey) -> Result<Health, crate::cluster::ClusterError> {
    let mut found = cluster.health_of(std::slice::from_ref(key)).await?;
    // One key in, one health out; nothing read means nothing there.
    Ok(found
        .pop()
        .map_or_else(|| assess(&Observed::default()), |(_, h)| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> AppKey {
        AppKey::new("db", name)
    }

    fn health(state: State) -> Health {
        Health {
            state,
            reason: None,
            may_clear: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_unhealthy_app_is_looked_at_again_with_backoff_and_a_healthy_one_is_not() {
        let watch = AppHealth::default();
        watch.schedule(&key("a"));
        watch.schedule(&key("b"));
        let (due, _) = watch.take_due(8);
        assert_eq!(due.len(), 2);

        let change = watch
            .record(&key("a"), health(State::Progressing), FIRST_BACKOFF)
            .expect("a first look is a change");
        assert_eq!(change.was, None);
        assert!(
            watch
                .record(&key("b"), health(State::Healthy), FIRST_BACKOFF)
                .is_some()
        );
        // The same health again is no change.
        assert!(
            watch
                .record(&key("b"), health(State::Healthy), FIRST_BACKOFF)
                .is_none()
        );

        let (due, next) = watch.take_due(8);
        assert!(due.is_empty(), "nothing is due before its backoff");
        let next = next.expect("the unhealthy app is due again");
        assert_eq!(next - Instant::now(), FIRST_BACKOFF);
        tokio::time::advance(FIRST_BACKOFF).await;
        let (due, next) = watch.take_due(8);
        assert_eq!(due, [(key("a"), FIRST_BACKOFF * 2)]);
        assert_eq!(next, None, "the healthy app is not looked at again");

        let counts = watch.counts();
        assert_eq!(counts[&State::Healthy], 1);
        assert_eq!(counts[&State::Progressing], 1);
        assert_eq!(counts[&State::Degraded], 0);
        assert_eq!(
            watch.forget(&key("a")).map(|h| h.state),
            Some(State::Progressing)
        );
        assert_eq!(watch.counts()[&State::Progressing], 0);
    }
}
