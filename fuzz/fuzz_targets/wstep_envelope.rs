//! MS-WSTEP and MS-XCEP envelopes (what sim-ca's CES and CEP endpoints, and the clients of
//! both, read from the network): any bytes, no panic, bounded work.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::{
    wstep::{XmlLimits, parse_answer, parse_request},
    xcep,
};

fuzz_target!(|data: &[u8]| {
    let limits = XmlLimits::default();
    let _ = parse_request(data, &limits);
    let _ = parse_answer(data, &limits);
    let _ = xcep::parse_request(data, &limits);
    let _ = xcep::parse_response(data, &limits);
});
