//! The renewal request builder: a CMC Full PKI Request in the MS-WCCE renewal shape.
//!
//! ```text
//! ContentInfo { id-signedData, SignedData v3 {
//!   digestAlgorithms { sha256 }
//!   encapContentInfo { id-cct-PKIData, PKIData {
//!     controls: transactionId (bp 2), senderNonce (bp 3)
//!     reqSequence: tcr (bp 1) PKCS#10 {            -- signed by the NEW key (POP)
//!        subject = old subject, key = new key,
//!        extensionRequest = old extensions (+ new SKI, - AKI/SKI/CDP/AIA/SCT),
//!        szOID_ENROLLMENT_NAME_VALUE_PAIR { "CertificateTemplate", template },
//!        szOID_RENEWAL_CERTIFICATE = old certificate } } }
//!   certificates { old certificate }
//!   signerInfos {
//!     [0] v3, sid = SKI(new key),  signed by the new key      -- MS-WCCE 3.1.1.4.3.2.2
//!     [1] v1, sid = issuer+serial of the old certificate, signed by the old key } } }
//! ```

use cms::{cert::IssuerAndSerialNumber, content_info::CmsVersion, signed_data::SignerIdentifier};
use der::{
    Decode, Encode,
    asn1::{Any, BitString, Int, OctetString, SetOfVec},
};
use x509_cert::{
    Certificate,
    ext::{Extension, pkix::SubjectKeyIdentifier},
    request::{CertReq, CertReqInfo, Version},
};

use super::{
    asn1::{Retained, SetOf},
    attestation::{self, KeyAttestation},
    controls::Control,
    crypto::{DigestAlgorithm, Signer, key_identifier},
    error::{CmcError, DerContext, Result},
    microsoft::{NameValuePair, TemplateRef},
    oids,
    pki::{PkiData, TaggedCertificationRequest, TaggedRequest},
    signed_data::{Attribute, CertificateChoice, SignedData, SignerInfo},
};

/// Body part ids the builder uses (Microsoft's numbering for the request itself).
pub const REQUEST_BODY_PART: u32 = 1;
const TRANSACTION_ID_BODY_PART: u32 = 2;
const SENDER_NONCE_BODY_PART: u32 = 3;

/// Extensions that belong to one certificate instance and must not be copied into the renewal
/// request: they name the issuer's key, the old key, or where the old certificate is published.
const NOT_INHERITED: [der::asn1::ObjectIdentifier; 5] = [
    oids::AUTHORITY_KEY_IDENTIFIER,
    oids::SUBJECT_KEY_IDENTIFIER,
    oids::CRL_DISTRIBUTION_POINTS,
    oids::AUTHORITY_INFO_ACCESS,
    oids::CT_SCT_LIST,
];

/// What varies between two renewal requests for the same certificate and keys.
#[derive(Clone, Debug)]
pub struct RenewalParams {
    /// Template to ask for; `None` = the one named in the old certificate.
    pub template: Option<TemplateRef>,
    /// CMC transactionId (random per attempt; fixed in tests).
    pub transaction_id: u64,
    /// CMC senderNonce (random per attempt; fixed in tests).
    pub sender_nonce: Vec<u8>,
    /// Hash for the CMS layer.
    pub digest: DigestAlgorithm,
    /// The card's attestation of the new key, carried in the PKCS#10
    /// ([`super::attestation`]); `None` when the CA asks for none or the card cannot attest.
    pub attestation: Option<KeyAttestation>,
}

impl RenewalParams {
    /// Fresh random transaction id and 16-byte nonce, SHA-256.
    pub fn random() -> Result<Self> {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        let rng = SystemRandom::new();
        let mut tid = [0u8; 8];
        let mut nonce = vec![0u8; 16];
        rng.fill(&mut tid)
            .and_then(|()| rng.fill(&mut nonce))
            .map_err(|_| CmcError::InvalidInput("system RNG failed"))?;
        Ok(Self {
            template: None,
            // Positive 63-bit so the INTEGER never needs a sign byte discussion.
            transaction_id: u64::from_be_bytes(tid) >> 1,
            sender_nonce: nonce,
            digest: DigestAlgorithm::Sha256,
            attestation: None,
        })
    }
}

/// A built request and the values a client must remember to match the answer.
#[derive(Clone, Debug)]
pub struct BuiltRequest {
    /// DER of the `ContentInfo`.
    pub der: Vec<u8>,
    /// DER of the PKCS#10 inside it.
    pub pkcs10_der: Vec<u8>,
    /// The transactionId sent.
    pub transaction_id: u64,
    /// The senderNonce sent.
    pub sender_nonce: Vec<u8>,
    /// The template asked for.
    pub template: Option<TemplateRef>,
}

/// The template named by a certificate's 21.7 / 20.2 extension.
pub fn certificate_template(cert: &Certificate) -> Option<TemplateRef> {
    let exts = cert.tbs_certificate().extensions()?;
    exts.iter()
        .filter_map(|e| TemplateRef::from_extension(e.extn_id, e.extn_value.as_bytes()))
        .reduce(TemplateRef::merge)
}

/// Whether two SPKIs hold the same key, compared as parsed values (a re-encoded key is still
/// the same key); byte-identical SPKIs are the same key even when we cannot parse them.
fn same_key(a: &spki::SubjectPublicKeyInfoOwned, b: &spki::SubjectPublicKeyInfoOwned) -> bool {
    use super::PublicKey;
    a == b
        || matches!(
            (PublicKey::from_spki(a), PublicKey::from_spki(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Builds a CMC renewal request for `old_cert`, signed by `old_key` (which must hold the old
/// certificate's key) and `new_key` (the key the new certificate will certify).
pub fn build_renewal_request(
    old_cert: &Retained<Certificate>,
    old_key: &dyn Signer,
    new_key: &dyn Signer,
    params: &RenewalParams,
) -> Result<BuiltRequest> {
    let tbs = old_cert.value().tbs_certificate();
    if !same_key(old_key.public_key(), tbs.subject_public_key_info()) {
        return Err(CmcError::InvalidInput(
            "the old-key signer does not hold the old certificate's key",
        ));
    }
    if same_key(new_key.public_key(), tbs.subject_public_key_info()) {
        return Err(CmcError::InvalidInput(
            "the new key equals the old key (renewal needs a new key)",
        ));
    }
    let template = params
        .template
        .clone()
        .or_else(|| certificate_template(old_cert.value()));

    let pkcs10 = build_pkcs10(
        old_cert,
        new_key,
        template.as_ref(),
        params.attestation.as_ref(),
    )?;
    let pkcs10_der = pkcs10.der().to_vec();

    let tid = Int::from_der(&params.transaction_id.to_der().encoding("transactionId")?)
        .encoding("transactionId")?;
    let pki_data = PkiData {
        control_sequence: vec![
            Control::TransactionId(tid)
                .to_tagged(TRANSACTION_ID_BODY_PART)
                .encoding("transactionId")?,
            Control::SenderNonce(
                OctetString::new(params.sender_nonce.clone()).encoding("senderNonce")?,
            )
            .to_tagged(SENDER_NONCE_BODY_PART)
            .encoding("senderNonce")?,
        ],
        req_sequence: vec![TaggedRequest::Tcr(TaggedCertificationRequest {
            body_part_id: REQUEST_BODY_PART,
            certification_request: pkcs10,
        })],
        cms_sequence: vec![],
        other_msg_sequence: vec![],
    };
    let econtent = pki_data.to_der().encoding("PKIData")?;

    let new_sid = SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(
        OctetString::new(key_identifier(new_key.public_key())).encoding("SKI")?,
    ));
    let old_sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    });
    let signers = [
        (CmsVersion::V3, new_sid, new_key),
        (CmsVersion::V1, old_sid, old_key),
    ];
    let signed = sign_content(
        oids::ID_CCT_PKI_DATA,
        &econtent,
        params.digest,
        &signers,
        vec![CertificateChoice::Certificate(old_cert.clone())],
    )?;
    Ok(BuiltRequest {
        der: signed.to_content_info_der().encoding("ContentInfo")?,
        pkcs10_der,
        transaction_id: params.transaction_id,
        sender_nonce: params.sender_nonce.clone(),
        template,
    })
}

/// Only the PKCS#10 of a renewal (what EST `/simplereenroll` sends): the same content as inside
/// [`build_renewal_request`], without the CMS layer and its two extra signatures.
pub fn build_renewal_pkcs10(
    old_cert: &Retained<Certificate>,
    new_key: &dyn Signer,
    template: Option<&TemplateRef>,
) -> Result<Retained<CertReq>> {
    build_attested_pkcs10(old_cert, new_key, template, None)
}

/// [`build_renewal_pkcs10`] with the card's attestation of the new key, when given.
pub fn build_attested_pkcs10(
    old_cert: &Retained<Certificate>,
    new_key: &dyn Signer,
    template: Option<&TemplateRef>,
    attestation: Option<&KeyAttestation>,
) -> Result<Retained<CertReq>> {
    if same_key(
        new_key.public_key(),
        old_cert.value().tbs_certificate().subject_public_key_info(),
    ) {
        return Err(CmcError::InvalidInput(
            "the new key equals the old key (renewal needs a new key)",
        ));
    }
    let inherited = certificate_template(old_cert.value());
    build_pkcs10(
        old_cert,
        new_key,
        template.or(inherited.as_ref()),
        attestation,
    )
}

/// The PKCS#10 for the new key: the old subject and (most) old extensions, the template pair,
/// the renewal-certificate attribute and the key's attestation when there is one, signed by
/// the new key (proof of possession — which so covers the attestation too).
fn build_pkcs10(
    old_cert: &Retained<Certificate>,
    new_key: &dyn Signer,
    template: Option<&TemplateRef>,
    attestation: Option<&KeyAttestation>,
) -> Result<Retained<CertReq>> {
    let tbs = old_cert.value().tbs_certificate();
    let mut extensions: Vec<Extension> = tbs
        .extensions()
        .map(|exts| {
            exts.iter()
                .filter(|e| !NOT_INHERITED.contains(&e.extn_id))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let ski = SubjectKeyIdentifier(
        OctetString::new(key_identifier(new_key.public_key())).encoding("SKI")?,
    );
    extensions.push(Extension {
        extn_id: oids::SUBJECT_KEY_IDENTIFIER,
        critical: false,
        extn_value: OctetString::new(ski.to_der().encoding("SKI")?).encoding("SKI")?,
    });

    let mut attributes = vec![x509_attribute(
        oids::ID_EXTENSION_REQUEST,
        &extensions,
        "extensionRequest",
    )?];
    if let Some(value) = template.and_then(TemplateRef::pair_value) {
        let pair = NameValuePair::new("CertificateTemplate", &value).encoding("template pair")?;
        attributes.push(x509_attribute(
            oids::MS_ENROLLMENT_NAME_VALUE_PAIR,
            &pair,
            "template pair",
        )?);
    }
    attributes.push(x509_attribute(
        oids::MS_RENEWAL_CERTIFICATE,
        &Any::from_der(old_cert.der()).encoding("renewal certificate")?,
        "renewal certificate",
    )?);
    if let Some(attestation) = attestation {
        attributes.push(attestation::attribute(attestation).encoding("key attestation")?);
    }

    let info = CertReqInfo {
        version: Version::V1,
        subject: tbs.subject().clone(),
        public_key: new_key.public_key().clone(),
        attributes: SetOfVec::try_from(attributes).encoding("PKCS#10 attributes")?,
    };
    let signature = new_key.sign(&info.to_der().encoding("PKCS#10 info")?)?;
    let req = CertReq {
        info,
        algorithm: new_key
            .algorithm()
            .x509_identifier()
            .encoding("PKCS#10 algorithm")?,
        signature: BitString::from_bytes(&signature).encoding("PKCS#10 signature")?,
    };
    Retained::from_value(req).encoding("PKCS#10")
}

fn x509_attribute(
    oid: der::asn1::ObjectIdentifier,
    value: &impl Encode,
    what: &'static str,
) -> Result<x509_cert::attr::Attribute> {
    let any = Any::from_der(&value.to_der().encoding(what)?).encoding(what)?;
    Ok(x509_cert::attr::Attribute {
        oid,
        values: SetOfVec::try_from(vec![any]).encoding(what)?,
    })
}

/// Signs `econtent` (of type `econtent_type`) with each signer in order, producing a
/// SignedData whose `signerInfos` keep that order. Every signer gets the signed attributes
/// {contentType, messageDigest}, nothing else (what certenroll emits).
pub fn sign_content(
    econtent_type: der::asn1::ObjectIdentifier,
    econtent: &[u8],
    digest: DigestAlgorithm,
    signers: &[(CmsVersion, SignerIdentifier, &dyn Signer)],
    certificates: Vec<CertificateChoice>,
) -> Result<SignedData> {
    let message_digest = digest.digest(econtent);
    let mut signer_infos = Vec::with_capacity(signers.len());
    for (version, sid, signer) in signers {
        let mut attrs = vec![
            Attribute::single(oids::ID_CONTENT_TYPE, &econtent_type).encoding("contentType")?,
            Attribute::single(
                oids::ID_MESSAGE_DIGEST,
                &OctetString::new(message_digest.clone()).encoding("messageDigest")?,
            )
            .encoding("messageDigest")?,
        ];
        sort_der(&mut attrs)?;
        let signed_attrs = SetOf(attrs);
        let signature = signer.sign(&signed_attrs.to_der().encoding("signed attributes")?)?;
        signer_infos.push(SignerInfo {
            version: *version,
            sid: sid.clone(),
            digest_alg: digest.identifier(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: signer
                .algorithm()
                .cms_identifier()
                .encoding("signature algorithm")?,
            signature: OctetString::new(signature).encoding("signature")?,
            unsigned_attrs: None,
        });
    }
    let any_v3 = signers.iter().any(|(v, ..)| *v == CmsVersion::V3);
    Ok(SignedData {
        // RFC 5652 §5.1: v3 when any SignerInfo is v3 or the content is not id-data.
        version: if any_v3 || econtent_type != oids::ID_DATA {
            CmsVersion::V3
        } else {
            CmsVersion::V1
        },
        digest_algorithms: SetOf(vec![digest.identifier()]),
        encap_content_info: cms::signed_data::EncapsulatedContentInfo {
            econtent_type,
            econtent: Some(
                Any::encode_from(&OctetString::new(econtent).encoding("eContent")?)
                    .encoding("eContent")?,
            ),
        },
        certificates: if certificates.is_empty() {
            None
        } else {
            Some(SetOf(certificates))
        },
        crls: None,
        signer_infos: SetOf(signer_infos),
    })
}

/// Puts a SET OF into DER order (X.690 §11.6: ascending encodings), which signed attributes
/// must be in because the signature covers their DER.
fn sort_der<T: Encode>(items: &mut Vec<T>) -> Result<()> {
    let mut keyed = items
        .drain(..)
        .map(|item| Ok((item.to_der().encoding("SET OF element")?, item)))
        .collect::<Result<Vec<_>>>()?;
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    items.extend(keyed.into_iter().map(|(_, item)| item));
    Ok(())
}
