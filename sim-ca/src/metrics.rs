//! Prometheus text exposition (format 0.0.4) for the admin listener's `GET /metrics`.

use crate::Ca;

/// The counters that are kinds of events: not those kept per subject (`requests:CN=...`,
/// kept while a scenario numbers requests), whose series would grow with the users and put
/// their names in the metrics.
pub(crate) fn event_kinds(counters: Vec<(String, i64)>) -> impl Iterator<Item = (String, i64)> {
    counters.into_iter().filter(|(kind, _)| !kind.contains(':'))
}

/// Label-safe text: our counter names (`issued`, `requests:CN=...`) with every character
/// outside `[A-Za-z0-9_]` replaced.
pub(crate) fn label(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The Prometheus text exposition (format 0.0.4) of the CA's counters: decisions by kind
/// (kept in the store, so they count across restarts), the WAL fsyncs of this process (group
/// commits), and the requests waiting for a decision.
pub fn ca(ca: &Ca) -> String {
    let mut out = String::from(
        "# HELP sim_ca_events_total Requests and decisions by kind, since the state was created.\n\
         # TYPE sim_ca_events_total counter\n",
    );
    for (kind, value) in event_kinds(ca.counters()) {
        let kind = label(&kind);
        out.push_str(&format!("sim_ca_events_total{{kind=\"{kind}\"}} {value}\n"));
    }
    out.push_str(&format!(
        "# HELP sim_ca_wal_fsyncs_total fsyncs of the state database's WAL since this process \
         started.\n# TYPE sim_ca_wal_fsyncs_total counter\nsim_ca_wal_fsyncs_total {}\n",
        ca.fsyncs()
    ));
    let pending = ca
        .with_store(|s| s.list_pending())
        .map(|l| l.len())
        .unwrap_or(0);
    out.push_str(&format!(
        "# HELP sim_ca_pending_requests Requests waiting for a decision.\n\
         # TYPE sim_ca_pending_requests gauge\nsim_ca_pending_requests {pending}\n"
    ));
    out
}
