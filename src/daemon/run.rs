//! The daemon's wiring: file events and owned-object watches feed one keyed work queue; a
//! bounded pool of workers plans and converges one app at a time.
//!
//! Every task has an owner: they live in one `JoinSet` and end with the shutdown token. What a
//! worker does with one app is in `reconcile`.

mod reconcile;
mod tell;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::admin::{self, Health};
use super::app_health::AppHealth;
use super::app_state::AppState;
use super::git_wait::{GitCheck, GitWait};
use super::metrics::Metrics;
use super::notifications::Notifier;
use super::queue::WorkQueue;
use super::spec_watcher::{self, RescanReason, WatchEvent, WatchOptions};
use super::systemd::Systemd;
use crate::cluster::{Cluster, OwnedCache};
use crate::config::Config;
use crate::spec::{AppKey, Loaded, SpecCache};
use reconcile::worker;

mod specs;
mod states;

use specs::{LastLoad, reload, reload_unless_git_busy};
use states::AppStates;

/// How the daemon runs, from the command line.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub dir: PathBuf,
    /// Watch and report plans and diffs; never write.
    pub dry_run: bool,
    pub admin_addr: SocketAddr,
    /// Apps converged at the same time.
    pub concurrency: usize,
    /// Allow recreates for every app (the spec key does it per app).
    pub allow_recreate: bool,
    /// Take part in leader election (also on with `leader_election.enabled` in the config).
    pub leader_elect: bool,
}

/// Messages from the process (signal handling lives in the binary, not here).
#[derive(Debug)]
pub enum Control {
    /// SIGHUP: a re-read daemon config.
    Reload(Box<Config>),
}

/// How long a removal waits between looks at its pods.
const REMOVAL_POLL: Duration = Duration::from_millis(500);
/// How long shutdown waits for steps in flight before giving up on them (they resume next start).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The systemd status of a berth that does not hold the leader lease.
const STANDBY_STATUS: &str = "standby: another berth holds the leader lease";

/// What the workers share.
struct Shared {
    cluster: Cluster,
    cache: OwnedCache,
    queue: WorkQueue<AppKey>,
    metrics: Arc<Metrics>,
    config: RwLock<Config>,
    options: DaemonOptions,
    /// The last loaded spec directory; swapped whole on each reload.
    specs: RwLock<Arc<Loaded>>,
    commit: RwLock<Option<String>>,
    /// The hash of each app's spec as last converged successfully: a plan with changes for an
    /// app whose spec is the same as then means someone else changed the live objects (drift).
    /// A hash, not a copy: a copy of every spec was megabytes at 1000 apps.
    converged: Mutex<HashMap<AppKey, u64>>,
    /// Each app's state, with a running count per state for berth_apps{state} and the systemd
    /// status line.
    states: Mutex<AppStates>,
    retained_pvcs: Mutex<HashSet<String>>,
    /// Whether this process takes part in leader election (else it always leads).
    elects: bool,
    /// Checked specs by file text, so a reload re-checks only the files that changed.
    spec_cache: Mutex<SpecCache>,
    /// What the last full load was made with (None before one succeeded): whether changed
    /// files may be read alone.
    last_load: Mutex<Option<LastLoad>>,
    /// Apps whose current drift was already counted and logged (once per occurrence, not per
    /// look: in report mode every status change would count it again).
    drift_seen: Mutex<HashSet<AppKey>>,
    /// For each app whose spec went, the apps that arrived in the same reload: a move is told
    /// by these (see [`PlanOptions::arrivals`]) even after the new app has been created.
    arrivals: Mutex<HashMap<AppKey, BTreeSet<AppKey>>>,
    /// Apps whose removal this daemon saw held: when the spec comes back, the hold ends.
    held: Mutex<HashSet<AppKey>>,
    /// Each app's health, looked at after its reconciles (see [`AppHealth`]).
    health: AppHealth,
    /// The `[[notify]]` webhooks.
    notifier: Notifier,
}

impl Shared {
    /// Only the leader writes (and plans: a standby has nothing to do but keep its caches warm).
    /// The cluster's write fence is the one answer: open exactly while the lease is confirmed
    /// (always without leader election).
    fn is_leader(&self) -> bool {
        self.cluster.fence().is_open()
    }

    /// Whether work that failed was stopped by the fence: a write refused since `refused_before`
    /// (the fence's count when the work began), or the fence closed now. Leadership was in
    /// doubt then, and whoever leads carries the work on: not a failure of the app.
    fn fenced_since(&self, refused_before: u64) -> bool {
        self.cluster.fence().refused() != refused_before || !self.is_leader()
    }

    fn set_state(&self, key: &AppKey, state: AppState) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if states.set(key, state) {
            self.metrics.set_app_states(&states.gauges());
        }
    }

    fn state_of(&self, key: &AppKey) -> Option<AppState> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    fn forget(&self, key: &AppKey) {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if states.remove(key) {
            self.metrics.set_app_states(&states.gauges());
        }
        drop(states);
        tell::health_gone(self, key);
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The apps that arrived in the reload in which `key`'s spec went.
    fn arrivals_for(&self, key: &AppKey) -> BTreeSet<AppKey> {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    fn status_line(&self) -> String {
        let states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        let parts: Vec<String> = states
            .counts()
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        let mut apps = format!("{} apps: {}", states.len(), parts.join(", "));
        drop(states);
        let degraded = self.health.degraded();
        if degraded > 0 {
            apps.push_str(&format!("; {degraded} degraded"));
        }
        match (self.elects, self.is_leader()) {
            (false, _) => apps,
            (true, true) => format!("leader; {apps}"),
            (true, false) => STANDBY_STATUS.to_string(),
        }
    }
}

/// Runs the daemon until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    cluster: Cluster,
    options: DaemonOptions,
    mut control: mpsc::Receiver<Control>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let systemd = Systemd::from_env();
    let metrics = Metrics::new();
    let health = Health::new();
    let mut tasks = JoinSet::new();

    let listener = admin::bind(options.admin_addr).await?;
    info!(addr = %options.admin_addr, "serving /healthz, /readyz and /metrics");
    {
        let (metrics, health, token) = (metrics.clone(), health.clone(), shutdown.clone());
        tasks.spawn(async move {
            if let Err(err) = admin::serve(listener, metrics, health, token).await {
                error!(error = %err, "admin server failed");
            }
        });
    }
    if let Some(interval) = systemd.watchdog_interval() {
        let (systemd, token) = (systemd.clone(), shutdown.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    _ = tick.tick() => systemd.watchdog(),
                }
            }
        });
    }

    let (changed_tx, mut changed_rx) = mpsc::unbounded_channel();
    let cache = cluster.start_cache(changed_tx, &mut tasks, shutdown.clone());
    info!("waiting for the caches of owned objects");
    tokio::select! {
        _ = shutdown.cancelled() => return finish(tasks, &systemd, None, None).await,
        ready = cache.wait_until_ready() => ready.context("a watch of owned objects ended before its first list")?,
    }

    let elects = options.leader_elect || config.leader_election.enabled;
    let election = if elects {
        metrics.set_leader(false);
        let mut election = super::leader::Election::start(
            cluster.lease_client().clone(),
            &config.leader_election,
            cluster.fence().clone(),
        );
        // One look at the lease before the first sync, so a first berth leads from the start.
        tokio::select! {
            _ = shutdown.cancelled() => return finish(tasks, &systemd, Some(election), None).await,
            _ = election.first_look() => {}
        }
        Some(election)
    } else {
        None
    };
    let mut leading = election.as_ref().map(|e| e.leading.clone());

    let (watcher, mut file_events) = spec_watcher::spawn(
        &options.dir,
        WatchOptions {
            resync: config.resync,
            ..WatchOptions::default()
        },
        shutdown.clone(),
    )?;

    let (config_notify, instance) = (config.notify.clone(), config.instance.clone());
    let shared = Arc::new(Shared {
        cluster,
        cache,
        queue: WorkQueue::default(),
        metrics: metrics.clone(),
        config: RwLock::new(config),
        options: options.clone(),
        specs: RwLock::new(Arc::new(Loaded::default())),
        commit: RwLock::new(None),
        converged: Mutex::new(HashMap::new()),
        states: Mutex::default(),
        retained_pvcs: Mutex::new(HashSet::new()),
        drift_seen: Mutex::new(HashSet::new()),
        arrivals: Mutex::default(),
        held: Mutex::default(),
        spec_cache: Mutex::new(SpecCache::default()),
        last_load: Mutex::new(None),
        elects,
        health: AppHealth::default(),
        notifier: tell::notifier(&config_notify, &instance, &metrics),
    });
    {
        let (shared, token) = (shared.clone(), shutdown.clone());
        tasks.spawn(async move {
            shared
                .health
                .run(
                    &shared.cluster,
                    |change| tell::health_changed(&shared, change),
                    token,
                )
                .await;
        });
    }
    if elects {
        if shared.is_leader() {
            info!("leading: holding the leader lease");
            metrics.set_leader(true);
        } else {
            info!("standing by: another berth holds the leader lease");
            systemd.status(STANDBY_STATUS);
        }
    }

    // The first full sync: every app in the directory and every app in the cluster. While git
    // is mid-checkout nothing is queued (an app whose spec is unread would look removed): the
    // loop runs, and the first sync starts once git is done.
    let mut git_wait = GitWait::default();
    let first: BTreeSet<AppKey> = if spec_watcher::git_busy(&options.dir) {
        info!("git is updating the checkout; the first sync waits for whole commits");
        git_wait.defer(true);
        BTreeSet::new()
    } else {
        match reload(&shared).await {
            Some(_) => all_keys(&shared),
            None => shared.cache.keys(),
        }
    };
    let mut first_sync_waits = git_wait.waiting();
    for key in &first {
        shared.queue.add(key.clone());
    }
    let concurrency = options.concurrency.max(1);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<AppKey>();
    for _ in 0..concurrency {
        let (shared, token, done) = (shared.clone(), shutdown.clone(), done_tx.clone());
        tasks.spawn(async move { worker(shared, token, done).await });
    }
    let mut first_pending = first;
    let mark_ready = |shared: &Shared| {
        health.set_ready(true);
        let status = shared.status_line();
        systemd.ready(&status);
        info!(status = %status, "first full sync done");
    };
    if first_pending.is_empty() && !first_sync_waits {
        mark_ready(&shared);
    }

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(WatchEvent::Rescan { reason, files }) = file_events.recv() => {
                info!(reason = %reason, files = files.as_ref().map_or(0, BTreeSet::len), "rescanning the spec directory");
                let all = reason == RescanReason::Resync;
                let started = std::time::Instant::now();
                if let Some((keys, scope)) = reload_unless_git_busy(&shared, &mut git_wait, all, files).await {
                    let keys = if all { all_keys(&shared) } else { keys };
                    // How long an edit spends in the reload (the bench reads it), what was read
                    // (the changed files alone, or the directory) and which apps changed.
                    info!(
                        reload_ms = (started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
                        read = %scope,
                        changed = keys.len(),
                        apps = %shown(&keys),
                        "spec directory reloaded"
                    );
                    for key in keys {
                        shared.queue.add(key);
                    }
                }
            }
            () = git_wait.tick() => {
                match git_wait.check(spec_watcher::git_busy(&shared.options.dir)) {
                    GitCheck::Waiting { waited, past_bound } => {
                        shared.metrics.set_git_lock_wait(waited.as_secs_f64());
                        if past_bound {
                            let message = format!(
                                "waiting {}s for git: .git/index.lock is still there; if no git process is running, remove it",
                                waited.as_secs()
                            );
                            warn!(dir = %shared.options.dir.display(), "{message}");
                            health.set_ready(false);
                            systemd.status(&message);
                        }
                    }
                    GitCheck::Idle { all, was_reported } => {
                        shared.metrics.set_git_lock_wait(0.0);
                        info!("git is done; reading the spec directory");
                        let loaded = reload(&shared).await;
                        if first_sync_waits {
                            first_sync_waits = false;
                            first_pending = match loaded {
                                Some(_) => all_keys(&shared),
                                None => shared.cache.keys(),
                            };
                            for key in &first_pending {
                                shared.queue.add(key.clone());
                            }
                            if first_pending.is_empty() {
                                mark_ready(&shared);
                            }
                        } else {
                            let keys = if all { Some(all_keys(&shared)) } else { loaded };
                            for key in keys.into_iter().flatten() {
                                shared.queue.add(key);
                            }
                            if was_reported {
                                health.set_ready(true);
                                systemd.status(&shared.status_line());
                            }
                        }
                    }
                }
            }
            Some(key) = changed_rx.recv() => shared.queue.add(key),
            Ok(()) = leadership_changed(&mut leading) => {
                let now_leading = leading.as_ref().is_some_and(|l| *l.borrow());
                shared.metrics.set_leader(now_leading);
                if now_leading {
                    info!("became the leader: converging every app");
                    systemd.status(&shared.status_line());
                    for key in all_keys(&shared) {
                        shared.queue.add(key);
                    }
                } else {
                    warn!("lost the leader lease: standing by, no more writes; work under way stops at its next write and whoever leads carries it on");
                    systemd.status(STANDBY_STATUS);
                }
            }
            Some(key) = done_rx.recv() => {
                if !first_pending.is_empty() && first_pending.remove(&key) && first_pending.is_empty() {
                    mark_ready(&shared);
                } else if health.is_ready() {
                    systemd.status(&shared.status_line());
                }
            }
            Some(Control::Reload(config)) = control.recv() => {
                let running = shared.config.read().unwrap_or_else(|p| p.into_inner()).instance.clone();
                if config.instance != running {
                    error!(running = %running, new = %config.instance, "config reload refused: the instance name is part of every selector and cannot change while running; restart berth to change it");
                    continue;
                }
                if crate::cluster::Listing::from_allowed(&config.safety.namespaces) != *shared.cluster.listing() {
                    error!("config reload refused: the new safety.namespaces changes where berth watches its objects (named namespaces, or patterns across the cluster), and the watches are set up at start; restart berth to change it");
                    continue;
                }
                systemd.reloading();
                info!("daemon config reloaded");
                *shared.config.write().unwrap_or_else(|p| p.into_inner()) = *config;
                let _ = reload_unless_git_busy(&shared, &mut git_wait, true, None).await;
                for key in all_keys(&shared) {
                    shared.queue.add(key);
                }
                systemd.ready(&shared.status_line());
            }
        }
    }
    watcher.stop().await;
    let cluster = shared.cluster.clone();
    drop(shared);
    finish(tasks, &systemd, election, Some(&cluster)).await
}

/// Resolves when leadership flips; never without leader election.
async fn leadership_changed(
    leading: &mut Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match leading {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

async fn finish(
    mut tasks: JoinSet<()>,
    systemd: &Systemd,
    election: Option<super::leader::Election>,
    cluster: Option<&Cluster>,
) -> anyhow::Result<()> {
    systemd.stopping();
    info!("stopping: finishing the steps in flight");
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // After the last write: the fence closes and the lease goes to the other replica at once.
    if let Some(election) = election {
        election.release().await;
    }
    if drained.is_err() {
        warn!(
            "steps still running after {}s; stopping anyway (they resume on the next start)",
            SHUTDOWN_GRACE.as_secs()
        );
        tasks.abort_all();
    }
    // The Events of the last steps are written in the background: give them their few seconds.
    if let Some(cluster) = cluster {
        cluster.flush_events().await;
    }
    info!("stopped");
    Ok(())
}

/// The first few of `keys`, for a log line: a reload after a checkout may change thousands.
fn shown(keys: &BTreeSet<AppKey>) -> String {
    const SHOWN: usize = 5;
    let mut text = keys
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        text.push_str(&format!(" and {} more", keys.len() - SHOWN));
    }
    text
}

/// Every app that is either in the directory or in the cluster.
fn all_keys(shared: &Shared) -> BTreeSet<AppKey> {
    let specs = shared
        .specs
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut keys = shared.cache.keys();
    keys.extend(
        specs
            .apps
            .iter()
            .map(|a| AppKey::new(a.namespace.clone(), a.name.clone())),
    );
    keys
}

/// The spec directory to watch: the command line's, else the config's (relative to the config
/// file's directory, resolved by the config loader).
pub fn resolve_dir(cli_dir: Option<&Path>, config: &Config) -> Option<PathBuf> {
    cli_dir
        .map(Path::to_path_buf)
        .or_else(|| config.dir.clone())
}
