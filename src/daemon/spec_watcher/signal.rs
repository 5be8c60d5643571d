//! The signal from the watcher's task to the daemon: the quiet window that ends a burst, and
//! the merged rescan the daemon takes (a change is never lost to a full channel).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{DATA_LINK, FILES, OVERFLOW, RescanReason, Shared, TREE, WatchEvent};

/// The quiet window that ends a burst.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settle {
    /// No new signal for this long ends a lone change of spec files that are still there.
    pub(super) quick: Duration,
    /// No new signal for this long ends a burst, or any other change.
    pub(super) quiet: Duration,
    /// Longest a burst is held back, counted from its first signal.
    pub(super) cap: Duration,
    /// Signals this soon after the first are the same change (one save is several events).
    pub(super) same_change: Duration,
}

impl Settle {
    /// Wait until signals stop (or `cap` has passed). False when stopped. The window is
    /// [`Settle::quick`] while nothing says wait: only spec files that are still there changed,
    /// in one piece. A second change, or anything else, waits out [`Settle::quiet`].
    pub(super) async fn wait(&self, shared: &Shared, stop: &CancellationToken) -> bool {
        let started = tokio::time::Instant::now();
        let deadline = started + self.cap;
        let mut quiet = self.quick;
        loop {
            if shared.pending.load(Ordering::Acquire) != FILES {
                quiet = self.quiet;
            }
            let until = deadline.min(tokio::time::Instant::now() + quiet);
            tokio::select! {
                () = stop.cancelled() => return false,
                () = tokio::time::sleep_until(until) => return true,
                () = shared.wake.notified() => {
                    if started.elapsed() > self.same_change {
                        quiet = self.quiet;
                    }
                }
            }
        }
    }
}

/// What the task has signalled and the daemon not yet taken: each signal merges into it, so a
/// change is never lost to a full channel.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) reason: RescanReason,
    files: Option<BTreeSet<PathBuf>>,
}

impl Pending {
    /// Both signals in one: the weightier reason, and files only when both name files.
    fn merge(self, later: Pending) -> Pending {
        let rank = |r: RescanReason| match r {
            RescanReason::Overflow => 3,
            RescanReason::LinkSwapped => 2,
            RescanReason::Files => 1,
            RescanReason::Resync => 0,
        };
        let reason = if rank(later.reason) > rank(self.reason) {
            later.reason
        } else {
            self.reason
        };
        let files = match (self.files, later.files) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            _ => None,
        };
        Pending { reason, files }
    }
}

/// The task's end of the signal: merge into `pending`, then wake the daemon.
pub(super) struct Outbox {
    /// Holds at most one wake-up; a full channel means the daemon has yet to take `pending`.
    pub(super) wake: mpsc::Sender<()>,
    pub(super) pending: Arc<Mutex<Option<Pending>>>,
}

impl Outbox {
    /// False once the daemon's end is gone.
    pub(super) fn send(&self, signal: Pending) -> bool {
        {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            *pending = Some(match pending.take() {
                Some(earlier) => earlier.merge(signal),
                None => signal,
            });
        }
        match self.wake.try_send(()) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(())) => true,
            Err(mpsc::error::TrySendError::Closed(())) => false,
        }
    }
}

/// The daemon's end of the signals.
#[derive(Debug)]
pub struct Rescans {
    pub(super) wake: mpsc::Receiver<()>,
    pub(super) pending: Arc<Mutex<Option<Pending>>>,
}

impl Rescans {
    /// The next signal: every change since the last one. `None` once the watcher has stopped.
    /// Cancel-safe: nothing is taken before the wake-up is.
    pub async fn recv(&mut self) -> Option<WatchEvent> {
        loop {
            self.wake.recv().await?;
            // A wake-up can find nothing: its signal was taken with the one before.
            let taken = self
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(Pending { reason, files }) = taken {
                return Some(WatchEvent::Rescan { reason, files });
            }
        }
    }
}

/// What the taken bits (and files) tell the daemon; `None` when nothing it reads changed.
pub(super) fn signal_of(
    bits: u8,
    relinked: bool,
    resync_due: bool,
    files: BTreeSet<PathBuf>,
) -> Option<Pending> {
    let reason = if bits & OVERFLOW != 0 {
        RescanReason::Overflow
    } else if relinked || bits & DATA_LINK != 0 {
        RescanReason::LinkSwapped
    } else if bits & (FILES | TREE) != 0 {
        RescanReason::Files
    } else if resync_due {
        RescanReason::Resync
    } else {
        return None;
    };
    // Named files only when they are the whole story: anything else reads the directory.
    let only_files = bits & !FILES == 0 && !relinked && !resync_due && !files.is_empty();
    Some(Pending {
        reason,
        files: only_files.then_some(files),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> BTreeSet<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn spec_files_alone_are_named() {
        let signal = signal_of(FILES, false, false, files(&["/d/a.toml"])).expect("a signal");
        assert_eq!(signal.reason, RescanReason::Files);
        assert_eq!(signal.files, Some(files(&["/d/a.toml"])));
    }

    #[test]
    fn anything_besides_spec_files_reads_the_directory() {
        let named = || files(&["/d/a.toml"]);
        for (bits, relinked, resync, reason) in [
            (FILES | TREE, false, false, RescanReason::Files),
            (TREE, false, false, RescanReason::Files),
            (FILES | OVERFLOW, false, false, RescanReason::Overflow),
            (FILES | DATA_LINK, false, false, RescanReason::LinkSwapped),
            (FILES, true, false, RescanReason::LinkSwapped),
            (FILES, false, true, RescanReason::Files),
            (0, false, true, RescanReason::Resync),
        ] {
            let signal = signal_of(bits, relinked, resync, named()).expect("a signal");
            assert_eq!(signal.reason, reason, "{bits:b}");
            assert_eq!(signal.files, None, "{bits:b} {relinked} {resync}");
        }
        // The bit without its files (they were taken with an earlier signal) names nothing.
        assert_eq!(
            signal_of(FILES, false, false, BTreeSet::new()).map(|s| s.files),
            Some(None)
        );
        assert!(signal_of(0, false, false, BTreeSet::new()).is_none());
    }

    #[test]
    fn merged_signals_keep_the_weightier_reason_and_name_files_only_if_both_do() {
        let files_signal = |names: &[&str]| Pending {
            reason: RescanReason::Files,
            files: Some(files(names)),
        };
        let merged = files_signal(&["/d/a.toml"]).merge(files_signal(&["/d/b.toml"]));
        assert_eq!(merged.reason, RescanReason::Files);
        assert_eq!(merged.files, Some(files(&["/d/a.toml", "/d/b.toml"])));

        let whole = Pending {
            reason: RescanReason::Overflow,
            files: None,
        };
        let merged = files_signal(&["/d/a.toml"]).merge(whole);
        assert_eq!(merged.reason, RescanReason::Overflow);
        assert_eq!(merged.files, None);

        let resync = Pending {
            reason: RescanReason::Resync,
            files: None,
        };
        let merged = resync.merge(files_signal(&["/d/a.toml"]));
        assert_eq!(merged.reason, RescanReason::Files);
        assert_eq!(merged.files, None, "a resync reads everything");
    }

    fn idle_shared() -> Shared {
        Shared {
            pending: std::sync::atomic::AtomicU8::new(0),
            files: Mutex::new(BTreeSet::new()),
            wake: tokio::sync::Notify::new(),
            root: Mutex::new(None),
        }
    }

    const SETTLE: Settle = Settle {
        quick: Duration::from_millis(5),
        quiet: Duration::from_millis(25),
        cap: Duration::from_secs(1),
        same_change: Duration::from_millis(1),
    };

    #[tokio::test(start_paused = true)]
    async fn one_saves_events_are_one_change_and_a_later_one_makes_a_burst() {
        let stop = CancellationToken::new();
        // A rename over a spec: its halves and their pair come together, each a signal.
        let shared = idle_shared();
        shared.signal(FILES);
        shared.signal(FILES);
        let started = tokio::time::Instant::now();
        assert!(SETTLE.wait(&shared, &stop).await);
        assert_eq!(started.elapsed(), SETTLE.quick, "one save is a lone change");

        // A second save 3 ms into the window: a burst, which waits out the quiet window.
        let shared = idle_shared();
        shared.signal(FILES);
        let started = tokio::time::Instant::now();
        let second = async {
            tokio::time::sleep(Duration::from_millis(3)).await;
            shared.signal(FILES);
        };
        let (settled, ()) = tokio::join!(SETTLE.wait(&shared, &stop), second);
        assert!(settled);
        assert_eq!(started.elapsed(), Duration::from_millis(3) + SETTLE.quiet);

        // Anything but spec files that are still there waits out the quiet window at once.
        let shared = idle_shared();
        shared.signal(TREE);
        let started = tokio::time::Instant::now();
        assert!(SETTLE.wait(&shared, &stop).await);
        assert_eq!(started.elapsed(), SETTLE.quiet);
    }

    #[tokio::test]
    async fn a_signal_sent_while_one_waits_is_merged_into_it() {
        let (wake, rx) = mpsc::channel(1);
        let pending = Arc::new(Mutex::new(None));
        let outbox = Outbox {
            wake,
            pending: Arc::clone(&pending),
        };
        let mut rescans = Rescans { wake: rx, pending };
        for name in ["/d/a.toml", "/d/b.toml"] {
            assert!(outbox.send(Pending {
                reason: RescanReason::Files,
                files: Some(files(&[name])),
            }));
        }
        assert_eq!(
            rescans.recv().await,
            Some(WatchEvent::Rescan {
                reason: RescanReason::Files,
                files: Some(files(&["/d/a.toml", "/d/b.toml"])),
            })
        );
        drop(outbox);
        assert_eq!(rescans.recv().await, None);
    }
}
