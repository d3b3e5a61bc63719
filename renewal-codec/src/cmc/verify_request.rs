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
    asn1::{Int, ObjectIdentifier},
};
use x509_cert::{Certificate, request::CertReq};

use super::{
    asn1::Retained,
    controls::Control,
    crypto::{DigestAlgorithm, SignatureAlgorithm},
    error::{CmcError, DerContext, Result},
    input::{Limits, decode_exact, to_der},
    microsoft::{CmcAddAttributes, NameValuePair, TemplateRef, is_dummy_signer_name},
    oids,
    pki::{PkiData, TaggedRequest},
    public_key::PublicKey,
    signed_data::{SignedData, SignerInfo},
};

mod attributes;
mod signers;

pub use attributes::{
    pkcs10_name_value_pairs, request_template, request_template_indications, requested_extensions,
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
