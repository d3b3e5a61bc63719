//! `renew`: the renewal client CLI (placeholder until the inspect/build-request commands land).
#![forbid(unsafe_code)]
fn main() {}
