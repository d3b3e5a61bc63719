//! CMC responses: the CA-side builder (Full PKI Response with `CMCStatusInfoV2`, or the ADCS
//! shape with `CMCStatusInfo` v1 + issued-certificate hash; certs-only PKCS#7) and the
//! client-side parser (full response, certs-only PKCS#7, bare certificate; DER, PEM, base64).

use cms::{cert::IssuerAndSerialNumber, content_info::CmsVersion, signed_data::SignerIdentifier};
use der::{
    Encode,
    asn1::{GeneralizedTime, Int, OctetString},
};
use x509_cert::Certificate;

use super::{
    asn1::{Retained, SetOf},
    controls::Control,
    crypto::{DigestAlgorithm, SignatureAlgorithm, Signer, verify},
    error::{CmcError, DerContext, Result},
    input::{Limits, decode_exact, to_der},
    microsoft::CmcAddAttributes,
    oids,
    pki::{BodyPartReference, PkiResponse},
    request::sign_content,
    signed_data::{Attribute, CertificateChoice, SignedData},
    status::{
        CmcFailInfo, CmcStatus, CmcStatusInfo, CmcStatusInfoV2, OtherStatusInfo, OtherStatusInfoV2,
        PendInfo,
    },
};

/// The outcome a response reports.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Outcome {
    /// Issued (CMC success).
    Issued,
    /// Failed, with the fail info when one was sent (ADCS sends none).
    Failed {
        /// CMC fail info.
        fail_info: Option<CmcFailInfo>,
    },
    /// Pending: come back with `token` at `retry_at`.
    Pending {
        /// The pendToken.
        token: Vec<u8>,
        /// pendTime.
        retry_at: GeneralizedTime,
    },
    /// Another status (noSupport, confirmRequired, popRequired, partial).
    Other(CmcStatus),
}

/// How the CA words its status.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum StatusStyle {
    /// `id-cmc-statusInfoV2` (RFC 5272 §6.1.1; what EST servers send).
    V2,
    /// `id-cmc-statusInfo` v1 at body part 1, plus `szOID_CMC_ADD_ATTRIBUTES` with
    /// `szOID_ISSUED_CERT_HASH` at body part 2 when a certificate is returned (ADCS,
    /// MS-WCCE 3.2.1.4.2.1.4.8.2).
    Adcs,
}

/// Everything a full response says.
#[derive(Clone, Debug)]
pub struct ResponseParams {
    /// The outcome.
    pub outcome: Outcome,
    /// Human-readable status ("Issued", a denial reason).
    pub status_string: Option<String>,
    /// Status wording.
    pub style: StatusStyle,
    /// Body part id of the request this answers.
    pub request_body_part: u32,
    /// Echo of the request's transactionId.
    pub transaction_id: Option<Int>,
    /// Echo of the request's senderNonce, as recipientNonce.
    pub recipient_nonce: Option<Vec<u8>>,
    /// The issued certificate, when issued.
    pub issued: Option<Retained<Certificate>>,
    /// CA chain to include (issuing CA first).
    pub chain: Vec<Retained<Certificate>>,
    /// Hash for the CMS layer.
    pub digest: DigestAlgorithm,
}

/// Builds a Full PKI Response signed by the CA key (`ca_cert` + `ca_key`), SignedData v3 with
/// one v1 IssuerAndSerialNumber signer, as ADCS sends.
pub fn build_full_response(
    params: &ResponseParams,
    ca_cert: &Retained<Certificate>,
    ca_key: &dyn Signer,
) -> Result<Vec<u8>> {
    let mut controls = Vec::new();
    let (status, other_v1, other_v2) = match &params.outcome {
        Outcome::Issued => (CmcStatus::Success, None, None),
        Outcome::Failed { fail_info } => (
            CmcStatus::Failed,
            fail_info.map(OtherStatusInfo::FailInfo),
            fail_info.map(OtherStatusInfoV2::FailInfo),
        ),
        Outcome::Pending { token, retry_at } => {
            let pend = PendInfo {
                pend_token: OctetString::new(token.clone()).encoding("pendToken")?,
                pend_time: *retry_at,
            };
            (
                CmcStatus::Pending,
                Some(OtherStatusInfo::PendInfo(pend.clone())),
                Some(OtherStatusInfoV2::PendInfo(pend)),
            )
        }
        Outcome::Other(s) => (*s, None, None),
    };
    match params.style {
        StatusStyle::V2 => controls.push(Control::StatusInfoV2(CmcStatusInfoV2 {
            status,
            body_list: vec![BodyPartReference::BodyPartId(params.request_body_part)],
            status_string: params.status_string.clone(),
            other_info: other_v2,
        })),
        StatusStyle::Adcs => {
            controls.push(Control::StatusInfo(CmcStatusInfo {
                status,
                body_list: vec![params.request_body_part],
                status_string: params.status_string.clone(),
                other_info: other_v1,
            }));
            if let Some(issued) = &params.issued {
                let hash = DigestAlgorithm::Sha1.digest(issued.der());
                let attr = Attribute::single(
                    oids::MS_ISSUED_CERT_HASH,
                    &OctetString::new(hash).encoding("issued cert hash")?,
                )
                .encoding("issued cert hash")?;
                controls.push(Control::MsAddAttributes(CmcAddAttributes {
                    pki_data_reference: 0,
                    cert_references: vec![params.request_body_part],
                    attributes: SetOf(vec![attr]),
                }));
            }
        }
    }
    if let Some(tid) = &params.transaction_id {
        controls.push(Control::TransactionId(tid.clone()));
    }
    if let Some(nonce) = &params.recipient_nonce {
        controls.push(Control::RecipientNonce(
            OctetString::new(nonce.clone()).encoding("recipientNonce")?,
        ));
    }
    let control_sequence = controls
        .iter()
        .zip(1u32..)
        .map(|(c, bp)| c.to_tagged(bp).encoding("control"))
        .collect::<Result<Vec<_>>>()?;
    let body = PkiResponse {
        control_sequence,
        cms_sequence: vec![],
        other_msg_sequence: vec![],
    }
    .to_der()
    .encoding("PKIResponse")?;

    let mut certificates: Vec<CertificateChoice> = Vec::new();
    certificates.extend(
        params
            .issued
            .iter()
            .cloned()
            .map(CertificateChoice::Certificate),
    );
    certificates.extend(
        params
            .chain
            .iter()
            .cloned()
            .map(CertificateChoice::Certificate),
    );
    if !params.chain.iter().any(|c| c == ca_cert) {
        certificates.push(CertificateChoice::Certificate(ca_cert.clone()));
    }
    let tbs = ca_cert.value().tbs_certificate();
    let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let signed = sign_content(
        oids::ID_CCT_PKI_RESPONSE,
        &body,
        params.digest,
        &[(CmsVersion::V1, sid, ca_key)],
        certificates,
    )?;
    signed.to_content_info_der().encoding("ContentInfo")
}

/// Builds a certs-only PKCS#7 (SignedData v1, id-data without content, no signers): what ADCS
/// returns without the full-response flag and what EST `/cacerts` and `/simplereenroll` send.
pub fn build_certs_only(certs: &[Retained<Certificate>]) -> Result<Vec<u8>> {
    SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOf(vec![]),
        encap_content_info: cms::signed_data::EncapsulatedContentInfo {
            econtent_type: oids::ID_DATA,
            econtent: None,
        },
        certificates: Some(SetOf(
            certs
                .iter()
                .cloned()
                .map(CertificateChoice::Certificate)
                .collect(),
        )),
        crls: None,
        signer_infos: SetOf(vec![]),
    }
    .to_content_info_der()
    .encoding("certs-only")
}

/// What kind of answer arrived.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ResponseForm {
    /// Full PKI Response.
    FullPkiResponse,
    /// Certs-only PKCS#7.
    CertsOnly,
    /// A bare X.509 certificate.
    BareCertificate,
    /// A CMP answer (`kup`), whose protection the reader checked.
    Cmp,
}

/// A parsed response.
#[derive(Clone, Debug)]
pub struct ParsedResponse {
    /// Its form.
    pub form: ResponseForm,
    /// The outcome: certs-only and bare certificates count as issued.
    pub outcome: Outcome,
    /// Status text, when sent.
    pub status_string: Option<String>,
    /// Certificates carried, in wire order.
    pub certificates: Vec<Retained<Certificate>>,
    /// `szOID_ISSUED_CERT_HASH` (SHA-1 of the issued certificate), ADCS only.
    pub issued_cert_hash: Option<Vec<u8>>,
    /// Echoed transactionId.
    pub transaction_id: Option<Int>,
    /// recipientNonce.
    pub recipient_nonce: Option<Vec<u8>>,
    /// The SignedData (full responses and certs-only).
    pub signed_data: Option<SignedData>,
    /// The PKIResponse (full responses).
    pub body: Option<PkiResponse>,
    econtent: Vec<u8>,
}

impl ParsedResponse {
    /// What a CMP `kup` says, as the renewal reads CMC answers: its outcome, status text and
    /// certificates (the issued one first). The caller has verified its protection.
    pub fn from_cmp(
        outcome: Outcome,
        status_string: Option<String>,
        certificates: Vec<Retained<Certificate>>,
    ) -> Self {
        Self {
            form: ResponseForm::Cmp,
            outcome,
            status_string,
            certificates,
            issued_cert_hash: None,
            transaction_id: None,
            recipient_nonce: None,
            signed_data: None,
            body: None,
            econtent: Vec::new(),
        }
    }
}

/// Parses what a CA answered: a Full PKI Response, a certs-only PKCS#7 or a bare certificate.
pub fn parse_response(input: &[u8], limits: &Limits) -> Result<ParsedResponse> {
    let (der, _) = to_der(input, limits)?;
    // A certificate is SEQUENCE { SEQUENCE tbs, ... }; a ContentInfo starts with an OID.
    let second_tag = der.get(1).map(|&len| {
        if len & 0x80 == 0 {
            2
        } else {
            2 + usize::from(len & 0x7f)
        }
    });
    if second_tag.and_then(|i| der.get(i)) == Some(&0x30) {
        let cert: Retained<Certificate> = decode_exact(&der, "certificate")?;
        return Ok(ParsedResponse {
            form: ResponseForm::BareCertificate,
            outcome: Outcome::Issued,
            status_string: None,
            certificates: vec![cert],
            issued_cert_hash: None,
            transaction_id: None,
            recipient_nonce: None,
            signed_data: None,
            body: None,
            econtent: vec![],
        });
    }
    let signed = super::verify_request::parse_signed_data(&der, limits)?;
    let certificates: Vec<_> = signed.x509_certificates().cloned().collect();
    let econtent_type = signed.encap_content_info.econtent_type;
    let econtent = match signed.econtent_bytes() {
        None => None,
        Some(bytes) => Some(bytes.malformed("eContent")?),
    };
    match (econtent_type, econtent) {
        (oids::ID_DATA, None) => Ok(ParsedResponse {
            form: ResponseForm::CertsOnly,
            outcome: Outcome::Issued,
            status_string: None,
            certificates,
            issued_cert_hash: None,
            transaction_id: None,
            recipient_nonce: None,
            signed_data: Some(signed),
            body: None,
            econtent: vec![],
        }),
        (oids::ID_CCT_PKI_RESPONSE, Some(econtent)) => {
            let body: PkiResponse = decode_exact(&econtent, "PKIResponse")?;
            Limits::check("controls", body.control_sequence.len(), limits.max_controls)?;
            let mut parsed = ParsedResponse {
                form: ResponseForm::FullPkiResponse,
                outcome: Outcome::Other(CmcStatus::NoSupport),
                status_string: None,
                certificates,
                issued_cert_hash: None,
                transaction_id: None,
                recipient_nonce: None,
                signed_data: Some(signed),
                body: None,
                econtent,
            };
            let mut saw_status = false;
            for tagged in &body.control_sequence {
                match Control::from_tagged(tagged)? {
                    Control::StatusInfo(s) => {
                        saw_status = true;
                        parsed.status_string = s.status_string.clone();
                        parsed.outcome = outcome_v1(&s);
                    }
                    Control::StatusInfoV2(s) => {
                        saw_status = true;
                        parsed.status_string = s.status_string.clone();
                        parsed.outcome = outcome_v2(&s);
                    }
                    Control::TransactionId(t) => parsed.transaction_id = Some(t),
                    Control::RecipientNonce(n) => {
                        parsed.recipient_nonce = Some(n.as_bytes().to_vec())
                    }
                    Control::MsAddAttributes(add) => {
                        for attr in add.attributes.iter() {
                            if attr.oid == oids::MS_ISSUED_CERT_HASH {
                                let hash = attr
                                    .single_value()
                                    .map(|v| v.decode_as::<OctetString>())
                                    .transpose()
                                    .malformed("issued cert hash")?;
                                parsed.issued_cert_hash = hash.map(|h| h.as_bytes().to_vec());
                            }
                        }
                    }
                    _ => {}
                }
            }
            if !saw_status {
                return Err(CmcError::MissingSignedAttribute {
                    signer: 0,
                    attribute: "statusInfo control",
                });
            }
            parsed.body = Some(body);
            Ok(parsed)
        }
        (found, _) => Err(CmcError::UnexpectedContentType {
            expected: "id-cct-PKIResponse or certs-only id-data",
            found,
        }),
    }
}

fn outcome_from(status: CmcStatus, fail: Option<CmcFailInfo>, pend: Option<&PendInfo>) -> Outcome {
    match (status, pend) {
        (CmcStatus::Success, _) => Outcome::Issued,
        (CmcStatus::Failed, _) => Outcome::Failed { fail_info: fail },
        (CmcStatus::Pending, Some(p)) => Outcome::Pending {
            token: p.pend_token.as_bytes().to_vec(),
            retry_at: p.pend_time,
        },
        (other, _) => Outcome::Other(other),
    }
}

fn outcome_v1(s: &CmcStatusInfo) -> Outcome {
    let (fail, pend) = match &s.other_info {
        Some(OtherStatusInfo::FailInfo(f)) => (Some(*f), None),
        Some(OtherStatusInfo::PendInfo(p)) => (None, Some(p)),
        None => (None, None),
    };
    outcome_from(s.status, fail, pend)
}

fn outcome_v2(s: &CmcStatusInfoV2) -> Outcome {
    let (fail, pend) = match &s.other_info {
        Some(OtherStatusInfoV2::FailInfo(f)) => (Some(*f), None),
        Some(OtherStatusInfoV2::PendInfo(p)) => (None, Some(p)),
        _ => (None, None),
    };
    outcome_from(s.status, fail, pend)
}

impl ParsedResponse {
    /// For a full response: verifies its signer (signature and messageDigest) and returns the
    /// certificate (from `certificates`) that signed it. The caller decides whether that
    /// certificate is a CA it trusts.
    pub fn verify_signer(&self) -> Result<&Retained<Certificate>> {
        let signed = self
            .signed_data
            .as_ref()
            .filter(|_| self.form == ResponseForm::FullPkiResponse)
            .ok_or(CmcError::NoSigners)?;
        let [si] = signed.signer_infos.0.as_slice() else {
            return Err(CmcError::TooMany {
                what: "response signers",
                count: signed.signer_infos.len(),
                max: 1,
            });
        };
        let SignerIdentifier::IssuerAndSerialNumber(isn) = &si.sid else {
            return Err(CmcError::UnknownSigner {
                signer: 0,
                sid: "subjectKeyIdentifier".into(),
            });
        };
        let cert = self
            .certificates
            .iter()
            .find(|c| {
                let tbs = c.value().tbs_certificate();
                tbs.issuer() == &isn.issuer && tbs.serial_number() == &isn.serial_number
            })
            .ok_or_else(|| CmcError::UnknownSigner {
                signer: 0,
                sid: format!("issuer \"{}\", serial {}", isn.issuer, isn.serial_number),
            })?;
        let digest = DigestAlgorithm::from_oid(&si.digest_alg.oid).ok_or(
            CmcError::UnsupportedAlgorithm {
                what: "digest",
                oid: si.digest_alg.oid,
            },
        )?;
        let md = si
            .signed_attr(oids::ID_MESSAGE_DIGEST)
            .and_then(|a| a.single_value())
            .ok_or(CmcError::MissingSignedAttribute {
                signer: 0,
                attribute: "messageDigest",
            })?
            .decode_as::<OctetString>()
            .malformed("messageDigest")?;
        if md.as_bytes() != digest.digest(&self.econtent).as_slice() {
            return Err(CmcError::MessageDigestMismatch { signer: 0 });
        }
        let alg = SignatureAlgorithm::from_identifier(&si.signature_algorithm, Some(digest))
            .ok_or(CmcError::UnsupportedAlgorithm {
                what: "signature",
                oid: si.signature_algorithm.oid,
            })?;
        let message = si
            .signed_attrs_der()
            .ok_or(CmcError::MissingSignedAttribute {
                signer: 0,
                attribute: "contentType",
            })?
            .malformed("signed attributes")?;
        verify(
            cert.value().tbs_certificate().subject_public_key_info(),
            alg,
            &message,
            si.signature.as_bytes(),
        )
        .map_err(|source| CmcError::SignatureInvalid { signer: 0, source })?;
        Ok(cert)
    }
}
