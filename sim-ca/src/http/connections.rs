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
        let (tcp, _) = accept(&listener).await;
        // Answers are written whole: Nagle's algorithm would only delay a flight until the
        // client's delayed ACK.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let ca = Arc::clone(&ca);
        tokio::spawn(async move {
            // Held until the connection ends.
            let _slot = slot;
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
