//! A card as the renewal client sees it ([`Token`]) and who types its PIN ([`PinSource`]).
//!
//! Card operations are blocking (PC/SC and PKCS#11 are), so `Token` is a sync trait; async code
//! calls it through `spawn_blocking`. A token logs in lazily, once per session, asking its
//! `PinSource` only when the card needs the PIN: that is how a renewal costs one prompt.

pub mod pin;
pub mod pin_model;
pub mod pin_sources;
pub mod pinentry;
pub mod piv;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod spec;
pub mod transport;

use spki::SubjectPublicKeyInfoOwned;

pub use crate::cmc::KeyAlgorithm;
use crate::cmc::{SignatureAlgorithm, attestation::KeyAttestation};
pub use pin::{Pin, PinContext, PinError, PinRequest, PinSource};

/// Names a key container on a token: a PIV slot ("9a", "82"), a PKCS#11 `CKA_ID` (hex).
#[derive(Clone, Debug, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub struct ContainerId(pub String);

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One container: a key, a certificate, or both.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Container {
    /// Where it is.
    pub id: ContainerId,
    /// The key's algorithm, when a key is present and known.
    pub algorithm: Option<KeyAlgorithm>,
    /// The public key, when a key is present and its public part is readable.
    pub public_key: Option<SubjectPublicKeyInfoOwned>,
    /// The certificate (DER), when one is stored.
    pub certificate: Option<Vec<u8>>,
}

/// What a token says about itself.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct TokenInfo {
    /// Backend and card type, e.g. "PIV (YubiKey-compatible) 5.7.1".
    pub description: String,
    /// Serial number.
    pub serial: String,
}

/// How full a token is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Capacity {
    /// Containers holding a key or certificate.
    pub used: usize,
    /// New containers that can still be created (`None`: the token cannot tell).
    pub free: Option<usize>,
}

/// Why a token operation failed. What the user can do about it is in the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The card was removed or the reader went away.
    #[error("the card was removed or the reader is gone ({0})")]
    Removed(String),
    /// No room for a new key.
    #[error("the card is full: no free key container")]
    Full,
    /// The PIN is blocked; unblock it with the PUK.
    #[error("the PIN is blocked (unblock it with the PUK)")]
    PinBlocked,
    /// Wrong PIN.
    #[error("wrong PIN, {retries_left} tries left")]
    PinIncorrect {
        /// Tries left before the PIN blocks.
        retries_left: u8,
    },
    /// The PIN source gave no PIN.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// No such container, or it has no key.
    #[error("container {0} has no key")]
    NotFound(ContainerId),
    /// The administrative (management) key was refused.
    #[error("the card refused the management key")]
    ManagementKeyRejected,
    /// The management key given does not fit the card's algorithm.
    #[error("the card's management key is {algorithm} ({expected} bytes); the key given has {got}")]
    ManagementKeyLength {
        /// The card's algorithm.
        algorithm: &'static str,
        /// Its key length.
        expected: usize,
        /// The given key's length.
        got: usize,
    },
    /// The card was to hold its management key under the PIN, and holds none.
    #[error("the card holds no PIN-protected management key (ykman's --protect)")]
    NoProtectedManagementKey,
    /// The card answered an unexpected status word.
    #[error("card error during {operation}: status {sw:04X}")]
    Card {
        /// What was being done.
        operation: &'static str,
        /// The status word.
        sw: u16,
    },
    /// The card's answer could not be understood.
    #[error("malformed answer from the card to {0}")]
    Malformed(&'static str),
    /// A delete reported success but the object is still there (SoftHSM2 #903, OpenSC #3121).
    #[error("container {0} is still present after a delete that reported success")]
    DeleteNotEffective(ContainerId),
    /// The certificate does not fit in the card's data object.
    #[error(
        "the certificate does not fit on the card ({bytes} bytes to store; a YubiKey holds 3,052 per object)"
    )]
    ObjectTooLarge {
        /// What was to be stored.
        bytes: usize,
    },
    /// The card cannot move or delete keys, which a renewal needs (the new key takes the old
    /// one's slot; the old one goes).
    #[error(
        "{card} cannot move or delete keys (YubiKey firmware 5.7 added MOVE/DELETE KEY): a renewal would leave the new key outside the slot middleware uses and the old one on the card, so nothing was done"
    )]
    CannotMoveKeys {
        /// Which card.
        card: String,
    },
    /// The key needs a touch and none came in time (the card's timeout: 15 s on a YubiKey).
    #[error("the key in slot {slot:02x} was not touched in time")]
    TouchTimeout {
        /// The key's slot.
        slot: u8,
    },
    /// The token cannot do this.
    #[error("not supported by this token: {0}")]
    Unsupported(&'static str),
    /// A backend error with its own description (PKCS#11 return values, PC/SC errors).
    #[error("{backend}: {detail}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What happened.
        detail: String,
    },
}

/// The card refused the PIN, or no PIN could be had: retrying with the same PIN source would
/// burn the card's remaining tries (or ask again in vain), so nothing retries it by itself. A
/// value (not the error itself) so an outcome can carry it.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PinRefusal {
    /// A wrong PIN.
    #[error("wrong PIN, {retries_left} tries left")]
    Wrong {
        /// Tries left before the PIN blocks.
        retries_left: u8,
    },
    /// The PIN is blocked.
    #[error("the PIN is blocked (unblock it with the PUK)")]
    Blocked,
    /// No PIN: cancelled, or the source has none (no terminal, an unset variable).
    #[error("{0}")]
    NoPin(String),
}

/// What the card refused that the user must act on: the PIN, or a touch that never came.
/// Carried by value through the TLS stack, which reports a failed client signature as text.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CardRefusal {
    /// The PIN was refused or none could be had.
    #[error(transparent)]
    Pin(PinRefusal),
    /// The key needed a touch that did not come in time.
    #[error("the key in slot {slot:02x} was not touched in time")]
    NotTouched {
        /// The key's slot.
        slot: u8,
    },
}

impl TokenError {
    /// The refusal this error is, if it is one the user must act on.
    pub fn card_refusal(&self) -> Option<CardRefusal> {
        match self {
            Self::TouchTimeout { slot } => Some(CardRefusal::NotTouched { slot: *slot }),
            other => other.pin_refusal().map(CardRefusal::Pin),
        }
    }

    /// The PIN refusal this error is, if it is one.
    pub fn pin_refusal(&self) -> Option<PinRefusal> {
        match self {
            Self::PinIncorrect { retries_left } => Some(PinRefusal::Wrong {
                retries_left: *retries_left,
            }),
            Self::PinBlocked => Some(PinRefusal::Blocked),
            Self::Pin(e) => Some(PinRefusal::NoPin(e.to_string())),
            _ => None,
        }
    }
}

/// A card as the renewal client sees it.
pub trait Token {
    /// Card identity.
    fn info(&mut self) -> Result<TokenInfo, TokenError>;
    /// All containers, in a stable order.
    fn containers(&mut self) -> Result<Vec<Container>, TokenError>;
    /// How full the card is.
    fn capacity(&mut self) -> Result<Capacity, TokenError>;
    /// Generates a key pair in a *new* container (never overwriting one in use).
    fn generate(&mut self, algorithm: KeyAlgorithm) -> Result<Container, TokenError>;
    /// Like [`Token::generate`], the new key made like the key in `like` — the one it will
    /// replace — where the token has per-key policies (a PIV card's PIN policy: a renewal must
    /// not turn a PIN-always key into a PIN-once one). Tokens without policies generate.
    fn generate_like(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &ContainerId,
    ) -> Result<Container, TokenError> {
        let _ = like;
        self.generate(algorithm)
    }
    /// The token's attestation that the key in `id` was generated on it and never left it (a
    /// YubiKey's PIV attestation: a certificate for the key signed by the card's F9 key, and
    /// the F9 certificate). Tokens that cannot attest say [`TokenError::Unsupported`].
    fn attest(&mut self, id: &ContainerId) -> Result<KeyAttestation, TokenError> {
        let _ = id;
        Err(TokenError::Unsupported(
            "key attestation (this token cannot attest its keys)",
        ))
    }
    /// Whether [`Token::sign_raw_rsa`] works: a PIV card does the raw RSA operation on any
    /// block the host padded, which is what lets `renew` sign RSA-PSS for TLS 1.3.
    fn can_sign_raw_rsa(&self) -> bool {
        false
    }
    /// The raw RSA private-key operation (RFC 8017 RSASP1) on `block`, which the caller padded
    /// (EMSA-PSS for TLS 1.3) to the modulus's length.
    fn sign_raw_rsa(&mut self, id: &ContainerId, block: &[u8]) -> Result<Vec<u8>, TokenError> {
        let _ = (id, block);
        Err(TokenError::Unsupported("raw RSA signatures"))
    }
    /// Signs `message` (the token hashes it with `algorithm.digest`); ECDSA signatures are
    /// DER-encoded.
    fn sign(
        &mut self,
        id: &ContainerId,
        algorithm: SignatureAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError>;
    /// Stores a certificate (DER) in a container.
    fn install_certificate(
        &mut self,
        id: &ContainerId,
        certificate: &[u8],
    ) -> Result<(), TokenError>;
    /// Deletes a container's key and certificate, and checks they are gone.
    fn delete(&mut self, id: &ContainerId) -> Result<(), TokenError>;
    /// Finishes a renewal: `old`'s key and certificate are deleted and `new` takes their place
    /// (for PIV: the key and certificate move into the old slot, where middleware looks).
    /// Returns where the new container now is.
    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, TokenError>;
}

/// DigestInfo prefix (RFC 8017 §9.2 note 1) for a PKCS#1 v1.5 signature over `digest`, shared
/// by the backends that sign padded hashes (PIV, PKCS#11 `CKM_RSA_PKCS`).
#[cfg(feature = "pkcs11")]
pub(crate) fn piv_digest_info(digest: crate::cmc::DigestAlgorithm) -> &'static [u8] {
    piv::digest_info_prefix(digest)
}
