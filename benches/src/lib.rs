//! Criterion benchmarks for cardrenew: CMC build, encode, parse and verify (see `benches/cmc.rs`).
//! The library part is empty; the benchmarks live under `benches/`.
#![forbid(unsafe_code)]
