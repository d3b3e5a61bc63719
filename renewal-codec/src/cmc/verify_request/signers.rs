//! Judging each SignerInfo: which certificate or key it names, the bytes it signed (with or
//! without signed attributes), its messageDigest against the content, and its signature.

use cms::signed_data::SignerIdentifier;
use der::asn1::{ObjectIdentifier, OctetString};
use x509_cert::Certificate;

use super::{
    ParsedRequest, RenewalParse, SignedBy, SignerId, SignerReport, parse_renewal_certificate,
    sid_text, signed_data_version, signer_info_version, verify_pkcs10,
};
use crate::cmc::{
    asn1::Retained,
    crypto::{self, DigestAlgorithm, SignatureAlgorithm, key_identifier, verify},
    error::{CmcError, DerContext, Result},
    microsoft::is_dummy_signer_name,
    oids,
    signed_data::SignerInfo,
};

impl ParsedRequest {
    /// Judges every signer. Never fails as a whole; each report carries its outcome.
    pub fn signer_reports(&self) -> Vec<SignerReport> {
        self.signer_reports_given(&self.parse_renewal())
    }

    pub(super) fn parse_renewal(&self) -> RenewalParse {
        match self.pkcs10s().first() {
            Some((_, req)) => parse_renewal_certificate(req.value()),
            None => Ok(None),
        }
    }

    pub(super) fn signer_reports_given(&self, renewal: &RenewalParse) -> Vec<SignerReport> {
        let renewal = renewal.as_ref().ok().and_then(Option::as_ref);
        let mut digests = ContentDigests::new(&self.econtent);
        self.signed_data
            .signer_infos
            .iter()
            .enumerate()
            .map(|(index, si)| self.judge_signer(index, si, renewal, &mut digests))
            .collect()
    }

    pub(super) fn judge_signer(
        &self,
        index: usize,
        si: &SignerInfo,
        renewal: Option<&Retained<Certificate>>,
        digests: &mut ContentDigests<'_>,
    ) -> SignerReport {
        let digest = DigestAlgorithm::from_oid(&si.digest_alg.oid);
        let algorithm = SignatureAlgorithm::from_identifier(&si.signature_algorithm, digest);
        let (signed_by, key) = self.resolve_signer(si, renewal);
        let outcome = (|| {
            let digest = digest.ok_or(CmcError::UnsupportedAlgorithm {
                what: "digest",
                oid: si.digest_alg.oid,
            })?;
            let message = self.signed_message(index, si, digest, digests)?;
            if signed_by == SignedBy::NoSignature {
                return if si.signature.as_bytes() == digest.digest(&message).as_slice() {
                    Ok(())
                } else {
                    Err(CmcError::SignatureInvalid {
                        signer: index,
                        source: crypto::VerifyError::BadSignature,
                    })
                };
            }
            let key = key.ok_or_else(|| CmcError::UnknownSigner {
                signer: index,
                sid: sid_text(&si.sid),
            })?;
            let algorithm = algorithm.ok_or(CmcError::UnsupportedAlgorithm {
                what: "signature",
                oid: si.signature_algorithm.oid,
            })?;
            verify(&key, algorithm, &message, si.signature.as_bytes()).map_err(|source| {
                CmcError::SignatureInvalid {
                    signer: index,
                    source,
                }
            })
        })();
        SignerReport {
            index,
            sid: SignerId(si.sid.clone()),
            signed_by,
            digest,
            algorithm,
            outcome,
        }
    }

    /// The bytes a signer's signature covers, after checking its contentType and
    /// messageDigest attributes.
    pub(super) fn signed_message(
        &self,
        index: usize,
        si: &SignerInfo,
        digest: DigestAlgorithm,
        digests: &mut ContentDigests<'_>,
    ) -> Result<Vec<u8>> {
        let econtent_type = self.signed_data.encap_content_info.econtent_type;
        let Some(attrs_der) = si.signed_attrs_der() else {
            // RFC 5652 §5.3: signed attributes are mandatory unless the content is id-data.
            if econtent_type != oids::ID_DATA {
                return Err(CmcError::MissingSignedAttribute {
                    signer: index,
                    attribute: "contentType",
                });
            }
            return Ok(self.econtent.clone());
        };
        let attrs_der = attrs_der.malformed("signed attributes")?;
        let content_type = match si.signed_attr(oids::ID_CONTENT_TYPE) {
            Some(attr) => attr
                .single_value()
                .ok_or(CmcError::MissingSignedAttribute {
                    signer: index,
                    attribute: "contentType",
                })?
                .decode_as::<ObjectIdentifier>()
                .malformed("contentType attribute")?,
            // ADCS: a messageDigest without contentType over id-data content. The type is
            // then the one the content declares, which is all contentType could have said.
            None if self.tolerates_missing_content_type() => econtent_type,
            None => {
                return Err(CmcError::MissingSignedAttribute {
                    signer: index,
                    attribute: "contentType",
                });
            }
        };
        if content_type != econtent_type {
            return Err(CmcError::ContentTypeMismatch {
                signer: index,
                found: content_type,
            });
        }
        let md = si
            .signed_attr(oids::ID_MESSAGE_DIGEST)
            .and_then(|a| a.single_value())
            .ok_or(CmcError::MissingSignedAttribute {
                signer: index,
                attribute: "messageDigest",
            })?
            .decode_as::<OctetString>()
            .malformed("messageDigest attribute")?;
        if md.as_bytes() != digests.of(digest) {
            return Err(CmcError::MessageDigestMismatch { signer: index });
        }
        Ok(attrs_der)
    }

    pub(super) fn resolve_signer(
        &self,
        si: &SignerInfo,
        renewal: Option<&Retained<Certificate>>,
    ) -> (SignedBy, Option<spki::SubjectPublicKeyInfoOwned>) {
        let embedded: Vec<&Retained<Certificate>> = self.signed_data.x509_certificates().collect();
        let is_renewal = |c: &Retained<Certificate>| renewal.is_some_and(|r| r == c);
        match &si.sid {
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                let ski = ski.0.as_bytes();
                for (_, req) in self.pkcs10s() {
                    let spki = &req.value().info.public_key;
                    if key_identifier(spki) == ski {
                        return (SignedBy::RequestKey, Some(spki.clone()));
                    }
                }
                let candidates = embedded
                    .iter()
                    .copied()
                    .enumerate()
                    .map(|(i, c)| (Some(i), c));
                for (i, cert) in candidates.chain(renewal.map(|r| (None, r))) {
                    let spki = cert.value().tbs_certificate().subject_public_key_info();
                    let ext_ski = cert
                        .value()
                        .tbs_certificate()
                        .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
                        .ok()
                        .flatten()
                        .map(|(_, s)| s.0.as_bytes().to_vec());
                    if key_identifier(spki) == ski || ext_ski.as_deref() == Some(ski) {
                        let by = match i {
                            Some(i) if !is_renewal(cert) => SignedBy::EmbeddedCertificate(i),
                            _ => SignedBy::RenewalCertificate,
                        };
                        return (by, Some(spki.clone()));
                    }
                }
                (SignedBy::Unknown, None)
            }
            SignerIdentifier::IssuerAndSerialNumber(isn) => {
                if is_dummy_signer_name(&isn.issuer)
                    && si.signature_algorithm.oid == oids::ID_ALG_NO_SIGNATURE
                {
                    return (SignedBy::NoSignature, None);
                }
                let matches = |c: &Retained<Certificate>| {
                    let tbs = c.value().tbs_certificate();
                    tbs.issuer() == &isn.issuer && tbs.serial_number() == &isn.serial_number
                };
                for (i, cert) in embedded.iter().enumerate() {
                    if matches(cert) {
                        let spki = cert
                            .value()
                            .tbs_certificate()
                            .subject_public_key_info()
                            .clone();
                        let by = if is_renewal(cert) {
                            SignedBy::RenewalCertificate
                        } else {
                            SignedBy::EmbeddedCertificate(i)
                        };
                        return (by, Some(spki));
                    }
                }
                match renewal {
                    Some(r) if matches(r) => (
                        SignedBy::RenewalCertificate,
                        Some(
                            r.value()
                                .tbs_certificate()
                                .subject_public_key_info()
                                .clone(),
                        ),
                    ),
                    _ => (SignedBy::Unknown, None),
                }
            }
        }
    }

    /// Checks what no signature covers: version fields, the digestAlgorithms list and the
    /// copy of the renewal certificate in `certificates`. A byte flipped there must not go
    /// unnoticed.
    pub(super) fn check_structure(&self, renewal: &RenewalParse) -> Result<()> {
        let sd = &self.signed_data;
        for (index, si) in sd.signer_infos.iter().enumerate() {
            let expected = signer_info_version(si);
            if si.version != expected {
                return Err(CmcError::VersionMismatch {
                    what: "SignerInfo",
                    found: si.version as u8,
                    expected: expected as u8,
                });
            }
            if !sd
                .digest_algorithms
                .iter()
                .any(|d| d.oid == si.digest_alg.oid)
            {
                return Err(CmcError::DigestNotListed {
                    signer: index,
                    oid: si.digest_alg.oid,
                });
            }
        }
        let expected = signed_data_version(sd);
        if sd.version != expected && !self.tolerated_signed_data_version() {
            return Err(CmcError::VersionMismatch {
                what: "SignedData",
                found: sd.version as u8,
                expected: expected as u8,
            });
        }
        if let Some(renewal) = renewal
            .as_ref()
            .map_err(|e| CmcError::BadRenewalCertificate(*e))?
        {
            let tbs = renewal.value().tbs_certificate();
            let conflicting = sd.x509_certificates().any(|c| {
                let other = c.value().tbs_certificate();
                other.issuer() == tbs.issuer()
                    && other.serial_number() == tbs.serial_number()
                    && c != renewal
            });
            if conflicting {
                return Err(CmcError::RenewalCertificateMismatch);
            }
        }
        Ok(())
    }

    /// Verifies every signer and the PKCS#10 proof of possession; does not require the
    /// request to be a renewal (third-party new-key requests verify here too).
    pub fn verify_signatures(&self) -> Result<Vec<SignerReport>> {
        self.verify_signatures_given(&self.parse_renewal())
    }

    /// Verifies every signer, as [`Self::verify_signatures`], but leaves the PKCS#10 proofs
    /// of possession to the caller: for a wrapper whose PKCS#10 is someone else's request,
    /// verified where that request is decided (an RA's re-enrollment, whose PKCS#10 the CA's
    /// policy verifies as any re-enrollment's), not twice.
    pub fn verify_signers(&self) -> Result<Vec<SignerReport>> {
        self.check_signatures(&self.parse_renewal(), false)
    }

    pub(super) fn verify_signatures_given(
        &self,
        renewal: &RenewalParse,
    ) -> Result<Vec<SignerReport>> {
        self.check_signatures(renewal, true)
    }

    /// The structure, the PKCS#10 proofs of possession when `pop`, then every signer.
    pub(super) fn check_signatures(
        &self,
        renewal: &RenewalParse,
        pop: bool,
    ) -> Result<Vec<SignerReport>> {
        if self.signed_data.signer_infos.is_empty() {
            return Err(CmcError::NoSigners);
        }
        self.check_structure(renewal)?;
        if pop {
            for (_, req) in self.pkcs10s() {
                verify_pkcs10(req)?;
            }
        }
        let reports = self.signer_reports_given(renewal);
        if let Some(failed) = reports.iter().position(|r| r.outcome.is_err()) {
            let mut reports = reports;
            let report = reports.swap_remove(failed);
            return Err(report.outcome.err().unwrap_or(CmcError::NoSigners));
        }
        Ok(reports)
    }
}

/// The content's digest per algorithm, computed once however many signers use it.
pub(super) struct ContentDigests<'a> {
    econtent: &'a [u8],
    done: Vec<(DigestAlgorithm, Vec<u8>)>,
}

impl<'a> ContentDigests<'a> {
    fn new(econtent: &'a [u8]) -> Self {
        Self {
            econtent,
            done: Vec::with_capacity(1),
        }
    }

    fn of(&mut self, digest: DigestAlgorithm) -> &[u8] {
        let at = match self.done.iter().position(|(d, _)| *d == digest) {
            Some(at) => at,
            None => {
                self.done.push((digest, digest.digest(self.econtent)));
                self.done.len() - 1
            }
        };
        &self.done[at].1
    }
}
