//! `renewal_core`: smart-card certificate renewal over the internet.
//!
//! This crate is the protocol library behind the `renew` CLI. Today it holds the CMC codec
//! ([`cmc`]: RFC 5272 with Microsoft certenroll compatibility, pure, no I/O), a small X.509
//! issuing helper ([`x509`]) that the simulators and tests share, and the `renew inspect` /
//! `renew build-request` front end ([`inspect`]), the tokens ([`token`]), the renewal client
//! and its transports ([`client`]), the MS-WSTEP envelopes ([`wstep`]) and the agent
//! ([`agent`]).
#![forbid(unsafe_code)]

pub mod agent;
pub mod client;
pub mod cmc;
pub mod inspect;
pub mod sample;
pub mod token;
pub mod wstep;
pub mod x509;
pub mod xcep;
