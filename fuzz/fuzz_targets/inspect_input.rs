//! `renew inspect`: input detection (DER, PEM, base64), every structure it recognises, and
//! both renderings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_codec::{cmc::Limits, inspect::inspect};

fuzz_target!(|data: &[u8]| {
    if let Ok(found) = inspect(data, &Limits::default()) {
        let _ = found.tree.render();
        let _ = found.to_json();
    }
});
