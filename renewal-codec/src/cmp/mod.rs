//! CMP, the certificate management protocol (RFC 4210 as updated by RFC 9480; the lightweight
//! profile of RFC 9483): the messages a key update (`kur`) exchanges, parsed as values with the
//! bytes their signatures cover kept as received.
//!
//! A renewal in CMP is one *key update request* protected by the old key (signature-based
//! protection, RFC 4210 §5.1.3.3, over `ProtectedPart ::= SEQUENCE { header, body }`), whose
//! certificate request carries the new key and a proof of possession signed by it (RFC 4211
//! §4.1); the CA answers with `kup`, the client confirms with `certConf`, the CA acknowledges with
//! `pkiConf` — or grants `implicitConfirm` and the exchange ends at `kup`. A CA that cannot
//! decide yet answers `waiting`, and the client polls (`pollReq`/`pollRep`).
//!
//! The RustCrypto `cmpv2` and `crmf` crates were not used: their release candidates pin
//! `x509-cert = 0.3.0-pre.0`, which cannot be mixed with the `x509-cert` 0.3 this workspace is on
//! (two `Certificate` types). This module decodes what a renewal needs and keeps the rest opaque.
//!
//! Everything here is checked against real third-party messages: `tests/vectors/cmp/`, written
//! by OpenSSL's `openssl cmp` client and its mock server.

pub mod answer;
pub mod body;
pub mod build;
pub mod crmf;

use der::{
    Decode, Encode, Sequence,
    asn1::{AnyRef, BitStringRef, GeneralizedTime, ObjectIdentifier, OctetString},
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::{Certificate, ext::pkix::name::GeneralName};

pub use body::{
    CertConfirm, CertRepMessage, CertResponse, CertStatus, ErrorMsg, PkiBody, PkiStatus,
    PkiStatusInfo, PollRep, PollReq,
};
pub use crmf::{CertReqMsg, CertRequest, CertTemplate, ProofOfPossession};

use crate::cmc::{
    Retained, SignatureAlgorithm,
    crypto::{VerifyError, verify},
    input::{Limits, to_der},
};

/// `id-it-implicitConfirm` (RFC 4210 §5.1.1.1): in a request's `generalInfo`, the client asks
/// to skip `certConf`; in the answer's, the CA grants it.
pub const ID_IT_IMPLICIT_CONFIRM: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.13");
/// `id-it-caCerts` (RFC 9483 §4.3.1, RFC 9480 §2.5): in a `genm`, asks for the CA certificates
/// (no value); in the `genp`, carries them (`SEQUENCE SIZE (1..MAX) OF CMPCertificate`).
pub const ID_IT_CA_CERTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.4.17");
/// `id-regCtrl-oldCertID` (RFC 4211 §6.5): in a `kur`, the certificate being updated.
pub const ID_REG_CTRL_OLD_CERT_ID: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.5.1.5");

/// Why a CMP message could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmpError {
    /// The input could not be read (size, encoding).
    #[error(transparent)]
    Input(#[from] crate::cmc::CmcError),
    /// A structure failed to decode.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// The decoder's error.
        source: der::Error,
    },
    /// The message carries no protection (or no protection algorithm).
    #[error("the message is not protected")]
    Unprotected,
    /// A signature algorithm this codec does not verify.
    #[error("unsupported {what} algorithm {oid}")]
    UnsupportedAlgorithm {
        /// Protection or proof of possession.
        what: &'static str,
        /// The algorithm.
        oid: ObjectIdentifier,
    },
    /// The protection does not verify with the given certificate's key.
    #[error("the protection does not verify: {0}")]
    BadProtection(VerifyError),
    /// The certificate request names no public key.
    #[error("the certificate request names no public key")]
    NoPublicKey,
    /// The certificate request has no signature proof of possession.
    #[error("the certificate request has no signature proof of possession")]
    NoProofOfPossession,
    /// The proof of possession does not verify with the requested key.
    #[error("the proof of possession does not verify: {0}")]
    BadProofOfPossession(VerifyError),
}

/// A result of this module.
pub type Result<T> = std::result::Result<T, CmpError>;

pub(crate) trait DerContext<T> {
    fn malformed(self, what: &'static str) -> Result<T>;
}

impl<T> DerContext<T> for der::Result<T> {
    fn malformed(self, what: &'static str) -> Result<T> {
        self.map_err(|source| CmpError::Malformed { what, source })
    }
}

/// `PKIHeader` (RFC 4210 §5.1.1). Every tagged field is EXPLICIT (the CMP module's default).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PkiHeader {
    /// 2 (cmp2000) or 3 (cmp2021, RFC 9480).
    pub pvno: u8,
    /// Who sends it (the subject of the protecting certificate, for signature protection).
    pub sender: GeneralName,
    /// Who it is for (the CA).
    pub recipient: GeneralName,
    /// When it was produced.
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub message_time: Option<GeneralizedTime>,
    /// The protection's algorithm.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub protection_alg: Option<AlgorithmIdentifierOwned>,
    /// The protecting key's identifier (its certificate's subjectKeyIdentifier).
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    pub sender_kid: Option<OctetString>,
    /// The recipient's key identifier.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub recip_kid: Option<OctetString>,
    /// The transaction every message of one exchange shares.
    #[asn1(context_specific = "4", tag_mode = "EXPLICIT", optional = "true")]
    pub transaction_id: Option<OctetString>,
    /// This message's fresh nonce.
    #[asn1(context_specific = "5", tag_mode = "EXPLICIT", optional = "true")]
    pub sender_nonce: Option<OctetString>,
    /// The nonce of the message this one answers.
    #[asn1(context_specific = "6", tag_mode = "EXPLICIT", optional = "true")]
    pub recip_nonce: Option<OctetString>,
    /// Text for people.
    #[asn1(context_specific = "7", tag_mode = "EXPLICIT", optional = "true")]
    pub free_text: Option<Vec<String>>,
    /// Extra information (implicitConfirm, confirmWaitTime, ...).
    #[asn1(context_specific = "8", tag_mode = "EXPLICIT", optional = "true")]
    pub general_info: Option<Vec<InfoTypeAndValue>>,
}

impl PkiHeader {
    /// Whether `generalInfo` carries `implicitConfirm` (asked for in a request, granted in an
    /// answer).
    pub fn implicit_confirm(&self) -> bool {
        self.general_info
            .iter()
            .flatten()
            .any(|i| i.info_type == ID_IT_IMPLICIT_CONFIRM)
    }
}

/// `InfoTypeAndValue` (RFC 4210 §5.3.19): a type and its value, kept opaque.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct InfoTypeAndValue {
    /// What it is.
    pub info_type: ObjectIdentifier,
    /// Its value, when it has one.
    #[asn1(optional = "true")]
    pub info_value: Option<der::asn1::Any>,
}

impl InfoTypeAndValue {
    /// `caCerts` carrying `certificates` (a `CMPCertificate` is an X.509 certificate here).
    pub fn ca_certs(certificates: &[Retained<Certificate>]) -> Result<Self> {
        let mut content = Vec::new();
        for cert in certificates {
            content.extend_from_slice(cert.der());
        }
        let value = der::asn1::Any::new(der::Tag::Sequence, content).malformed("caCerts")?;
        Ok(Self {
            info_type: ID_IT_CA_CERTS,
            info_value: Some(value),
        })
    }

    /// The certificates of a `caCerts` value (`None` for another type, or no value).
    pub fn ca_certificates(&self) -> Option<Result<Vec<Retained<Certificate>>>> {
        if self.info_type != ID_IT_CA_CERTS {
            return None;
        }
        let value = self.info_value.as_ref()?;
        Some(
            value
                .to_der()
                .and_then(|der| Vec::<Retained<Certificate>>::from_der(&der))
                .malformed("caCerts"),
        )
    }
}

/// The message as it is on the wire, fields undecoded.
#[derive(Sequence)]
struct RawMessage<'a> {
    header: AnyRef<'a>,
    body: AnyRef<'a>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    protection: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    extra_certs: Option<Vec<Retained<Certificate>>>,
}

/// A `PKIMessage` (RFC 4210 §5.1).
#[derive(Clone, Debug)]
pub struct PkiMessage {
    /// The header.
    pub header: PkiHeader,
    /// The body.
    pub body: PkiBody,
    /// The protection's bits (a signature, for signature-based protection).
    pub protection: Option<Vec<u8>>,
    /// Certificates for the recipient; with signature protection the first one is the
    /// protecting certificate (RFC 9483 §3.3).
    pub extra_certs: Vec<Retained<Certificate>>,
    /// DER of `ProtectedPart ::= SEQUENCE { header, body }`, from the bytes as received: what
    /// the protection signs.
    protected_part: Vec<u8>,
}

impl PkiMessage {
    /// Parses a DER (or PEM/base64) `PKIMessage` within `limits`.
    pub fn parse(input: &[u8], limits: &Limits) -> Result<Self> {
        let (der, _) = to_der(input, limits)?;
        let raw = crate::cmc::input::decode_exact::<RawMessage<'_>>(&der, "PKIMessage")?;
        let header_der = raw.header.to_der().malformed("PKIHeader")?;
        let body_der = raw.body.to_der().malformed("PKIBody")?;
        let header = PkiHeader::from_der(&header_der).malformed("PKIHeader")?;
        let body = PkiBody::from_any(raw.body)?;
        let protected_part = protected_part(&header_der, &body_der)?;
        Ok(Self {
            header,
            body,
            protection: raw.protection.map(|b| b.raw_bytes().to_vec()),
            extra_certs: raw.extra_certs.unwrap_or_default(),
            protected_part,
        })
    }

    /// The certificate that protects the message by signature: the first `extraCerts` entry.
    pub fn protecting_certificate(&self) -> Option<&Retained<Certificate>> {
        self.extra_certs.first()
    }

    /// Verifies the signature-based protection with `signer`'s public key: the protection
    /// algorithm the header names, over the received header and body.
    pub fn verify_protection(&self, signer: &Certificate) -> Result<()> {
        let (Some(alg), Some(signature)) = (&self.header.protection_alg, &self.protection) else {
            return Err(CmpError::Unprotected);
        };
        let algorithm = SignatureAlgorithm::from_identifier(alg, None).ok_or(
            CmpError::UnsupportedAlgorithm {
                what: "protection",
                oid: alg.oid,
            },
        )?;
        verify(
            signer.tbs_certificate().subject_public_key_info(),
            algorithm,
            &self.protected_part,
            signature,
        )
        .map_err(CmpError::BadProtection)
    }
}

/// `SEQUENCE { header, body }` around the two received encodings.
fn protected_part(header: &[u8], body: &[u8]) -> Result<Vec<u8>> {
    let len = der::Length::try_from(header.len() + body.len()).malformed("ProtectedPart")?;
    let mut out = Vec::with_capacity(header.len() + body.len() + 8);
    der::Header::new(der::Tag::Sequence, len)
        .encode_to_vec(&mut out)
        .malformed("ProtectedPart")?;
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    Ok(out)
}
