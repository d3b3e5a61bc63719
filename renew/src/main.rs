//! `renew`: the cardrenew client CLI.
//!
//! Exit codes: 0 success (renewed, or nothing to do); 1 the input, a file or the configuration
//! is unusable (the message says which and why); 2 command-line usage error; 3 the request is
//! pending at the CA (run `renew resume` later); 4 rolled back: the CA refused or something
//! failed, the card is as before; 5 the card failed mid-way and could not be cleaned up: run
//! `renew recover` when it is back.
#![forbid(unsafe_code)]

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use renewal_client::{
    cmc::{
        DigestAlgorithm, Limits, RenewalParams, Retained, SoftwareKey, build_renewal_request,
        microsoft::TemplateRef,
    },
    inspect::inspect,
    sample::{KeyKind, Sample},
};
use x509_cert::Certificate;

#[derive(Parser)]
#[command(
    name = "renew",
    version,
    about = "Smart-card certificate renewal over CMC (RFC 5272)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a readable tree of a CMC request or response, CMS-with-PKCS#10, certs-only PKCS#7,
    /// PKCS#10 or certificate (DER, PEM or base64; `-` reads stdin). Signatures are checked.
    Inspect {
        /// File to read, or `-` for stdin.
        file: String,
        /// Print JSON instead of the tree.
        #[arg(long)]
        json: bool,
    },
    /// Build a CMC renewal request with software keys (for interop testing).
    BuildRequest {
        /// The certificate to renew (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// Its private key (PKCS#8, SEC1 or PKCS#1; PEM or DER).
        #[arg(long)]
        key: PathBuf,
        /// The new private key.
        #[arg(long = "new-key")]
        new_key: PathBuf,
        /// Template to request (OID or name); default: the one in the certificate.
        #[arg(long)]
        template: Option<String>,
        /// Fixed transactionId (default: random).
        #[arg(long = "transaction-id")]
        transaction_id: Option<u64>,
        /// Fixed senderNonce in hex (default: 16 random bytes).
        #[arg(long)]
        nonce: Option<String>,
        /// CMS digest.
        #[arg(long, value_enum, default_value_t = Digest::Sha256)]
        digest: Digest,
        /// Output file (DER; `--pem` for PEM).
        #[arg(long)]
        out: PathBuf,
        /// Write PEM (`-----BEGIN CMS-----`) instead of DER.
        #[arg(long)]
        pem: bool,
    },
    /// Renew the certificate in a token's container against a CA.
    Run {
        #[command(flatten)]
        common: Common,
        /// CA base URL, e.g. https://localhost:8443 (for `--mode wstep`: the CES URL).
        #[arg(long, required_unless_present = "cep")]
        ca: Option<String>,
        /// Find the enrollment service and template in this MS-XCEP policy service (the
        /// `..._CEP_Certificate/service.svc/CEP` URL): renews over MS-WSTEP at the CES URI the
        /// policy names for the certificate's template.
        #[arg(long, conflicts_with = "ca")]
        cep: Option<String>,
        /// The CA certificates to trust (PEM bundle; sim-ca writes ca-chain.pem).
        #[arg(long = "ca-cert")]
        ca_cert: PathBuf,
        /// Protocol: fullcmc (EST), cmc (RFC 5273), simplereenroll (EST), wstep (ADCS CES) or
        /// cmp (RFC 4210 key update over RFC 6712 HTTPS).
        #[arg(long, default_value = "fullcmc")]
        mode: String,
        /// Template to ask for (default: the certificate's).
        #[arg(long)]
        template: Option<String>,
        /// How many times to poll a pending request before leaving it for `renew resume`.
        #[arg(long = "max-polls", default_value_t = 3)]
        max_polls: u32,
    },
    /// Ask an MS-XCEP policy service (CEP) for its templates and enrollment services, over
    /// the card-authenticated TLS.
    Policy {
        #[command(flatten)]
        common: Common,
        /// The CEP URL (`https://host/<name>_CEP_Certificate/service.svc/CEP`).
        #[arg(long)]
        cep: String,
        /// The CA certificates to trust (PEM bundle).
        #[arg(long = "ca-cert")]
        ca_cert: PathBuf,
    },
    /// Show the token's containers and the journal's state.
    Status {
        #[command(flatten)]
        common: Common,
    },
    /// Collect a pending request (also after a restart), then install it, or roll back on denial.
    Resume {
        #[command(flatten)]
        common: Common,
        /// CA base URL.
        #[arg(long)]
        ca: String,
        /// The CA certificates to trust (PEM bundle).
        #[arg(long = "ca-cert")]
        ca_cert: PathBuf,
        /// How many times to poll.
        #[arg(long = "max-polls", default_value_t = 3)]
        max_polls: u32,
    },
    /// After a crash at any point: restore exactly one valid certificate and no orphan container.
    Recover {
        #[command(flatten)]
        common: Common,
    },
    /// Renew every tracked certificate that is due, once (for cron and systemd timers). Exit
    /// code: 0 nothing due, 10 renewed, 3 pending at the CA, 4 failed or stuck (refused, CA
    /// unreachable, card absent; see `renew agent status`), 1 configuration unusable.
    Check {
        /// The agent's configuration file (TOML; see the README).
        #[arg(long)]
        config: PathBuf,
        /// Act as if it were this time: Unix seconds, or `+DURATION` from now (`+200d`): what
        /// would the agent do then?
        #[arg(long)]
        now: Option<String>,
        /// Try again now: entries waiting after a failure, and those stuck on a refused PIN
        /// (never retried otherwise).
        #[arg(long)]
        retry: bool,
        /// Test hook: abort the process (as a kill would stop it) right after the journal
        /// record of this kind is written (`generated`, `install-intent`, ...).
        #[arg(long = "abort-after", hide = true)]
        abort_after: Option<String>,
    },
    /// Keep the tracked certificates renewed (long-running; `renew agent status` shows where
    /// each stands).
    Agent {
        /// The agent's configuration file (TOML; see the README).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Run with the clock ahead by `+DURATION` (testing and dry runs).
        #[arg(long)]
        now: Option<String>,
        #[command(subcommand)]
        action: Option<AgentAction>,
    },
    /// Create a throwaway CA, a certificate to renew and keys in DIR, build a renewal request
    /// for it and inspect it (the quick-start demo).
    Sample {
        /// Directory to write ca.pem, old.pem, old.key, new.key, request.der into.
        #[arg(long = "out-dir")]
        out_dir: PathBuf,
        /// Key type of the certificate and the new key.
        #[arg(long, value_enum, default_value_t = Kind::P256)]
        kind: Kind,
        /// Use the fixed test keys and clock (reproducible bytes).
        #[arg(long)]
        deterministic: bool,
    },
}

/// `renew agent` subcommands.
#[derive(Subcommand)]
enum AgentAction {
    /// Each tracked certificate: state, notAfter, next action and its time, last error.
    Status {
        /// The agent's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}

/// Token, PIN and journal options shared by the renewal commands.
#[derive(clap::Args)]
struct Common {
    /// `sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a
    /// PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature
    /// `pkcs11`).
    #[arg(long)]
    token: String,
    /// The container holding the certificate to renew.
    #[arg(long, default_value = "9a")]
    container: String,
    /// Read the PIN from this environment variable (default: ask on the terminal).
    #[arg(long = "pin-env")]
    pin_env: Option<String>,
    /// Read the PIN from this file descriptor.
    #[arg(long = "pin-fd")]
    pin_fd: Option<u32>,
    /// Read the PIN from the first line of this file (mode 0600 or stricter).
    #[arg(long = "pin-file")]
    pin_file: Option<PathBuf>,
    /// Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3).
    #[arg(long)]
    pinentry: Option<PathBuf>,
    /// What the pinentry dialog says is being done (set by the agent).
    #[arg(skip)]
    pin_description: Option<String>,
    /// PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card
    /// says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`),
    /// `pin-protected` (stored on the card under the PIN, as ykman's --protect leaves it) or
    /// `auto` (default: the PIN-protected key when the card has one, else the factory key).
    #[arg(long = "management-key", value_parser = renewal_client::token::piv::ManagementKey::parse)]
    management_key: Option<renewal_client::token::piv::ManagementKey>,
    /// Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card).
    // The text is `--help`'s (and the man page's), where <card> is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Re-sends of the same request when its answer is lost (connection dropped, timeout,
    /// truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server's Retry-After, at
    /// most 30 s) before rolling back; 0 rolls back at once.
    #[arg(long, default_value_t = 4)]
    retries: u32,
    /// Attach the card's attestation of the new key to the request (a YubiKey's PIV
    /// attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA
    /// that renews only keys proven generated on the card. A card that cannot attest ends the
    /// attempt before anything is sent.
    #[arg(long)]
    attest: bool,
    /// With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210
    /// §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not
    /// gets the usual `certConf`. Without it the client always confirms (or rejects) what it
    /// received.
    #[arg(long)]
    implicit_confirm: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    P256,
    Rsa2048,
}

fn main() -> ExitCode {
    if let Some(code) = cli_docs::generate_if_asked(<Cli as clap::CommandFactory>::command) {
        return code;
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            common,
            ca,
            cep,
            ca_cert,
            mode,
            template,
            max_polls,
        } => renewal::run(
            &common,
            ca.as_deref(),
            cep.as_deref(),
            &ca_cert,
            &mode,
            template.as_deref(),
            max_polls,
        ),
        Command::Policy {
            common,
            cep,
            ca_cert,
        } => renewal::policy(&common, &cep, &ca_cert),
        Command::Resume {
            common,
            ca,
            ca_cert,
            max_polls,
        } => renewal::resume(&common, &ca, &ca_cert, max_polls),
        Command::Recover { common } => renewal::recover(&common),
        Command::Status { common } => renewal::status(&common),
        Command::Check {
            config,
            now,
            retry,
            abort_after,
        } => {
            agent::init_logging();
            if let Some(kind) = abort_after {
                agent::abort_after(kind);
            }
            agent::check(&config, now.as_deref(), retry)
        }
        Command::Agent {
            action: Some(AgentAction::Status { config, json }),
            ..
        } => agent::status(&config, json),
        Command::Agent {
            config: Some(config),
            now,
            action: None,
        } => {
            agent::init_logging();
            agent::run(&config, now.as_deref())
        }
        Command::Agent { .. } => {
            Err("renew agent needs --config FILE (or: renew agent status --config FILE)".into())
        }
        other => run(other).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("renew: {message}");
            ExitCode::from(1)
        }
    }
}

/// The renewal commands.
mod renewal {
    use std::{
        path::{Path, PathBuf},
        sync::{Arc, Mutex},
        time::Duration,
    };

    use renewal_client::{
        client::{
            Mode,
            https::{HttpsConfig, HttpsService, SharedToken, read_trust_anchors},
            journal::Journal,
            processor::{self, RecoveryOutcome, RenewalConfig, RenewalError, RenewalOutcome},
        },
        cmc::{Retained, microsoft::TemplateRef},
        token::{
            ContainerId, KeyAlgorithm, PinSource,
            pin::CountingPinSource,
            pin_sources::{TerminalPin, from_env, from_fd, from_file},
            pinentry::Pinentry,
            piv::ManagementKey,
            spec::TokenSpec,
        },
    };
    use serde_json::json;
    use x509_cert::Certificate;

    use super::Common;

    /// An opened token, and what to save when done.
    pub(super) struct Opened {
        pub(super) token: SharedToken,
        sim: Option<SimCard>,
    }

    /// The in-process virtual card and its file (only in a `renew` built with `--features
    /// sim`; a production build cannot hold one).
    #[cfg(feature = "sim")]
    type SimCard = (Arc<Mutex<sim_card::SimCard>>, PathBuf);
    #[cfg(not(feature = "sim"))]
    type SimCard = std::convert::Infallible;

    impl Opened {
        /// The virtual card's state goes back to its file (atomically).
        pub(super) fn save(&self) -> Result<(), String> {
            #[cfg(feature = "sim")]
            if let Some((card, path)) = &self.sim {
                let card = card.lock().map_err(|_| "card lock poisoned")?;
                card.state().save(path).map_err(|e| e.to_string())?;
            }
            #[cfg(not(feature = "sim"))]
            if let Some(never) = &self.sim {
                match *never {}
            }
            Ok(())
        }
    }

    /// The PIN prompts of the token opened last, counted (reported with `--json`).
    type CountedPins = Arc<CountingPinSource<Arc<dyn PinSource>>>;
    static PROMPTS: Mutex<Option<CountedPins>> = Mutex::new(None);

    fn pins(common: &Common) -> Result<Arc<dyn PinSource>, String> {
        let source: Arc<dyn PinSource> = match (&common.pin_env, common.pin_fd, &common.pin_file) {
            (Some(var), _, _) => Arc::new(from_env(var).map_err(|e| e.to_string())?),
            (None, Some(fd), _) => Arc::new(from_fd(fd).map_err(|e| e.to_string())?),
            (None, None, Some(path)) => Arc::new(from_file(path).map_err(|e| e.to_string())?),
            (None, None, None) => match &common.pinentry {
                Some(program) => Arc::new(Pinentry {
                    program: program.clone(),
                    description: common.pin_description.clone().unwrap_or_else(|| {
                        format!("Renewing the certificate in container {}", common.container)
                    }),
                }),
                None => Arc::new(TerminalPin),
            },
        };
        let counted = Arc::new(CountingPinSource::new(source));
        if let Ok(mut last) = PROMPTS.lock() {
            *last = Some(Arc::clone(&counted));
        }
        Ok(counted)
    }

    fn prompts() -> usize {
        PROMPTS
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.count()))
            .unwrap_or(0)
    }

    pub(super) fn open(common: &Common) -> Result<Opened, String> {
        let pins = pins(common)?;
        let key = common.management_key.clone().unwrap_or_default();
        match common
            .token
            .parse::<TokenSpec>()
            .map_err(|e| e.to_string())?
        {
            TokenSpec::Sim(path) => open_sim(path, pins, key),
            TokenSpec::PivPcsc(reader) => open_pcsc(reader.as_deref(), pins, key),
            TokenSpec::Pkcs11 { module, label } => open_pkcs11(&module, label.as_deref(), pins),
        }
    }

    #[cfg(feature = "sim")]
    fn open_sim(
        path: PathBuf,
        pins: Arc<dyn PinSource>,
        key: ManagementKey,
    ) -> Result<Opened, String> {
        let state = sim_card::CardState::load(&path).map_err(|e| e.to_string())?;
        let mut applet = sim_card::PivApplet::from_state(state);
        // An in-process card has nobody at its sensor: a key that needs a touch gets
        // one half a second after the card starts waiting, as from a prompt user.
        applet.set_touch_sensor(sim_card::touch::TouchSensor::automatic(
            Duration::from_millis(500),
        ));
        let card = Arc::new(Mutex::new(sim_card::SimCard::new(applet)));
        let transport = renewal_client::token::transport::SimTransport::persisted(
            Arc::clone(&card),
            path.clone(),
        );
        let token: Box<dyn renewal_client::token::Token + Send> = Box::new(
            renewal_client::token::piv::PivToken::new(transport, pins, key)
                .with_touch_prompt(touch_prompt()),
        );
        Ok(Opened {
            token: Arc::new(Mutex::new(token)),
            sim: Some((card, path)),
        })
    }

    #[cfg(not(feature = "sim"))]
    fn open_sim(
        _path: PathBuf,
        _pins: Arc<dyn PinSource>,
        _key: ManagementKey,
    ) -> Result<Opened, String> {
        Err("this renew was built without the virtual card: `sim:` tokens need a build with `--features sim` (a test and demonstration build)".into())
    }

    #[cfg(feature = "pkcs11")]
    fn open_pkcs11(
        module: &Path,
        label: Option<&str>,
        pins: Arc<dyn PinSource>,
    ) -> Result<Opened, String> {
        let token = renewal_client::token::pkcs11::Pkcs11Token::open(module, label, pins)
            .map_err(|e| e.to_string())?;
        let token: Box<dyn renewal_client::token::Token + Send> = Box::new(token);
        Ok(Opened {
            token: Arc::new(Mutex::new(token)),
            sim: None,
        })
    }

    #[cfg(not(feature = "pkcs11"))]
    fn open_pkcs11(_: &Path, _: Option<&str>, _: Arc<dyn PinSource>) -> Result<Opened, String> {
        Err("this renew was built without PKCS#11 support: rebuild with `--features pkcs11`".into())
    }

    #[cfg(feature = "pcsc")]
    fn open_pcsc(
        reader: Option<&str>,
        pins: Arc<dyn PinSource>,
        key: ManagementKey,
    ) -> Result<Opened, String> {
        let transport = renewal_client::token::transport::PcscTransport::connect(reader)
            .map_err(|e| e.to_string())?;
        let token: Box<dyn renewal_client::token::Token + Send> = Box::new(
            renewal_client::token::piv::PivToken::new(transport, pins, key)
                .with_touch_prompt(touch_prompt()),
        );
        Ok(Opened {
            token: Arc::new(Mutex::new(token)),
            sim: None,
        })
    }

    /// What the user reads when the card waits for a touch.
    #[cfg(any(feature = "sim", feature = "pcsc"))]
    fn touch_prompt() -> renewal_client::token::piv::TouchPrompt {
        Arc::new(|slot| {
            eprintln!(
                "renew: touch your key now (the key in slot {slot:02x} needs a touch; it blinks)"
            );
        })
    }

    #[cfg(not(feature = "pcsc"))]
    fn open_pcsc(
        _: Option<&str>,
        _: Arc<dyn PinSource>,
        _: ManagementKey,
    ) -> Result<Opened, String> {
        Err("this renew was built without PC/SC support: rebuild with `--features pcsc`".into())
    }

    /// The journal of this card and container: `--journal`, or
    /// `~/.cardrenew/journal-<card>-<container>.jsonl` — one per card, so that a renewal
    /// interrupted on one card is never "recovered" against another (recovery also checks the
    /// card, whatever file it reads).
    fn journal_path(common: &Common, opened: &Opened) -> Result<PathBuf, String> {
        match &common.journal {
            Some(p) => Ok(p.clone()),
            None => {
                let home = std::env::var_os("HOME").ok_or("HOME is not set; pass --journal")?;
                let dir = Path::new(&home).join(".cardrenew");
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let card = renewal_client::client::processor::token_identity(&opened.token)
                    .unwrap_or_else(|| "unknown-card".into());
                let slug: String = format!("{card}-{}", common.container)
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect();
                Ok(dir.join(format!("journal-{slug}.jsonl")))
            }
        }
    }

    /// The container `--container` names, as the token lists it.
    fn container_of(
        opened: &Opened,
        common: &Common,
    ) -> Result<renewal_client::token::Container, String> {
        let container = ContainerId(common.container.clone());
        let mut token = opened.token.lock().map_err(|_| "token lock poisoned")?;
        token
            .containers()
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|c| c.id == container)
            .ok_or_else(|| format!("container {} is empty", common.container))
    }

    pub(super) fn service(
        opened: &Opened,
        common: &Common,
        url: &str,
        anchors: &[Retained<Certificate>],
        mode: Mode,
    ) -> Result<HttpsService, String> {
        let old = container_of(opened, common)?;
        let cert = Retained::<Certificate>::from_der(
            old.certificate
                .as_deref()
                .ok_or("no certificate to renew")?,
        )
        .map_err(|e| e.to_string())?;
        let algorithm = old.algorithm.unwrap_or(KeyAlgorithm::EcP256);
        HttpsService::new(
            HttpsConfig {
                base_url: url.to_string(),
                trust_anchors: anchors.iter().map(|c| c.der().to_vec()).collect(),
                mode,
                timeout: Duration::from_secs(30),
            },
            Arc::clone(&opened.token),
            old.id.clone(),
            algorithm,
            &cert,
        )
        .map_err(|e| e.to_string())
    }

    pub(super) fn config(
        common: &Common,
        mode: Mode,
        anchors: Vec<Retained<Certificate>>,
        template: Option<&str>,
        max_polls: u32,
    ) -> RenewalConfig {
        RenewalConfig {
            old: ContainerId(common.container.clone()),
            mode,
            template: template.map(TemplateRef::from_user_text),
            trust_anchors: anchors,
            max_polls,
            sleep: Box::new(|d| {
                eprintln!("renew: asking the CA again in {} s", d.as_secs());
                std::thread::sleep(d)
            }),
            crash_after: None,
            retry: renewal_client::client::processor::RetryPolicy {
                attempts: common.retries,
                ..Default::default()
            },
            attest: common.attest,
            implicit_confirm: common.implicit_confirm,
        }
    }

    fn report(
        common: &Common,
        result: Result<RenewalOutcome, RenewalError>,
        opened: &Opened,
    ) -> Result<u8, String> {
        opened.save()?;
        let (code, value) = match &result {
            Ok(RenewalOutcome::Renewed {
                container,
                certificate,
            }) => {
                let cert =
                    Retained::<Certificate>::from_der(certificate).map_err(|e| e.to_string())?;
                let tbs = cert.value().tbs_certificate();
                eprintln!(
                    "renew: renewed; the new certificate (serial {}) is in {container}",
                    tbs.serial_number()
                );
                (
                    0,
                    json!({"outcome": "renewed", "container": container.0, "serial": tbs.serial_number().to_string(), "not_after": tbs.validity().not_after.to_string()}),
                )
            }
            Ok(RenewalOutcome::Pending) => {
                eprintln!("renew: the CA has not decided yet; run `renew resume` later");
                (3, json!({"outcome": "pending"}))
            }
            Ok(RenewalOutcome::RolledBack { reason }) => {
                eprintln!("renew: not renewed, the card is as before: {reason}");
                (
                    4,
                    json!({"outcome": "rolled-back", "cause": reason.kind(), "reason": reason.to_string()}),
                )
            }
            Err(e @ RenewalError::Card { .. }) => {
                eprintln!("renew: {e}");
                (5, json!({"outcome": "card-error", "error": e.to_string()}))
            }
            Err(e) => return Err(e.to_string()),
        };
        if common.json {
            let mut value = value;
            value["pin_prompts"] = json!(prompts());
            println!("{value}");
        }
        Ok(code)
    }

    /// The enrollment policy at `cep`, fetched over the card's TLS.
    fn fetch_policies(
        opened: &Opened,
        common: &Common,
        cep: &str,
        anchors: &[Retained<Certificate>],
    ) -> Result<renewal_client::xcep::Policies, String> {
        let mut service = service(opened, common, cep, anchors, Mode::Wstep)?;
        service.get_policies().map_err(|e| format!("{cep}: {e}"))
    }

    pub fn policy(common: &Common, cep: &str, ca_cert: &Path) -> Result<u8, String> {
        let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
        let opened = open(common)?;
        let policies = fetch_policies(&opened, common, cep, &anchors)?;
        if common.json {
            let value = json!({
                "policy_id": policies.policy_id,
                "friendly_name": policies.friendly_name,
                "next_update_hours": policies.next_update_hours,
                "templates": policies.templates.iter().map(|t| json!({
                    "name": t.name, "oid": t.oid, "schema": t.schema,
                    "validity_seconds": t.validity_seconds,
                    "renewal_seconds": t.renewal_seconds, "cas": t.cas,
                })).collect::<Vec<_>>(),
                "cas": policies.cas.iter().map(|c| json!({
                    "reference": c.reference,
                    "uris": c.uris.iter().map(|u| json!({
                        "uri": u.uri, "client_authentication": u.client_authentication,
                        "priority": u.priority, "renewal_only": u.renewal_only,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            println!("{value}");
        } else {
            println!(
                "policy {} ({}), next update in {} h",
                policies.friendly_name, policies.policy_id, policies.next_update_hours
            );
            for t in &policies.templates {
                println!(
                    "template {} ({}), schema {}, validity {} d, renewal period {} d, CAs {}",
                    t.name,
                    t.oid,
                    t.schema,
                    t.validity_seconds / 86400,
                    t.renewal_seconds / 86400,
                    t.cas
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            for ca in &policies.cas {
                for u in &ca.uris {
                    let auth = match u.client_authentication {
                        1 => "anonymous",
                        2 => "Kerberos",
                        4 => "user name and password",
                        8 => "certificate",
                        _ => "unknown",
                    };
                    println!(
                        "CA {}: {} ({auth}, priority {}{})",
                        ca.reference,
                        u.uri,
                        u.priority,
                        if u.renewal_only { ", renewal only" } else { "" }
                    );
                }
            }
        }
        opened.save()?;
        Ok(0)
    }

    /// The CES URL and template the policy at `cep` gives for the certificate in the
    /// container (or for `template`).
    pub(super) fn resolve_cep(
        opened: &Opened,
        common: &Common,
        cep: &str,
        anchors: &[Retained<Certificate>],
        template: Option<&str>,
    ) -> Result<(String, String), String> {
        let policies = fetch_policies(opened, common, cep, anchors)?;
        let wanted = match template {
            Some(t) => t.to_string(),
            None => {
                let cert = container_of(opened, common)?.certificate.ok_or_else(|| {
                    format!("container {} holds no certificate", common.container)
                })?;
                let cert = Retained::<Certificate>::from_der(&cert).map_err(|e| e.to_string())?;
                let named = renewal_client::cmc::request::certificate_template(cert.value())
                    .ok_or("the certificate names no template; give --template")?;
                named
                    .oid
                    .map(|o| o.to_string())
                    .or(named.name)
                    .ok_or("the certificate names no template; give --template")?
            }
        };
        let t = policies
            .template(&wanted)
            .ok_or_else(|| format!("the policy at {cep} has no template {wanted}"))?;
        let ces = policies.ces_for(t).ok_or_else(|| {
            format!(
                "the policy at {cep} names no enrollment service with certificate                  authentication for template {}",
                t.name
            )
        })?;
        eprintln!(
            "renew: policy {}: template {} ({}), renewal period {} d, enrollment service {}",
            policies.friendly_name,
            t.name,
            t.oid,
            t.renewal_seconds / 86400,
            ces.uri
        );
        Ok((ces.uri.clone(), t.oid.clone()))
    }

    pub fn run(
        common: &Common,
        ca: Option<&str>,
        cep: Option<&str>,
        ca_cert: &Path,
        mode: &str,
        template: Option<&str>,
        max_polls: u32,
    ) -> Result<u8, String> {
        let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
        let opened = open(common)?;
        let (url, mode, template) = match (ca, cep) {
            (_, Some(cep)) => {
                let (url, oid) = resolve_cep(&opened, common, cep, &anchors, template)?;
                (url, Mode::Wstep, Some(oid))
            }
            (Some(ca), None) => (
                ca.to_string(),
                mode.parse()
                    .map_err(|e: renewal_client::cmc::InvalidValue| e.to_string())?,
                template.map(str::to_string),
            ),
            (None, None) => return Err("give --ca or --cep".into()),
        };
        let (url, template) = (url.as_str(), template.as_deref());
        let mut journal =
            Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
        // An interrupted renewal of this card first: say what was done about it, truthfully.
        match processor::recover(&opened.token, &mut journal).map_err(|e| e.to_string())? {
            RecoveryOutcome::Clean => {}
            RecoveryOutcome::RolledBack { deleted } => {
                opened.save()?;
                let deleted: Vec<&str> = deleted.iter().map(|c| c.0.as_str()).collect();
                eprintln!(
                    "renew: an interrupted renewal of this card was rolled back first (deleted: \
                     {}); starting a new one",
                    if deleted.is_empty() {
                        "nothing".to_string()
                    } else {
                        deleted.join(", ")
                    }
                );
            }
            RecoveryOutcome::Completed { container } => {
                opened.save()?;
                eprintln!(
                    "renew: an interrupted renewal of this card was completed: its new \
                     certificate is in {container}; nothing more to do"
                );
                return Ok(0);
            }
            RecoveryOutcome::Pending => {
                return Err(
                    "a renewal of this card awaits the CA's answer (pending there, or its \
                     answer was lost): run `renew resume` to collect it"
                        .into(),
                );
            }
        }
        eprintln!(
            "renew: connecting to {url} with the certificate in {} ...",
            common.container
        );
        let mut service = service(&opened, common, url, &anchors, mode)?;
        let result = processor::Renewal::new(
            Arc::clone(&opened.token),
            &mut service,
            &mut journal,
            config(common, mode, anchors, template, max_polls),
        )
        .run();
        report(common, result, &opened)
    }

    pub fn resume(
        common: &Common,
        url: &str,
        ca_cert: &Path,
        max_polls: u32,
    ) -> Result<u8, String> {
        let anchors = read_trust_anchors(ca_cert).map_err(|e| e.to_string())?;
        let opened = open(common)?;
        let mut journal =
            Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
        let mode = journal
            .current()
            .iter()
            .find_map(|r| match r {
                renewal_client::client::journal::Record::Begin { mode, .. } => Some(*mode),
                _ => None,
            })
            .ok_or("no renewal in the journal")?;
        let mut service = service(&opened, common, url, &anchors, mode)?;
        let result = processor::resume(
            Arc::clone(&opened.token),
            &mut service,
            &mut journal,
            config(common, mode, anchors, None, max_polls),
        );
        report(common, result, &opened)
    }

    pub fn recover(common: &Common) -> Result<u8, String> {
        let opened = open(common)?;
        let mut journal =
            Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
        let outcome = processor::recover(&opened.token, &mut journal).map_err(|e| e.to_string())?;
        opened.save()?;
        let text = match &outcome {
            RecoveryOutcome::Clean => "nothing to recover".to_string(),
            RecoveryOutcome::RolledBack { deleted } => format!(
                "rolled back; deleted {}",
                deleted
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            RecoveryOutcome::Completed { container } => {
                format!("completed the renewal; the certificate is in {container}")
            }
            RecoveryOutcome::Pending => {
                "a request awaits the CA's answer (pending there, or its answer was lost): \
                 run `renew resume`"
                    .to_string()
            }
        };
        eprintln!("renew: {text}");
        if common.json {
            println!("{}", json!({"recovery": outcome.name()}));
        }
        Ok(if outcome == RecoveryOutcome::Pending {
            3
        } else {
            0
        })
    }

    pub fn status(common: &Common) -> Result<u8, String> {
        let opened = open(common)?;
        let containers = {
            let mut token = opened.token.lock().map_err(|_| "token lock poisoned")?;
            token.containers().map_err(|e| e.to_string())?
        };
        let journal = Journal::open(&journal_path(common, &opened)?).map_err(|e| e.to_string())?;
        let list: Vec<_> = containers
            .iter()
            .map(|c| {
                let cert = c.certificate.as_deref().and_then(|d| Retained::<Certificate>::from_der(d).ok());
                json!({
                    "container": c.id.0,
                    "key": c.algorithm.map(|a| a.config_name()),
                    "subject": cert.as_ref().map(|c| c.value().tbs_certificate().subject().to_string()),
                    "not_after": cert.as_ref().map(|c| c.value().tbs_certificate().validity().not_after.to_string()),
                })
            })
            .collect();
        let last = journal.last().map(|r| r.kind());
        if common.json {
            println!("{}", json!({"containers": list, "journal": last}));
        } else {
            for c in &list {
                println!(
                    "{}  {}  {}  until {}",
                    c["container"].as_str().unwrap_or("?"),
                    c["key"].as_str().unwrap_or("no key"),
                    c["subject"].as_str().unwrap_or("no certificate"),
                    c["not_after"].as_str().unwrap_or("-")
                );
            }
            println!("journal: {}", last.unwrap_or("empty"));
        }
        Ok(0)
    }
}

mod agent;

fn read_input(file: &str) -> Result<Vec<u8>, String> {
    if file == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .take(u64::try_from(Limits::default().max_bytes * 2).unwrap_or(u64::MAX))
            .read_to_end(&mut buf)
            .map_err(|e| format!("reading stdin: {e}"))?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(|e| format!("reading {file}: {e}"))
    }
}

fn read_certificate(path: &Path) -> Result<Retained<Certificate>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let (der, _) = renewal_client::cmc::input::to_der(&bytes, &Limits::default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Retained::from_der(&der).map_err(|e| format!("{}: not a certificate: {e}", path.display()))
}

fn read_key(path: &Path) -> Result<SoftwareKey, String> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
    );
    SoftwareKey::from_pem_or_der(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    if !text.len().is_multiple_of(2) {
        return Err("--nonce: odd number of hex digits".into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .map_err(|_| format!("--nonce: bad hex {text:?}"))
        })
        .collect()
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn pem(label: &str, der: &[u8]) -> Result<String, String> {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).map_err(|e| e.to_string())
}

fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Run { .. }
        | Command::Policy { .. }
        | Command::Resume { .. }
        | Command::Recover { .. }
        | Command::Status { .. }
        | Command::Check { .. }
        | Command::Agent { .. } => Err("internal: renewal commands are dispatched in main".into()),
        Command::Inspect { file, json } => {
            let input = read_input(&file)?;
            let report = inspect(&input, &Limits::default()).map_err(|e| format!("{file}: {e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report.to_json()).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", report.tree.render());
            }
            Ok(())
        }
        Command::BuildRequest {
            cert,
            key,
            new_key,
            template,
            transaction_id,
            nonce,
            digest,
            out,
            pem: as_pem,
        } => {
            let old_cert = read_certificate(&cert)?;
            let old_key = read_key(&key)?;
            let new_key = read_key(&new_key)?;
            let mut params = RenewalParams::random().map_err(|e| e.to_string())?;
            params.template = template.as_deref().map(TemplateRef::from_user_text);
            if let Some(t) = transaction_id {
                params.transaction_id = t;
            }
            if let Some(n) = nonce {
                params.sender_nonce = parse_hex(&n)?;
            }
            params.digest = match digest {
                Digest::Sha1 => DigestAlgorithm::Sha1,
                Digest::Sha256 => DigestAlgorithm::Sha256,
                Digest::Sha384 => DigestAlgorithm::Sha384,
                Digest::Sha512 => DigestAlgorithm::Sha512,
            };
            let built = build_renewal_request(&old_cert, &old_key, &new_key, &params)
                .map_err(|e| e.to_string())?;
            if as_pem {
                write_file(&out, pem("CMS", &built.der)?.as_bytes())?;
            } else {
                write_file(&out, &built.der)?;
            }
            eprintln!(
                "renew: wrote {} ({} bytes DER), transactionId {}",
                out.display(),
                built.der.len(),
                built.transaction_id
            );
            Ok(())
        }
        Command::Sample {
            out_dir,
            kind,
            deterministic,
        } => {
            let sample = if deterministic {
                Sample::deterministic()
            } else {
                Sample::generate(match kind {
                    Kind::P256 => KeyKind::P256,
                    Kind::Rsa2048 => KeyKind::Rsa2048,
                })
            }
            .map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out_dir)
                .map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
            let key_pem = |k: &SoftwareKey| k.to_pkcs8_pem().map_err(|e| e.to_string());
            write_file(
                &out_dir.join("ca.pem"),
                pem("CERTIFICATE", sample.ca_cert.der())?.as_bytes(),
            )?;
            write_file(
                &out_dir.join("old.pem"),
                pem("CERTIFICATE", sample.old_cert.der())?.as_bytes(),
            )?;
            write_file(
                &out_dir.join("old.key"),
                key_pem(&sample.old_key)?.as_bytes(),
            )?;
            write_file(
                &out_dir.join("new.key"),
                key_pem(&sample.new_key)?.as_bytes(),
            )?;
            let mut params = RenewalParams::random().map_err(|e| e.to_string())?;
            if deterministic {
                params.transaction_id = 0x0102_0304;
                params.sender_nonce = (0u8..16).collect();
            }
            let built =
                build_renewal_request(&sample.old_cert, &sample.old_key, &sample.new_key, &params)
                    .map_err(|e| e.to_string())?;
            let request = out_dir.join("request.der");
            write_file(&request, &built.der)?;
            let report = inspect(&built.der, &Limits::default()).map_err(|e| e.to_string())?;
            print!("{}", report.tree.render());
            eprintln!(
                "renew: wrote ca.pem, old.pem, old.key, new.key and request.der to {}",
                out_dir.display()
            );
            Ok(())
        }
    }
}
