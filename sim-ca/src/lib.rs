//! The renewal gateway and mock CA: strict like a real CA — it issues nothing but a renewal of
//! the certificate that presents itself — and able to misbehave on demand like a real CA and
//! network.
//!
//! * [`service::Ca`]: the decision logic, callable in-process (request + TLS identity + store
//!   + scenario → answer).
//! * [`policy`]: the renewal-only checks and the one table mapping rejections to CMC fail
//!   info, ADCS HRESULTs and HTTP statuses.
//! * [`scenario`]: TOML scenarios — templates, rules (first match wins), dispositions, faults.
//! * [`store`]: SQLite (WAL), made durable by a group commit ([`durability`]): concurrent
//!   decisions share an fsync, and none is answered before its commit is on disk.
//! * [`http`]: EST (`/.well-known/est/cacerts`, `/simplereenroll`, `/fullcmc`) and RFC 5273
//!   (`/cmc`) over rustls with required client certificates, plus a loopback admin listener.
#![forbid(unsafe_code)]

pub mod authority;
pub mod backend;
pub mod cep;
pub mod ces;
pub mod clock;
mod cmp_answer;
mod cmp_intake;
mod cmp_nonce;
mod desk;
pub mod durability;
mod error;
pub mod gateway;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod scenario;
pub mod service;
pub mod store;
pub mod templates;

pub use error::Error;
pub use service::Ca;
