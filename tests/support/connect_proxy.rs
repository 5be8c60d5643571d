//! A forward proxy for the proxy tests: HTTP CONNECT or SOCKS5 (no authentication), on
//! 127.0.0.1 at a port of its own. It records the target of every tunnel it opens and pipes the
//! bytes untouched, so TLS stays end to end between berth and the API server.
//!
//! Like a bastion's proxy, it may know names its clients cannot resolve: `hosts` maps such a
//! name to the address the proxy dials instead. Dropping the [`ConnectProxy`] stops it and every
//! tunnel it holds.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The protocol the proxy speaks.
#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    /// `CONNECT host:port HTTP/1.1`, as `HTTPS_PROXY=http://…` asks for.
    Connect,
    /// SOCKS5 CONNECT without authentication, as `proxy-url: socks5://…` asks for.
    Socks5,
}

pub struct ConnectProxy {
    addr: SocketAddr,
    protocol: Protocol,
    /// `host:port` of every tunnel asked for, in order.
    targets: Arc<Mutex<Vec<String>>>,
    /// The accept loop; it owns the tunnels, so aborting it ends them all.
    task: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    /// Starts a proxy speaking `protocol`; a tunnel to a host named in `hosts` goes to the
    /// address given for it, with the port asked for.
    pub async fn start(protocol: Protocol, hosts: &[(&str, &str)]) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let targets = Arc::new(Mutex::new(Vec::new()));
        let hosts: Arc<Vec<(String, String)>> = Arc::new(
            hosts
                .iter()
                .map(|(name, to)| (name.to_string(), to.to_string()))
                .collect(),
        );
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            let mut tunnels = JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                let (seen, hosts) = (seen.clone(), hosts.clone());
                tunnels.spawn(async move {
                    let _ = tunnel(protocol, stream, &seen, &hosts).await;
                });
            }
        });
        ConnectProxy {
            addr,
            protocol,
            targets,
            task,
        }
    }

    /// The proxy URL to give berth.
    pub fn url(&self) -> String {
        match self.protocol {
            Protocol::Connect => format!("http://{}", self.addr),
            Protocol::Socks5 => format!("socks5://{}", self.addr),
        }
    }

    /// The targets of the tunnels asked for so far.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("lock").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on 127.0.0.1 where nothing listens: a proxy that is down.
pub async fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

async fn tunnel(
    protocol: Protocol,
    mut client: TcpStream,
    seen: &Mutex<Vec<String>>,
    hosts: &[(String, String)],
) -> std::io::Result<()> {
    let (host, port) = match protocol {
        Protocol::Connect => read_connect(&mut client).await?,
        Protocol::Socks5 => read_socks5(&mut client).await?,
    };
    seen.lock().expect("lock").push(format!("{host}:{port}"));
    let dial = hosts
        .iter()
        .find(|(name, _)| *name == host)
        .map_or(host.as_str(), |(_, to)| to.as_str());
    let mut upstream = TcpStream::connect((dial, port)).await?;
    match protocol {
        Protocol::Connect => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?
        }
        // Succeeded; the bound address is not used by clients.
        Protocol::Socks5 => client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?,
    }
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Reads `CONNECT host:port HTTP/1.1` and its headers. The client waits for the answer before it
/// sends anything else, so nothing past the blank line is read.
async fn read_connect(client: &mut TcpStream) -> std::io::Result<(String, u16)> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(client.read_u8().await?);
        if head.len() > 16 * 1024 {
            return Err(bad("request head too long"));
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut words = head.lines().next().unwrap_or_default().split(' ');
    if words.next() != Some("CONNECT") {
        return Err(bad("not a CONNECT"));
    }
    let target = words.next().ok_or_else(|| bad("no target"))?;
    let (host, port) = target.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port = port.parse().map_err(|_| bad("bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

/// The SOCKS5 greeting (answered with "no authentication") and CONNECT request.
async fn read_socks5(client: &mut TcpStream) -> std::io::Result<(String, u16)> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    if greeting[0] != 5 || !methods.contains(&0) {
        return Err(bad("not a SOCKS5 client without authentication"));
    }
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[..3] != [5, 1, 0] {
        return Err(bad("not a SOCKS5 CONNECT"));
    }
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            String::from_utf8(name).map_err(|_| bad("name not UTF-8"))?
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            std::net::Ipv6Addr::from(ip).to_string()
        }
        _ => return Err(bad("unknown address type")),
    };
    let port = client.read_u16().await?;
    Ok((host, port))
}
