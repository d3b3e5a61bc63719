//! Credentials a simulated CA issues for a gateway in front of it: the RA certificate it
//! authenticates and signs with, and its TLS server certificate — for tests, the conformance
//! matrix and `sim-ca credential` (a demo deployment). A real deployment gets both from its
//! own CA.

use std::{str::FromStr, time::Duration};

use der::asn1::{Ia5String, OctetString};
use renewal_codec::{
    cmc::{Signer, SoftwareKey, oids},
    x509,
};
use x509_cert::{ext::pkix::name::GeneralName, name::Name};

use super::RaCredential;
use crate::authority::Authority;

/// What a credential is for.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Purpose {
    /// A registration authority: TLS client toward the CA, signer of the wrappers and of the
    /// answers to clients (clientAuth, id-kp-cmcRA).
    Ra,
    /// The gateway's TLS server certificate (serverAuth).
    TlsServer,
}

/// A P-256 key and a certificate for it from `authority`'s issuing CA, named `CN=<cn>`, for
/// `purpose`, with `names` (DNS names or IP addresses) as its SANs. The chain is the
/// certificate, then the issuing CA.
pub fn issue(
    authority: &Authority,
    cn: &str,
    names: &[&str],
    purpose: Purpose,
    now: std::time::SystemTime,
) -> Result<RaCredential, crate::Error> {
    let result = (|| -> Result<RaCredential, String> {
        let key = SoftwareKey::generate_p256().map_err(|e| e.to_string())?;
        let mut serial = [0u8; 12];
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| "RNG".to_string())?;
        serial[0] = (serial[0] & 0x7F) | 0x01;
        let sans = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => OctetString::new(ip.octets().to_vec())
                    .map(GeneralName::IpAddress)
                    .map_err(|e| e.to_string()),
                Ok(std::net::IpAddr::V6(ip)) => OctetString::new(ip.octets().to_vec())
                    .map(GeneralName::IpAddress)
                    .map_err(|e| e.to_string()),
                Err(_) => Ia5String::new(*n)
                    .map(GeneralName::DnsName)
                    .map_err(|e| e.to_string()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut extensions = vec![
            x509::basic_constraints(false, None).map_err(|e| e.to_string())?,
            x509::ext_key_usage(match purpose {
                Purpose::Ra => vec![oids::KP_CLIENT_AUTH, oids::KP_CMC_RA],
                Purpose::TlsServer => vec![oids::KP_SERVER_AUTH],
            })
            .map_err(|e| e.to_string())?,
        ];
        if !sans.is_empty() {
            extensions.push(x509::subject_alt_name(sans).map_err(|e| e.to_string())?);
        }
        let cert = authority.issue(
            serial.to_vec(),
            Name::from_str(&format!("CN={cn},O=cardrenew gateway")).map_err(|e| e.to_string())?,
            key.public_key().clone(),
            now - Duration::from_secs(3600),
            now + Duration::from_secs(2 * 365 * 86400),
            extensions,
        )?;
        Ok(RaCredential {
            chain: vec![cert, authority.issuing.cert.clone()],
            key,
        })
    })();
    result.map_err(|reason| crate::Error::Crypto {
        operation: "issuing a gateway credential",
        reason,
    })
}

/// Writes a credential as `<prefix>.pem` (certificate and chain) and `<prefix>.key` (PKCS#8,
/// mode 0600).
pub fn write(credential: &RaCredential, prefix: &std::path::Path) -> Result<(), crate::Error> {
    let result = (|| -> Result<(), String> {
        let mut pem = String::new();
        for cert in &credential.chain {
            pem.push_str(
                &der::pem::encode_string("CERTIFICATE", der::pem::LineEnding::LF, cert.der())
                    .map_err(|e| e.to_string())?,
            );
        }
        let with = |ext: &str| {
            let mut p = prefix.as_os_str().to_owned();
            p.push(ext);
            std::path::PathBuf::from(p)
        };
        std::fs::write(with(".pem"), pem).map_err(|e| e.to_string())?;
        let key_path = with(".key");
        std::fs::write(
            &key_path,
            credential
                .key
                .to_pkcs8_pem()
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })();
    result.map_err(|reason| crate::Error::Setting {
        setting: "writing a gateway credential",
        reason,
    })
}
