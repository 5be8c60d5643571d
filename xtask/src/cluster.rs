//! A real local Kubernetes control plane on loopback: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok (one fake node), the harness's own storage
//! provisioner and its OIDC issuer. State lives in target/cluster/; `down` stops only the PIDs
//! `up` recorded.
//!
//! A second, named instance (`--name faults`: target/cluster-faults/, every port + 1000) serves
//! the fault tests, which stop and restart its components one at a time
//! (`cluster stop-component` / `start-component`) without disturbing the tests that share the
//! default instance.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Api;
use kube::api::PostParams;

use crate::gobuild::{self, Binaries};
use crate::process::{self, Started};
use crate::{kube_client, oidc_issuer, pki};

pub const ETCD_CLIENT_PORT: u16 = 12379;
pub const ETCD_PEER_PORT: u16 = 12380;
pub const APISERVER_PORT: u16 = 16443;
pub const KCM_PORT: u16 = 20257;
pub const SCHEDULER_PORT: u16 = 20259;
pub const KWOK_PORT: u16 = 20247;
pub const OIDC_ISSUER_PORT: u16 = 20243;
pub const NODE_NAME: &str = "kwok-node-0";
pub const STORAGE_CLASS: &str = "standard";
/// The provisioner name the StorageClass points at; served by `xtask provisioner`.
pub const PROVISIONER: &str = "berth.dev/local-hostpath";

/// The named instances and the offset added to every port of the default one.
const INSTANCES: [(&str, u16); 2] = [("default", 0), ("faults", 1000)];

/// The loopback ports of one instance.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub etcd_client: u16,
    pub etcd_peer: u16,
    pub apiserver: u16,
    pub kcm: u16,
    pub scheduler: u16,
    pub kwok: u16,
    pub oidc_issuer: u16,
}

impl Ports {
    /// The port a component serves on (what `up` checks is free and a restart waits for).
    fn of(&self, component: &str) -> Option<u16> {
        match component {
            "etcd" => Some(self.etcd_client),
            "kube-apiserver" => Some(self.apiserver),
            "kube-controller-manager" => Some(self.kcm),
            "kube-scheduler" => Some(self.scheduler),
            "kwok" => Some(self.kwok),
            "oidc-issuer" => Some(self.oidc_issuer),
            _ => None,
        }
    }

    fn with_offset(offset: u16) -> Ports {
        Ports {
            etcd_client: ETCD_CLIENT_PORT + offset,
            etcd_peer: ETCD_PEER_PORT + offset,
            apiserver: APISERVER_PORT + offset,
            kcm: KCM_PORT + offset,
            scheduler: SCHEDULER_PORT + offset,
            kwok: KWOK_PORT + offset,
            oidc_issuer: OIDC_ISSUER_PORT + offset,
        }
    }
}

/// The files of one cluster, all under target/cluster/ (target/cluster-NAME/ for a named one).
pub struct Layout {
    /// `default`, or the instance's name.
    pub name: &'static str,
    pub ports: Ports,
    pub dir: PathBuf,
    pub pki: PathBuf,
    pub logs: PathBuf,
    pub pids: PathBuf,
    /// Admin kubeconfig (system:masters), for the components, kubectl and the tests' set-up.
    pub kubeconfig: PathBuf,
    /// A kubeconfig for user `berth`, which has only what config/rbac.yaml grants once bound.
    pub berth_kubeconfig: PathBuf,
}

impl Layout {
    /// The default instance.
    pub fn new(root: &Path) -> Layout {
        Layout::at(root, INSTANCES[0])
    }

    /// A named instance; only the names in [`INSTANCES`] exist, so their ports never collide.
    pub fn named(root: &Path, name: &str) -> Result<Layout> {
        match INSTANCES.iter().find(|(n, _)| *n == name) {
            Some(instance) => Ok(Layout::at(root, *instance)),
            None => bail!(
                "no cluster instance `{name}`; the instances are: {}",
                INSTANCES.map(|(n, _)| n).join(", ")
            ),
        }
    }

    fn at(root: &Path, (name, offset): (&'static str, u16)) -> Layout {
        let dir = match name {
            "default" => root.join("target").join("cluster"),
            _ => root.join("target").join(format!("cluster-{name}")),
        };
        Layout {
            name,
            ports: Ports::with_offset(offset),
            pki: dir.join("pki"),
            logs: dir.join("logs"),
            pids: dir.join("pids"),
            kubeconfig: dir.join("kubeconfig"),
            berth_kubeconfig: dir.join("berth.kubeconfig"),
            dir,
        }
    }
}

/// Start order; `down` walks it backwards. The second field is a string the process's command
/// line must contain, so a recycled PID is never signalled.
const COMPONENTS: [(&str, &str); 7] = [
    ("etcd", "etcd"),
    // Before the API server, which fetches the issuer's keys to verify OIDC tokens.
    ("oidc-issuer", "oidc-issuer"),
    ("kube-apiserver", "kube-apiserver"),
    ("kube-controller-manager", "kube-controller-manager"),
    ("kube-scheduler", "kube-scheduler"),
    ("kwok", "kwok"),
    ("provisioner", "provisioner"),
];

/// Brings the default cluster up, or reuses a running one. Returns true when this call started it.
pub fn up(root: &Path) -> Result<bool> {
    up_instance(root, &Layout::new(root))
}

/// Brings the instance of `layout` up, or reuses it when it runs.
pub fn up_instance(root: &Path, layout: &Layout) -> Result<bool> {
    let bins = gobuild::ensure_binaries(root)?;
    let running = running_components(layout);
    if running.len() == COMPONENTS.len() && apiserver_ready(layout) {
        println!("cluster `{}` already running; reusing it", layout.name);
        warn_if_kwok_stages_changed(layout, &bins);
        print_usage(layout);
        return Ok(false);
    }
    if !running.is_empty() {
        eprintln!(
            "found a partial cluster ({} of {} components running); restarting it",
            running.len(),
            COMPONENTS.len()
        );
        down_instance(layout)?;
    }
    let started_at = Instant::now();
    process::ensure_port_free(layout.ports.etcd_peer, "etcd (peer)")?;
    for (name, _) in COMPONENTS {
        if let Some(port) = layout.ports.of(name) {
            process::ensure_port_free(port, name)?;
        }
    }
    let _ = fs::remove_dir_all(&layout.dir);
    for d in [&layout.pki, &layout.logs, &layout.pids] {
        fs::create_dir_all(d)?;
    }
    pki::make_pki(&layout.pki)?;
    oidc_issuer::prepare(&layout.pki, layout.ports.oidc_issuer)?;
    pki::write_kubeconfig(layout, &layout.kubeconfig, "admin")?;
    pki::write_kubeconfig(layout, &layout.berth_kubeconfig, "berth")?;
    write_ports(layout)?;
    let result = start_all(layout, &bins);
    if let Err(err) = result {
        // Leave nothing half-started behind; the logs stay for a look.
        stop_recorded(layout);
        return Err(err.context(format!(
            "the local control plane did not start; component logs are in {}",
            layout.logs.display()
        )));
    }
    println!(
        "cluster `{}` up in {:.1}s",
        layout.name,
        started_at.elapsed().as_secs_f64()
    );
    print_usage(layout);
    Ok(true)
}

/// kwok reads its stages only at start: a running kwok started before the stages file last
/// changed runs without the new ones (the slow pod profile, say), which is said with the way out.
fn warn_if_kwok_stages_changed(layout: &Layout, bins: &Binaries) {
    let modified = |path: &Path| fs::metadata(path).and_then(|m| m.modified()).ok();
    let started = modified(&layout.pids.join("kwok.pid"));
    let stages = modified(&bins.kwok_stages);
    if let (Some(started), Some(stages)) = (started, stages)
        && stages > started
    {
        eprintln!(
            "warning: kwok of cluster `{0}` started before its stages changed ({1}) and runs \
             without them; `cargo xtask cluster stop-component kwok{2}` then \
             `cargo xtask cluster start-component kwok{2}` loads them",
            layout.name,
            bins.kwok_stages.display(),
            name_flag(layout)
        );
    }
}

/// ports.json: the instance's ports, for the tests that reach etcd or put a proxy in front of
/// the API server.
fn write_ports(layout: &Layout) -> Result<()> {
    let p = layout.ports;
    let json = serde_json::json!({
        "etcd_client": p.etcd_client,
        "etcd_peer": p.etcd_peer,
        "apiserver": p.apiserver,
        "kube_controller_manager": p.kcm,
        "kube_scheduler": p.scheduler,
        "kwok": p.kwok,
        "oidc_issuer": p.oidc_issuer,
    });
    let path = layout.dir.join("ports.json");
    fs::write(&path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn start_all(layout: &Layout, bins: &Binaries) -> Result<()> {
    let mut etcd = spawn_component(layout, bins, "etcd")?;
    wait_component_ready(layout, "etcd", &mut [&mut etcd])?;
    let mut issuer = spawn_component(layout, bins, "oidc-issuer")?;
    wait_component_ready(layout, "oidc-issuer", &mut [&mut etcd, &mut issuer])?;
    let mut apiserver = spawn_component(layout, bins, "kube-apiserver")?;
    wait_component_ready(
        layout,
        "kube-apiserver",
        &mut [&mut etcd, &mut issuer, &mut apiserver],
    )?;
    let mut kcm = spawn_component(layout, bins, "kube-controller-manager")?;
    let mut scheduler = spawn_component(layout, bins, "kube-scheduler")?;
    let mut kwok = spawn_component(layout, bins, "kwok")?;
    let mut provisioner = spawn_component(layout, bins, "provisioner")?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = rt.block_on(kube_client::client(&layout.kubeconfig))?;
    rt.block_on(create_cluster_objects(client.clone()))?;

    let all: &mut [&mut Started] = &mut [
        &mut etcd,
        &mut issuer,
        &mut apiserver,
        &mut kcm,
        &mut scheduler,
        &mut kwok,
        &mut provisioner,
    ];
    for component in ["kube-controller-manager", "kube-scheduler", "kwok"] {
        wait_component_ready(layout, component, all)?;
    }
    process::wait_for(
        &format!("node {NODE_NAME} to turn Ready (kwok)"),
        Duration::from_secs(60),
        all,
        || rt.block_on(node_ready(client.clone())),
    )?;
    Ok(())
}

/// The command line of one component of the instance in `layout`.
fn component_command(layout: &Layout, bins: &Binaries, component: &str) -> Result<Command> {
    let ports = layout.ports;
    let pki = &layout.pki;
    let p = |f: &str| pki.join(f).display().to_string();
    let kubeconfig = layout.kubeconfig.display().to_string();
    let etcd_url = format!("http://127.0.0.1:{}", ports.etcd_client);
    let peer_url = format!("http://127.0.0.1:{}", ports.etcd_peer);
    let common = |port: u16| {
        vec![
            format!("--kubeconfig={kubeconfig}"),
            format!("--authentication-kubeconfig={kubeconfig}"),
            format!("--authorization-kubeconfig={kubeconfig}"),
            "--bind-address=127.0.0.1".to_string(),
            format!("--secure-port={port}"),
            "--leader-elect=false".to_string(),
            "--v=1".to_string(),
        ]
    };
    let cmd = match component {
        "etcd" => {
            let mut cmd = Command::new(&bins.etcd);
            cmd.args([
                "--name=local".to_string(),
                format!("--data-dir={}", layout.dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=local={peer_url}"),
                // Test data only: fsync costs seconds per write burst on a shared disk.
                "--unsafe-no-fsync=true".to_string(),
                "--log-level=warn".to_string(),
            ]);
            cmd
        }
        "kube-apiserver" => {
            let mut cmd = Command::new(&bins.kube_apiserver);
            cmd.args([
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".to_string(),
                "--advertise-address=127.0.0.1".to_string(),
                format!("--secure-port={}", ports.apiserver),
                format!("--tls-cert-file={}", p("apiserver.crt")),
                format!("--tls-private-key-file={}", p("apiserver.key")),
                format!("--client-ca-file={}", p("ca.crt")),
                format!("--token-auth-file={}", p(pki::TOKEN_AUTH_FILE)),
                // The OIDC issuer's tokens (xtask/src/oidc_issuer), beside the static tokens.
                format!(
                    "--authentication-config={}",
                    p(oidc_issuer::AUTHENTICATION_CONFIG)
                ),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
                format!("--service-account-key-file={}", p("sa.pub")),
                format!("--service-account-signing-key-file={}", p("sa.key")),
                "--service-cluster-ip-range=10.96.0.0/16".to_string(),
                "--authorization-mode=RBAC".to_string(),
                "--allow-privileged=true".to_string(),
                // ServiceAccount: envtest parity, pods do not wait for a `default` ServiceAccount
                // per namespace. TaintNodesByCondition: it puts a not-ready taint on every new
                // node that only the node-lifecycle controller removes, and that controller stays
                // off (see below).
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition".to_string(),
                // A loopback endpoint for the `kubernetes` Service fails validation; nothing
                // needs it.
                "--endpoint-reconciler-type=none".to_string(),
                "--profiling=false".to_string(),
                "--v=1".to_string(),
            ]);
            cmd
        }
        "kube-controller-manager" => {
            let mut cmd = Command::new(&bins.kube_controller_manager);
            cmd.args(common(ports.kcm)).args([
                "--use-service-account-credentials=false",
                // Only what berth's behaviour depends on: the StatefulSet controller, the garbage
                // collector (pods and revisions go with their StatefulSet), namespace cleanup,
                // EndpointSlices (a pod's DNS record), PodDisruptionBudget status, and the PV
                // controllers that bind and protect the volumes the harness provisioner creates.
                // node-lifecycle stays out: it would taint and evict kwok's node whenever a
                // heartbeat lags; so do the legacy Endpoints, which nothing here reads.
                "--controllers=statefulset-controller,garbage-collector-controller,\
                 namespace-controller,serviceaccount-controller,endpointslice-controller,\
                 disruption-controller,persistentvolume-binder-controller,\
                 persistentvolumeclaim-protection-controller,persistentvolume-protection-controller",
                // At the default 20 requests a second, the controllers' own writes after a load of
                // 10,000 apps (a revision and a status per StatefulSet, an EndpointSlice per
                // Service) trickled on for more than half an hour, and every measurement in that
                // time shared the machine with them. They now catch up in minutes.
                "--kube-api-qps=200",
                "--kube-api-burst=400",
            ]);
            cmd
        }
        "kube-scheduler" => {
            let mut cmd = Command::new(&bins.kube_scheduler);
            cmd.args(common(ports.scheduler));
            cmd
        }
        "kwok" => {
            let kwok_home = layout.dir.join("kwok-home");
            fs::create_dir_all(&kwok_home)?;
            let mut cmd = Command::new(&bins.kwok);
            // A stray ~/.kwok/kwok.yaml could carry other stages; only the harness's are wanted.
            cmd.env("HOME", &kwok_home).args([
                format!("--kubeconfig={kubeconfig}"),
                format!("--config={}", bins.kwok_stages.display()),
                "--manage-all-nodes=true".to_string(),
                "--cidr=10.244.0.1/16".to_string(),
                "--node-ip=10.0.0.1".to_string(),
                format!("--server-address=127.0.0.1:{}", ports.kwok),
            ]);
            cmd
        }
        "oidc-issuer" => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.arg("oidc-issuer")
                .arg(&layout.dir)
                .arg(ports.oidc_issuer.to_string());
            cmd
        }
        "provisioner" => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["provisioner", &kubeconfig]);
            cmd
        }
        other => {
            find_component(other)?;
            bail!("no command line for component `{other}`")
        }
    };
    Ok(cmd)
}

/// `(name, command-line needle)` of a component, or an error naming the components.
fn find_component(component: &str) -> Result<(&'static str, &'static str)> {
    COMPONENTS
        .into_iter()
        .find(|(n, _)| *n == component)
        .with_context(|| {
            format!(
                "no component `{component}`; the components are: {}",
                COMPONENTS.map(|(n, _)| n).join(", ")
            )
        })
}

fn spawn_component(layout: &Layout, bins: &Binaries, component: &str) -> Result<Started> {
    let (name, _) = find_component(component)?;
    let cmd = component_command(layout, bins, name)?;
    process::spawn(name, cmd, &layout.logs, &layout.pids)
}

/// Waits until `component` serves; fails early when one of `started` exits.
fn wait_component_ready(
    layout: &Layout,
    component: &str,
    started: &mut [&mut Started],
) -> Result<()> {
    let ports = layout.ports;
    let (timeout, probe): (u64, Box<dyn Fn() -> bool>) = match component {
        "etcd" => (
            30,
            Box::new(move || http_get_ok(ports.etcd_client, "/health")),
        ),
        "kube-apiserver" => (120, Box::new(|| apiserver_ready(layout))),
        other => match ports.of(other) {
            Some(port) => (60, Box::new(move || port_open(port))),
            // The provisioner serves nothing; it runs or it does not.
            None => (0, Box::new(|| true)),
        },
    };
    process::wait_for(
        &format!("{component} to serve"),
        Duration::from_secs(timeout),
        started,
        probe,
    )
}

/// Stops one component of a running instance (SIGTERM, or SIGKILL with `kill`), for the fault
/// tests. Its PID file stays, so `start_component` and `down` know the instance.
pub fn stop_component(layout: &Layout, component: &str, kill: bool) -> Result<()> {
    let (name, needle) = find_component(component)?;
    let pid_file = layout.pids.join(format!("{name}.pid"));
    let Some(pid) = process::live_pid(&pid_file, needle) else {
        bail!("{name} of cluster `{}` is not running", layout.name);
    };
    if kill {
        process::kill(pid, name, needle, &pid_file);
    } else {
        process::stop(pid, name, needle, &pid_file);
    }
    println!("{name} of cluster `{}` stopped (pid {pid})", layout.name);
    Ok(())
}

/// Starts one stopped component again with the command line `up` used, and waits until it
/// serves. Its log is appended to.
pub fn start_component(root: &Path, layout: &Layout, component: &str) -> Result<()> {
    let (name, needle) = find_component(component)?;
    if let Some(pid) = process::live_pid(&layout.pids.join(format!("{name}.pid")), needle) {
        bail!(
            "{name} of cluster `{}` already runs (pid {pid})",
            layout.name
        );
    }
    let bins = gobuild::ensure_binaries(root)?;
    // A killed process's threads may still hold its listening socket for a moment after its
    // PID looks gone.
    if let Some(port) = layout.ports.of(name) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while process::ensure_port_free(port, name).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        process::ensure_port_free(port, name)?;
    }
    let mut started = spawn_component(layout, &bins, name)?;
    wait_component_ready(layout, name, &mut [&mut started])?;
    println!(
        "{name} of cluster `{}` started (pid {})",
        layout.name,
        started.child.id()
    );
    Ok(())
}

async fn create_cluster_objects(client: kube::Client) -> Result<()> {
    // The bootstrap controller creates `default` asynchronously after /readyz.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while namespaces.get_opt("default").await?.is_none() {
        if Instant::now() > deadline {
            bail!("namespace `default` did not appear within 30s of kube-apiserver being ready");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Like a cloud cluster's: default class, expansion allowed, a volume made once the scheduler
    // has picked the pod's node (WaitForFirstConsumer, as the major clouds' default classes do).
    let sc: StorageClass = serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}
        },
        "provisioner": PROVISIONER,
        "allowVolumeExpansion": true,
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "WaitForFirstConsumer"
    }))?;
    Api::<StorageClass>::all(client.clone())
        .create(&PostParams::default(), &sc)
        .await
        .context("creating the default StorageClass")?;

    // No taints: kwok's sample node has one, which would force a toleration on every app.
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE_NAME,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/zone": "local-a",
                "type": "kwok"
            }
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "512Gi", "pods": "10000"},
            "capacity": {"cpu": "64", "memory": "512Gi", "pods": "10000"}
        }
    }))?;
    Api::<Node>::all(client)
        .create(&PostParams::default(), &node)
        .await
        .context("creating the fake node")?;
    Ok(())
}

async fn node_ready(client: kube::Client) -> bool {
    let Ok(Some(node)) = Api::<Node>::all(client).get_opt(NODE_NAME).await else {
        return false;
    };
    node.status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

pub fn down(root: &Path) -> Result<()> {
    down_instance(&Layout::new(root))
}

pub fn down_instance(layout: &Layout) -> Result<()> {
    if !layout.dir.exists() {
        println!(
            "no local cluster state in {}; nothing to stop",
            layout.dir.display()
        );
        return Ok(());
    }
    stop_recorded(layout);
    fs::remove_dir_all(&layout.dir)
        .with_context(|| format!("removing {}", layout.dir.display()))?;
    println!("cluster `{}` stopped and its state removed", layout.name);
    Ok(())
}

/// Stops every recorded component, last started first.
fn stop_recorded(layout: &Layout) {
    for (name, needle) in COMPONENTS.iter().rev() {
        let pid_file = layout.pids.join(format!("{name}.pid"));
        if let Some(pid) = process::live_pid(&pid_file, needle) {
            process::stop(pid, name, needle, &pid_file);
        }
    }
}

fn running_components(layout: &Layout) -> Vec<&'static str> {
    COMPONENTS
        .iter()
        .filter(|(name, needle)| {
            process::live_pid(&layout.pids.join(format!("{name}.pid")), needle).is_some()
        })
        .map(|(name, _)| *name)
        .collect()
}

pub fn status(layout: &Layout) -> Result<()> {
    let mut all_up = true;
    for (name, needle) in COMPONENTS {
        match process::live_pid(&layout.pids.join(format!("{name}.pid")), needle) {
            Some(pid) => println!("{name:<24} running (pid {pid})"),
            None => {
                all_up = false;
                println!("{name:<24} not running")
            }
        }
    }
    if !apiserver_ready(layout) {
        bail!(
            "the local cluster `{}` is not serving; start it with `cargo xtask cluster up{}`",
            layout.name,
            name_flag(layout)
        );
    }
    let summary = kube_client::block_on(async {
        let client = kube_client::client(&layout.kubeconfig).await?;
        let version = client.apiserver_version().await?;
        let ready = node_ready(client).await;
        anyhow::Ok((version.git_version, ready))
    })??;
    println!(
        "kube-apiserver {} at https://127.0.0.1:{}; node {NODE_NAME} {}",
        summary.0,
        layout.ports.apiserver,
        if summary.1 { "Ready" } else { "not Ready" }
    );
    println!("KUBECONFIG={}", layout.kubeconfig.display());
    if !all_up {
        bail!(
            "some components are not running; `cargo xtask cluster down{0} && cargo xtask cluster up{0}` restarts the cluster",
            name_flag(layout)
        );
    }
    Ok(())
}

fn print_usage(layout: &Layout) {
    println!(
        "\nThe local control plane runs on 127.0.0.1:{} (one kwok node, default \
         StorageClass `{STORAGE_CLASS}`).\n  export KUBECONFIG={}\n  kubectl get nodes,sc\n  \
         cargo xtask cluster status{flag} | down{flag}\nComponent logs: {}",
        layout.ports.apiserver,
        layout.kubeconfig.display(),
        layout.logs.display(),
        flag = name_flag(layout),
    );
}

/// ` --name NAME` for a named instance, nothing for the default one.
fn name_flag(layout: &Layout) -> String {
    match layout.name {
        "default" => String::new(),
        name => format!(" --name {name}"),
    }
}

/// True once kube-apiserver answers /readyz with 200, authenticated as admin: anonymous
/// requests get 403 until RBAC bootstrap has run.
pub fn apiserver_ready(layout: &Layout) -> bool {
    if !layout.kubeconfig.is_file() || !port_open(layout.ports.apiserver) {
        return false;
    }
    kube_client::block_on(async {
        let client = kube_client::client(&layout.kubeconfig).await.ok()?;
        let req = http::Request::get("/readyz").body(Vec::new()).ok()?;
        let text = tokio::time::timeout(Duration::from_secs(5), client.request_text(req))
            .await
            .ok()?
            .ok()?;
        Some(text.trim() == "ok")
    })
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// A plain HTTP/1.0 GET on loopback (etcd's /health), without pulling in an HTTP client.
fn http_get_ok(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200")
}
