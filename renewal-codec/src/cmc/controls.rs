//! Typed values of the CMC controls a renewal uses (RFC 5272 §6), and the conversion between a
//! raw [`TaggedAttribute`] and a [`Control`].

use der::{
    Decode, Encode, Sequence,
    asn1::{Any, Int, ObjectIdentifier, OctetString},
};
use x509_cert::ext::{Extension, pkix::name::GeneralName};

use super::{
    asn1::SetOf,
    microsoft::CmcAddAttributes,
    oids,
    pki::{BodyPartId, TaggedAttribute},
    status::{CmcStatusInfo, CmcStatusInfoV2},
};

/// `GetCert ::= SEQUENCE { issuerName GeneralName, serialNumber INTEGER }` (RFC 5272 §6.9).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct GetCert {
    /// Issuer of the wanted certificate.
    pub issuer_name: GeneralName,
    /// Its serial number.
    pub serial_number: Int,
}

/// ```text
/// AddExtensions ::= SEQUENCE {
///     pkiDataReference  BodyPartID,
///     certReferences    SEQUENCE OF BodyPartID,
///     extensions        SEQUENCE OF Extension }
/// ```
/// (RFC 5272 §6.5.2)
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct AddExtensions {
    /// PKIData the extensions apply to (0 = this one).
    pub pki_data_reference: BodyPartId,
    /// Requests the extensions apply to (empty = all).
    pub cert_references: Vec<BodyPartId>,
    /// Extensions to add.
    pub extensions: Vec<Extension>,
}

/// A control, typed. Controls we do not interpret stay [`Control::Other`].
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Control {
    /// `id-cmc-transactionId`: INTEGER identifying the transaction.
    TransactionId(Int),
    /// `id-cmc-senderNonce`.
    SenderNonce(OctetString),
    /// `id-cmc-recipientNonce`: echo of the peer's sender nonce.
    RecipientNonce(OctetString),
    /// `id-cmc-statusInfo` (v1, what ADCS sends).
    StatusInfo(CmcStatusInfo),
    /// `id-cmc-statusInfoV2`.
    StatusInfoV2(CmcStatusInfoV2),
    /// `id-cmc-regInfo`: registration information (Microsoft: `Name=Value&` pairs).
    RegInfo(OctetString),
    /// `id-cmc-responseInfo`.
    ResponseInfo(OctetString),
    /// `id-cmc-queryPending`: the pendToken of an earlier pending answer.
    QueryPending(OctetString),
    /// `id-cmc-getCert`.
    GetCert(GetCert),
    /// `id-cmc-addExtensions`.
    AddExtensions(AddExtensions),
    /// Microsoft `szOID_CMC_ADD_ATTRIBUTES`.
    MsAddAttributes(CmcAddAttributes),
    /// Anything else, kept as its single value.
    Other {
        /// Control type.
        oid: ObjectIdentifier,
        /// Control value.
        value: Any,
    },
}

/// Why a control could not be read as its declared type.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// CMC controls carry exactly one value.
    #[error("control {oid} (body part {body_part_id}) has {count} values, expected 1")]
    ValueCount {
        /// Control type.
        oid: ObjectIdentifier,
        /// Its body part.
        body_part_id: BodyPartId,
        /// Values found.
        count: usize,
    },
    /// The value does not decode as the control's type.
    #[error("control {oid} (body part {body_part_id}) has a malformed value: {source}")]
    Malformed {
        /// Control type.
        oid: ObjectIdentifier,
        /// Its body part.
        body_part_id: BodyPartId,
        /// Decoder error.
        source: der::Error,
    },
}

impl Control {
    /// The control's OID.
    pub fn oid(&self) -> ObjectIdentifier {
        match self {
            Self::TransactionId(_) => oids::ID_CMC_TRANSACTION_ID,
            Self::SenderNonce(_) => oids::ID_CMC_SENDER_NONCE,
            Self::RecipientNonce(_) => oids::ID_CMC_RECIPIENT_NONCE,
            Self::StatusInfo(_) => oids::ID_CMC_STATUS_INFO,
            Self::StatusInfoV2(_) => oids::ID_CMC_STATUS_INFO_V2,
            Self::RegInfo(_) => oids::ID_CMC_REG_INFO,
            Self::ResponseInfo(_) => oids::ID_CMC_RESPONSE_INFO,
            Self::QueryPending(_) => oids::ID_CMC_QUERY_PENDING,
            Self::GetCert(_) => oids::ID_CMC_GET_CERT,
            Self::AddExtensions(_) => oids::ID_CMC_ADD_EXTENSIONS,
            Self::MsAddAttributes(_) => oids::MS_CMC_ADD_ATTRIBUTES,
            Self::Other { oid, .. } => *oid,
        }
    }

    fn value_der(&self) -> der::Result<Vec<u8>> {
        match self {
            Self::TransactionId(v) => v.to_der(),
            Self::SenderNonce(v)
            | Self::RecipientNonce(v)
            | Self::RegInfo(v)
            | Self::ResponseInfo(v)
            | Self::QueryPending(v) => v.to_der(),
            Self::StatusInfo(v) => v.to_der(),
            Self::StatusInfoV2(v) => v.to_der(),
            Self::GetCert(v) => v.to_der(),
            Self::AddExtensions(v) => v.to_der(),
            Self::MsAddAttributes(v) => v.to_der(),
            Self::Other { value, .. } => value.to_der(),
        }
    }

    /// The control as a `TaggedAttribute` with the given body part id.
    pub fn to_tagged(&self, body_part_id: BodyPartId) -> der::Result<TaggedAttribute> {
        Ok(TaggedAttribute {
            body_part_id,
            attr_type: self.oid(),
            attr_values: SetOf(vec![Any::from_der(&self.value_der()?)?]),
        })
    }

    /// Reads a `TaggedAttribute` as a typed control.
    pub fn from_tagged(attr: &TaggedAttribute) -> Result<Self, ControlError> {
        let oid = attr.attr_type;
        let body_part_id = attr.body_part_id;
        let [value] = attr.attr_values.0.as_slice() else {
            return Err(ControlError::ValueCount {
                oid,
                body_part_id,
                count: attr.attr_values.len(),
            });
        };
        let malformed = |source| ControlError::Malformed {
            oid,
            body_part_id,
            source,
        };
        let bytes = value.to_der().map_err(malformed)?;
        fn parse<T: for<'a> Decode<'a, Error = der::Error>>(b: &[u8]) -> der::Result<T> {
            T::from_der(b)
        }
        let control = match oid {
            oids::ID_CMC_TRANSACTION_ID => Self::TransactionId(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_SENDER_NONCE => Self::SenderNonce(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_RECIPIENT_NONCE => Self::RecipientNonce(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_STATUS_INFO => Self::StatusInfo(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_STATUS_INFO_V2 => Self::StatusInfoV2(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_REG_INFO => Self::RegInfo(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_RESPONSE_INFO => Self::ResponseInfo(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_QUERY_PENDING => Self::QueryPending(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_GET_CERT => Self::GetCert(parse(&bytes).map_err(malformed)?),
            oids::ID_CMC_ADD_EXTENSIONS => Self::AddExtensions(parse(&bytes).map_err(malformed)?),
            oids::MS_CMC_ADD_ATTRIBUTES => Self::MsAddAttributes(parse(&bytes).map_err(malformed)?),
            _ => Self::Other {
                oid,
                value: value.clone(),
            },
        };
        Ok(control)
    }
}
