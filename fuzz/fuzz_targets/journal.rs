//! The journal reader on a corrupted journal: records or a line number, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use renewal_client::client::journal::parse_records;

fuzz_target!(|data: &[u8]| {
    if let Err(line) = parse_records(data) {
        assert!(line >= 1);
    }
});
