//! The CA hierarchy: a root and an issuing CA, created on first start in the state directory
//! or loaded from its PEM files; and issuing certificates.

use std::{
    path::Path,
    str::FromStr,
    time::{Duration, SystemTime},
};

use renewal_codec::{
    cmc::KeyAlgorithm,
    cmc::{Retained, Signer, SoftwareKey, oids},
    x509::{self, CertificateSpec},
};
use x509_cert::{
    Certificate,
    ext::{Extension, pkix::KeyUsages},
    name::Name,
};

/// A CA key and certificate.
pub struct CaIdentity {
    /// Private key.
    pub key: SoftwareKey,
    /// Certificate.
    pub cert: Retained<Certificate>,
}

/// Root and issuing CA.
pub struct Authority {
    /// Self-signed root.
    pub root: CaIdentity,
    /// Issuing CA (signs end-entity certificates and CMC responses).
    pub issuing: CaIdentity,
}

/// Why the CA could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    /// File I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Unusable key or certificate.
    #[error("{path}: {detail}")]
    Invalid {
        /// The file.
        path: String,
        /// Why.
        detail: String,
    },
}

fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

fn ca_cert(
    subject: &str,
    key: &SoftwareKey,
    issuer: Option<(&Name, &SoftwareKey)>,
    now: SystemTime,
    serial: u8,
) -> Result<Retained<Certificate>, String> {
    let name = Name::from_str(subject).map_err(|e| e.to_string())?;
    let (issuer_name, issuer_key) = issuer.unwrap_or((&name, key));
    let spec = CertificateSpec {
        serial: vec![serial],
        subject: name.clone(),
        public_key: key.public_key().clone(),
        not_before: now - Duration::from_secs(3600),
        not_after: now + Duration::from_secs(20 * 365 * 86400),
        extensions: vec![
            x509::basic_constraints(true, if issuer.is_some() { Some(0) } else { None })
                .map_err(|e| e.to_string())?,
            x509::key_usage(
                KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature,
            )
            .map_err(|e| e.to_string())?,
            x509::subject_key_identifier(key.public_key()).map_err(|e| e.to_string())?,
            x509::authority_key_identifier(issuer_key.public_key()).map_err(|e| e.to_string())?,
        ],
    };
    x509::issue(&spec, issuer_name, issuer_key).map_err(|e| e.to_string())
}

/// A fresh CA key of `algorithm` (P-384 signs with SHA-384, RSA of every size with SHA-256).
fn ca_key(algorithm: KeyAlgorithm) -> Result<SoftwareKey, String> {
    match algorithm {
        KeyAlgorithm::EcP256 => SoftwareKey::generate_p256(),
        KeyAlgorithm::EcP384 => SoftwareKey::generate_p384(),
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
            SoftwareKey::generate_rsa(algorithm.rsa_bits().unwrap_or(2048))
        }
    }
    .map_err(|e| e.to_string())
}

impl Authority {
    /// A fresh hierarchy with RSA-2048 keys, as an ADCS CA has by default.
    pub fn generate(now: SystemTime) -> Result<Self, crate::Error> {
        Self::generate_with(now, KeyAlgorithm::Rsa2048)
    }

    /// A fresh hierarchy whose root and issuing CA keys are of `algorithm`.
    pub fn generate_with(now: SystemTime, algorithm: KeyAlgorithm) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let root_key = ca_key(algorithm)?;
            let root_cert = ca_cert(
                "CN=cardrenew Sim Root CA,O=cardrenew",
                &root_key,
                None,
                now,
                1,
            )?;
            let issuing_key = ca_key(algorithm)?;
            let root_name = root_cert.value().tbs_certificate().subject().clone();
            let issuing_cert = ca_cert(
                "CN=cardrenew Sim Issuing CA,O=cardrenew",
                &issuing_key,
                Some((&root_name, &root_key)),
                now,
                2,
            )?;
            Ok(Self {
                root: CaIdentity {
                    key: root_key,
                    cert: root_cert,
                },
                issuing: CaIdentity {
                    key: issuing_key,
                    cert: issuing_cert,
                },
            })
        })();
        result.map_err(|reason| crate::Error::Crypto {
            operation: "creating the CA",
            reason,
        })
    }

    /// The same hierarchy again (keys through their PKCS#8 form): an RSA CA costs ~0.1 s of
    /// key generation, so a harness that creates a CA per scenario makes it once per key type.
    pub fn duplicate(&self) -> Result<Self, crate::Error> {
        let result = (|| -> Result<Self, String> {
            let copy = |identity: &CaIdentity| -> Result<CaIdentity, String> {
                let pem = identity.key.to_pkcs8_pem().map_err(|e| e.to_string())?;
                Ok(CaIdentity {
                    key: SoftwareKey::from_pem_or_der(pem.as_bytes()).map_err(|e| e.to_string())?,
                    cert: identity.cert.clone(),
                })
            };
            Ok(Self {
                root: copy(&self.root)?,
                issuing: copy(&self.issuing)?,
            })
        })();
        result.map_err(|reason| crate::Error::Crypto {
            operation: "copying the CA keys",
            reason,
        })
    }

    /// Loads `root.pem`, `root.key`, `issuing.pem`, `issuing.key` from `dir`, creating them
    /// (RSA-2048) on first start. Returns whether they were created.
    pub fn load_or_create(dir: &Path, now: SystemTime) -> Result<(Self, bool), AuthorityError> {
        Self::load_or_create_with(dir, now, KeyAlgorithm::Rsa2048)
    }

    /// Like [`Authority::load_or_create`], creating keys of `algorithm` (an existing CA keeps
    /// its keys: the type is chosen at creation).
    pub fn load_or_create_with(
        dir: &Path,
        now: SystemTime,
        algorithm: KeyAlgorithm,
    ) -> Result<(Self, bool), AuthorityError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| AuthorityError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let files = ["root.pem", "root.key", "issuing.pem", "issuing.key"].map(|f| dir.join(f));
        if files.iter().all(|f| f.exists()) {
            let read_cert = |p: &Path| -> Result<Retained<Certificate>, AuthorityError> {
                let text = std::fs::read_to_string(p).map_err(io(p))?;
                let (_, der) = der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| {
                    AuthorityError::Invalid {
                        path: p.display().to_string(),
                        detail: e.to_string(),
                    }
                })?;
                Retained::from_der(&der).map_err(|e| AuthorityError::Invalid {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                })
            };
            let read_key = |p: &Path| -> Result<SoftwareKey, AuthorityError> {
                let bytes = zeroize::Zeroizing::new(std::fs::read(p).map_err(io(p))?);
                SoftwareKey::from_pem_or_der(&bytes).map_err(|e| AuthorityError::Invalid {
                    path: p.display().to_string(),
                    detail: e.to_string(),
                })
            };
            let me = Self {
                root: CaIdentity {
                    cert: read_cert(&files[0])?,
                    key: read_key(&files[1])?,
                },
                issuing: CaIdentity {
                    cert: read_cert(&files[2])?,
                    key: read_key(&files[3])?,
                },
            };
            for (id, path) in [(&me.root, &files[0]), (&me.issuing, &files[2])] {
                if id.key.public_key()
                    != id.cert.value().tbs_certificate().subject_public_key_info()
                {
                    return Err(AuthorityError::Invalid {
                        path: path.display().to_string(),
                        detail: "certificate does not match its key".into(),
                    });
                }
            }
            return Ok((me, false));
        }
        let me = Self::generate_with(now, algorithm).map_err(|detail| AuthorityError::Invalid {
            path: dir.display().to_string(),
            detail: detail.to_string(),
        })?;
        let write = |path: &Path, text: &str| std::fs::write(path, text).map_err(io(path));
        write(&files[0], &pem("CERTIFICATE", me.root.cert.der()))?;
        write(&files[2], &pem("CERTIFICATE", me.issuing.cert.der()))?;
        for (id, path) in [(&me.root, &files[1]), (&me.issuing, &files[3])] {
            let key = id.key.to_pkcs8_pem().map_err(|e| AuthorityError::Invalid {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
            write(path, &key)?;
            restrict(path).map_err(io(path))?;
        }
        // What a client needs to trust the server and its certificates.
        let chain = format!(
            "{}{}",
            pem("CERTIFICATE", me.issuing.cert.der()),
            pem("CERTIFICATE", me.root.cert.der())
        );
        write(&dir.join("ca-chain.pem"), &chain)?;
        Ok((me, true))
    }

    /// The issuing CA certificate's validity, `(not_before, not_after)`.
    pub fn issuing_validity(&self) -> (SystemTime, SystemTime) {
        let validity = self.issuing.cert.value().tbs_certificate().validity();
        (
            SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration(),
            SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration(),
        )
    }

    /// Issues an end-entity certificate from the issuing CA. Its validity is cut to the issuing
    /// CA certificate's, as ADCS cuts it ("the remaining lifetime of the CA certificate",
    /// Microsoft KB 254632): a certificate that outlives its issuer fails path validation
    /// from the day the issuer expires, whatever its own dates say. A validity left empty by
    /// the cut (the CA's certificate not valid in the period asked for) is an error.
    pub fn issue(
        &self,
        serial: Vec<u8>,
        subject: Name,
        public_key: spki::SubjectPublicKeyInfoOwned,
        not_before: SystemTime,
        not_after: SystemTime,
        mut extensions: Vec<Extension>,
    ) -> Result<Retained<Certificate>, crate::Error> {
        let (ca_not_before, ca_not_after) = self.issuing_validity();
        let (not_before, not_after) = (not_before.max(ca_not_before), not_after.min(ca_not_after));
        let result = (|| -> Result<Retained<Certificate>, String> {
            if not_before >= not_after {
                return Err(
                    "the issuing CA's certificate is not valid in the period asked for".into(),
                );
            }
            extensions.retain(|e| {
                e.extn_id != oids::SUBJECT_KEY_IDENTIFIER
                    && e.extn_id != oids::AUTHORITY_KEY_IDENTIFIER
            });
            extensions.push(x509::subject_key_identifier(&public_key).map_err(|e| e.to_string())?);
            extensions.push(
                x509::authority_key_identifier(self.issuing.key.public_key())
                    .map_err(|e| e.to_string())?,
            );
            let spec = CertificateSpec {
                serial,
                subject,
                public_key,
                not_before,
                not_after,
                extensions,
            };
            x509::issue(
                &spec,
                self.issuing.cert.value().tbs_certificate().subject(),
                &self.issuing.key,
            )
            .map_err(|e| e.to_string())
        })();
        result.map_err(|reason| crate::Error::Crypto {
            operation: "issuing a certificate",
            reason,
        })
    }

    /// Whether `cert` was issued by our issuing CA (signature and issuer name).
    pub fn issued_by_us(&self, cert: &Retained<Certificate>) -> bool {
        let issuing = self.issuing.cert.value();
        cert.value().tbs_certificate().issuer() == issuing.tbs_certificate().subject()
            && x509::verify_issued_by(cert, issuing).is_ok()
    }
}

#[cfg(unix)]
fn restrict(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> std::io::Result<()> {
    Ok(())
}

/// A certificate from PEM or DER bytes.
pub fn certificate_from_pem_or_der(bytes: &[u8]) -> Result<Retained<Certificate>, crate::Error> {
    let result = (|| -> Result<Retained<Certificate>, String> {
        let der = match std::str::from_utf8(bytes) {
            Ok(t) if t.contains("-----BEGIN") => {
                der::pem::decode_vec(t.trim().as_bytes())
                    .map_err(|e| e.to_string())?
                    .1
            }
            _ => bytes.to_vec(),
        };
        Retained::<Certificate>::from_der(&der).map_err(|e| e.to_string())
    })();
    result.map_err(|reason| crate::Error::Encoding {
        what: "certificate",
        reason,
    })
}

#[cfg(test)]
mod key_type_tests {
    use super::*;
    use renewal_codec::cmc::PublicKey;

    #[test]
    fn the_ca_key_is_rsa_2048_by_default_and_chosen_at_creation() {
        let now = SystemTime::now();
        for (authority, key, signature) in [
            (Authority::generate(now), "RSA-2048", oids::SHA256_WITH_RSA),
            (
                Authority::generate_with(now, KeyAlgorithm::EcP384),
                "P-384",
                oids::ECDSA_WITH_SHA384,
            ),
            (
                Authority::generate_with(now, KeyAlgorithm::EcP256),
                "P-256",
                oids::ECDSA_WITH_SHA256,
            ),
        ] {
            let authority = authority.expect("a CA");
            for identity in [&authority.root, &authority.issuing] {
                let tbs = identity.cert.value().tbs_certificate();
                let spki = PublicKey::from_spki(tbs.subject_public_key_info()).expect("a key");
                assert_eq!(spki.describe(), key);
                assert_eq!(identity.cert.value().signature_algorithm().oid, signature);
            }
            let copy = authority.duplicate().expect("a copy");
            assert_eq!(
                copy.issuing.key.public_key(),
                authority.issuing.key.public_key()
            );
        }
    }
}
