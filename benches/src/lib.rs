//! Criterion benchmarks for cardrenew: CMC build, encode, parse and verify (`benches/cmc.rs`);
//! a whole renewal over loopback mutual TLS and OpenSSL as a peer in the same run
//! (`benches/renewal.rs`).
//! The library part is empty; the benchmarks live under `benches/`.
#![forbid(unsafe_code)]
