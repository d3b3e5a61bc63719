//! CMC / certs-only response parse and signer check (what the client runs on a CA's answer).
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::cmc::{Limits, parse_response};

fuzz_target!(|data: &[u8]| {
    if let Ok(resp) = parse_response(data, &Limits::default()) {
        let _ = resp.verify_signer();
    }
});
