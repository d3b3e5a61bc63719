//! The second transport: serving the card to pcscd through vsmartcard's `vpcd` (loopback TCP)
//! with the `vpicc` crate. State is saved after every command that changed it, so the card
//! survives a process restart.

use std::{net::ToSocketAddrs, path::PathBuf, time::Duration};

use crate::applet::PivApplet;

/// A card served to vpcd, persisting to `state_file` when set.
pub struct VpcdCard {
    applet: PivApplet,
    state_file: Option<PathBuf>,
}

impl VpcdCard {
    /// Wraps an applet.
    pub fn new(applet: PivApplet, state_file: Option<PathBuf>) -> Self {
        Self { applet, state_file }
    }
}

/// A YubiKey 5's answer to reset (the CCID interface): T=1, historical bytes ending in the
/// ASCII "YubiKey" — what OpenSC and pcscd see of a real one, and how OpenSC's PIV driver
/// recognises a YubiKey (then asks its version and serial with the Yubico extensions).
pub const YUBIKEY_5_ATR: [u8; 23] = [
    0x3B, 0xFD, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15, 0x80, 0x73, 0xC0, 0x21, 0xC0, 0x57, 0x59,
    0x75, 0x62, 0x69, 0x4B, 0x65, 0x79, 0x40,
];

/// A plain PIV card's answer to reset: T=1, historical bytes "PIVcard" (no "YubiKey": OpenSC
/// treats it as a generic PIV card and asks it nothing of Yubico's).
pub const PIV_ATR: [u8; 13] = [
    0x3B, 0x88, 0x80, 0x01, 0x50, 0x49, 0x56, 0x63, 0x61, 0x72, 0x64, 0x00, 0x52,
];

impl vpicc::VSmartCard for VpcdCard {
    fn atr(&self) -> &[u8] {
        match self.applet.state().model {
            crate::state::CardModel::Piv => &PIV_ATR,
            _ => &YUBIKEY_5_ATR,
        }
    }

    fn power_on(&mut self) {
        self.applet.reset();
    }

    fn power_off(&mut self) {
        self.applet.reset();
    }

    fn reset(&mut self) {
        self.applet.reset();
    }

    fn execute(&mut self, msg: &[u8]) -> Vec<u8> {
        let reply = self.applet.process_bytes(msg);
        if self.applet.take_dirty()
            && let Some(path) = &self.state_file
            && let Err(e) = self.applet.state().save(path)
        {
            // The card answered; a state file that cannot be written is reported, and the
            // next change will try again.
            eprintln!("sim-card: {e}");
        }
        reply
    }
}

/// Connects to vpcd at `addr` and serves until `stop()` returns true, reconnecting when pcscd
/// goes away (pcscd restarts drop the socket).
pub fn serve<A: ToSocketAddrs + std::fmt::Display + Clone>(
    card: &mut VpcdCard,
    addr: A,
    stop: impl Fn() -> bool,
) {
    serve_with(card, addr, stop, &std::sync::Mutex::new(None));
}

/// [`serve`], leaving a handle on the live connection in `live` so the owner can close it
/// (the card leaves the reader at once, and it is this side that closes first: vpcd's port is
/// not left in TIME_WAIT for the next pcscd).
pub fn serve_with<A: ToSocketAddrs + std::fmt::Display + Clone>(
    card: &mut VpcdCard,
    addr: A,
    stop: impl Fn() -> bool,
    live: &std::sync::Mutex<Option<std::net::TcpStream>>,
) {
    while !stop() {
        // Small request/response messages: without TCP_NODELAY each answer can wait for a
        // delayed ACK.
        let stream = std::net::TcpStream::connect(addr.clone()).and_then(|s| {
            s.set_nodelay(true)?;
            Ok(s)
        });
        if let (Ok(s), Ok(mut slot)) = (&stream, live.lock()) {
            *slot = s.try_clone().ok();
        }
        match stream.map(vpicc::Connection::from) {
            Ok(connection) => {
                if let Err(e) = connection.run(card) {
                    eprintln!("sim-card: vpcd connection ended: {e}; reconnecting");
                }
            }
            Err(e) => {
                eprintln!("sim-card: cannot reach vpcd at {addr}: {e}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
