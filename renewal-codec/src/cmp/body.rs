//! `PKIBody` (RFC 4210 §5.1.2) and the contents a renewal exchanges: certificate requests and
//! answers, confirmations, polls and errors. Body alternatives are EXPLICIT context tags.

use der::{
    Decode, Sequence, Tagged,
    asn1::{AnyRef, BitString, Null, OctetString},
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::{CmpError, DerContext, InfoTypeAndValue, Result, crmf::CertReqMsg};
use crate::cmc::Retained;

/// The body of a message: the alternatives a renewal meets decoded, the others named by tag.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum PkiBody {
    /// `ir` \[0\]: initialization request.
    Ir(Vec<CertReqMsg>),
    /// `ip` \[1\]: its answer.
    Ip(CertRepMessage),
    /// `cr` \[2\]: certification request.
    Cr(Vec<CertReqMsg>),
    /// `cp` \[3\]: its answer.
    Cp(CertRepMessage),
    /// `kur` \[7\]: key update request — a renewal.
    Kur(Vec<CertReqMsg>),
    /// `kup` \[8\]: its answer.
    Kup(CertRepMessage),
    /// `pkiconf` \[19\]: the CA's acknowledgement of a `certConf`.
    PkiConf,
    /// `nested` \[20\]: messages an RA forwards under its own protection (RFC 4210 §5.1.3.4,
    /// RFC 9483 §5.2.2.1), each kept as received (DER) so its own protection still verifies.
    Nested(Vec<Vec<u8>>),
    /// `genm` \[21\]: a general message (e.g. asking for the CA certificates).
    Genm(Vec<InfoTypeAndValue>),
    /// `genp` \[22\]: its answer.
    Genp(Vec<InfoTypeAndValue>),
    /// `error` \[23\].
    Error(ErrorMsg),
    /// `certConf` \[24\]: the client accepts or rejects what it was issued.
    CertConf(CertConfirm),
    /// `pollReq` \[25\].
    PollReq(Vec<PollReq>),
    /// `pollRep` \[26\].
    PollRep(Vec<PollRep>),
    /// Another alternative (`p10cr`, `rr`, `ccr`, ...), by its tag number.
    Other(u32),
}

/// `CertConfirmContent ::= SEQUENCE OF CertStatus`.
pub type CertConfirm = Vec<CertStatus>;

impl PkiBody {
    /// The body's name in RFC 4210 (`kur`, `certConf`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ir(_) => "ir",
            Self::Ip(_) => "ip",
            Self::Cr(_) => "cr",
            Self::Cp(_) => "cp",
            Self::Kur(_) => "kur",
            Self::Kup(_) => "kup",
            Self::PkiConf => "pkiconf",
            Self::Nested(_) => "nested",
            Self::Genm(_) => "genm",
            Self::Genp(_) => "genp",
            Self::Error(_) => "error",
            Self::CertConf(_) => "certConf",
            Self::PollReq(_) => "pollReq",
            Self::PollRep(_) => "pollRep",
            Self::Other(_) => "other",
        }
    }

    /// Decodes the tagged alternative.
    pub(super) fn from_any(any: AnyRef<'_>) -> Result<Self> {
        let tag = any.tag();
        let number = match tag {
            der::Tag::ContextSpecific {
                constructed: true,
                number,
            } => number.value(),
            _ => {
                return Err(CmpError::Malformed {
                    what: "PKIBody",
                    source: der::Error::from(der::ErrorKind::TagUnexpected {
                        expected: None,
                        actual: tag,
                    }),
                });
            }
        };
        // EXPLICIT: the value is exactly one inner encoding.
        let inner = any.value();
        Ok(match number {
            0 => Self::Ir(requests(inner, "ir")?),
            1 => Self::Ip(CertRepMessage::from_der(inner).malformed("ip")?),
            2 => Self::Cr(requests(inner, "cr")?),
            3 => Self::Cp(CertRepMessage::from_der(inner).malformed("cp")?),
            7 => Self::Kur(requests(inner, "kur")?),
            8 => Self::Kup(CertRepMessage::from_der(inner).malformed("kup")?),
            19 => {
                Null::from_der(inner).malformed("pkiconf")?;
                Self::PkiConf
            }
            20 => Self::Nested(nested(inner)?),
            21 => Self::Genm(Vec::from_der(inner).malformed("genm")?),
            22 => Self::Genp(Vec::from_der(inner).malformed("genp")?),
            23 => Self::Error(ErrorMsg::from_der(inner).malformed("error")?),
            24 => Self::CertConf(Vec::from_der(inner).malformed("certConf")?),
            25 => Self::PollReq(Vec::from_der(inner).malformed("pollReq")?),
            26 => Self::PollRep(Vec::from_der(inner).malformed("pollRep")?),
            other => Self::Other(other),
        })
    }
}

/// `NestedMessageContent ::= PKIMessages` (`SEQUENCE SIZE (1..MAX) OF PKIMessage`): the inner
/// messages' encodings, undecoded (a reader parses each one, so nesting costs no recursion
/// here).
fn nested(der: &[u8]) -> Result<Vec<Vec<u8>>> {
    let elements: Vec<AnyRef<'_>> = Vec::from_der(der).malformed("nested")?;
    if elements.is_empty() {
        return Err(CmpError::Malformed {
            what: "nested",
            source: der::ErrorKind::Length {
                tag: der::Tag::Sequence,
            }
            .into(),
        });
    }
    elements
        .into_iter()
        .map(|e| {
            if e.tag() != der::Tag::Sequence {
                return Err(CmpError::Malformed {
                    what: "nested",
                    source: der::ErrorKind::TagUnexpected {
                        expected: Some(der::Tag::Sequence),
                        actual: e.tag(),
                    }
                    .into(),
                });
            }
            der::Encode::to_der(&e).malformed("nested")
        })
        .collect()
}

/// `CertReqMessages ::= SEQUENCE SIZE (1..MAX) OF CertReqMsg`.
fn requests(der: &[u8], what: &'static str) -> Result<Vec<CertReqMsg>> {
    let elements: Vec<AnyRef<'_>> = Vec::from_der(der).malformed(what)?;
    if elements.is_empty() {
        return Err(CmpError::Malformed {
            what,
            source: der::ErrorKind::Length {
                tag: der::Tag::Sequence,
            }
            .into(),
        });
    }
    elements.into_iter().map(CertReqMsg::from_any).collect()
}

/// `PKIStatus` (RFC 4210 §5.2.3).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum PkiStatus {
    /// 0: granted as asked.
    Accepted,
    /// 1: granted with changes.
    GrantedWithMods,
    /// 2: refused.
    Rejection,
    /// 3: not decided yet; poll.
    Waiting,
    /// 4: revocation warning.
    RevocationWarning,
    /// 5: revocation notification.
    RevocationNotification,
    /// 6: key update warning.
    KeyUpdateWarning,
    /// A value RFC 4210 does not define.
    Unknown(i64),
}

impl PkiStatus {
    /// From the INTEGER.
    pub fn from_value(value: i64) -> Self {
        match value {
            0 => Self::Accepted,
            1 => Self::GrantedWithMods,
            2 => Self::Rejection,
            3 => Self::Waiting,
            4 => Self::RevocationWarning,
            5 => Self::RevocationNotification,
            6 => Self::KeyUpdateWarning,
            other => Self::Unknown(other),
        }
    }

    /// Its name in RFC 4210.
    pub fn name(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::GrantedWithMods => "grantedWithMods",
            Self::Rejection => "rejection",
            Self::Waiting => "waiting",
            Self::RevocationWarning => "revocationWarning",
            Self::RevocationNotification => "revocationNotification",
            Self::KeyUpdateWarning => "keyUpdateWarning",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// The `PKIFailureInfo` bits' names (RFC 4210 §5.2.3, RFC 9480), by bit number.
const FAILURE_BITS: [&str; 27] = [
    "badAlg",
    "badMessageCheck",
    "badRequest",
    "badTime",
    "badCertId",
    "badDataFormat",
    "wrongAuthority",
    "incorrectData",
    "missingTimeStamp",
    "badPOP",
    "certRevoked",
    "certConfirmed",
    "wrongIntegrity",
    "badRecipientNonce",
    "timeNotAvailable",
    "unacceptedPolicy",
    "unacceptedExtension",
    "addInfoNotAvailable",
    "badSenderNonce",
    "badCertTemplate",
    "signerNotTrusted",
    "transactionIdInUse",
    "unsupportedVersion",
    "notAuthorized",
    "systemUnavail",
    "systemFailure",
    "duplicateCertReq",
];

/// `PKIStatusInfo` (RFC 4210 §5.2.3).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PkiStatusInfo {
    /// The status.
    pub status: i64,
    /// Text for people.
    #[asn1(optional = "true")]
    pub status_string: Option<Vec<String>>,
    /// Why it failed (a bit string of `PKIFailureInfo`).
    #[asn1(optional = "true")]
    pub fail_info: Option<BitString>,
}

impl PkiStatusInfo {
    /// The status as an enum.
    pub fn status(&self) -> PkiStatus {
        PkiStatus::from_value(self.status)
    }

    /// The names of the failure bits set, in bit order.
    pub fn failures(&self) -> Vec<&'static str> {
        let Some(bits) = &self.fail_info else {
            return Vec::new();
        };
        bits.bits()
            .enumerate()
            .filter(|(_, set)| *set)
            .map(|(i, _)| FAILURE_BITS.get(i).copied().unwrap_or("unknown"))
            .collect()
    }

    /// The status strings joined, for people.
    pub fn text(&self) -> String {
        self.status_string
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `CertRepMessage` (RFC 4210 §5.3.4).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertRepMessage {
    /// CA certificates for the client to trust (in `ip` only).
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub ca_pubs: Option<Vec<Retained<Certificate>>>,
    /// One answer per request.
    pub response: Vec<CertResponse>,
}

/// `CertResponse`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertResponse {
    /// The request it answers.
    pub cert_req_id: i64,
    /// The decision.
    pub status: PkiStatusInfo,
    /// The issued certificate, when there is one.
    #[asn1(optional = "true")]
    pub certified_key_pair: Option<CertifiedKeyPair>,
    /// Extra information.
    #[asn1(optional = "true")]
    pub rsp_info: Option<OctetString>,
}

impl CertResponse {
    /// The issued certificate, when it came in the clear (`certificate [0]`); `None` when there
    /// is none or it is encrypted, or when it does not decode.
    pub fn certificate(&self) -> Option<Retained<Certificate>> {
        match self.certified_key_pair.as_ref()?.cert_or_enc_cert() {
            Ok(CertOrEncCert::Certificate(cert)) => Some(*cert),
            _ => None,
        }
    }
}

/// `CertifiedKeyPair`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertifiedKeyPair {
    /// The certificate, as received (`CertOrEncCert`: see [`CertifiedKeyPair::cert_or_enc_cert`]).
    pub cert_or_enc_cert_raw: der::asn1::Any,
    /// A private key the CA generated (central key generation; never in a renewal).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub private_key: Option<der::asn1::Any>,
    /// Where the certificate was published.
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    pub publication_info: Option<der::asn1::Any>,
}

impl CertifiedKeyPair {
    /// The `CertOrEncCert` choice, decoded.
    pub fn cert_or_enc_cert(&self) -> Result<CertOrEncCert> {
        let raw = &self.cert_or_enc_cert_raw;
        match raw.tag() {
            der::Tag::ContextSpecific {
                constructed: true,
                number,
            } if number.value() == 0 => Ok(CertOrEncCert::Certificate(Box::new(
                Retained::from_der(raw.value()).malformed("certificate")?,
            ))),
            der::Tag::ContextSpecific { number, .. } if number.value() == 1 => {
                Ok(CertOrEncCert::EncryptedCert)
            }
            actual => Err(CmpError::Malformed {
                what: "CertOrEncCert",
                source: der::ErrorKind::TagUnexpected {
                    expected: None,
                    actual,
                }
                .into(),
            }),
        }
    }
}

/// `CertOrEncCert` (both alternatives EXPLICIT).
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum CertOrEncCert {
    /// \[0\] The certificate in the clear.
    Certificate(Box<Retained<Certificate>>),
    /// \[1\] Encrypted for the key's owner (indirect proof of possession; not decoded).
    EncryptedCert,
}

/// `CertStatus` (RFC 4210 §5.3.18, RFC 9480 §2.10).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CertStatus {
    /// The hash of the certificate being confirmed.
    pub cert_hash: OctetString,
    /// The request it was issued for.
    pub cert_req_id: i64,
    /// Accepted (absent or `accepted`) or rejected, with why.
    #[asn1(optional = "true")]
    pub status_info: Option<PkiStatusInfo>,
    /// The hash algorithm (cmp2021; otherwise the certificate's signature's).
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub hash_alg: Option<AlgorithmIdentifierOwned>,
}

impl CertStatus {
    /// Whether the client accepted the certificate.
    pub fn accepted(&self) -> bool {
        self.status_info
            .as_ref()
            .is_none_or(|s| s.status() == PkiStatus::Accepted)
    }
}

/// `PollReqContent` entry.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollReq {
    /// The request polled for.
    pub cert_req_id: i64,
}

/// `PollRepContent` entry.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PollRep {
    /// The request.
    pub cert_req_id: i64,
    /// Seconds before the next poll.
    pub check_after: i64,
    /// Why it takes time.
    #[asn1(optional = "true")]
    pub reason: Option<Vec<String>>,
}

/// `ErrorMsgContent` (RFC 4210 §5.3.21).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ErrorMsg {
    /// The status (rejection) and failure bits.
    pub pki_status_info: PkiStatusInfo,
    /// An implementation-specific code.
    #[asn1(optional = "true")]
    pub error_code: Option<i64>,
    /// Details for people.
    #[asn1(optional = "true")]
    pub error_details: Option<Vec<String>>,
}
