//! DER building blocks the RustCrypto types do not give us.
//!
//! Two facts about real CMC messages drive this module:
//!
//! * `der` sorts a `SET OF` when it decodes one. Microsoft relies on the *order* of
//!   `SignerInfos` (MS-WCCE 3.1.1.4.3.2.2: "the first signerInfo MUST use the
//!   subjectKeyIdentifier form ... the second SignerInfo MUST use the key associated with the
//!   certificate to be renewed"), and certenroll does not sort PKCS#10 attributes. [`SetOf`]
//!   keeps the order it was given, so a decoded message re-encodes byte for byte.
//! * Signatures and hashes are computed over the bytes that were received, not over a
//!   re-encoding. [`Retained`] keeps those bytes next to the parsed value.

use std::{fmt, sync::Arc};

use der::{
    Decode, DecodeValue, Encode, EncodeValue, FixedTag, Header, Length, Reader, Tag, Writer,
};

/// `SET OF T` whose element order is the order on the wire (or the order the builder chose).
///
/// Equality is order-sensitive on purpose: two messages whose signers are swapped are different
/// messages to an ADCS CA.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct SetOf<T>(pub Vec<T>);

impl<T> SetOf<T> {
    /// The elements, in wire order.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> From<Vec<T>> for SetOf<T> {
    fn from(v: Vec<T>) -> Self {
        Self(v)
    }
}

impl<T> FixedTag for SetOf<T> {
    const TAG: Tag = Tag::Set;
}

impl<'a, T: Decode<'a>> DecodeValue<'a> for SetOf<T> {
    type Error = T::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, _header: Header) -> Result<Self, T::Error> {
        let mut items = Vec::new();
        while !reader.is_finished() {
            items.push(T::decode(reader)?);
        }
        Ok(Self(items))
    }
}

impl<T: Encode> EncodeValue for SetOf<T> {
    fn value_len(&self) -> der::Result<Length> {
        self.0
            .iter()
            .try_fold(Length::ZERO, |len, item| len + item.encoded_len()?)
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        self.0.iter().try_for_each(|item| item.encode(writer))
    }
}

/// A parsed value together with the exact DER it was parsed from.
///
/// Encoding writes the retained bytes, so hashing or re-signing never depends on whether the
/// RustCrypto type re-encodes a peer's message identically (it does not when a peer's `SET OF`
/// is unsorted). Equality compares the bytes.
///
/// It is immutable and shared: a clone is a reference count, not a copy. A parsed certificate
/// is a tree of a hundred small allocations (every name's RDNs, every extension), and the
/// servers hand the same one to several places per request (the renewed certificate to the
/// ledger and the policy, the CA's chain to every answer and to `/cacerts`); deep copies of
/// them were one allocation in seven of an EST re-enrollment.
pub struct Retained<T>(Arc<Parts<T>>);

struct Parts<T> {
    value: T,
    der: Vec<u8>,
}

impl<T> Clone for Retained<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: fmt::Debug> fmt::Debug for Retained<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retained")
            .field("value", &self.0.value)
            .field("der", &self.0.der)
            .finish()
    }
}

impl<T> Retained<T> {
    fn new(value: T, der: Vec<u8>) -> Self {
        Self(Arc::new(Parts { value, der }))
    }

    /// The parsed value.
    pub fn value(&self) -> &T {
        &self.0.value
    }

    /// The exact DER (tag, length and contents).
    pub fn der(&self) -> &[u8] {
        &self.0.der
    }
}

impl<T: Encode> Retained<T> {
    /// Wraps a value we built ourselves; its canonical encoding becomes the retained bytes.
    pub fn from_value(value: T) -> der::Result<Self> {
        let der = value.to_der()?;
        Ok(Self::new(value, der))
    }
}

impl<T: for<'a> Decode<'a, Error = der::Error>> Retained<T> {
    /// Parses `der`, keeping the bytes. Trailing data is an error.
    pub fn from_der(der: &[u8]) -> der::Result<Self> {
        let value = T::from_der(der)?;
        Ok(Self::new(value, der.to_vec()))
    }
}

impl<T> PartialEq for Retained<T> {
    fn eq(&self, other: &Self) -> bool {
        self.der() == other.der()
    }
}

impl<T> Eq for Retained<T> {}

impl<T: FixedTag> FixedTag for Retained<T> {
    const TAG: Tag = T::TAG;
}

impl<'a, T> DecodeValue<'a> for Retained<T>
where
    T: FixedTag + for<'b> Decode<'b, Error = der::Error>,
{
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        // The reader already consumed the header; DER headers have exactly one encoding, so
        // re-encoding it restores the original bytes.
        let body = reader.read_slice(header.length())?;
        let mut der =
            Vec::with_capacity(usize::try_from((header.encoded_len()? + header.length())?)?);
        header.encode_to_vec(&mut der)?;
        der.extend_from_slice(body);
        let value = T::from_der(&der)?;
        Ok(Self::new(value, der))
    }
}

impl<T> Retained<T> {
    fn header(&self) -> der::Result<Header> {
        Header::decode(&mut der::SliceReader::new(self.der())?)
    }
}

impl<T> EncodeValue for Retained<T> {
    fn value_len(&self) -> der::Result<Length> {
        Ok(self.header()?.length())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        let header_len = self.header()?.encoded_len()?;
        let start = usize::try_from(header_len)?;
        writer.write(&self.der()[start..])
    }
}

/// The contents of a constructed element kept as bytes, for structures we carry but do not
/// interpret (CRMF `CertReqMsg` inside a CMC `TaggedRequest`).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OpaqueSequence(pub Vec<u8>);

impl FixedTag for OpaqueSequence {
    const TAG: Tag = Tag::Sequence;
}

impl<'a> DecodeValue<'a> for OpaqueSequence {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        let bytes = reader.read_slice(header.length())?;
        // Check that the contents are well-formed TLVs even though we do not interpret them.
        let mut inner = der::SliceReader::new(bytes)?;
        while !inner.is_finished() {
            inner.tlv_bytes()?;
        }
        Ok(Self(bytes.to_vec()))
    }
}

impl EncodeValue for OpaqueSequence {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}
