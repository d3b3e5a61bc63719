//! `renewal_codec`: the wire formats of smart-card certificate renewal, and nothing else.
//!
//! What a renewal puts on the wire and what comes back, built, parsed and verified as values:
//! the CMC codec ([`cmc`]: RFC 5272/6402 with Microsoft certenroll compatibility — PKIData,
//! PKIResponse, CMS SignedData that keeps received bytes, PKCS#10, key attestation, the
//! acceptance profiles and their findings), a small X.509 issuing and name-comparison helper
//! ([`x509`]) that the CA simulator and the tests share, a deterministic sample PKI
//! ([`sample`]), the MS-WSTEP and MS-XCEP SOAP envelopes ([`wstep`], [`xcep`]) and the
//! human- and JSON-readable decoding behind `renew inspect` ([`inspect`]).
//!
//! No I/O and no async runtime: this is the crate a developer benchmarking CMC encoding, a
//! fuzz target or a server that only checks requests depends on. Signing goes through the
//! [`cmc::Signer`] trait, which a smart card, a PKCS#11 token or a software key implements.
#![forbid(unsafe_code)]

pub mod cmc;
pub mod cmp;
pub mod inspect;
pub mod sample;
pub mod wstep;
pub mod x509;
pub mod xcep;
