//! The listener and each connection's life: at most `max_connections` at once, a failed
//! `accept` paused rather than retried at once, and every connection bounded in time — its
//! handshake and each request's head (`header_timeout`), an answer's write (`write_timeout`,
//! `stall.rs`), its whole life (`connection_lifetime`). What is asked on a connection is
//! [`super::handle`]'s.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::{WriteDeadline, handle, serve_admin};
use crate::backend::Backend;

/// Limits on what a client may send, and on how long and how many connections it may hold.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body (bytes).
    pub max_body: usize,
    /// Time for the TLS handshake and for the request headers.
    pub header_timeout: Duration,
    /// Time to read the body.
    pub body_timeout: Duration,
    /// Time a write may wait for the client to read: a client that stops reading its answers
    /// (and keeps sending requests) is dropped after it, instead of holding its connection for
    /// good (`stall.rs`).
    pub write_timeout: Duration,
    /// A connection's whole life. Past it, the request in hand is answered (within the write
    /// timeout) and the connection closed: a client that reads each answer a byte at a time,
    /// just fast enough for the write timeout, still gives its slot back.
    pub connection_lifetime: Duration,
    /// Connections served at once. Past it, new ones wait in the kernel's accept queue until
    /// one ends (each is bounded in time by the timeouts above): without a cap, a client that
    /// opens connections until the process runs out of file descriptors leaves `accept`
    /// failing at once, and every other descriptor the server needs failing with it.
    pub max_connections: usize,
    /// Connections one client address may hold at once (an IPv6 client: its /64); 0, no such
    /// cap. Past it, a new connection from that address is closed at once, before its TLS
    /// handshake, so that one host cannot hold every slot of `max_connections`. Off by
    /// default: behind a load balancer, or with several gateways on one host, every client
    /// has the same address.
    pub max_connections_per_address: usize,
}

/// The default cap on connections: half of Debian's default soft limit of 1,024 descriptors,
/// leaving the rest to the store, the admin listener and an upstream's pool.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            connection_lifetime: Duration::from_secs(300),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_address: 0,
        }
    }
}

/// How long the accept loop rests after `accept` failed: the failures that last (no
/// descriptor left, no memory) would otherwise fail again at once, a core spinning on them.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often reaching the connection cap is logged, at most.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve_https(
    ca: Arc<dyn Backend>,
    listener: TcpListener,
    config: ServerConfig,
    limits: HttpLimits,
) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut warned_at_cap: Option<std::time::Instant> = None;
    let per_address = PerAddress::new(limits.max_connections_per_address);
    loop {
        // A slot first: at the cap, connections wait in the accept queue, not in this process.
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Said once a minute at most: an operator whose clients wait needs to know
                // why, and a client holding the cap must not fill the log.
                if warned_at_cap.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "at the connection cap: new connections wait to be accepted"
                    );
                    warned_at_cap = Some(std::time::Instant::now());
                }
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                slot
            }
        };
        let (tcp, peer) = accept(&listener).await;
        let Some(held_by_address) = per_address.admit(peer.ip()) else {
            // Closed before anything is spent on it; its slot goes back at once.
            continue;
        };
        // Answers are written whole: Nagle's algorithm would only delay a flight until the
        // client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ca = Arc::clone(&ca);
        tokio::spawn(async move {
            // Held until the connection ends.
            let _slot = (slot, held_by_address);
            let Ok(Ok(tls)) = tokio::time::timeout(
                limits.header_timeout,
                acceptor.accept(WriteDeadline::new(tcp, limits.write_timeout)),
            )
            .await
            else {
                return;
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let service = service_fn(move |req| {
                let ca = Arc::clone(&ca);
                let client = client.clone();
                async move { handle(ca, client, req, limits).await }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tls), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = tokio::time::sleep(limits.connection_lifetime) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.write_timeout, connection).await;
        });
    }
}

/// Connections held per client address, against a cap.
struct PerAddress {
    cap: usize,
    held: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    warned_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// One connection counted against its address until dropped.
struct AddressSlot {
    address: std::net::IpAddr,
    held: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl PerAddress {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            held: Arc::default(),
            warned_at: std::sync::Mutex::new(None),
        }
    }

    /// Counts a connection from `ip`, or refuses it when its address holds the cap already
    /// (said once a minute at most, with the address). Without a cap, always admitted.
    fn admit(&self, ip: std::net::IpAddr) -> Option<Option<AddressSlot>> {
        if self.cap == 0 {
            return Some(None);
        }
        let address = client_address(ip);
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(address).or_insert(0);
        if *count >= self.cap {
            drop(held);
            let mut warned = self.warned_at.lock().unwrap_or_else(|e| e.into_inner());
            if warned.is_none_or(|t| t.elapsed() >= CAP_WARNING_EVERY) {
                tracing::warn!(
                    %address,
                    max_connections_per_address = self.cap,
                    "a client address at its connection cap: its new connections are closed"
                );
                *warned = Some(std::time::Instant::now());
            }
            return None;
        }
        *count += 1;
        Some(Some(AddressSlot {
            address,
            held: Arc::clone(&self.held),
        }))
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.address);
            }
        }
    }
}

/// The address a cap counts `ip` under: an IPv4 address (also when it comes IPv4-mapped), an
/// IPv6 address's /64 — one host is commonly given a whole /64, and would otherwise open
/// connections from as many addresses as it likes.
fn client_address(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            std::net::IpAddr::V6(std::net::Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The next connection on `listener`. A failed `accept` is logged and the next attempt waits
/// [`ACCEPT_BACKOFF`]: the failures that last (no descriptor, no memory) would fail again at
/// once, and a loop retrying them would spin a core.
pub(crate) async fn accept(listener: &TcpListener) -> (tokio::net::TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; pausing before the next");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Binds both listeners and serves until the process ends.
pub async fn run(
    ca: Arc<dyn Backend>,
    listen: SocketAddr,
    admin_addr: Option<SocketAddr>,
    config: ServerConfig,
    limits: HttpLimits,
) -> std::io::Result<()> {
    let https = TcpListener::bind(listen).await?;
    if let Some(addr) = admin_addr {
        let admin_listener = TcpListener::bind(addr).await?;
        tokio::spawn(serve_admin(Arc::clone(&ca), admin_listener));
    }
    serve_https(ca, https, config, limits).await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn an_address_is_counted_as_its_host_and_given_back_when_done() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
        // IPv4, also IPv4-mapped; IPv6 by its /64.
        assert_eq!(client_address(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            client_address(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_ne!(
            client_address(ip("2001:db8:1:3::1")),
            client_address(ip("2001:db8:1:2::1"))
        );
        let cap = PerAddress::new(2);
        let host = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
        let first = cap.admit(host).flatten();
        let second = cap.admit(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 1, 2, 3, 4)));
        assert!(first.is_some() && second.is_some());
        assert!(cap.admit(host).is_none(), "a third from the same /64");
        assert!(cap.admit(IpAddr::V4(Ipv4Addr::LOCALHOST)).is_some());
        drop(first);
        assert!(cap.admit(host).is_some(), "its slot given back");
        // Without a cap, everything is admitted and nothing counted.
        let none = PerAddress::new(0);
        assert!((0..100).all(|_| matches!(none.admit(host), Some(None))));
        assert!(none.held.lock().unwrap().is_empty());
    }
}
