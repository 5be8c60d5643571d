//! A TCP proxy between berth and the API server that a test controls, to model network faults:
//! a stalled link, half-open sessions left behind by a blip, a cut. It passes bytes through
//! untouched (TLS stays end to end), so berth sees exactly what a real network would do to it.
//!
//! The proxy runs on a thread and runtime of its own: the faults must keep holding (and resume
//! must take effect) whatever the test's runtime is doing, and dropping the [`Proxy`] ends every
//! task and closes every socket it holds.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// How long a control call waits for the proxy thread to carry it out.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Pass,
    Stall,
    Cut,
}

/// What every connection task watches. Connections are numbered in accept order, so "the
/// connections open now" is "every id below the next one".
#[derive(Clone, Copy, Debug)]
struct Ctl {
    mode: Mode,
    /// Connections with a smaller id forward nothing, ever again ([`Proxy::freeze_existing`]).
    frozen_below: u64,
    /// Connections with a smaller id are reset ([`Proxy::cut`]).
    cut_below: u64,
}

impl Ctl {
    fn forwards(&self, id: u64) -> bool {
        self.mode == Mode::Pass && id >= self.frozen_below
    }
}

#[derive(Debug)]
enum Command {
    Stall,
    FreezeExisting,
    Cut,
    Resume,
}

type Ack = std::sync::mpsc::Sender<Result<(), String>>;

#[derive(Default)]
struct Stats {
    accepted: AtomicU64,
    open: AtomicU64,
}

/// A fault-injecting TCP proxy on 127.0.0.1:<ephemeral port>.
pub struct Proxy {
    port: u16,
    upstream: SocketAddr,
    commands: Option<mpsc::UnboundedSender<(Command, Ack)>>,
    stats: Arc<Stats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:<ephemeral port> to `upstream`.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        std_listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let local = std_listener.local_addr().expect("proxy address");
        let (tx, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let thread_stats = stats.clone();
        let thread = std::thread::Builder::new()
            .name(format!("proxy-{}", local.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    serve(listener, local, upstream, rx, thread_stats).await;
                });
                // Dropping the runtime here drops every connection task and its sockets.
            })
            .expect("proxy thread");
        Proxy {
            port: local.port(),
            upstream,
            commands: Some(tx),
            stats,
            thread: Some(thread),
        }
    }

    /// Starts a proxy to the API server of the kubeconfig at `source` and writes a copy of that
    /// kubeconfig to `dest` that goes through it. Only the port changes: the host stays what the
    /// server's certificate names (the local control plane's covers 127.0.0.1), and since the
    /// proxy listens on 127.0.0.1 that host must be, or resolve to, 127.0.0.1.
    pub fn for_kubeconfig(source: &Path, dest: &Path) -> Proxy {
        let text = std::fs::read_to_string(source)
            .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
        let (server, host, port) = api_server(&text);
        let upstream = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| panic!("resolving the API server {server}"));
        let proxy = Proxy::start(upstream);
        let through = format!("https://{host}:{}", proxy.port);
        std::fs::write(dest, text.replace(&server, &through))
            .unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Every connection stays open but no byte moves either way; new connections are accepted
    /// and stalled too. A slow or hung network path, or an overloaded API server.
    pub fn stall(&self) {
        self.control(Command::Stall);
    }

    /// The connections open now stall for good (until [`Proxy::cut`] or drop; [`Proxy::resume`]
    /// does not bring them back); new connections pass. A half-open TCP session after a network
    /// blip: the peer is gone, but nothing tells this side so.
    pub fn freeze_existing(&self) {
        self.control(Command::FreezeExisting);
    }

    /// Resets every connection and refuses new ones (the listener is closed). A link that is
    /// down, or an API server that is not running. Returns once every connection is gone.
    pub fn cut(&self) {
        self.control(Command::Cut);
    }

    /// Forwards normally again: stalled bytes flow, new connections are accepted. Frozen
    /// connections stay frozen.
    pub fn resume(&self) {
        self.control(Command::Resume);
    }

    /// Hands `command` to the proxy thread and waits until it has taken effect, so a test's
    /// next step already sees the fault.
    fn control(&self, command: Command) {
        let (ack, done) = std::sync::mpsc::channel();
        let name = format!("{command:?}");
        self.commands
            .as_ref()
            .expect("proxy running")
            .send((command, ack))
            .unwrap_or_else(|_| panic!("proxy thread gone ({name})"));
        match done.recv_timeout(CONTROL_TIMEOUT) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("proxy {name}: {e}"),
            Err(e) => panic!("proxy {name}: no answer from the proxy thread: {e}"),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // The closed channel ends the serve loop; the thread then drops its runtime.
        drop(self.commands.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `(server URL, host, port)` of the first `server:` line of a kubeconfig.
pub fn api_server(kubeconfig: &str) -> (String, String, u16) {
    let server = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_matches(['"', '\'']).to_string())
        .expect("a `server:` line in the kubeconfig");
    let authority = server
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("the API server {server} is not https://"))
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse().expect("server port")),
        _ => (authority, 443),
    };
    (server.clone(), host.to_string(), port)
}

async fn serve(
    listener: TcpListener,
    local: SocketAddr,
    upstream: SocketAddr,
    mut commands: mpsc::UnboundedReceiver<(Command, Ack)>,
    stats: Arc<Stats>,
) {
    let mut listener = Some(listener);
    let (ctl, _) = watch::channel(Ctl {
        mode: Mode::Pass,
        frozen_below: 0,
        cut_below: 0,
    });
    let mut next_id = 0u64;
    // Owned here: when this loop ends (the Proxy is dropped) every connection task is aborted.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some((command, ack)) = command else { return };
                let result = match command {
                    Command::Stall => {
                        ctl.send_modify(|c| c.mode = Mode::Stall);
                        Ok(())
                    }
                    Command::FreezeExisting => {
                        ctl.send_modify(|c| c.frozen_below = next_id);
                        Ok(())
                    }
                    Command::Cut => {
                        // Closing the listener makes new connects fail with ECONNREFUSED.
                        listener = None;
                        ctl.send_modify(|c| {
                            c.mode = Mode::Cut;
                            c.cut_below = next_id;
                        });
                        // Every connection task sees the cut and ends; wait for that, so no byte
                        // can pass once cut() has returned.
                        while connections.join_next().await.is_some() {}
                        Ok(())
                    }
                    Command::Resume => {
                        let rebound = match listener {
                            Some(_) => Ok(()),
                            None => rebind(local).map(|l| listener = Some(l)),
                        };
                        ctl.send_modify(|c| c.mode = Mode::Pass);
                        rebound.map_err(|e| format!("re-binding {local}: {e}"))
                    }
                };
                let _ = ack.send(result);
            }
            accepted = accept(listener.as_ref()) => {
                if let Ok((client, _)) = accepted {
                    let id = next_id;
                    next_id += 1;
                    stats.accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(connection(id, client, upstream, ctl.subscribe(), stats.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The same address again after a cut. SO_REUSEADDR, as the first bind had: sockets of the cut
/// connections may still be in TIME_WAIT on it.
fn rebind(local: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(local)?;
    socket.listen(1024)
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Counts a connection as open for as long as its task lives.
struct OpenGuard(Arc<Stats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(
    id: u64,
    mut client: TcpStream,
    upstream: SocketAddr,
    mut ctl: watch::Receiver<Ctl>,
    stats: Arc<Stats>,
) {
    stats.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(stats);
    let _ = client.set_nodelay(true);
    // Connecting upstream is not forwarding: even a stalled connection has its other end, so
    // its bytes can flow the moment it resumes.
    let mut server = tokio::select! {
        server = TcpStream::connect(upstream) => match server {
            Ok(s) => s,
            Err(_) => return reset(&client),
        },
        _ = ctl.wait_for(|c| id < c.cut_below) => return reset(&client),
    };
    let _ = server.set_nodelay(true);
    let (up_ctl, down_ctl) = (ctl.clone(), ctl.clone());
    let cut = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let both = async {
            tokio::try_join!(
                pump(client_read, server_write, id, up_ctl),
                pump(server_read, client_write, id, down_ctl),
            )
        };
        tokio::select! {
            _ = both => false,
            // An error here means the proxy is going away: reset as well.
            _ = ctl.wait_for(|c| id < c.cut_below) => true,
        }
    };
    if cut {
        reset(&client);
        reset(&server);
    }
}

/// Makes the coming close a reset (RST) rather than an orderly FIN, as a cut link looks to the
/// peer. A zero linger never blocks, the reason tokio deprecates `set_linger` in general.
fn reset(stream: &TcpStream) {
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// Copies one direction, checking before every read and every write (and before passing on an
/// end of stream) that this connection may forward. Err when either socket failed: the whole
/// connection goes then.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    id: u64,
    mut ctl: watch::Receiver<Ctl>,
) -> Result<(), ()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        forwarding(&mut ctl, id).await?;
        let n = from.read(&mut buf).await.map_err(drop)?;
        forwarding(&mut ctl, id).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        to.write_all(&buf[..n]).await.map_err(drop)?;
    }
}

async fn forwarding(ctl: &mut watch::Receiver<Ctl>, id: u64) -> Result<(), ()> {
    ctl.wait_for(|c| c.forwards(id))
        .await
        .map(drop)
        .map_err(drop)
}
