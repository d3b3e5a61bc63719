//! CMS `SignedData` (RFC 5652 §5) with wire order and received bytes preserved.
//!
//! We reuse the `cms` crate's leaf types (`SignerIdentifier`, `EncapsulatedContentInfo`,
//! `CmsVersion`, `ContentInfo`) but not its `SignedData`/`SignerInfo`: those decode `SET OF` into
//! sorted sets, losing the signer order MS-WCCE gives meaning to and changing the bytes a peer
//! signed when its attributes were not sorted. See [`super::asn1`].

use cms::{
    content_info::{CmsVersion, ContentInfo},
    signed_data::{EncapsulatedContentInfo, SignerIdentifier},
};
use der::{
    Decode, Encode, Length, Reader, Sequence, Tag, Tagged, Writer,
    asn1::{Any, ObjectIdentifier, OctetString},
};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::{
    asn1::{Retained, SetOf},
    oids,
};

/// ```text
/// Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF AttributeValue }
/// ```
/// Values keep wire order (see module doc).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct Attribute {
    /// Attribute type.
    pub oid: ObjectIdentifier,
    /// Values.
    pub values: SetOf<Any>,
}

impl Attribute {
    /// A single-valued attribute.
    pub fn single(oid: ObjectIdentifier, value: &impl Encode) -> der::Result<Self> {
        Ok(Self {
            oid,
            values: SetOf(vec![Any::from_der(&value.to_der()?)?]),
        })
    }

    /// The only value, or `None` when there is not exactly one.
    pub fn single_value(&self) -> Option<&Any> {
        match self.values.0.as_slice() {
            [v] => Some(v),
            _ => None,
        }
    }
}

/// `CertificateChoices`: certificates keep their bytes (hashes and byte-for-byte identity
/// checks depend on them); the obsolete and "other" alternatives are carried opaquely.
// Nearly every element is a certificate; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum CertificateChoice {
    /// An X.509 certificate.
    Certificate(Retained<Certificate>),
    /// `extendedCertificate [0]`, `v1AttrCert [1]`, `v2AttrCert [2]` or `other [3]`.
    Other(Any),
}

impl<'a> Decode<'a> for CertificateChoice {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        if Tag::peek(reader)? == Tag::Sequence {
            Ok(Self::Certificate(Retained::decode(reader)?))
        } else {
            Ok(Self::Other(Any::decode(reader)?))
        }
    }
}

impl Encode for CertificateChoice {
    fn encoded_len(&self) -> der::Result<Length> {
        match self {
            Self::Certificate(c) => c.encoded_len(),
            Self::Other(a) => a.encoded_len(),
        }
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        match self {
            Self::Certificate(c) => c.encode(writer),
            Self::Other(a) => a.encode(writer),
        }
    }
}

/// ```text
/// SignedData ::= SEQUENCE {
///     version CMSVersion,
///     digestAlgorithms DigestAlgorithmIdentifiers,
///     encapContentInfo EncapsulatedContentInfo,
///     certificates [0] IMPLICIT CertificateSet OPTIONAL,
///     crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
///     signerInfos SignerInfos }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignedData {
    /// 1 (CMS-with-PKCS#10, certs-only) or 3 (any SKI signer or non-id-data content).
    pub version: CmsVersion,
    /// Digest algorithms used by the signers.
    pub digest_algorithms: SetOf<AlgorithmIdentifierOwned>,
    /// Content type and content.
    pub encap_content_info: EncapsulatedContentInfo,
    /// Certificates, in wire order.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub certificates: Option<SetOf<CertificateChoice>>,
    /// CRLs, carried opaquely.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub crls: Option<SetOf<Any>>,
    /// Signers, in wire order (Microsoft: \[0\] the new key, \[1\] the old certificate).
    pub signer_infos: SetOf<SignerInfo>,
}

impl SignedData {
    /// The X.509 certificates in `certificates`, in order.
    pub fn x509_certificates(&self) -> impl Iterator<Item = &Retained<Certificate>> {
        self.certificates.iter().flat_map(|set| {
            set.iter().filter_map(|c| match c {
                CertificateChoice::Certificate(cert) => Some(cert),
                CertificateChoice::Other(_) => None,
            })
        })
    }

    /// The bytes of the encapsulated content: the contents of the `eContent` OCTET STRING.
    pub fn econtent_bytes(&self) -> Option<der::Result<Vec<u8>>> {
        self.encap_content_info.econtent.as_ref().map(|any| {
            let octets = any.decode_as::<OctetString>()?;
            Ok(octets.into_bytes().into_vec())
        })
    }

    /// Wraps this SignedData in a `ContentInfo { id-signedData, ... }` and encodes it.
    pub fn to_content_info_der(&self) -> der::Result<Vec<u8>> {
        ContentInfo {
            content_type: oids::ID_SIGNED_DATA,
            content: Any::encode_from(self)?,
        }
        .to_der()
    }
}

/// ```text
/// SignerInfo ::= SEQUENCE {
///     version CMSVersion,
///     sid SignerIdentifier,
///     digestAlgorithm DigestAlgorithmIdentifier,
///     signedAttrs [0] IMPLICIT SignedAttributes OPTIONAL,
///     signatureAlgorithm SignatureAlgorithmIdentifier,
///     signature SignatureValue,
///     unsignedAttrs [1] IMPLICIT UnsignedAttributes OPTIONAL }
/// ```
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct SignerInfo {
    /// 1 for IssuerAndSerialNumber, 3 for SubjectKeyIdentifier.
    pub version: CmsVersion,
    /// Who signed.
    pub sid: SignerIdentifier,
    /// Digest of the content.
    pub digest_alg: AlgorithmIdentifierOwned,
    /// Signed attributes, wire order (the signature is over their DER as a SET).
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub signed_attrs: Option<SetOf<Attribute>>,
    /// Signature algorithm (Microsoft writes `rsaEncryption` here).
    pub signature_algorithm: AlgorithmIdentifierOwned,
    /// The signature.
    pub signature: OctetString,
    /// Unsigned attributes (key archival puts an EnvelopedData here).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub unsigned_attrs: Option<SetOf<Attribute>>,
}

impl SignerInfo {
    /// The first value of a signed attribute.
    pub fn signed_attr(&self, oid: ObjectIdentifier) -> Option<&Attribute> {
        self.signed_attrs.as_ref()?.iter().find(|a| a.oid == oid)
    }

    /// The DER the signature covers when signed attributes are present: the attributes encoded
    /// as an explicit `SET OF` (tag 0x31), RFC 5652 §5.4.
    pub fn signed_attrs_der(&self) -> Option<der::Result<Vec<u8>>> {
        self.signed_attrs.as_ref().map(|attrs| {
            debug_assert_eq!(attrs.tag(), Tag::Set);
            attrs.to_der()
        })
    }
}
