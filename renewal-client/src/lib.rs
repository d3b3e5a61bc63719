//! `renewal_client`: smart-card certificate renewal over the internet.
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
pub mod token;

/// The wire formats live in their own crate; re-exported so that `renewal_client::cmc` and the
/// client's own paths keep naming them.
pub use renewal_codec::{cmc, cmp, inspect, sample, wstep, x509, xcep};
