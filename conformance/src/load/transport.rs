//! What a connection costs the servers when it decides nothing: the same clients, after the
//! renewals, open connections that do only a renewal's warm-up (the TLS handshake with the
//! card's certificate, then `GET /cacerts`; for CMP the handshake alone) and close them.
//!
//! The crypto floor ([`super::floor`]) counts a renewal's public-key operations; this counts
//! the rest of a request's unavoidable work on this machine — TLS records, the HTTP exchange,
//! loopback TCP, the runtime's wake-ups — measured on the server itself, in the same run. A
//! renewal's CPU minus this is what its decision costs (the request's parse and checks, the
//! store's transaction and fsync share, the answer, and its second HTTP exchange), to compare
//! with the decision's own crypto floor.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use super::floor::{Count, Unit};

/// The warm-up connections of a run and the CPU the servers spent on them.
#[derive(Clone, Debug)]
pub struct Transport {
    /// Connections that completed their warm-up.
    pub connections: u64,
    /// Wall time the probe ran.
    pub window: Duration,
    /// The CA's CPU over the probe.
    pub ca_cpu: Duration,
    /// The gateways' CPU over the probe (when the run had gateways).
    pub gateway_cpu: Option<Duration>,
    /// What one connection does, for the report (`handshake, GET /cacerts`).
    pub what: &'static str,
}

impl Transport {
    /// `cpu` per connection (`None` without any).
    fn each(&self, cpu: Duration) -> Option<Duration> {
        (self.connections > 0).then(|| cpu / u32::try_from(self.connections).unwrap_or(u32::MAX))
    }

    /// One report line for `who`: its CPU per warm-up connection, and what a renewal costs it
    /// beyond one (`renewal_cpu`) against the crypto of its decision (`decision` at `unit`'s
    /// speed: the renewal's floor without the handshake).
    pub fn line(
        &self,
        who: &str,
        probe_cpu: Duration,
        renewal_cpu: Duration,
        decision: Count,
        unit: &Unit,
    ) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let Some(connection) = self.each(probe_cpu) else {
            return format!("transport     {who}: no warm-up connection completed\n");
        };
        let handshake = ms(Count::HANDSHAKE.cost(unit));
        let beyond = ms(renewal_cpu) - ms(connection);
        let floor = ms(decision.cost(unit));
        let ratio = if floor > 0.0 {
            format!("{:.2}x", beyond / floor)
        } else {
            "-".into()
        };
        format!(
            "transport     {who}: {:.2} ms per connection that only warms up ({}; {} in {:.1} s; its handshake's crypto {handshake:.2} ms); a renewal's other {beyond:.2} ms against its decision's floor of {floor:.2} ms ({decision}): {ratio}\n",
            ms(connection),
            self.what,
            self.connections,
            self.window.as_secs_f64(),
        )
    }
}

/// Runs `warm_up(i)` in a loop on `threads` threads (`i`: the thread) for `window`, and
/// returns how many completed. A failure stops its thread (the server may be gone).
pub fn connections(
    threads: usize,
    window: Duration,
    warm_up: impl Fn(usize) -> Result<(), String> + Sync,
) -> u64 {
    let done = AtomicU64::new(0);
    let deadline = Instant::now() + window;
    std::thread::scope(|scope| {
        for i in 0..threads {
            let (done, warm_up) = (&done, &warm_up);
            scope.spawn(move || {
                while Instant::now() < deadline {
                    if warm_up(i).is_err() {
                        return;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    done.into_inner()
}
