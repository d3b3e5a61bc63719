//! CMC request parse + verify (what a CA runs on every request body): any bytes, no panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::cmc::{Limits, parse_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_request(data, &Limits::default()) {
        let _ = parsed.verify();
        let _ = parsed.signer_reports();
    }
});
