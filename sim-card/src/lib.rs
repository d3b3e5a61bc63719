//! The virtual smart card: a PIV applet (ISO 7816-4 APDUs, NIST SP 800-73-4 subset plus the
//! YubiKey extensions real tools use) over a card model with PIN/PUK retry counters, a
//! management key (3DES or AES-192), finite key slots (9A/9C/9D/9E and retired 82–95), data
//! objects and a deterministic fault plan.
//!
//! It is a card, not a client: it is driven by APDUs, in-process ([`card::SimCard`]) or by
//! pcscd through vsmartcard's vpcd ([`vpcd`]), exactly as a host drives a real card.
#![forbid(unsafe_code)]

pub mod apdu;
pub mod applet;
pub mod attestation;
pub mod card;
pub mod crypto;
pub mod faults;
pub mod harness;
pub mod objects;
pub mod state;
pub mod sw;
pub mod tlv;
pub mod touch;
pub mod vpcd;

pub use applet::PivApplet;
pub use card::{CardRemoved, SimCard};
pub use faults::{CommandKind, Fault, FaultPlan, Rule};
pub use state::{CardConfig, CardState};
