//! The CMC message bodies: `PKIData` and `PKIResponse` and their parts (RFC 5272 §3.2, §4;
//! module `DEFINITIONS IMPLICIT TAGS`, RFC 6402 appendix A).

use der::{
    Choice, Sequence,
    asn1::{Any, ObjectIdentifier},
};
use x509_cert::request::CertReq;

use super::asn1::{OpaqueSequence, Retained, SetOf};

/// `BodyPartID ::= INTEGER (0..4294967295)`. Other stacks use random 32-bit values (SUNET),
/// Microsoft uses 1, 2, 3: never assume small numbers.
pub type BodyPartId = u32;

/// ```text
/// PKIData ::= SEQUENCE {
///     controlSequence    SEQUENCE SIZE(0..MAX) OF TaggedAttribute,
///     reqSequence        SEQUENCE SIZE(0..MAX) OF TaggedRequest,
///     cmsSequence        SEQUENCE SIZE(0..MAX) OF TaggedContentInfo,
///     otherMsgSequence   SEQUENCE SIZE(0..MAX) OF OtherMsg }
/// ```
#[derive(Clone, Debug, Default, Eq, PartialEq, Sequence)]
pub struct PkiData {
    /// Controls (transactionId, senderNonce, Microsoft add-attributes, ...).
    pub control_sequence: Vec<TaggedAttribute>,
    /// Certification requests.
    pub req_sequence: Vec<TaggedRequest>,
    /// Nested CMS content.
    pub cms_sequence: Vec<TaggedContentInfo>,
    /// Other messages.
    pub other_msg_sequence: Vec<OtherMsg>,
}

/// ```text
/// PKIResponse ::= SEQUENCE {
///     controlSequence   SEQUENCE SIZE(0..MAX) OF TaggedAttribute,
///     cmsSequence       SEQUENCE SIZE(0..MAX) OF TaggedContentInfo,
///     otherMsgSequence  SEQUENCE SIZE(0..MAX) OF OtherMsg }
/// ```
#[derive(Clone, Debug, Default, Eq, PartialEq, Sequence)]
pub struct PkiResponse {
    /// Controls (statusInfo / statusInfoV2, nonces, Microsoft add-attributes).
    pub control_sequence: Vec<TaggedAttribute>,
    /// Nested CMS content.
    pub cms_sequence: Vec<TaggedContentInfo>,
    /// Other messages.
    pub other_msg_sequence: Vec<OtherMsg>,
}

/// ```text
/// TaggedAttribute ::= SEQUENCE {
///     bodyPartID  BodyPartID,
///     attrType    OBJECT IDENTIFIER,
///     attrValues  SET OF AttributeValue }
/// ```
/// The typed view of a control is [`super::controls::Control`].
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TaggedAttribute {
    /// Body part identifier of this control.
    pub body_part_id: BodyPartId,
    /// Control type.
    pub attr_type: ObjectIdentifier,
    /// Control values (one for every control CMC defines).
    pub attr_values: SetOf<Any>,
}

/// ```text
/// TaggedRequest ::= CHOICE {
///     tcr  [0] TaggedCertificationRequest,
///     crm  [1] CertReqMsg,
///     orm  [2] SEQUENCE { bodyPartID BodyPartID, requestMessageType OBJECT IDENTIFIER,
///                         requestMessageValue ANY DEFINED BY requestMessageType } }
/// ```
/// A CRMF `CertReqMsg` (RFC 4211) is carried opaquely: renewal never uses it, but a parser must
/// not choke on the SUNET vectors that do.
// A request holds one PKCS#10 in practice; boxing would not survive the `Choice` derive.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum TaggedRequest {
    /// A PKCS#10 request with its body part id.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    Tcr(TaggedCertificationRequest),
    /// A CRMF request, contents kept as bytes.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Crm(OpaqueSequence),
    /// Another request format.
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", constructed = "true")]
    Orm(OtherRequestMsg),
}

/// `TaggedCertificationRequest ::= SEQUENCE { bodyPartID BodyPartID, certificationRequest
/// CertificationRequest }`. The PKCS#10 keeps its received bytes: its signature (the proof of
/// possession) is over them.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TaggedCertificationRequest {
    /// Body part identifier of the request.
    pub body_part_id: BodyPartId,
    /// The PKCS#10 request.
    pub certification_request: Retained<CertReq>,
}

/// The `orm` alternative of [`TaggedRequest`].
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OtherRequestMsg {
    /// Body part identifier of the request.
    pub body_part_id: BodyPartId,
    /// Request format.
    pub request_message_type: ObjectIdentifier,
    /// The request.
    pub request_message_value: Any,
}

/// `TaggedContentInfo ::= SEQUENCE { bodyPartID BodyPartID, contentInfo ContentInfo }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TaggedContentInfo {
    /// Body part identifier.
    pub body_part_id: BodyPartId,
    /// Nested CMS content.
    pub content_info: cms::content_info::ContentInfo,
}

/// `OtherMsg ::= SEQUENCE { bodyPartID BodyPartID, otherMsgType OBJECT IDENTIFIER,
/// otherMsgValue ANY DEFINED BY otherMsgType }`
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct OtherMsg {
    /// Body part identifier.
    pub body_part_id: BodyPartId,
    /// Message type.
    pub other_msg_type: ObjectIdentifier,
    /// Message value.
    pub other_msg_value: Any,
}

/// `BodyPartReference ::= CHOICE { bodyPartID BodyPartID, bodyPartPath BodyPartPath }`,
/// `BodyPartPath ::= SEQUENCE SIZE (1..MAX) OF BodyPartID` (RFC 5272 §3.2.2).
#[derive(Clone, Debug, Eq, PartialEq, Choice)]
pub enum BodyPartReference {
    /// A body part of this message.
    BodyPartId(BodyPartId),
    /// A body part inside nested messages.
    BodyPartPath(Vec<BodyPartId>),
}
