//! The gateway's Prometheus metrics: events from the shared state, the upstream's latency
//! and failures in this process.

use super::*;

/// Counters for `/metrics`, since this process started.
#[derive(Default)]
pub(super) struct Metrics {
    /// Upstream exchanges, and their total time (µs).
    pub(super) upstream_requests: AtomicU64,
    pub(super) upstream_micros: AtomicU64,
    /// Upstream exchanges that failed (unreachable, timeout, unverifiable).
    pub(super) upstream_failures: AtomicU64,
    /// Exchanges by latency bucket (≤ 5, 10, 25, 50, 100, 250, 1000 ms, +Inf).
    pub(super) upstream_buckets: [AtomicU64; 8],
}

pub(super) const BUCKETS_MS: [u64; 7] = [5, 10, 25, 50, 100, 250, 1000];

impl Metrics {
    pub(super) fn observe(&self, took: Duration, failed: bool) {
        self.upstream_requests.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.upstream_micros.fetch_add(micros, Ordering::Relaxed);
        if failed {
            self.upstream_failures.fetch_add(1, Ordering::Relaxed);
        }
        let ms = micros / 1000;
        let bucket = BUCKETS_MS.iter().position(|b| ms <= *b).unwrap_or(7);
        self.upstream_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

impl Gateway {
    /// Prometheus text exposition (format 0.0.4).
    pub(super) fn render_metrics(&self) -> String {
        let m = &self.metrics;
        let mut out = String::from(
            "# HELP gateway_events_total Requests and decisions by kind, in the shared state.\n\
             # TYPE gateway_events_total counter\n",
        );
        let counters = self.with_store(|s| s.counters()).unwrap_or_default();
        for (kind, value) in crate::metrics::event_kinds(counters) {
            out.push_str(&format!(
                "gateway_events_total{{kind=\"{}\"}} {value}\n",
                crate::metrics::label(&kind)
            ));
        }
        out.push_str(
            "# HELP gateway_upstream_seconds Time of exchanges with the upstream CA, this process.\n\
             # TYPE gateway_upstream_seconds histogram\n",
        );
        let mut cumulative = 0;
        for (i, bucket) in m.upstream_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_string(), |ms| format!("{}", *ms as f64 / 1000.0));
            out.push_str(&format!(
                "gateway_upstream_seconds_bucket{{le=\"{le}\"}} {cumulative}\n"
            ));
        }
        out.push_str(&format!(
            "gateway_upstream_seconds_sum {}\ngateway_upstream_seconds_count {}\n\
             # HELP gateway_upstream_failures_total Upstream exchanges that gave no usable answer.\n\
             # TYPE gateway_upstream_failures_total counter\ngateway_upstream_failures_total {}\n",
            m.upstream_micros.load(Ordering::Relaxed) as f64 / 1e6,
            m.upstream_requests.load(Ordering::Relaxed),
            m.upstream_failures.load(Ordering::Relaxed),
        ));
        out.push_str(&format!(
            "# HELP gateway_wal_fsyncs_total fsyncs of the state database's WAL since this \
             process started (SQLite; 0 on PostgreSQL, which syncs its own).\n\
             # TYPE gateway_wal_fsyncs_total counter\ngateway_wal_fsyncs_total {}\n",
            self.desk.fsyncs()
        ));
        let pending = self
            .with_store(|s| s.list_pending())
            .map(|l| l.len())
            .unwrap_or(0);
        out.push_str(&format!(
            "# HELP gateway_pending_requests Requests pending upstream.\n\
             # TYPE gateway_pending_requests gauge\ngateway_pending_requests {pending}\n"
        ));
        out
    }
}
