//! What a load run found, and how it is printed.

use std::time::Duration;

use super::{Footprint, floor, transport};

/// What happened, and what the checks found.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Renewal attempts started.
    pub attempts: u64,
    /// Renewals that installed a new certificate.
    pub renewed: u64,
    /// Attempts rolled back (CA unreachable, connection lost, refused).
    pub rolled_back: u64,
    /// Rollbacks by reason (ids and numbers cut off), most frequent first.
    pub rollback_reasons: Vec<(String, u64)>,
    /// Attempts that ended in a card-side error and were finished by `recover`.
    pub recovered: u64,
    /// Attempts left pending (then resumed or abandoned by the next attempt's recover).
    pub pending: u64,
    /// SIGKILLs sent to a server (the CA or a gateway), each restarted.
    pub kills: u64,
    /// Crashes of the PostgreSQL store (`pg_ctl stop -m immediate`), each started again.
    pub store_restarts: u64,
    /// Rounds of `pg_terminate_backend` on every client backend of the store.
    pub store_terminations: u64,
    /// Certificates in the CA's database at the end.
    pub certificates: usize,
    /// Renewals the CA issued and audited that no card ever held (answers lost for good).
    pub issued_not_installed: u64,
    /// Audit records at the end.
    pub audit_records: usize,
    /// Every broken invariant, described. Empty when all is well.
    pub violations: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Wall time the clients were renewing (the rate's denominator: enrolment and
    /// `--prefill` excluded).
    pub renewing: Duration,
    /// Latency of each renewal that installed a certificate (whole client flow: TLS, card,
    /// CA, install), microseconds, sorted.
    pub latencies_us: Vec<u64>,
    /// CPU time of the server processes (user + system, from `/proc/PID/stat`), all lives.
    pub server_cpu: Duration,
    /// Each server process (the CA, then the gateways): its footprint once the run was warm
    /// (a tenth of the way in) and at its end — for the CA, of its life then (kills restart it).
    pub footprints: Vec<ServerFootprint>,
    /// CPU time of this process while the clients ran (all client threads, their virtual
    /// cards included).
    pub client_cpu: Duration,
    /// fsyncs of the CA's WAL (group commits), from `/admin/metrics`, all lives; `None` when a
    /// life ended before it could be read.
    pub fsyncs: Option<u64>,
    /// Certificates put in the store before the run (`--prefill`).
    pub prefilled: u64,
    /// Gateway processes.
    pub gateways: usize,
    /// CPU time of the gateway processes (all of them).
    pub gateway_cpu: Duration,
    /// CPU time of the PostgreSQL server processes during the run, when the gateways use it.
    pub postgres_cpu: Option<Duration>,
    /// The servers' crypto floor per renewal, timed right after the run (`None` when it could
    /// not be timed).
    pub floor: Option<floor::Floor>,
    /// The servers' CPU for connections that only warm up, probed right after the renewals
    /// (`None` for a run with faults or shorter than 5 s).
    pub transport: Option<transport::Transport>,
}

impl LoadReport {
    /// The `q`-quantile of the renewal latencies (0.5: median).
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let n = self.latencies_us.len();
        (n > 0).then(|| {
            let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
            Duration::from_micros(self.latencies_us[i])
        })
    }
}

impl LoadReport {
    /// The figures, one per line.
    pub fn render(&self) -> String {
        let per = |d: Duration| {
            if self.renewed == 0 {
                "-".to_string()
            } else {
                format!("{:.2} ms", d.as_secs_f64() * 1e3 / self.renewed as f64)
            }
        };
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        };
        let fsyncs = match (self.fsyncs, self.renewed) {
            (Some(f), r) if r > 0 => format!("{f} ({:.2} per renewal)", f as f64 / r as f64),
            (Some(f), _) => f.to_string(),
            (None, _) => "- (a server life ended before it was read)".into(),
        };
        let perf = format!(
            "prefilled     {} certificates\nlatency       p50 {}, p99 {}\nserver CPU    {:.2} s, {} per renewal\nclient CPU    {:.2} s, {} per renewal (clients, virtual cards, TLS)\nfsyncs        {}\n",
            self.prefilled,
            ms(self.latency(0.5)),
            ms(self.latency(0.99)),
            self.server_cpu.as_secs_f64(),
            per(self.server_cpu),
            self.client_cpu.as_secs_f64(),
            per(self.client_cpu),
            fsyncs,
        );
        let perf = if self.gateways > 0 {
            format!(
                "{perf}gateways      {} instance(s), CPU {:.2} s, {} per renewal\npostgres CPU  {}\n",
                self.gateways,
                self.gateway_cpu.as_secs_f64(),
                per(self.gateway_cpu),
                self.postgres_cpu.map_or("-".into(), |d| format!(
                    "{:.2} s, {} per renewal",
                    d.as_secs_f64(),
                    per(d)
                )),
            )
        } else {
            perf
        };
        let perf = match &self.floor {
            Some(floor) if self.renewed > 0 => {
                let each = |cpu: Duration| cpu / u32::try_from(self.renewed).unwrap_or(u32::MAX);
                let perf = perf + &floor.line("CA", floor.ca, each(self.server_cpu));
                match floor.gateway {
                    Some(count) => perf + &floor.line("gateway", count, each(self.gateway_cpu)),
                    None => perf,
                }
            }
            _ => perf,
        };
        let perf = match (&self.floor, &self.transport) {
            (Some(floor), Some(transport)) if self.renewed > 0 => {
                let each = |cpu: Duration| cpu / u32::try_from(self.renewed).unwrap_or(u32::MAX);
                let unit = floor.busy.unwrap_or(floor.idle);
                let perf = perf
                    + &transport.line(
                        "CA",
                        transport.ca_cpu,
                        each(self.server_cpu),
                        floor.ca_decision,
                        &unit,
                    );
                match (floor.gateway_decision, transport.gateway_cpu) {
                    (Some(decision), Some(cpu)) => {
                        perf + &transport.line(
                            "gateway",
                            cpu,
                            each(self.gateway_cpu),
                            decision,
                            &unit,
                        )
                    }
                    _ => perf,
                }
            }
            _ => perf,
        };
        let perf = match (&self.floor, &self.transport) {
            (Some(floor), Some(transport)) if self.renewed > 0 => {
                let unit = floor.busy.unwrap_or(floor.idle);
                let again = transport.again.as_ref();
                // Behind a gateway the CA's connection is kept alive: no warm-up reaches it.
                let ca = floor
                    .gateway
                    .is_none()
                    .then(|| {
                        transport.bound(
                            transport.ca_cpu,
                            again.map(|a| a.ca_cpu),
                            transport.exchanges.0,
                            floor.ca_decision.cost(&unit),
                        )
                    })
                    .flatten();
                let gateway = floor.gateway_decision.zip(transport.gateway_cpu).and_then(
                    |(decision, cpu)| {
                        transport.bound(
                            cpu,
                            again.and_then(|a| a.gateway_cpu),
                            transport.exchanges.1,
                            decision.cost(&unit),
                        )
                    },
                );
                let perf = match ca {
                    Some(b) => perf + &b.line("CA", floor.ca.cost(&unit)),
                    None => perf,
                };
                match (gateway, floor.gateway) {
                    (Some(b), Some(count)) => perf + &b.line("gateway", count.cost(&unit)),
                    _ => perf,
                }
            }
            _ => perf,
        };
        let mib = |f: &Footprint| f.rss_kib as f64 / 1024.0;
        let perf = self.footprints.iter().fold(perf, |out, f| {
            format!(
                "{out}footprint     {}: RSS {:.1} -> {:.1} MiB (peak {:.1}), fds {} -> {} (peak {}) (warm -> end)\n",
                f.name,
                mib(&f.warm),
                mib(&f.end),
                mib(&f.peak),
                f.warm.fds,
                f.end.fds,
                f.peak.fds
            )
        });
        let reasons: String = self
            .rollback_reasons
            .iter()
            .map(|(reason, n)| format!("  rolled back {n}x: {reason}\n"))
            .collect();
        let violations: String = self
            .violations
            .iter()
            .map(|v| format!("  VIOLATION: {v}\n"))
            .collect();
        format!(
            "attempts      {}\nrenewed       {}\nrolled back   {}\nrecovered     {}\npending       {}\nkills         {}\nstore faults  {} crashes, {} backend terminations\ncertificates  {} in the CA database, {} issued but never installed\naudit records {}\nviolations    {}\nelapsed       {:.1} s, {:.1} s of it renewing ({:.1} renewals/s)\n{reasons}{perf}{violations}",
            self.attempts,
            self.renewed,
            self.rolled_back,
            self.recovered,
            self.pending,
            self.kills,
            self.store_restarts,
            self.store_terminations,
            self.certificates,
            self.issued_not_installed,
            self.audit_records,
            self.violations.len(),
            self.elapsed.as_secs_f64(),
            self.renewing.as_secs_f64(),
            self.renewed as f64 / self.renewing.as_secs_f64().max(0.001),
        )
    }
}

/// A server's footprint over the run.
#[derive(Clone, Debug)]
pub struct ServerFootprint {
    /// `CA`, `gateway 1`, ...
    pub name: String,
    /// Once the run was warm (a tenth of the way in).
    pub warm: Footprint,
    /// The largest resident set and the most descriptors seen in any sample (every life, when
    /// servers are killed and restarted): the bound a soak states.
    pub peak: Footprint,
    /// At the end (of the life then).
    pub end: Footprint,
}
