//! The command line: every subcommand and flag of `renew`, as clap reads them (and as the man
//! pages and completions in `docs/` are generated from them).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "renew",
    version,
    about = "Smart-card certificate renewal over CMC (RFC 5272)"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// How many times to poll a pending request before leaving it for `renew resume` (at
        /// once when the CA asks to come back in more than an hour).
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
        /// How many times to poll (none when the CA asks to come back in more than an hour).
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
pub(crate) enum AgentAction {
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
pub(crate) struct Common {
    /// `sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a
    /// PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature
    /// `pkcs11`).
    #[arg(long)]
    pub(crate) token: String,
    /// The container holding the certificate to renew.
    #[arg(long, default_value = "9a")]
    pub(crate) container: String,
    /// Read the PIN from this environment variable (default: ask on the terminal).
    #[arg(long = "pin-env")]
    pub(crate) pin_env: Option<String>,
    /// Read the PIN from this file descriptor.
    #[arg(long = "pin-fd")]
    pub(crate) pin_fd: Option<u32>,
    /// Read the PIN from the first line of this file (mode 0600 or stricter).
    #[arg(long = "pin-file")]
    pub(crate) pin_file: Option<PathBuf>,
    /// Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3).
    #[arg(long)]
    pub(crate) pinentry: Option<PathBuf>,
    /// What the pinentry dialog says is being done (set by the agent).
    #[arg(skip)]
    pub(crate) pin_description: Option<String>,
    /// PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card
    /// says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`),
    /// `pin-protected` (stored on the card under the PIN, as ykman's --protect leaves it) or
    /// `auto` (default: the PIN-protected key when the card has one, else the factory key).
    #[arg(long = "management-key", value_parser = renewal_client::token::piv::ManagementKey::parse)]
    pub(crate) management_key: Option<renewal_client::token::piv::ManagementKey>,
    /// Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card).
    // The text is `--help`'s (and the man page's), where <card> is a placeholder, not HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    pub(crate) journal: Option<PathBuf>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Re-sends of the same request when its answer is lost (connection dropped, timeout,
    /// truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server's Retry-After, at
    /// most 30 s) before rolling back; 0 rolls back at once.
    #[arg(long, default_value_t = 4)]
    pub(crate) retries: u32,
    /// Attach the card's attestation of the new key to the request (a YubiKey's PIV
    /// attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA
    /// that renews only keys proven generated on the card. A card that cannot attest ends the
    /// attempt before anything is sent.
    #[arg(long)]
    pub(crate) attest: bool,
    /// With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210
    /// §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not
    /// gets the usual `certConf`. Without it the client always confirms (or rejects) what it
    /// received.
    #[arg(long)]
    pub(crate) implicit_confirm: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Digest {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    P256,
    Rsa2048,
}
