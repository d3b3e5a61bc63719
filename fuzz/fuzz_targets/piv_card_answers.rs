//! A hostile card behind the PIV backend: every answer comes from the fuzzer (length byte,
//! then the bytes). Listing, generating, signing, installing and deleting must end in a typed
//! error or a result, never a panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use renewal_client::{
    cmc::SignatureAlgorithm,
    token::{
        ContainerId, KeyAlgorithm, Token, TokenError,
        pin::StaticPin,
        piv::{ApduTransport, ManagementKey, PivToken},
    },
};

struct Hostile<'a> {
    answers: &'a [u8],
}

impl ApduTransport for Hostile<'_> {
    fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, TokenError> {
        let Some((&len, tail)) = self.answers.split_first() else {
            return Err(TokenError::Removed("no more answers".into()));
        };
        let len = usize::from(len).min(tail.len());
        let (answer, rest) = tail.split_at(len);
        self.answers = rest;
        Ok(answer.to_vec())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ops, answers)) = data.split_first() else {
        return;
    };
    let mut token = PivToken::new(
        Hostile { answers },
        Arc::new(StaticPin::new("123456")),
        // Whatever the card says: its PIVMAN flags, protected key and metadata are hostile too.
        ManagementKey::Auto,
    );
    let slot = ContainerId("9a".into());
    let _ = token.containers();
    let _ = token.capacity();
    let _ = token.info();
    if ops & 1 == 1 {
        let _ = token.generate(if ops & 2 == 2 {
            KeyAlgorithm::Rsa2048
        } else {
            KeyAlgorithm::EcP256
        });
    }
    if ops & 4 == 4 {
        let _ = token.sign(&slot, SignatureAlgorithm::ECDSA_SHA256, b"message");
    }
    if ops & 8 == 8 {
        let _ = token.install_certificate(&slot, &[0x30, 0x03, 0x02, 0x01, 0x01]);
    }
    if ops & 16 == 16 {
        let _ = token.delete(&slot);
    }
    if ops & 32 == 32 {
        let _ = token.supersede(&slot, &ContainerId("82".into()));
    }
});
