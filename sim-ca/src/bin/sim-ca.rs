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

#[derive(Subcommand)]
enum Cmd {
    /// Serve EST (/.well-known/est/...) and CMC (/cmc) over HTTPS with client certificates.
    Serve {
        /// HTTPS address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// State directory (CA keys and certificates, SQLite database); created on first run.
        #[arg(long)]
        state: PathBuf,
        /// Scenario file (TOML): templates, disposition rules, faults.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Admin API address (plain HTTP; keep it on loopback).
        #[arg(long, default_value = "127.0.0.1:8444")]
        admin: SocketAddr,
        /// Trust this certificate (PEM) as a registration authority: a renewal gateway that
        /// forwards users' signed requests inside its own signed wrapper (repeatable).
        #[arg(long = "trust-ra")]
        trust_ra: Vec<PathBuf>,
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
    let clock = Clock::system();
    let (authority, created) =
        Authority::load_or_create_with(state, clock.now(), scenario.ca_key_algorithm()?)
            .map_err(|e| e.to_string())?;
    let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
    Ok((Ca::new(authority, store, scenario, clock)?, created))
}

fn run(cmd: Cmd) -> Result<(), String> {
    match cmd {
        Cmd::Serve {
            listen,
            state,
            scenario: scenario_file,
            admin,
            trust_ra,
        } => {
            let scenario = scenario(scenario_file.as_ref())?;
            let (ca, created) = open(&state, &scenario)?;
            let ras = trust_ra
                .iter()
                .map(|p| {
                    let text = std::fs::read_to_string(p)
                        .map_err(|e| format!("--trust-ra {}: {e}", p.display()))?;
                    let (_, der) = der::pem::decode_vec(text.trim().as_bytes())
                        .map_err(|e| format!("--trust-ra {}: {e}", p.display()))?;
                    renewal_core::cmc::Retained::from_der(&der)
                        .map_err(|e| format!("--trust-ra {}: {e}", p.display()))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let ca = ca.with_trusted_ras(ras);
            let identity = http::server_identity(&ca, &state)?;
            let config = http::tls_config(&ca, identity)?;
            let chain = state.join("ca-chain.pem");
            eprintln!(
                "sim-ca: {} CA in {}\n  trust it:   --cacert {} (curl), --ca-cert {} (renew)\n  HTTPS:      https://{listen}/.well-known/est/ (client certificate required)\n  admin:      http://{admin}/admin/",
                if created {
                    "created a new"
                } else {
                    "loaded the"
                },
                state.display(),
                chain.display(),
                chain.display(),
            );
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime
                .block_on(http::run(
                    Arc::new(ca),
                    listen,
                    Some(admin),
                    config,
                    HttpLimits::default(),
                ))
                .map_err(|e| format!("cannot listen: {e}"))
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
                }
                for p in list {
                    println!(
                        "{}\t{}\tpolls {}\tsince {}",
                        p.id, p.kind, p.polls, p.created_at
                    );
                }
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
            }
            for r in trail {
                println!(
                    "{}\t{}\t{}\t{}\ttemplate={}\tserial={}\tpending={}\ttls={}\trequest={}\t{}",
                    r.id,
                    r.at,
                    r.endpoint,
                    r.outcome,
                    r.template.as_deref().unwrap_or("-"),
                    r.serial.as_deref().unwrap_or("-"),
                    r.pending_id.map_or("-".into(), |p| p.to_string()),
                    short(&r.tls_fingerprint),
                    short(&r.request_hash),
                    r.detail
                );
            }
            Ok(())
        }
        Cmd::Revoke { state, serial } => {
            let store = Store::open(&state.join("ca.db")).map_err(|e| e.to_string())?;
            let serial = serial.replace(':', "").to_ascii_lowercase();
            let known =
                sim_ca::service::admin_revoke(&store, &serial, Clock::system().unix(), "cli")
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
            for t in registry.all() {
                println!(
                    "{}\t{}\t{} days\tkeys {:?}{}",
                    t.name,
                    t.oid,
                    t.validity_days,
                    t.allowed_keys,
                    if t.renewals_pend {
                        "\trenewals pend"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
    }
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
    if sim_ca::service::admin_decide(&store, id, approve, Clock::system().unix(), "cli")
        .map_err(|e| e.to_string())?
    {
        let verb = if approve { "approved" } else { "denied" };
        println!("request {id} {verb}; the client gets the answer at its next poll");
        Ok(())
    } else {
        Err(format!("request {id} is not pending"))
    }
}
