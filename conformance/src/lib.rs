//! The conformance suite and its runner: the scenario matrix (card policy x CA disposition x
//! fault x crash point), properties, snapshots, real-path tests and reports.
//!
//! Status: skeleton. The runner lands with the conformance issue.
#![forbid(unsafe_code)]
