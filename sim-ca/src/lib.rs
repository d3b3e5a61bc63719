//! The renewal gateway and mock CA: HTTPS with client-certificate authentication, EST and RFC 5273
//! endpoints, a strict renewal-only policy, scripted dispositions and faults, durable SQLite state.
//!
//! Status: skeleton. The CA lands with the sim-ca issue; it will use `renewal_core::cmc` for
//! every byte it parses or produces.
#![forbid(unsafe_code)]
