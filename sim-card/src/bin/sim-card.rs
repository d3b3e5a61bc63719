//! `sim-card`: provision and serve the virtual PIV card (CLI lands with the next commit).
#![forbid(unsafe_code)]
fn main() {}
