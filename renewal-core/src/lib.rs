//! `renewal_core`: smart-card certificate renewal over the internet.
//!
//! This crate is the protocol library behind the `renew` CLI. Today it holds the CMC codec
//! ([`cmc`]: RFC 5272 with Microsoft certenroll compatibility, pure, no I/O), a small X.509
//! issuing helper ([`x509`]) that the simulators and tests share, and the `renew inspect` /
//! `renew build-request` front end ([`inspect`]). The `Token` / `PinSource` traits, the renewal
//! processor and the transports are added by later work (see the README's roadmap).
#![forbid(unsafe_code)]

pub mod agent;
pub mod client;
pub mod cmc;
pub mod inspect;
pub mod sample;
pub mod token;
pub mod x509;
