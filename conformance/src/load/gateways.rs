//! The gateways a load run puts in front of the CA: their credentials and configuration.

use std::path::Path;

use sim_ca::authority::Authority;

use super::{
    LoadConfig,
    server::{Server, free_port},
};

/// What the gateways tell a client to wait when they cannot decide (the upstream or the store
/// is down): the load's outages last seconds, and the default (30 s) would keep each client
/// waiting far longer than the outage.
const RETRY_AFTER_SECS: u64 = 2;

/// How long the gateways wait for the CA: on loopback an exchange takes milliseconds, and
/// a request whose forwarder died (a killed gateway, a crashed store) is taken over once this
/// bound plus 5 s has passed — the wait a re-sent copy is told.
const UPSTREAM_TIMEOUT_SECS: u64 = 5;

/// The RA and TLS credentials and one configuration per gateway; the servers (not started).
pub(super) fn start_gateways(
    config: &LoadConfig,
    state: &Path,
    authority: &Authority,
    upstream_port: u16,
) -> Result<Vec<Server>, String> {
    use sim_ca::gateway::credential;
    let now = std::time::SystemTime::now();
    credential::write(
        &credential::issue(
            authority,
            "Load Gateway RA",
            &[],
            credential::Purpose::Ra,
            now,
        )?,
        &state.join("ra"),
    )?;
    credential::write(
        &credential::issue(
            authority,
            "load gateway",
            &["localhost"],
            credential::Purpose::TlsServer,
            now,
        )?,
        &state.join("gateway-tls"),
    )?;
    let store = match (&config.gateway_store, config.gateways) {
        (Some(url), _) => url.clone(),
        (None, 1) => state.join("gateway.db").display().to_string(),
        (None, _) => return Err("more than one gateway needs --store postgres://...".into()),
    };
    (0..config.gateways)
        .map(|i| {
            let (port, admin_port) = (free_port()?, free_port()?);
            let file = state.join(format!("gateway{i}.toml"));
            std::fs::write(
                &file,
                format!(
                    "listen = \"127.0.0.1:{port}\"\nadmin = \"127.0.0.1:{admin_port}\"\nstore = \"{store}\"\n\
                     [tls]\ncertificate = \"gateway-tls.pem\"\nkey = \"gateway-tls.key\"\nclient_cas = \"ca-chain.pem\"\n\
                     [upstream]\nurl = \"https://localhost:{upstream_port}\"\nca = \"ca-chain.pem\"\ntimeout_secs = {UPSTREAM_TIMEOUT_SECS}\n\
                     [ra]\ncertificate = \"ra.pem\"\nkey = \"ra.key\"\n\
                     [limits]\nretry_after_secs = {RETRY_AFTER_SECS}\n"
                ),
            )
            .map_err(|e| e.to_string())?;
            Ok(Server {
                binary: config.sim_ca.clone(),
                args: vec![
                    "serve".into(),
                    "--mode".into(),
                    "gateway".into(),
                    "--config".into(),
                    file.display().to_string(),
                ],
                port,
                admin_port,
                child: None,
                cpu_ticks: 0,
                fsyncs: None,
            })
        })
        .collect()
}
