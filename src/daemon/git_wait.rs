//! A reload that waits for git: while `.git/index.lock` exists the checkout may be half one
//! commit and half the next, so the spec directory is not read. The wait happens *beside* the
//! daemon's main loop, not in it: a lock left behind by a killed `git pull` may stay for ever,
//! and meanwhile drift, SIGHUP and leadership changes must still be handled.
//!
//! The loop asks [`GitWait::tick`] every [`GIT_POLL`] while a reload waits and tells
//! [`GitWait::check`] whether git is still busy. Past [`GIT_LOCK_BOUND`] the wait is reported
//! once (log, `/readyz`, systemd status); the metric shows it all along.

use std::time::Duration;

use tokio::time::Instant;

/// How often a waiting reload looks at the lock again.
pub(super) const GIT_POLL: Duration = Duration::from_millis(100);
/// After this long the lock is probably stale (a git process killed mid-checkout): the daemon
/// stops calling itself ready until the lock goes.
pub(super) const GIT_LOCK_BOUND: Duration = Duration::from_secs(30);

/// The reload waiting for git, if any.
#[derive(Debug, Default)]
pub(super) struct GitWait {
    /// When the waiting reload was first asked for; `None` when no reload waits.
    since: Option<Instant>,
    /// When to look at the lock next. A deadline, not a sleep started by each `tick`: the loop
    /// re-creates the `tick` future on every event, and a busy daemon must not starve it.
    next: Option<Instant>,
    /// Whether the waiting reload must look at every app (first sync, periodic resync, SIGHUP)
    /// rather than only the ones whose spec changed.
    all: bool,
    /// The wait went past [`GIT_LOCK_BOUND`] and was reported.
    reported: bool,
}

/// What [`GitWait::check`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum GitCheck {
    /// Still locked after `waited`; `past_bound` only the first time it goes past the bound.
    Waiting { waited: Duration, past_bound: bool },
    /// The lock is gone: reload now. `all`: look at every app. `was_reported`: the wait had
    /// been reported as stale, so readiness and the status line are to be given back.
    Idle { all: bool, was_reported: bool },
}

impl GitWait {
    /// A reload is needed while git is busy: wait for it (a wait already under way just takes
    /// on `all`).
    pub(super) fn defer(&mut self, all: bool) {
        let now = Instant::now();
        self.since.get_or_insert(now);
        self.next.get_or_insert(now + GIT_POLL);
        self.all |= all;
    }

    pub(super) fn waiting(&self) -> bool {
        self.since.is_some()
    }

    /// Resolves when the lock is due for another look (every [`GIT_POLL`]) while a reload
    /// waits; never otherwise.
    pub(super) async fn tick(&self) {
        match self.next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    }

    /// Records whether git is still `busy`; when it is not, the wait ends.
    pub(super) fn check(&mut self, busy: bool) -> GitCheck {
        let Some(since) = self.since else {
            return GitCheck::Idle {
                all: false,
                was_reported: false,
            };
        };
        if busy {
            self.next = Some(Instant::now() + GIT_POLL);
            let waited = since.elapsed();
            let past_bound = waited >= GIT_LOCK_BOUND && !self.reported;
            self.reported |= past_bound;
            return GitCheck::Waiting { waited, past_bound };
        }
        let done = GitCheck::Idle {
            all: self.all,
            was_reported: self.reported,
        };
        *self = GitWait::default();
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_is_reported_once_past_the_bound_and_ends_with_the_lock() {
        let mut wait = GitWait::default();
        assert!(!wait.waiting());
        wait.defer(false);
        assert!(wait.waiting());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            wait.check(true),
            GitCheck::Waiting {
                waited: Duration::from_secs(5),
                past_bound: false
            }
        );
        // A resync asked for meanwhile: the reload will look at every app.
        wait.defer(true);
        tokio::time::advance(GIT_LOCK_BOUND).await;
        assert_eq!(
            wait.check(true),
            GitCheck::Waiting {
                waited: Duration::from_secs(35),
                past_bound: true
            }
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            wait.check(true),
            GitCheck::Waiting {
                past_bound: false,
                ..
            }
        ));
        assert_eq!(
            wait.check(false),
            GitCheck::Idle {
                all: true,
                was_reported: true
            }
        );
        assert!(!wait.waiting());
        wait.defer(false);
        assert_eq!(
            wait.check(false),
            GitCheck::Idle {
                all: false,
                was_reported: false
            },
            "a new wait starts afresh"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tick_resolves_only_while_a_reload_waits() {
        let mut wait = GitWait::default();
        let idle = tokio::time::timeout(Duration::from_secs(3600), wait.tick()).await;
        assert!(idle.is_err(), "no reload waits: never resolves");
        wait.defer(false);
        let started = Instant::now();
        wait.tick().await;
        assert_eq!(started.elapsed(), GIT_POLL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_dropped_and_made_again_still_comes_on_time() {
        let mut wait = GitWait::default();
        wait.defer(false);
        let started = Instant::now();
        // Other events win the loop's select every 30 ms, dropping the tick each time.
        for _ in 0..3 {
            let interrupted = tokio::time::timeout(Duration::from_millis(30), wait.tick()).await;
            assert!(interrupted.is_err());
        }
        wait.tick().await;
        assert_eq!(started.elapsed(), GIT_POLL, "not pushed back by the events");
        assert!(matches!(wait.check(true), GitCheck::Waiting { .. }));
        wait.tick().await;
        assert_eq!(started.elapsed(), GIT_POLL * 2);
    }
}
