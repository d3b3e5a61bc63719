//! The request parser and verifier: what a CA needs to decide on a renewal.
//!
//! Accepted shapes (see `vectors/WIRE-FORMAT.md` §2.1):
//! * CMC, MS-WCCE renewal: signer \[0\] SKI of the new key, signer \[1\] the old certificate;
//! * CMC, certreq's published sample: one SKI signer, the old certificate only inside the
//!   PKCS#10's renewal attribute;
//! * CMS-with-PKCS#10 (MS-WSTEP): eContentType id-data, eContent the PKCS#10, one signer (the
//!   old certificate) without signed attributes;
//! * a Microsoft "No-Signature" first signer (MS-OTPCE), SHA-1 or SHA-2.
//!
//! Every signature, every messageDigest and the PKCS#10 proof of possession are verified;
//! [`ParsedRequest::signer_reports`] says per signer what happened, [`ParsedRequest::verify`]
//! fails on the first problem.

use cms::{
    content_info::{CmsVersion, ContentInfo},
    signed_data::SignerIdentifier,
};
use der::{
    Decode, Encode, Reader, SliceReader,
    asn1::{Int, ObjectIdentifier, OctetString},
};
use x509_cert::{Certificate, request::CertReq};

use super::{
    asn1::Retained,
    controls::Control,
    crypto::{DigestAlgorithm, SignatureAlgorithm, key_identifier, verify},
    error::{CmcError, DerContext, Result},
    input::{Limits, decode_exact, to_der},
    microsoft::{CmcAddAttributes, NameValuePair, TemplateRef, is_dummy_signer_name},
    oids,
    pki::{PkiData, TaggedRequest},
    public_key::PublicKey,
    signed_data::{SignedData, SignerInfo},
};

/// The content of a request's SignedData.
#[derive(Clone, Debug)]
pub enum RequestContent {
    /// A Full PKI Request.
    Cmc(PkiData),
    /// CMS-with-PKCS#10: the PKCS#10 itself.
    Pkcs10(Retained<CertReq>),
}

/// A structurally parsed request whose signatures have not been judged yet.
#[derive(Clone, Debug)]
pub struct ParsedRequest {
    /// The SignedData.
    pub signed_data: SignedData,
    /// The eContent bytes.
    pub econtent: Vec<u8>,
    /// The decoded content.
    pub content: RequestContent,
    /// Which RFC deviations verification tolerates (default: none).
    pub profile: Profile,
}

/// Which deviations from RFC 5652 a verifier tolerates. Signatures, digests and the proof of
/// possession are verified the same under every profile: a profile only decides about fields
/// no signature protects differently (a version number) or an attribute whose absence changes
/// nothing for the content renewal accepts.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// Every RFC 5652 / 5272 deviation is refused.
    #[default]
    Strict,
    /// What ADCS accepts. MS-WCCE §3.2.1.4.2.1.4.2.1 lists what the CA checks in a "CMS with
    /// PKCS #10" renewal — id-signedData, eContentType id-data, the PKCS #10 with the renewal
    /// certificate attribute, the signer being that certificate — and names no rule on the
    /// SignedData version or the signed attributes; certipy-ad 5.1.0 renewals, which ADCS
    /// issues, carry SignedData version 3 over a version-1 structure and a messageDigest
    /// without contentType. Exactly those two are tolerated, and only for that shape (id-data
    /// content, issuerAndSerialNumber signers): a CMC (PKIData) request is held to RFC 5652.
    Adcs,
}

impl std::str::FromStr for Profile {
    type Err = super::InvalidValue;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "strict" => Ok(Self::Strict),
            "adcs" => Ok(Self::Adcs),
            other => Err(super::InvalidValue::new("profile", other, "adcs or strict")),
        }
    }
}

/// How bad a deviation is.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// An RFC deviation ADCS accepts: refused only under the strict profile.
    Warning,
    /// Refused under every profile.
    Error,
}

/// One deviation from the RFCs found in a request, with the clause it breaks.
#[derive(Clone, Debug, Eq, PartialEq, serde::Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// The clause (`RFC 5652 §5.1`).
    pub clause: &'static str,
    /// What was found.
    pub message: String,
}

/// Which key a signer used.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum SignedBy {
    /// The key of the PKCS#10 (the new key).
    RequestKey,
    /// The certificate being renewed (found in `certificates` or the renewal attribute).
    RenewalCertificate,
    /// Another certificate in `certificates` (index), e.g. an enrollment agent.
    EmbeddedCertificate(usize),
    /// Microsoft's No-Signature mechanism: the "signature" is a hash of the signed attributes.
    NoSignature,
    /// Nothing we know matches the identifier.
    Unknown,
}

/// What happened to one signer.
#[derive(Debug)]
pub struct SignerReport {
    /// Wire position.
    pub index: usize,
    /// The identifier, formatted when shown.
    pub sid: SignerId,
    /// Which key it is.
    pub signed_by: SignedBy,
    /// Its digest algorithm, when supported.
    pub digest: Option<DigestAlgorithm>,
    /// Its signature algorithm, when supported.
    pub algorithm: Option<SignatureAlgorithm>,
    /// `Ok` when signature and messageDigest verify.
    pub outcome: Result<()>,
}

/// The request's shape.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RequestShape {
    /// CMC, signer \[0\] new key (SKI or No-Signature), a later signer the old certificate.
    CmcTwoSigners,
    /// CMC signed by the new key only (certreq's sample).
    CmcNewKeyOnly,
    /// CMC with some other signer layout.
    CmcOther,
    /// CMS-with-PKCS#10 (id-data content).
    CmsWithPkcs10,
}

/// What a verified renewal request says.
#[derive(Debug)]
pub struct RenewalFacts {
    /// The request's shape.
    pub shape: RequestShape,
    /// The certificate being renewed (from the PKCS#10 renewal attribute).
    pub renewal_certificate: Retained<Certificate>,
    /// Whether a signer used the renewal certificate's key (MS-WCCE requires it; a CA that
    /// binds TLS identity to the request must require it too).
    pub old_key_signed: bool,
    /// The PKCS#10.
    pub pkcs10: Retained<CertReq>,
    /// Body part id of the PKCS#10 (CMC only).
    pub request_body_part: Option<u32>,
    /// Per-signer results (all `Ok`).
    pub signers: Vec<SignerReport>,
    /// Template asked for (name/value pair and/or template extension).
    pub template: Option<TemplateRef>,
    /// All enrollment name/value pairs (PKCS#10 attributes and CMC add-attributes).
    pub name_value_pairs: Vec<(String, String)>,
    /// CMC transactionId.
    pub transaction_id: Option<Int>,
    /// CMC senderNonce.
    pub sender_nonce: Option<Vec<u8>>,
    /// The CMS digest algorithm of the first signer.
    pub digest: Option<DigestAlgorithm>,
}

/// Parses a renewal request (DER, PEM or base64) without judging signatures.
pub fn parse_request(input: &[u8], limits: &Limits) -> Result<ParsedRequest> {
    let (der, _) = to_der(input, limits)?;
    let signed_data = parse_signed_data(&der, limits)?;
    let econtent = signed_data
        .econtent_bytes()
        .ok_or(CmcError::MissingContent)?
        .malformed("eContent")?;
    let content = match signed_data.encap_content_info.econtent_type {
        oids::ID_CCT_PKI_DATA => {
            let pki: PkiData = decode_exact(&econtent, "PKIData")?;
            Limits::check("controls", pki.control_sequence.len(), limits.max_controls)?;
            Limits::check("requests", pki.req_sequence.len(), limits.max_requests)?;
            RequestContent::Cmc(pki)
        }
        oids::ID_DATA => RequestContent::Pkcs10(decode_exact(&econtent, "PKCS#10")?),
        found => {
            return Err(CmcError::UnexpectedContentType {
                expected: "id-cct-PKIData or id-data",
                found,
            });
        }
    };
    Ok(ParsedRequest {
        signed_data,
        econtent,
        content,
        profile: Profile::Strict,
    })
}

/// Parses `ContentInfo { id-signedData, SignedData }` under `limits`.
pub fn parse_signed_data(der: &[u8], limits: &Limits) -> Result<SignedData> {
    let info: ContentInfo = decode_exact(der, "ContentInfo")?;
    if info.content_type != oids::ID_SIGNED_DATA {
        return Err(CmcError::UnexpectedContentType {
            expected: "id-signedData",
            found: info.content_type,
        });
    }
    let signed: SignedData = decode_exact(
        &info.content.to_der().malformed("SignedData")?,
        "SignedData",
    )?;
    Limits::check("signers", signed.signer_infos.len(), limits.max_signers)?;
    let certs = signed.certificates.as_ref().map_or(0, |c| c.len());
    Limits::check("certificates", certs, limits.max_certificates)?;
    Ok(signed)
}

/// The exact bytes of a PKCS#10's `certificationRequestInfo` (what its signature covers).
pub fn pkcs10_info_bytes(req: &Retained<CertReq>) -> Result<&[u8]> {
    tbs_bytes(req.der()).malformed("PKCS#10")
}

/// The first element of a SEQUENCE, as bytes: the signed part of a certificate, CRL or PKCS#10.
pub(crate) fn tbs_bytes(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = SliceReader::new(der)?;
    // Past the outer header, the reader sits on the first element.
    der::Header::decode(&mut reader)?;
    reader.tlv_bytes()
}

/// Verifies a PKCS#10's self-signature (proof of possession of the new key).
pub fn verify_pkcs10(req: &Retained<CertReq>) -> Result<()> {
    let value = req.value();
    let alg = SignatureAlgorithm::from_identifier(&value.algorithm, None).ok_or(
        CmcError::UnsupportedAlgorithm {
            what: "PKCS#10 signature",
            oid: value.algorithm.oid,
        },
    )?;
    let key = PublicKey::from_spki(&value.info.public_key).map_err(CmcError::BadPublicKey)?;
    let sig = value.signature.as_bytes().ok_or(CmcError::PopInvalid(
        super::crypto::VerifyError::BadSignature,
    ))?;
    key.verify(alg, pkcs10_info_bytes(req)?, sig)
        .map_err(CmcError::PopInvalid)
}

fn attribute_values<'a>(
    req: &'a CertReq,
    oid: ObjectIdentifier,
) -> impl Iterator<Item = &'a der::asn1::Any> + 'a {
    req.info
        .attributes
        .iter()
        .filter(move |a| a.oid == oid)
        .flat_map(|a| a.values.iter())
}

/// The certificate in a PKCS#10's `szOID_RENEWAL_CERTIFICATE` attribute, if any.
pub fn renewal_certificate(req: &CertReq) -> Result<Option<Retained<Certificate>>> {
    parse_renewal_certificate(req).map_err(CmcError::BadRenewalCertificate)
}

fn parse_renewal_certificate(req: &CertReq) -> der::Result<Option<Retained<Certificate>>> {
    match attribute_values(req, oids::MS_RENEWAL_CERTIFICATE).next() {
        None => Ok(None),
        Some(any) => Retained::from_der(&any.to_der()?).map(Some),
    }
}

/// The renewal certificate of the first PKCS#10, parsed once for all the checks of one
/// verification (structure, signer resolution, facts): parsing a certificate costs about a
/// tenth of an RSA verification.
type RenewalParse = der::Result<Option<Retained<Certificate>>>;

/// The content's digest per algorithm, computed once however many signers use it.
struct ContentDigests<'a> {
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

/// A signer's identifier, turned into text only when shown: an issuer name's text costs a
/// search of the OID names for every attribute, and a request that verifies is never shown.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct SignerId(pub SignerIdentifier);

impl std::fmt::Display for SignerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&sid_text(&self.0))
    }
}

fn sid_text(sid: &SignerIdentifier) -> String {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(isn) if is_dummy_signer_name(&isn.issuer) => {
            format!(
                "issuer \"CN=Dummy Signer\" (szOID_RDN_DUMMY_SIGNER), serial {}",
                isn.serial_number
            )
        }
        SignerIdentifier::IssuerAndSerialNumber(isn) => {
            format!("issuer \"{}\", serial {}", isn.issuer, isn.serial_number)
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            format!("subjectKeyIdentifier {}", hex(ski.0.as_bytes()))
        }
    }
}

/// Lower-case hex (one allocation: fingerprints are written several times per request).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

impl ParsedRequest {
    /// The same request, verified under `profile`.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// The shape the ADCS profile's tolerances are limited to: a PKCS#10 in id-data content,
    /// every signer by issuer and serial number (MS-WCCE "CMS with PKCS #10").
    fn is_cms_with_pkcs10(&self) -> bool {
        matches!(self.content, RequestContent::Pkcs10(_))
            && self.signed_data.encap_content_info.econtent_type == oids::ID_DATA
            && self
                .signed_data
                .signer_infos
                .iter()
                .all(|si| matches!(si.sid, SignerIdentifier::IssuerAndSerialNumber(_)))
    }

    fn tolerated_signed_data_version(&self) -> bool {
        self.clone_shape_with(self.profile)
            .tolerated_signed_data_version()
    }

    fn tolerates_missing_content_type(&self) -> bool {
        self.clone_shape_with(self.profile)
            .tolerates_missing_content_type()
    }

    /// Every deviation from RFC 5652 in the structure, with its clause: a linter's view,
    /// independent of the profile. Warnings are what the ADCS profile tolerates; errors are
    /// refused under every profile.
    pub fn findings(&self) -> Vec<Finding> {
        let sd = &self.signed_data;
        let adcs = self.clone_shape_with(Profile::Adcs);
        let mut out = Vec::new();
        for (index, si) in sd.signer_infos.iter().enumerate() {
            let expected = signer_info_version(si);
            if si.version != expected {
                out.push(Finding {
                    severity: Severity::Error,
                    clause: "RFC 5652 §5.3",
                    message: format!(
                        "SignerInfo {index}: version {} with its signer identifier (expected {})",
                        si.version as u8, expected as u8
                    ),
                });
            }
            if si.signed_attrs.is_some() && si.signed_attr(oids::ID_CONTENT_TYPE).is_none() {
                out.push(Finding {
                    severity: if adcs.tolerates_missing_content_type() {
                        Severity::Warning
                    } else {
                        Severity::Error
                    },
                    clause: "RFC 5652 §5.3, §11.1",
                    message: format!(
                        "SignerInfo {index}: signed attributes without the contentType attribute"
                    ),
                });
            }
        }
        let expected = signed_data_version(sd);
        if sd.version != expected {
            out.push(Finding {
                severity: if adcs.tolerated_signed_data_version() {
                    Severity::Warning
                } else {
                    Severity::Error
                },
                clause: "RFC 5652 §5.1",
                message: format!(
                    "SignedData: version {} is inconsistent with the structure (expected {})",
                    sd.version as u8, expected as u8
                ),
            });
        }
        out
    }

    /// A view of this request's shape under another profile (for `findings`).
    fn clone_shape_with(&self, profile: Profile) -> ProfileView<'_> {
        ProfileView {
            request: self,
            profile,
        }
    }

    /// The PKCS#10 requests, with their CMC body part ids.
    pub fn pkcs10s(&self) -> Vec<(Option<u32>, &Retained<CertReq>)> {
        match &self.content {
            RequestContent::Pkcs10(req) => vec![(None, req)],
            RequestContent::Cmc(pki) => pki
                .req_sequence
                .iter()
                .filter_map(|r| match r {
                    TaggedRequest::Tcr(t) => Some((Some(t.body_part_id), &t.certification_request)),
                    _ => None,
                })
                .collect(),
        }
    }

    fn single_pkcs10(&self) -> Result<(Option<u32>, &Retained<CertReq>)> {
        let all = self.pkcs10s();
        let total = match &self.content {
            RequestContent::Pkcs10(_) => 1,
            RequestContent::Cmc(pki) => pki.req_sequence.len(),
        };
        match all.as_slice() {
            [one] if total == 1 => Ok(*one),
            _ => Err(CmcError::RequestCount { found: all.len() }),
        }
    }

    fn controls(&self) -> Result<Vec<Control>> {
        match &self.content {
            RequestContent::Pkcs10(_) => Ok(vec![]),
            RequestContent::Cmc(pki) => pki
                .control_sequence
                .iter()
                .map(|c| Control::from_tagged(c).map_err(CmcError::from))
                .collect(),
        }
    }

    /// Judges every signer. Never fails as a whole; each report carries its outcome.
    pub fn signer_reports(&self) -> Vec<SignerReport> {
        self.signer_reports_given(&self.parse_renewal())
    }

    fn parse_renewal(&self) -> RenewalParse {
        match self.pkcs10s().first() {
            Some((_, req)) => parse_renewal_certificate(req.value()),
            None => Ok(None),
        }
    }

    fn signer_reports_given(&self, renewal: &RenewalParse) -> Vec<SignerReport> {
        let renewal = renewal.as_ref().ok().and_then(Option::as_ref);
        let mut digests = ContentDigests::new(&self.econtent);
        self.signed_data
            .signer_infos
            .iter()
            .enumerate()
            .map(|(index, si)| self.judge_signer(index, si, renewal, &mut digests))
            .collect()
    }

    fn judge_signer(
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
                        source: super::crypto::VerifyError::BadSignature,
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
    fn signed_message(
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

    fn resolve_signer(
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
    fn check_structure(&self, renewal: &RenewalParse) -> Result<()> {
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

    fn verify_signatures_given(&self, renewal: &RenewalParse) -> Result<Vec<SignerReport>> {
        self.check_signatures(renewal, true)
    }

    /// The structure, the PKCS#10 proofs of possession when `pop`, then every signer.
    fn check_signatures(&self, renewal: &RenewalParse, pop: bool) -> Result<Vec<SignerReport>> {
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

    /// Verifies everything and extracts the renewal facts. Fails with a typed error when the
    /// request is not a well-formed, correctly signed renewal of exactly one certificate.
    pub fn verify(&self) -> Result<RenewalFacts> {
        let (request_body_part, pkcs10) = self.single_pkcs10()?;
        // The single PKCS#10 is the first: its renewal certificate is parsed once.
        let renewal = self.parse_renewal();
        let signers = self.verify_signatures_given(&renewal)?;
        let renewal_certificate = renewal
            .map_err(CmcError::BadRenewalCertificate)?
            .ok_or(CmcError::MissingRenewalCertificate)?;
        let old_key_signed = signers
            .iter()
            .any(|s| s.signed_by == SignedBy::RenewalCertificate);
        let new_key_first = matches!(
            signers.first().map(|s| &s.signed_by),
            Some(SignedBy::RequestKey | SignedBy::NoSignature)
        );
        let shape = match &self.content {
            RequestContent::Pkcs10(_) => RequestShape::CmsWithPkcs10,
            RequestContent::Cmc(_) if new_key_first && old_key_signed => {
                RequestShape::CmcTwoSigners
            }
            RequestContent::Cmc(_)
                if signers.iter().all(|s| s.signed_by == SignedBy::RequestKey) =>
            {
                RequestShape::CmcNewKeyOnly
            }
            RequestContent::Cmc(_) => RequestShape::CmcOther,
        };

        let mut name_value_pairs = pkcs10_name_value_pairs(pkcs10.value())?;
        let mut transaction_id = None;
        let mut sender_nonce = None;
        for control in self.controls()? {
            match control {
                Control::TransactionId(t) => transaction_id = Some(t),
                Control::SenderNonce(n) => sender_nonce = Some(n.as_bytes().to_vec()),
                Control::MsAddAttributes(CmcAddAttributes { attributes, .. }) => {
                    for attr in attributes.iter() {
                        if attr.oid == oids::MS_ENROLLMENT_NAME_VALUE_PAIR {
                            for v in attr.values.iter() {
                                let pair = v
                                    .decode_as::<NameValuePair>()
                                    .malformed("name/value pair")?;
                                name_value_pairs.push(pair.to_strings());
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let template = request_template(pkcs10.value(), &name_value_pairs)?;
        Ok(RenewalFacts {
            shape,
            renewal_certificate,
            old_key_signed,
            pkcs10: pkcs10.clone(),
            request_body_part,
            digest: signers.first().and_then(|s| s.digest),
            signers,
            template,
            name_value_pairs,
            transaction_id,
            sender_nonce,
        })
    }
}

/// The template a PKCS#10 asks for: its `CertificateTemplate` pair and its 21.7 / 20.2
/// extensions, merged.
pub fn request_template(req: &CertReq, pairs: &[(String, String)]) -> Result<Option<TemplateRef>> {
    let from_pair = pairs
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("CertificateTemplate"))
        .map(|(_, v)| TemplateRef::from_user_text(v));
    let mut from_ext = None;
    for oid in [oids::ID_EXTENSION_REQUEST, oids::MS_EXTENSION_REQUEST] {
        for any in attribute_values(req, oid) {
            let exts: Vec<x509_cert::ext::Extension> =
                any.decode_as().malformed("extensionRequest")?;
            for e in exts {
                if let Some(t) = TemplateRef::from_extension(e.extn_id, e.extn_value.as_bytes()) {
                    from_ext = Some(match from_ext {
                        Some(prev) => TemplateRef::merge(prev, t),
                        None => t,
                    });
                }
            }
        }
    }
    Ok(match (from_pair, from_ext) {
        (Some(p), Some(e)) => Some(p.merge(e)),
        (p, e) => p.or(e),
    })
}

/// Every template indication of a PKCS#10, each on its own: the `CertificateTemplate` pair and
/// each 21.7 / 20.2 extension. A CA must check each (a merged view would let a pair asking
/// for one template hide behind an inherited extension naming another).
pub fn request_template_indications(
    req: &CertReq,
    pairs: &[(String, String)],
) -> Result<Vec<TemplateRef>> {
    let mut out: Vec<TemplateRef> = pairs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("CertificateTemplate"))
        .map(|(_, v)| TemplateRef::from_user_text(v))
        .collect();
    for e in requested_extensions(req)? {
        out.extend(TemplateRef::from_extension(
            e.extn_id,
            e.extn_value.as_bytes(),
        ));
    }
    Ok(out)
}

/// The name/value pairs (`szOID_ENROLLMENT_NAME_VALUE_PAIR`) a PKCS#10 carries as attributes.
pub fn pkcs10_name_value_pairs(req: &CertReq) -> Result<Vec<(String, String)>> {
    attribute_values(req, oids::MS_ENROLLMENT_NAME_VALUE_PAIR)
        .map(|v| {
            v.decode_as::<NameValuePair>()
                .map(|p| p.to_strings())
                .malformed("name/value pair")
        })
        .collect()
}

/// The extensions a PKCS#10 requests.
pub fn requested_extensions(req: &CertReq) -> Result<Vec<x509_cert::ext::Extension>> {
    let mut out = Vec::new();
    for oid in [oids::ID_EXTENSION_REQUEST, oids::MS_EXTENSION_REQUEST] {
        for any in attribute_values(req, oid) {
            let exts: Vec<x509_cert::ext::Extension> =
                any.decode_as().malformed("extensionRequest")?;
            out.extend(exts);
        }
    }
    Ok(out)
}

/// The SignerInfo version its identifier calls for (RFC 5652 §5.3): 1 for
/// issuerAndSerialNumber, 3 for subjectKeyIdentifier.
fn signer_info_version(si: &SignerInfo) -> CmsVersion {
    match si.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => CmsVersion::V1,
        SignerIdentifier::SubjectKeyIdentifier(_) => CmsVersion::V3,
    }
}

/// The SignedData version the structure calls for (RFC 5652 §5.1; no attribute certificates
/// or other formats here): 3 when any signer is identified by key or the content is not
/// id-data, else 1.
fn signed_data_version(sd: &SignedData) -> CmsVersion {
    let any_v3 = sd
        .signer_infos
        .iter()
        .any(|si| signer_info_version(si) == CmsVersion::V3);
    if any_v3 || sd.encap_content_info.econtent_type != oids::ID_DATA {
        CmsVersion::V3
    } else {
        CmsVersion::V1
    }
}

/// A request seen under a given profile, without cloning it.
struct ProfileView<'a> {
    request: &'a ParsedRequest,
    profile: Profile,
}

impl ProfileView<'_> {
    /// SignedData version 3 where RFC 5652 §5.1 says 1 (never the other way round).
    fn tolerated_signed_data_version(&self) -> bool {
        self.profile == Profile::Adcs
            && self.request.is_cms_with_pkcs10()
            && self.request.signed_data.version == CmsVersion::V3
    }

    fn tolerates_missing_content_type(&self) -> bool {
        self.profile == Profile::Adcs && self.request.is_cms_with_pkcs10()
    }
}

#[cfg(test)]
mod tests {
    use super::hex;

    #[test]
    fn hex_is_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }
}
