//! CMC status reporting: `CMCStatus`, `CMCFailInfo`, `PendInfo`, `CMCStatusInfo` (v1, what ADCS
//! sends) and `CMCStatusInfoV2` (RFC 5272 §6.1, RFC 6402).

use der::{
    Choice, Decode, DecodeValue, Encode, Enumerated, Header, Length, Reader, Sequence, Tag,
    TagNumber, Tagged, Writer,
    asn1::{Any, GeneralizedTime, ObjectIdentifier, OctetString},
};

use super::pki::{BodyPartId, BodyPartReference};

/// ```text
/// CMCStatus ::= INTEGER { success(0), failed(2), pending(3), noSupport(4),
///                         confirmRequired(5), popRequired(6), partial(7) }
/// ```
/// Value 1 is unused by the RFC.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Enumerated)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
#[allow(missing_docs)]
pub enum CmcStatus {
    Success = 0,
    Failed = 2,
    Pending = 3,
    NoSupport = 4,
    ConfirmRequired = 5,
    PopRequired = 6,
    Partial = 7,
}

/// ```text
/// CMCFailInfo ::= INTEGER { badAlg(0), badMessageCheck(1), badRequest(2), badTime(3),
///     badCertId(4), unsupportedExt(5), mustArchiveKeys(6), badIdentity(7), popRequired(8),
///     popFailed(9), noKeyReuse(10), internalCAError(11), tryLater(12), authDataFail(13) }
/// ```
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Enumerated)]
#[asn1(type = "INTEGER")]
#[repr(u8)]
#[allow(missing_docs)]
pub enum CmcFailInfo {
    BadAlg = 0,
    BadMessageCheck = 1,
    BadRequest = 2,
    BadTime = 3,
    BadCertId = 4,
    UnsupportedExt = 5,
    MustArchiveKeys = 6,
    BadIdentity = 7,
    PopRequired = 8,
    PopFailed = 9,
    NoKeyReuse = 10,
    InternalCaError = 11,
    TryLater = 12,
    AuthDataFail = 13,
}

impl CmcFailInfo {
    /// The name RFC 5272 §6.1.4 gives it (`badRequest`), what a user reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadMessageCheck => "badMessageCheck",
            Self::BadRequest => "badRequest",
            Self::BadTime => "badTime",
            Self::BadCertId => "badCertId",
            Self::UnsupportedExt => "unsupportedExt",
            Self::MustArchiveKeys => "mustArchiveKeys",
            Self::BadIdentity => "badIdentity",
            Self::PopRequired => "popRequired",
            Self::PopFailed => "popFailed",
            Self::NoKeyReuse => "noKeyReuse",
            Self::InternalCaError => "internalCAError",
            Self::TryLater => "tryLater",
            Self::AuthDataFail => "authDataFail",
        }
    }
}

impl CmcStatus {
    /// The name RFC 5272 §6.1.1 gives it (`noSupport`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Pending => "pending",
            Self::NoSupport => "noSupport",
            Self::ConfirmRequired => "confirmRequired",
            Self::PopRequired => "popRequired",
            Self::Partial => "partial",
        }
    }
}

/// `PendInfo ::= SEQUENCE { pendToken OCTET STRING, pendTime GeneralizedTime }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct PendInfo {
    /// Token the client sends back in `queryPending` (ADCS: the request id).
    pub pend_token: OctetString,
    /// When the client should ask again.
    pub pend_time: GeneralizedTime,
}

/// `otherInfo` of a v1 status: `CHOICE { failInfo CMCFailInfo, pendInfo PendInfo }`.
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum OtherStatusInfo {
    /// Why it failed.
    FailInfo(CmcFailInfo),
    /// When to come back.
    PendInfo(PendInfo),
}

/// ```text
/// CMCStatusInfo ::= SEQUENCE {
///     cMCStatus     CMCStatus,
///     bodyList      SEQUENCE SIZE (1..MAX) OF BodyPartID,
///     statusString  UTF8String OPTIONAL,
///     otherInfo     CHOICE { failInfo CMCFailInfo, pendInfo PendInfo } OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CmcStatusInfo {
    /// The status.
    pub status: CmcStatus,
    /// Body parts the status applies to.
    pub body_list: Vec<BodyPartId>,
    /// Free text ("Issued" from ADCS).
    pub status_string: Option<String>,
    /// Failure or pending details.
    pub other_info: Option<OtherStatusInfo>,
}

/// `extendedFailInfo SEQUENCE { failInfoOID OBJECT IDENTIFIER, failInfoValue ANY }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct ExtendedFailInfo {
    /// Failure type.
    pub fail_info_oid: ObjectIdentifier,
    /// Failure details.
    pub fail_info_value: Any,
}

/// How an `extendedFailInfo` was (or is to be) encoded.
///
/// RFC 5272's prose module leaves it untagged, which collides with `pendInfo` (both are
/// SEQUENCEs); the 2008-syntax module of RFC 6402 tags it `[1]`. We decode both, telling the
/// untagged form from `pendInfo` by its first element (an OID, not an OCTET STRING), and
/// re-encode in the form received.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ExtendedFailInfoForm {
    /// `[1] IMPLICIT SEQUENCE` (RFC 6402 module); what we emit.
    Tagged,
    /// Bare SEQUENCE (RFC 5272 prose).
    Untagged,
}

/// `otherInfo` of a v2 status.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum OtherStatusInfoV2 {
    /// Why it failed.
    FailInfo(CmcFailInfo),
    /// When to come back.
    PendInfo(PendInfo),
    /// Failure identified by OID.
    ExtendedFailInfo(ExtendedFailInfo, ExtendedFailInfoForm),
}

const EXTENDED_FAIL_INFO_TAG: Tag = Tag::ContextSpecific {
    constructed: true,
    number: TagNumber(1),
};

impl<'a> Decode<'a> for OtherStatusInfoV2 {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        let tag = Tag::peek(reader)?;
        match tag {
            Tag::Integer => Ok(Self::FailInfo(CmcFailInfo::decode(reader)?)),
            Tag::Sequence => {
                let tlv = reader.tlv_bytes()?;
                let header = Header::decode(&mut der::SliceReader::new(tlv)?)?;
                let header_len = usize::try_from(header.encoded_len()?)?;
                let first = tlv.get(header_len).copied();
                // 0x06 = universal OBJECT IDENTIFIER: extendedFailInfo starts with one, PendInfo does not.
                if first == Some(0x06) {
                    let info = ExtendedFailInfo::from_der(tlv)?;
                    Ok(Self::ExtendedFailInfo(info, ExtendedFailInfoForm::Untagged))
                } else {
                    Ok(Self::PendInfo(PendInfo::from_der(tlv)?))
                }
            }
            EXTENDED_FAIL_INFO_TAG => {
                let header = Header::decode(reader)?;
                let info = reader.read_nested(header.length(), |inner| {
                    ExtendedFailInfo::decode_value(inner, header)
                })?;
                Ok(Self::ExtendedFailInfo(info, ExtendedFailInfoForm::Tagged))
            }
            other => Err(reader.error(der::ErrorKind::TagUnexpected {
                expected: None,
                actual: other,
            })),
        }
    }
}

impl Encode for OtherStatusInfoV2 {
    fn encoded_len(&self) -> der::Result<Length> {
        match self {
            Self::FailInfo(f) => f.encoded_len(),
            Self::PendInfo(p) => p.encoded_len(),
            Self::ExtendedFailInfo(e, _) => e.encoded_len(),
        }
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        match self {
            Self::FailInfo(f) => f.encode(writer),
            Self::PendInfo(p) => p.encode(writer),
            Self::ExtendedFailInfo(e, ExtendedFailInfoForm::Untagged) => e.encode(writer),
            Self::ExtendedFailInfo(e, ExtendedFailInfoForm::Tagged) => {
                use der::EncodeValue;
                Header::new(EXTENDED_FAIL_INFO_TAG, e.value_len()?).encode(writer)?;
                e.encode_value(writer)
            }
        }
    }
}

impl Tagged for OtherStatusInfoV2 {
    fn tag(&self) -> Tag {
        match self {
            Self::FailInfo(_) => Tag::Integer,
            Self::PendInfo(_) | Self::ExtendedFailInfo(_, ExtendedFailInfoForm::Untagged) => {
                Tag::Sequence
            }
            Self::ExtendedFailInfo(_, ExtendedFailInfoForm::Tagged) => EXTENDED_FAIL_INFO_TAG,
        }
    }
}

impl<'a> der::Choice<'a> for OtherStatusInfoV2 {
    fn can_decode(tag: Tag) -> bool {
        matches!(tag, Tag::Integer | Tag::Sequence) || tag == EXTENDED_FAIL_INFO_TAG
    }
}

/// ```text
/// CMCStatusInfoV2 ::= SEQUENCE {
///     cMCStatus     CMCStatus,
///     bodyList      SEQUENCE SIZE (1..MAX) OF BodyPartReference,
///     statusString  UTF8String OPTIONAL,
///     otherInfo     OtherStatusInfo OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct CmcStatusInfoV2 {
    /// The status.
    pub status: CmcStatus,
    /// Body parts the status applies to.
    pub body_list: Vec<BodyPartReference>,
    /// Free text.
    pub status_string: Option<String>,
    /// Failure or pending details.
    pub other_info: Option<OtherStatusInfoV2>,
}
