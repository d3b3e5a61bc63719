//! CRMF (RFC 4211): the certificate request inside a `kur`, with the bytes its proof of
//! possession signs kept as received. The CRMF module's tags are IMPLICIT, but a tagged CHOICE
//! (a `Name`, a `Time`) is explicit whatever the module says (X.680 §31.2.7).

use der::{
    Decode, Encode, Sequence, Tagged,
    asn1::{AnyRef, BitString, Int, ObjectIdentifier},
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{
    ext::{Extension, pkix::name::GeneralName},
    name::Name,
    time::Time,
};

use super::{CmpError, DerContext, ID_REG_CTRL_OLD_CERT_ID, Result};
use crate::cmc::{
    SignatureAlgorithm,
    crypto::{VerifyError, verify},
};

/// `CertTemplate` (RFC 4211 §5): what the requester asks for; every field optional.
#[derive(Clone, Debug, Default, Eq, PartialEq, Sequence)]
pub struct CertTemplate {
    /// Certificate version.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub version: Option<u8>,
    /// Serial number (a CA assigns it; present only in revocation requests).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub serial_number: Option<Int>,
    /// Signature algorithm.
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub signing_alg: Option<AlgorithmIdentifierOwned>,
    /// Issuer.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub issuer: Option<Name>,
    /// Requested validity.
    #[asn1(context_specific = "4", tag_mode = "IMPLICIT", optional = "true")]
    pub validity: Option<OptionalValidity>,
    /// Subject.
    #[asn1(context_specific = "5", tag_mode = "EXPLICIT", optional = "true")]
    pub subject: Option<Name>,
    /// The key to certify.
    #[asn1(context_specific = "6", tag_mode = "IMPLICIT", optional = "true")]
    pub public_key: Option<SubjectPublicKeyInfoOwned>,
    /// Issuer unique id.
    #[asn1(context_specific = "7", tag_mode = "IMPLICIT", optional = "true")]
    pub issuer_uid: Option<BitString>,
    /// Subject unique id.
    #[asn1(context_specific = "8", tag_mode = "IMPLICIT", optional = "true")]
    pub subject_uid: Option<BitString>,
    /// Requested extensions.
    #[asn1(context_specific = "9", tag_mode = "IMPLICIT", optional = "true")]
    pub extensions: Option<Vec<Extension>>,
}

/// `OptionalValidity`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OptionalValidity {
    /// From.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub not_before: Option<Time>,
    /// Until.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub not_after: Option<Time>,
}

/// `AttributeTypeAndValue`: a registration control or info, value kept opaque.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct AttributeTypeAndValue {
    /// What it is.
    pub kind: ObjectIdentifier,
    /// Its value.
    pub value: der::asn1::Any,
}

/// `CertId` (RFC 4211 §6.5): the issuer and serial of a certificate (`oldCertID`).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertId {
    /// Its issuer.
    pub issuer: GeneralName,
    /// Its serial number.
    pub serial_number: Int,
}

/// `CertRequest`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertRequest {
    /// Matches the answer to the request.
    pub cert_req_id: i64,
    /// What is asked for.
    pub cert_template: CertTemplate,
    /// Controls (`oldCertID` in a `kur`).
    #[asn1(optional = "true")]
    pub controls: Option<Vec<AttributeTypeAndValue>>,
}

impl CertRequest {
    /// The `oldCertID` control: the certificate a `kur` updates.
    pub fn old_cert_id(&self) -> Option<CertId> {
        let control = self
            .controls
            .iter()
            .flatten()
            .find(|c| c.kind == ID_REG_CTRL_OLD_CERT_ID)?;
        CertId::from_der(&control.value.to_der().ok()?).ok()
    }
}

/// `POPOSigningKey` (RFC 4211 §4.1).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PopoSigningKey {
    /// Present when the template lacks subject or key (not in a renewal).
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub poposk_input: Option<PoposkInput>,
    /// The signature's algorithm.
    pub algorithm_identifier: AlgorithmIdentifierOwned,
    /// The signature over the DER of the `CertRequest`.
    pub signature: BitString,
}

/// `POPOSigningKeyInput`: what the signature covers when the template cannot say it.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PoposkInput {
    /// The sender or a MAC (kept opaque).
    pub auth_info: der::asn1::Any,
    /// The key.
    pub public_key: SubjectPublicKeyInfoOwned,
}

/// `ProofOfPossession` (RFC 4211 §4).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ProofOfPossession {
    /// \[0\] An RA vouches for it.
    RaVerified,
    /// \[1\] A signature by the requested key.
    Signature(Box<PopoSigningKey>),
    /// \[2\] \[3\] Key encipherment or agreement (not for signing keys; kept by tag).
    Other(u32),
}

/// `CertReqMsg`: the request, its proof of possession, and the request's bytes as received.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CertReqMsg {
    /// The request.
    pub cert_req: CertRequest,
    /// The proof that the requester holds the key.
    pub popo: Option<ProofOfPossession>,
    /// DER of `certReq` as received: what a signature proof of possession signs.
    pub cert_req_der: Vec<u8>,
}

impl CertReqMsg {
    /// Decodes one `CertReqMsg ::= SEQUENCE { certReq, popo OPTIONAL, regInfo OPTIONAL }`.
    pub(super) fn from_any(any: AnyRef<'_>) -> Result<Self> {
        let what = "CertReqMsg";
        let der = any.to_der().malformed(what)?;
        // SEQUENCE and SEQUENCE OF share a tag: the elements, each kept whole.
        let fields: Vec<AnyRef<'_>> = Vec::from_der(&der).malformed(what)?;
        let mut fields = fields.into_iter();
        let cert_req_any = fields.next().ok_or(CmpError::Malformed {
            what,
            source: der::ErrorKind::Length {
                tag: der::Tag::Sequence,
            }
            .into(),
        })?;
        let cert_req_der = cert_req_any.to_der().malformed("CertRequest")?;
        let cert_req = CertRequest::from_der(&cert_req_der).malformed("CertRequest")?;
        // popo is context-tagged; regInfo (a SEQUENCE) may follow or stand in its place.
        let popo = match fields.next() {
            Some(field) if field.tag().is_context_specific() => Some(popo(field)?),
            _ => None,
        };
        Ok(Self {
            cert_req,
            popo,
            cert_req_der,
        })
    }

    /// Verifies the signature proof of possession with the template's public key over the
    /// received `CertRequest`.
    pub fn verify_pop(&self) -> Result<()> {
        let key = self
            .cert_req
            .cert_template
            .public_key
            .as_ref()
            .ok_or(CmpError::NoPublicKey)?;
        let Some(ProofOfPossession::Signature(pop)) = &self.popo else {
            return Err(CmpError::NoProofOfPossession);
        };
        if pop.poposk_input.is_some() {
            // RFC 4211 §4.1: with poposkInput the signature covers that structure instead; a
            // renewal's template always names subject and key, so it has none.
            return Err(CmpError::BadProofOfPossession(VerifyError::BadSignature));
        }
        let algorithm = SignatureAlgorithm::from_identifier(&pop.algorithm_identifier, None)
            .ok_or(CmpError::UnsupportedAlgorithm {
                what: "proof of possession",
                oid: pop.algorithm_identifier.oid,
            })?;
        let signature = pop
            .signature
            .as_bytes()
            .ok_or(CmpError::BadProofOfPossession(VerifyError::BadSignature))?;
        verify(key, algorithm, &self.cert_req_der, signature)
            .map_err(CmpError::BadProofOfPossession)
    }
}

/// `ProofOfPossession` from its IMPLICIT-tagged alternative.
fn popo(any: AnyRef<'_>) -> Result<ProofOfPossession> {
    let number = match any.tag() {
        der::Tag::ContextSpecific { number, .. } => number.value(),
        _ => 0,
    };
    Ok(match number {
        0 => ProofOfPossession::RaVerified,
        1 => {
            // IMPLICIT [1] POPOSigningKey: the SEQUENCE's contents under the context tag.
            let sequence = AnyRef::new(der::Tag::Sequence, any.value())
                .and_then(|s| s.to_der())
                .malformed("POPOSigningKey")?;
            ProofOfPossession::Signature(Box::new(
                PopoSigningKey::from_der(&sequence).malformed("POPOSigningKey")?,
            ))
        }
        other => ProofOfPossession::Other(other),
    })
}
