//! The nonces a desk sends in a CMP transaction, and the check that a client's next message
//! (`pollReq`, `certConf`) answers one of them.
//!
//! RFC 4210 §5.1.1 and RFC 9483 §3.1 chain a transaction's messages by nonces: each message's
//! `recipNonce` is the `senderNonce` of the message it answers, and the receiver refuses a
//! message whose `recipNonce` it did not send (`badRecipientNonce`, RFC 9483 §3.5). Without the
//! check, a follow-up need not have seen any answer of ours: a `certConf` or `pollReq` made
//! before the transaction was answered, or for another one, would be taken.
//!
//! A nonce here is 16 random bytes followed by the first 16 bytes of HMAC-SHA-256, under a key
//! kept in the state database, over the transaction's ledger key (which names the renewed
//! certificate and the transactionID) and those random bytes. So the desk recognises any nonce
//! it sent in *this* transaction without writing one per answer:
//!
//! - no write on the decision's path, and nothing to prune;
//! - every instance on one PostgreSQL database, and the same instance after a restart, shares
//!   the key and recognises the others' nonces;
//! - a client whose last answer was lost in transit (the connection dropped after the decision,
//!   a fault this project injects) retries with the nonce it did receive, and is served. RFC
//!   4210 names the *previous* message's nonce; accepting an earlier answer of the same
//!   transaction is the deliberate difference, and it lets in nothing the client had not
//!   already been sent.

use aws_lc_rs::{
    constant_time::verify_slices_are_equal,
    hmac,
    rand::{SecureRandom, SystemRandom},
};

/// Random bytes at the start of a nonce (RFC 9483 §3.1: at least 128 bits).
const RANDOM_LEN: usize = 16;
/// Bytes of the tag after them.
const TAG_LEN: usize = 16;
/// The length of every nonce this desk sends.
pub(crate) const NONCE_LEN: usize = RANDOM_LEN + TAG_LEN;

/// The key that binds a desk's nonces to their transactions (cheap to clone).
#[derive(Clone)]
pub(crate) struct NonceKey(hmac::Key);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

impl NonceKey {
    /// The key from its stored secret.
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// A fresh nonce for an answer in the transaction `transaction_key`.
    pub(crate) fn mint(&self, transaction_key: &str) -> [u8; NONCE_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        // The system's generator does not fail on Linux; were it to, the nonce would still be
        // bound to its transaction by the tag.
        let _ = SystemRandom::new().fill(&mut nonce[..RANDOM_LEN]);
        let tag = self.tag(transaction_key, &nonce[..RANDOM_LEN]);
        nonce[RANDOM_LEN..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        nonce
    }

    /// Whether `nonce` (a follow-up's recipNonce) is one this desk sent in `transaction_key`.
    pub(crate) fn vouches(&self, transaction_key: &str, nonce: Option<&[u8]>) -> bool {
        let Some(nonce) = nonce.filter(|n| n.len() == NONCE_LEN) else {
            return false;
        };
        let (random, tag) = nonce.split_at(RANDOM_LEN);
        let expected = self.tag(transaction_key, random);
        verify_slices_are_equal(&expected.as_ref()[..TAG_LEN], tag).is_ok()
    }

    /// HMAC over the transaction key, length-prefixed so that no two (key, random) pairs
    /// share an input, and the random bytes.
    fn tag(&self, transaction_key: &str, random: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        let len = u64::try_from(transaction_key.len()).unwrap_or(u64::MAX);
        context.update(b"cardrenew cmp nonce v1");
        context.update(&len.to_be_bytes());
        context.update(transaction_key.as_bytes());
        context.update(random);
        context.sign()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_nonce_is_recognised_in_its_transaction_only() {
        let key = NonceKey::new(&[1; 32]);
        let nonce = key.mint("cert-a|cmp:01");
        assert!(key.vouches("cert-a|cmp:01", Some(&nonce)));
        assert!(
            !key.vouches("cert-a|cmp:02", Some(&nonce)),
            "another transaction"
        );
        assert!(
            !key.vouches("cert-b|cmp:01", Some(&nonce)),
            "another user's"
        );
        assert!(!NonceKey::new(&[2; 32]).vouches("cert-a|cmp:01", Some(&nonce)));
        assert!(!key.vouches("cert-a|cmp:01", None));
        assert!(
            !key.vouches("cert-a|cmp:01", Some(&nonce[..16])),
            "truncated"
        );
        let extended = [nonce.as_slice(), &[0]].concat();
        assert!(
            !key.vouches("cert-a|cmp:01", Some(&extended)),
            "a trailing byte"
        );
        for i in 0..NONCE_LEN {
            let mut flipped = nonce;
            flipped[i] ^= 1;
            assert!(
                !key.vouches("cert-a|cmp:01", Some(&flipped)),
                "byte {i} flipped"
            );
        }
    }

    #[test]
    fn two_nonces_differ() {
        let key = NonceKey::new(&[1; 32]);
        assert_ne!(key.mint("t"), key.mint("t"));
    }
}
