//! The commands that need no card and no CA (`inspect`, `build-request`, `sample`), and the
//! file helpers they share.

use std::{io::Read, path::Path};

use renewal_client::{
    cmc::{
        DigestAlgorithm, Limits, RenewalParams, Retained, SoftwareKey, build_renewal_request,
        microsoft::TemplateRef,
    },
    inspect::inspect,
    sample::{KeyKind, Sample},
};
use x509_cert::Certificate;

use crate::cli::{Command, Digest, Kind};

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

pub(crate) fn run(command: Command) -> Result<(), String> {
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
