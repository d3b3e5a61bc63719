//! `sim-ca`: the renewal gateway and mock CA.
//!
//! Exit codes: 0 success; 1 error (the message says what and why); 2 usage error.
#![forbid(unsafe_code)]

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc};

use clap::{Parser, Subcommand};
use sim_ca::{
    Ca,
    authority::Authority,
    clock::Clock,
    http::{self, HttpLimits},
    scenario::Scenario,
    store::Store,
};

#[derive(Parser)]
#[command(
    name = "sim-ca",
    version,
    about = "Renewal gateway and mock CA (EST + CMC over mutual TLS)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// A setting that is on or off.
#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Switch {
    On,
    Off,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve EST (/.well-known/est/...) and CMC (/cmc) over HTTPS with client certificates.
    Serve {
        /// `sim` (or `ca`): the simulated CA (issues itself; scenarios, dispositions, faults;
        /// with `--trust-ra`, the CA behind a gateway). `gateway`: the renewal gateway in front
        /// of an upstream CA, configured by `--config`.
        #[arg(long, value_enum, default_value = "sim")]
        mode: ServeMode,
        /// The gateway's TOML configuration (`--mode gateway`).
        #[arg(long, required_if_eq("mode", "gateway"))]
        config: Option<PathBuf>,
        /// HTTPS address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// State directory (CA keys and certificates, SQLite database); created on first run.
        #[arg(long, required_if_eq("mode", "sim"))]
        state: Option<PathBuf>,
        /// Where the CA's state lives instead of `<state>/ca.db`: a SQLite file, or a
        /// `postgres://` URL shared by several instances (the keys stay in `--state`).
        #[arg(long)]
        store: Option<String>,
        /// Scenario file (TOML): templates, disposition rules, faults.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Admin API address (plain HTTP; keep it on loopback).
        #[arg(long, default_value = "127.0.0.1:8444")]
        admin: SocketAddr,
        /// Trust this certificate (PEM; the first one of the file) as a registration
        /// authority: a renewal gateway that forwards users' signed requests inside its own
        /// signed wrapper, or their PKCS#10 for a subject it validated (repeatable).
        #[arg(long = "trust-ra")]
        trust_ra: Vec<PathBuf>,
        /// Seconds a certificate issued over CMP without implicit confirmation waits for the
        /// client's certConf before it is revoked (RFC 4210 §5.3.18).
        #[arg(long, default_value_t = sim_ca::service::DEFAULT_CONFIRM_WAIT.as_secs(), value_name = "SECS")]
        cmp_confirm_wait: u64,
        /// Whether a client may resume its TLS session (`off`: every connection costs the
        /// card a signature, and a PIN-always key a prompt; nothing outside the card stands in
        /// for it). A gateway says it in its configuration (`[tls] resumption`).
        #[arg(long, value_enum, default_value_t = Switch::On, value_name = "on|off")]
        tls_resumption: Switch,
        /// Connections served at once; more wait in the kernel's accept queue until one ends.
        /// A gateway says it in its configuration (`[limits] max_connections`).
        #[arg(long, default_value_t = sim_ca::http::DEFAULT_MAX_CONNECTIONS, value_name = "N",
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
        max_connections: usize,
        /// Connections one client address (an IPv6 client: its /64) may hold at once; past
        /// it, its new connections are closed at once. 0 (the default): no such cap — behind
        /// a load balancer every client has one address. A gateway says it in its
        /// configuration (`[limits] max_connections_per_address`).
        #[arg(long, default_value_t = 0, value_name = "N")]
        max_connections_per_address: usize,
    },
    /// Issue a key and a certificate for a gateway (its RA identity toward this CA, or its TLS
    /// server certificate): writes PREFIX.pem (certificate, then the issuing CA) and PREFIX.key.
    Credential {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// The certificate's common name.
        #[arg(long, default_value = "Renewal Gateway RA")]
        cn: String,
        /// DNS names or IP addresses for its subjectAltName (repeatable).
        #[arg(long = "name")]
        names: Vec<String>,
        /// A TLS server certificate (serverAuth) instead of an RA's (clientAuth and
        /// id-kp-cmcRA: it authenticates to the CA and signs the answers to clients).
        #[arg(long)]
        tls_server: bool,
        /// Output prefix.
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a certificate for a PKCS#10 (the initial enrollment an administrator does).
    Issue {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// The request (PEM or DER).
        #[arg(long)]
        csr: PathBuf,
        /// Template name or OID.
        #[arg(long, default_value = "SmartcardUser")]
        template: String,
        /// Validity in days (default: the template's).
        #[arg(long)]
        days: Option<u32>,
        /// Where to write the certificate (PEM).
        #[arg(long)]
        out: PathBuf,
    },
    /// List, approve or deny pending requests.
    Pending {
        #[command(subcommand)]
        action: PendingCmd,
    },
    /// Revoke a certificate by serial number (hex).
    Revoke {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// Serial number, hex.
        serial: String,
    },
    /// Print the audit trail: every decision, oldest first.
    Audit {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the templates (built-in, or a scenario's).
    Templates {
        /// Scenario file.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum ServeMode {
    /// The simulated CA (`ca` too: with `--trust-ra` it is the CA behind a gateway).
    #[value(alias = "ca")]
    Sim,
    /// The renewal gateway.
    Gateway,
}

#[derive(Subcommand)]
enum PendingCmd {
    /// List pending requests.
    List {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
    },
    /// Approve one.
    Approve {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// Request id.
        id: i64,
    },
    /// Deny one.
    Deny {
        /// State directory.
        #[arg(long)]
        state: PathBuf,
        /// Request id.
        id: i64,
    },
}

fn main() -> ExitCode {
    if let Some(code) = cli_docs::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        return code;
    }
    // Logs go to stderr; `RUST_LOG` chooses what (default: info). Never a secret in them.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sim-ca: {e}");
            ExitCode::from(1)
        }
    }
}

fn scenario(path: Option<&PathBuf>) -> Result<Scenario, String> {
    match path {
        None => Ok(Scenario::default()),
        Some(p) => Scenario::from_toml(
            &std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )
        .map_err(|e| format!("{}: {e}", p.display())),
    }
}

fn open(state: &std::path::Path, scenario: &Scenario) -> Result<(Ca, bool), String> {
    open_with(state, None, scenario)
}

fn open_with(
    state: &std::path::Path,
    store: Option<&str>,
    scenario: &Scenario,
) -> Result<(Ca, bool), String> {
    let clock = Clock::system();
    let (authority, created) =
        Authority::load_or_create_with(state, clock.now(), scenario.ca_key_algorithm()?)
            .map_err(|e| e.to_string())?;
    let store = match store {
        Some(location) => Store::open_location(location),
        None => Store::open(&state.join("ca.db")),
    }
    .map_err(|e| e.to_string())?;
    Ok((Ca::new(authority, store, scenario, clock)?, created))
}

/// A CA whose issuing certificate has expired (or is not valid yet) does not serve, as ADCS does
/// not start: nothing it issued would chain, and every client's TLS handshake would fail with a
/// less useful message than this one.
fn issuing_ca_valid_now(ca: &Ca) -> Result<(), String> {
    let (not_before, not_after) = ca.authority().issuing_validity();
    let now = ca.clock().now();
    let validity = ca
        .authority()
        .issuing
        .cert
        .value()
        .tbs_certificate()
        .validity();
    if now >= not_after {
        return Err(format!(
            "the issuing CA's certificate expired on {}: start from a new --state directory",
            validity.not_after
        ));
    }
    if now < not_before {
        return Err(format!(
            "the issuing CA's certificate is not valid before {} (is the clock right?)",
            validity.not_before
        ));
    }
    Ok(())
}

/// `sim-ca serve --mode gateway`: the gateway from its configuration file.
fn serve_gateway(config_path: &std::path::Path) -> Result<(), String> {
    use sim_ca::gateway::{Gateway, Policy, RaCredential, config, upstream::Upstream};
    let config = config::GatewayConfig::load(config_path)?;
    let client_cas = config::read_certificates(&config.tls.client_cas)?;
    let upstream_cas = config::read_certificates(&config.upstream.ca)?;
    let ra = RaCredential {
        chain: config::read_certificates(&config.ra.certificate)?,
        key: config::read_key(&config.ra.key)?,
    };
    let upstream = Upstream::new(
        &config.upstream.url,
        config.upstream.protocol,
        &upstream_cas,
        &ra.key,
        &ra.chain,
        config.upstream_timeout(),
    )?;
    let store = Store::open_location(&config.store).map_err(|e| e.to_string())?;
    let clock = Clock::system();
    let identity = config::read_identity(&config.tls.certificate, &config.tls.key)?;
    let tls = http::tls_config_for(&client_cas, &clock, identity)?;
    let tls = if config.tls.resumption {
        tls
    } else {
        http::without_resumption(tls)
    };
    let policy = Policy {
        client_cas,
        upstream_cas,
        templates: sim_ca::templates::TemplateRegistry::from_configs(&config.policy.templates)?,
        grace: std::time::Duration::from_secs(u64::from(config.policy.grace_days) * 86400),
        profile: config.policy.profile,
        retry_after: config.limits.retry_after_secs,
        max_pending_per_identity: config.policy.max_pending_per_identity,
    };
    let shared = store.is_shared();
    let gateway = Gateway::new(policy, ra, Box::new(upstream), store, clock)?;
    eprintln!(
        "sim-ca: renewal gateway\n  HTTPS:      https://{}/.well-known/est/ and /cmc (client certificate required), /.well-known/cmp\n  upstream:   {} ({:?})\n  state:      {}{}\n  admin:      {}",
        config.listen,
        config.upstream.url,
        config.upstream.protocol,
        if shared { "PostgreSQL" } else { "SQLite" },
        if shared { " (shared)" } else { "" },
        config.admin.map_or("none".to_string(), |a| format!(
            "http://{a}/health, /metrics"
        )),
    );
    let limits = HttpLimits {
        max_body: config.limits.max_body,
        header_timeout: std::time::Duration::from_secs(config.limits.header_timeout_secs),
        body_timeout: std::time::Duration::from_secs(config.limits.body_timeout_secs),
        write_timeout: std::time::Duration::from_secs(config.limits.write_timeout_secs),
        connection_lifetime: std::time::Duration::from_secs(config.limits.connection_lifetime_secs),
        max_connections: config.limits.max_connections,
        max_connections_per_address: config.limits.max_connections_per_address,
    };
    serve(Arc::new(gateway), config.listen, config.admin, tls, limits)
}

/// Serves `backend` (the simulated CA or the gateway) until the process ends.
fn serve(
    backend: Arc<dyn sim_ca::backend::Backend>,
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    tls: rustls::ServerConfig,
    limits: HttpLimits,
) -> Result<(), String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(http::run(backend, listen, admin, tls, limits))
        .map_err(|e| format!("cannot listen: {e}"))
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Serve {
            mode: ServeMode::Gateway,
            config,
            ..
        } => serve_gateway(&config.ok_or("--mode gateway needs --config FILE")?),
        Cmd::Serve {
            mode: ServeMode::Sim,
            listen,
            state,
            store,
            scenario: scenario_file,
            admin,
            trust_ra,
            cmp_confirm_wait,
            tls_resumption,
            max_connections,
            max_connections_per_address,
            ..
        } => {
            let state = state.ok_or("--mode sim needs --state DIR")?;
            let scenario = scenario(scenario_file.as_ref())?;
            let (ca, created) = open_with(&state, store.as_deref(), &scenario)?;
            issuing_ca_valid_now(&ca)?;
            let ras = trust_ra
                .iter()
                .map(|p| {
                    // The RA's certificate: the first of the file (a chain may follow it).
                    sim_ca::gateway::config::read_certificates(p)
                        .map(|certs| certs[0].clone())
                        .map_err(|e| format!("--trust-ra: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let ca = ca
                .with_trusted_ras(ras)
                .map_err(|e| format!("--trust-ra: {e}"))?
                .with_confirm_wait(std::time::Duration::from_secs(cmp_confirm_wait));
            let identity = http::server_identity(&ca, &state)?;
            let config = match tls_resumption {
                Switch::On => http::tls_config(&ca, identity)?,
                Switch::Off => http::without_resumption(http::tls_config(&ca, identity)?),
            };
            let chain = state.join("ca-chain.pem");
            eprintln!(
                "sim-ca: {} CA in {}\n  trust it:   --cacert {} (curl), --ca-cert {} (renew)\n  HTTPS:      https://{listen}/.well-known/est/ (client certificate required)\n  CMP:        https://{listen}/.well-known/cmp (protected by the certificate to renew)\n  admin:      http://{admin}/admin/",
                if created {
                    "created a new"
                } else {
                    "loaded the"
                },
                state.display(),
                chain.display(),
                chain.display(),
            );
            let ca = Arc::new(ca);
            // CMP certificates nobody confirmed in time are revoked even when no further CMP
            // request comes to notice them.
            let sweeper = Arc::clone(&ca);
            std::thread::spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                    sweeper.sweep_confirmations();
                }
            });
            let limits = HttpLimits {
                max_connections,
                max_connections_per_address,
                ..HttpLimits::default()
            };
            serve(ca, listen, Some(admin), config, limits)
        }
        Cmd::Credential {
            state,
            cn,
            names,
            tls_server,
            out,
        } => {
            let (ca, _) = open(&state, &Scenario::default())?;
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let credential = sim_ca::gateway::credential::issue(
                ca.authority(),
                &cn,
                &names,
                if tls_server {
                    sim_ca::gateway::credential::Purpose::TlsServer
                } else {
                    sim_ca::gateway::credential::Purpose::Ra
                },
                ca.clock().now(),
            )?;
            sim_ca::gateway::credential::write(&credential, &out)?;
            println!(
                "issued \"{}\" -> {}.pem, {}.key",
                credential.chain[0].value().tbs_certificate().subject(),
                out.display(),
                out.display()
            );
            Ok(())
        }
        Cmd::Issue {
            state,
            csr,
            template,
            days,
            out,
        } => {
            let (ca, _) = open(&state, &Scenario::default())?;
            let bytes = std::fs::read(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            let cert = ca.issue_initial(&bytes, &template, days)?;
            let pem = der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert.der())
                .map_err(|e| e.to_string())?;
            std::fs::write(&out, pem).map_err(|e| format!("{}: {e}", out.display()))?;
            let tbs = cert.value().tbs_certificate();
            println!(
                "issued serial {} to \"{}\" -> {}",
                tbs.serial_number(),
                tbs.subject(),
                out.display()
            );
            Ok(())
        }
        Cmd::Pending { action } => match action {
            PendingCmd::List { state } => {
                let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
                let list = store.list_pending().map_err(|e| e.to_string())?;
                if list.is_empty() {
                    println!("no pending requests");
                    return Ok(());
                }
                print_table(
                    &["ID", "KIND", "POLLS", "SINCE"],
                    list.iter()
                        .map(|p| {
                            vec![
                                p.id.to_string(),
                                p.kind.to_string(),
                                p.polls.to_string(),
                                rfc3339(p.created_at),
                            ]
                        })
                        .collect(),
                );
                Ok(())
            }
            PendingCmd::Approve { state, id } => decide(&state, id, true),
            PendingCmd::Deny { state, id } => decide(&state, id, false),
        },
        Cmd::Audit { state, json } => {
            let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
            let trail = store.audit().map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&trail).map_err(|e| e.to_string())?
                );
                return Ok(());
            }
            if trail.is_empty() {
                println!("no audit records");
                return Ok(());
            }
            print_table(
                &[
                    "ID", "AT", "ENDPOINT", "OUTCOME", "TEMPLATE", "SERIAL", "PENDING", "TLS",
                    "REQUEST", "DETAIL",
                ],
                trail
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.to_string(),
                            rfc3339(r.at),
                            r.endpoint.to_string(),
                            r.outcome.to_string(),
                            r.template.as_deref().unwrap_or("-").to_string(),
                            r.serial.as_deref().unwrap_or("-").to_string(),
                            r.pending_id.map_or("-".into(), |p| p.to_string()),
                            short(&r.tls_fingerprint).to_string(),
                            short(&r.request_hash).to_string(),
                            r.detail.clone(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        Cmd::Revoke { state, serial } => {
            let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
            let serial = serial.replace(':', "").to_ascii_lowercase();
            let known = sim_ca::service::admin_revoke(
                &store,
                &serial,
                Clock::system().unix(),
                sim_ca::store::Endpoint::Cli,
            )
            .map_err(|e| e.to_string())?;
            println!(
                "revoked {serial}{}",
                if known {
                    ""
                } else {
                    " (not issued by this CA)"
                }
            );
            Ok(())
        }
        Cmd::Templates { scenario: file } => {
            let scenario = scenario(file.as_ref())?;
            let registry = sim_ca::templates::TemplateRegistry::from_configs(&scenario.templates)?;
            print_table(
                &["NAME", "OID", "VALIDITY", "KEYS", "RENEWALS"],
                registry
                    .all()
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.to_string(),
                            t.oid.to_string(),
                            format!("{} days", t.validity_days),
                            t.allowed_keys
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", "),
                            if t.renewals_pend { "pend" } else { "issue" }.to_string(),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
    }
}

/// A table for people: a header, then columns padded to their widest cell (the last one is
/// not padded: it holds free text). `--json` is the form for machines.
fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let text: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == last {
                    (*c).to_string()
                } else {
                    format!("{c:<width$}", width = widths[i])
                }
            })
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Seconds since 1970 as RFC 3339 in UTC (`2026-12-02T09:43:16Z`).
fn rfc3339(unix: i64) -> String {
    u64::try_from(unix)
        .ok()
        .and_then(|s| der::DateTime::from_unix_duration(std::time::Duration::from_secs(s)).ok())
        .map_or_else(|| unix.to_string(), |t| t.to_string())
}

/// The first 16 hex digits of a fingerprint, "-" when empty.
fn short(hex: &str) -> &str {
    if hex.is_empty() {
        "-"
    } else {
        &hex[..hex.len().min(16)]
    }
}

fn decide(state: &std::path::Path, id: i64, approve: bool) -> Result<(), String> {
    let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
    if sim_ca::service::admin_decide(
        &store,
        id,
        approve,
        Clock::system().unix(),
        sim_ca::store::Endpoint::Cli,
    )
    .map_err(|e| e.to_string())?
    {
        let verb = if approve { "approved" } else { "denied" };
        println!("request {id} {verb}; the client gets the answer at its next poll");
        Ok(())
    } else {
        Err(format!("request {id} is not pending"))
    }
}
