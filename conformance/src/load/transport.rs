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
//!
//! A second phase opens connections that make the warm-up's exchange twice: the difference is
//! what one more exchange on an open connection costs. A connection, the renewal's other
//! exchanges and its decision's crypto are then what a renewal cannot cost less than on this
//! machine, whatever the decision does ([`Bound`]).

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
    /// Connections that did the warm-up's exchange twice, and the servers' CPU over them:
    /// the difference from [`Transport::connections`]' is one more exchange on an open
    /// connection (`None` where the warm-up has no exchange: CMP's is the handshake alone).
    pub again: Option<Again>,
    /// The exchanges a renewal makes besides the warm-up's, per server: the CA's (its
    /// request; CMP's certConf too) and the gateway's (the user's request and the upstream's).
    pub exchanges: (u32, u32),
}

/// The probe's second phase: connections with two exchanges.
#[derive(Clone, Debug)]
pub struct Again {
    /// Connections that completed both exchanges.
    pub connections: u64,
    /// The CA's CPU over this phase.
    pub ca_cpu: Duration,
    /// The gateways' CPU over this phase (when the run had gateways).
    pub gateway_cpu: Option<Duration>,
}

/// What the probe says a renewal cannot cost less than on this machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    /// A connection with its warm-up.
    pub connection: Duration,
    /// One more exchange on it.
    pub exchange: Duration,
    /// The exchanges a renewal adds to the warm-up's.
    pub exchanges: u32,
    /// The public-key operations of the decision.
    pub decision: Duration,
}

impl Bound {
    /// The least a renewal costs: a connection, its other exchanges, its decision's crypto —
    /// before any of the decision's own work (parsing, checks, the store, the answer).
    pub fn total(&self) -> Duration {
        self.connection + self.exchange * self.exchanges + self.decision
    }

    /// One report line for `who` against its whole busy floor `floor` (what the ratio is
    /// taken against), with what 1.5x the floor leaves for the decision's own work.
    pub fn line(&self, who: &str, floor: Duration) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total = ms(self.total());
        let left = 1.5 * ms(floor) - total;
        format!(
            "bound         {who}: a renewal costs at least {:.2} (a connection) + {} x {:.2} (an exchange) + {:.2} (its decision's crypto) = {total:.2} ms, {:.2}x its floor of {:.2} ms; 1.5x leaves {left:.2} ms for the decision's own work\n",
            ms(self.connection),
            self.exchanges,
            ms(self.exchange),
            ms(self.decision),
            total / ms(floor),
            ms(floor),
        )
    }
}

/// `cpu` per connection (`None` without any).
fn per(cpu: Duration, connections: u64) -> Option<Duration> {
    (connections > 0).then(|| cpu / u32::try_from(connections).unwrap_or(u32::MAX))
}

impl Transport {
    /// `cpu` per connection (`None` without any).
    fn each(&self, cpu: Duration) -> Option<Duration> {
        per(cpu, self.connections)
    }

    /// The bound for the server whose CPU over the two phases is `once` and `twice`, making
    /// `exchanges` exchanges besides the warm-up's, whose decision's crypto is `decision`.
    /// `None` when a phase completed no connection, or the second exchange measured nothing
    /// (noise larger than it).
    pub fn bound(
        &self,
        once: Duration,
        twice: Option<Duration>,
        exchanges: u32,
        decision: Duration,
    ) -> Option<Bound> {
        let again = self.again.as_ref()?;
        let connection = self.each(once)?;
        let both = per(twice?, again.connections)?;
        let exchange = both.checked_sub(connection).filter(|e| !e.is_zero())?;
        Some(Bound {
            connection,
            exchange,
            exchanges,
            decision,
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn probe(once: (u64, u64), twice: Option<(u64, u64)>) -> Transport {
        let ms = Duration::from_millis;
        Transport {
            connections: once.0,
            window: Duration::from_secs(2),
            ca_cpu: ms(once.1),
            gateway_cpu: None,
            what: "handshake, GET /cacerts",
            again: twice.map(|(connections, cpu)| Again {
                connections,
                ca_cpu: ms(cpu),
                gateway_cpu: None,
            }),
            exchanges: (1, 2),
        }
    }

    #[test]
    fn one_more_exchange_is_the_difference_between_the_phases_per_connection() {
        // 1,000 connections for 400 ms: 0.4 ms each; 500 with two exchanges for 225 ms:
        // 0.45 ms each, so an exchange costs 0.05 ms.
        let t = probe((1000, 400), Some((500, 225)));
        let bound = t
            .bound(
                t.ca_cpu,
                Some(Duration::from_millis(225)),
                1,
                Duration::from_micros(500),
            )
            .unwrap();
        assert_eq!(bound.connection, Duration::from_micros(400));
        assert_eq!(bound.exchange, Duration::from_micros(50));
        assert_eq!(bound.total(), Duration::from_micros(950));
        // Against a floor of 0.7 ms: 1.36x, and 1.5x (1.05 ms) leaves 0.10 ms.
        let line = bound.line("CA", Duration::from_micros(700));
        assert!(
            line.contains("= 0.95 ms, 1.36x its floor of 0.70 ms"),
            "{line}"
        );
        assert!(line.contains("1.5x leaves 0.10 ms"), "{line}");
    }

    #[test]
    fn no_bound_without_a_second_phase_or_when_the_noise_hides_the_exchange() {
        let cpu = Some(Duration::from_millis(190));
        let decision = Duration::from_micros(500);
        let without = probe((1000, 400), None);
        assert_eq!(without.bound(without.ca_cpu, cpu, 1, decision), None);
        // Two exchanges measured cheaper than one: noise, not a figure.
        let noisy = probe((1000, 400), Some((500, 190)));
        assert_eq!(noisy.bound(noisy.ca_cpu, cpu, 1, decision), None);
        let empty = probe((1000, 400), Some((0, 0)));
        assert_eq!(
            empty.bound(empty.ca_cpu, Some(Duration::ZERO), 1, decision),
            None
        );
    }
}
