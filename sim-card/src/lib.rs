//! The virtual smart card: a PIV applet (ISO 7816-4 APDUs, NIST SP 800-73-4 subset) over a card
//! model with a PIN retry counter, finite key containers and a deterministic fault plan, reached
//! in-process or by pcscd through vsmartcard's vpcd.
//!
//! Status: skeleton. The applet lands with the sim-card issue; the crate exists now so the
//! workspace has its final shape and every later change is additive.
#![forbid(unsafe_code)]
