//! CMC (RFC 5272/5273/6402) with Microsoft certenroll compatibility — pure: bytes and keys in,
//! bytes out; no I/O, no cards, no sockets.
//!
//! * [`pki`], [`status`], [`controls`]: the RFC 5272 types.
//! * [`microsoft`]: certenroll / ADCS attributes and extensions.
//! * [`signed_data`]: CMS SignedData that keeps signer order and received bytes.
//! * [`request`]: the renewal request builder; [`verify_request`]: parser + verifier (CA side).
//! * [`response`]: response builder (CA side) and parser (client side).
//! * [`crypto`]: the [`Signer`] seam and signature verification; [`public_key`]: keys as
//!   parsed, checked values (the only way a key reaches a decision); [`software_key`]: in-memory
//!   keys.

pub mod asn1;
pub mod attestation;
pub mod controls;
pub mod crypto;
pub mod error;
pub mod input;
pub mod key_algorithm;
pub mod microsoft;
pub mod oids;
pub mod pki;
pub mod public_key;
pub mod ra;
pub mod request;
pub mod response;
pub mod signed_data;
pub mod software_key;
pub mod status;
pub mod verify_request;

pub use asn1::{Retained, SetOf};
pub use crypto::{DigestAlgorithm, KeyFamily, SignError, SignatureAlgorithm, Signer};
pub use error::{CmcError, InvalidValue, Result};
pub use input::Limits;
pub use key_algorithm::KeyAlgorithm;
pub use public_key::{PublicKey, PublicKeyError};
pub use request::{BuiltRequest, RenewalParams, build_renewal_request};
pub use response::{
    Outcome, ParsedResponse, ResponseForm, ResponseParams, StatusStyle, build_certs_only,
    build_full_response, parse_response,
};
pub use software_key::SoftwareKey;
pub use verify_request::{
    Finding, ParsedRequest, Profile, RenewalFacts, RequestShape, Severity, SignedBy, parse_request,
};
