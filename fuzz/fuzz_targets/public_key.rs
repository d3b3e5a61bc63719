//! The key parser every decision goes through: parse, re-encode, parse again — the canonical
//! form must be a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::cmc::PublicKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki_der(data) {
        let again = PublicKey::from_spki(&key.to_spki()).expect("canonical form parses");
        assert_eq!(key, again, "canonical re-encoding changed the key");
        assert_eq!(key.fingerprint(), again.fingerprint());
    }
});
