//! `renew`: the cardrenew client CLI.
//!
//! Exit codes: 0 success; 1 the input or a file could not be read or is not what the command
//! needs (the message says which and why); 2 command-line usage error.
#![forbid(unsafe_code)]

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use renewal_core::{
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
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("renew: {message}");
            ExitCode::from(1)
        }
    }
}

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
    let (der, _) = renewal_core::cmc::input::to_der(&bytes, &Limits::default())
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
