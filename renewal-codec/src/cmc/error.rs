//! The codec's error type: every way input can be wrong gets its own variant, so a CA can map
//! it to a `CMCFailInfo` and a user can act on it.

use der::asn1::ObjectIdentifier;

use super::{
    controls::ControlError,
    crypto::{SignError, VerifyError},
    public_key::PublicKeyError,
};

/// Errors of `renewal_codec::cmc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CmcError {
    /// Input larger than the configured cap; nothing was parsed.
    #[error("input is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Input size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not DER, PEM or base64 we can read.
    #[error("cannot read input encoding: {0}")]
    Encoding(String),
    /// A structure failed to decode.
    #[error("malformed {what}: {source}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// The decoder's error (position and kind).
        source: der::Error,
    },
    /// Bytes after the end of a complete structure.
    #[error("{extra} trailing bytes after the {what}")]
    TrailingData {
        /// Which structure.
        what: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A structural limit (counts) was exceeded.
    #[error("too many {what}: {count} (limit {max})")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A content type other than the one this operation needs.
    #[error("unexpected content type {found}, expected {expected}")]
    UnexpectedContentType {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: ObjectIdentifier,
    },
    /// The SignedData carries no eContent (a detached or certs-only message where a request
    /// was expected).
    #[error("SignedData has no encapsulated content")]
    MissingContent,
    /// The SignedData has no signers.
    #[error("SignedData has no signers")]
    NoSigners,
    /// An algorithm we do not support.
    #[error("unsupported {what} algorithm {oid}")]
    UnsupportedAlgorithm {
        /// Where it appeared.
        what: &'static str,
        /// Its OID.
        oid: ObjectIdentifier,
    },
    /// A signer lacks a mandatory signed attribute.
    #[error("signer {signer} has no {attribute} signed attribute")]
    MissingSignedAttribute {
        /// Signer index (wire order).
        signer: usize,
        /// The attribute.
        attribute: &'static str,
    },
    /// The contentType signed attribute differs from the eContentType.
    #[error("signer {signer}: contentType attribute {found} differs from eContentType")]
    ContentTypeMismatch {
        /// Signer index.
        signer: usize,
        /// The attribute's value.
        found: ObjectIdentifier,
    },
    /// The messageDigest signed attribute differs from the content's hash.
    #[error("signer {signer}: messageDigest does not match the content")]
    MessageDigestMismatch {
        /// Signer index.
        signer: usize,
    },
    /// A signer's signature does not verify.
    #[error("signer {signer}: {source}")]
    SignatureInvalid {
        /// Signer index.
        signer: usize,
        /// Why.
        source: VerifyError,
    },
    /// No key is known for a signer identifier.
    #[error("signer {signer}: no certificate or key matches {sid}")]
    UnknownSigner {
        /// Signer index.
        signer: usize,
        /// The identifier, for display.
        sid: String,
    },
    /// A renewal request must hold exactly one PKCS#10 (ADCS: 0x8007000D).
    #[error("request holds {found} PKCS#10 requests, expected exactly 1")]
    RequestCount {
        /// How many were found.
        found: usize,
    },
    /// No `szOID_RENEWAL_CERTIFICATE` attribute (by MS-WCCE a new request, not a renewal).
    #[error("the PKCS#10 has no renewal-certificate attribute (1.3.6.1.4.1.311.13.1)")]
    MissingRenewalCertificate,
    /// The renewal-certificate attribute is not a certificate.
    #[error("renewal-certificate attribute is malformed: {0}")]
    BadRenewalCertificate(der::Error),
    /// The PKCS#10's public key is malformed or of a kind we do not handle (checked before the
    /// proof of possession, so the answer names the key, not the signature).
    #[error("PKCS#10 public key: {0}")]
    BadPublicKey(PublicKeyError),
    /// The PKCS#10 signature (proof of possession) does not verify.
    #[error("PKCS#10 proof of possession fails: {0}")]
    PopInvalid(VerifyError),
    /// `SignedData.certificates` holds a certificate with the renewal certificate's issuer and
    /// serial number whose bytes differ from the one in the signed PKCS#10.
    #[error(
        "SignedData carries a different certificate under the renewed certificate's issuer and serial"
    )]
    RenewalCertificateMismatch,
    /// A version field contradicts the structure (RFC 5652 §5.1, §5.3).
    #[error("{what}: version {found} is inconsistent with the structure (expected {expected})")]
    VersionMismatch {
        /// Which structure.
        what: &'static str,
        /// Version found.
        found: u8,
        /// Version the structure requires.
        expected: u8,
    },
    /// A signer uses a digest algorithm that `digestAlgorithms` does not list.
    #[error("signer {signer}: digest algorithm {oid} is not listed in digestAlgorithms")]
    DigestNotListed {
        /// Signer index.
        signer: usize,
        /// The digest.
        oid: ObjectIdentifier,
    },
    /// A control's value is malformed.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A signer failed while building a message.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Encoding a message we built failed (a value out of range, e.g. a name with characters
    /// outside the BMP).
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        source: der::Error,
    },
    /// A builder input is inconsistent (e.g. the old signer's key is not the old certificate's).
    #[error("invalid builder input: {0}")]
    InvalidInput(&'static str),
}

/// Shorthand for results of this module.
pub type Result<T, E = CmcError> = std::result::Result<T, E>;

/// Adds "what failed" context to `der` errors.
pub(crate) trait DerContext<T> {
    fn malformed(self, what: &'static str) -> Result<T>;
    fn encoding(self, what: &'static str) -> Result<T>;
}

impl<T> DerContext<T> for der::Result<T> {
    fn malformed(self, what: &'static str) -> Result<T> {
        self.map_err(|source| CmcError::Malformed { what, source })
    }

    fn encoding(self, what: &'static str) -> Result<T> {
        self.map_err(|source| CmcError::Encode { what, source })
    }
}

/// A value from a command line, a configuration file or a scenario that is not one the field
/// takes: which field, what was given (left out when it is a secret, such as a key), and what
/// it takes. Every textual parser of this workspace answers with it, so a caller can say which
/// line or option is wrong without parsing a sentence.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{what}{}: {expected}", .given.as_ref().map(|g| format!(" {g:?}")).unwrap_or_default())]
pub struct InvalidValue {
    /// The field or kind of value ("key type", "duration", "management key").
    pub what: &'static str,
    /// What was given, when it may be shown.
    pub given: Option<String>,
    /// What the field takes, or what is wrong with the value.
    pub expected: String,
}

impl InvalidValue {
    /// A value that may be repeated in the message.
    pub fn new(what: &'static str, given: &str, expected: impl Into<String>) -> Self {
        Self {
            what,
            given: Some(given.to_string()),
            expected: expected.into(),
        }
    }

    /// A secret value: the message never repeats it.
    pub fn secret(what: &'static str, expected: impl Into<String>) -> Self {
        Self {
            what,
            given: None,
            expected: expected.into(),
        }
    }
}
