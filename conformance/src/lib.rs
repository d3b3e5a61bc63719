//! The conformance suite and its runner: the scenario matrix (card policy x CA disposition x
//! fault x crash point), properties, snapshots, real-path tests and reports.
//!
//! Today: [`harness`], the in-process fixture the end-to-end tests use — a sim-ca served over
//! loopback mutual TLS, a sim-card behind the PIV token backend, a provisioned certificate,
//! and the invariant checks ("exactly one valid certificate, no orphan container"). The
//! runner (`conformance run`) lands with the conformance issue.
#![forbid(unsafe_code)]

pub mod harness;
pub mod interop;
pub mod load;
pub mod matrix;
pub mod phases;
pub mod report;
pub mod runner;
pub mod scenario_file;
pub mod softhsm;
pub mod trace;
