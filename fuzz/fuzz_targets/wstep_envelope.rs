//! MS-WSTEP envelopes (what sim-ca's CES endpoint and the wstep client read from the network):
//! any bytes, no panic, bounded work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::wstep::{XmlLimits, parse_answer, parse_request};

fuzz_target!(|data: &[u8]| {
    let _ = parse_request(data, &XmlLimits::default());
    let _ = parse_answer(data, &XmlLimits::default());
});
