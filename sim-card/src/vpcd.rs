//! The second transport: serving the card to pcscd through vsmartcard's `vpcd` (loopback TCP),
//! the card behind `vpicc`'s [`VSmartCard`](vpicc::VSmartCard) trait. State is saved after every
//! command that changed it, so the card survives a process restart.

use std::{
    io::{self, Read, Write},
    net::{TcpStream, ToSocketAddrs},
    path::PathBuf,
    time::Duration,
};

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
        match stream {
            Ok(stream) => {
                if let Err(e) = serve_connection(stream, card) {
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

/// Serves one connection from vpcd until vpcd closes it or sends what the protocol does not
/// allow.
///
/// The protocol (vsmartcard's, as `vpicc::Connection` speaks it): every message is a 2-byte
/// big-endian length and that many bytes; a 1-byte message is the reader's command (0 power
/// off, 1 power on, 2 reset, 4 the ATR, answered), anything longer an APDU, answered in the
/// same framing. vpicc's loop is not used for one step it cannot take: vpcd writes a message's
/// length and its body in two sends without `TCP_NODELAY`, so the body waits (Nagle) for the
/// length's ACK, and Linux delays that ACK by ~40 ms on a connection that answers what it
/// receives. Measured through pcscd with vpicc's loop: 43 ms per APDU, 4.4 s for
/// `pkcs11-tool --list-objects` with Yubico's module, 2.1 s for `ykman piv info` (0.3 s now,
/// mostly Python's start). Here the ACK is asked for as the length is read.
pub fn serve_connection(
    mut stream: TcpStream,
    card: &mut impl vpicc::VSmartCard,
) -> io::Result<()> {
    loop {
        let message = read_message(&mut stream)?;
        match message.as_slice() {
            [] => return Err(malformed("vpcd sent an empty message")),
            [0] => card.power_off(),
            [1] => card.power_on(),
            [2] => card.reset(),
            [4] => write_message(&mut stream, card.atr())?,
            [command] => {
                return Err(malformed(&format!(
                    "vpcd sent the unknown reader command {command}"
                )));
            }
            apdu => {
                let answer = card.execute(apdu);
                write_message(&mut stream, &answer)?;
            }
        }
    }
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// One message: its length, acknowledged at once (see [`serve_connection`]), then its body.
fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    acknowledge_now(stream);
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

/// Sends the ACK Linux would delay (`TCP_QUICKACK`). Only the latency depends on it: a
/// failure is not the connection's.
fn acknowledge_now(stream: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = stream;
}

/// An answer in vpcd's framing, in one write (one segment: the socket has `TCP_NODELAY`).
fn write_message(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    let length = u16::try_from(data.len()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "an answer longer than vpcd's framing carries (65,535 bytes)",
        )
    })?;
    let mut framed = Vec::with_capacity(2 + data.len());
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(data);
    stream.write_all(&framed)
}

#[cfg(test)]
mod tests {
    // Tests unwrap: a panic with the value is the failure report.
    #![allow(clippy::unwrap_used)]

    use std::net::TcpListener;

    use super::*;
    use crate::state::CardConfig;

    /// A card that notes what the reader asked of it and answers an APDU with its bytes
    /// reversed (or with more than the framing carries).
    #[derive(Default)]
    struct Noting {
        heard: Vec<String>,
        oversized_answer: bool,
    }

    impl vpicc::VSmartCard for Noting {
        fn atr(&self) -> &[u8] {
            &[0x3B, 0x00]
        }
        fn power_on(&mut self) {
            self.heard.push("power on".into());
        }
        fn power_off(&mut self) {
            self.heard.push("power off".into());
        }
        fn reset(&mut self) {
            self.heard.push("reset".into());
        }
        fn execute(&mut self, apdu: &[u8]) -> Vec<u8> {
            self.heard.push(format!("APDU {apdu:02X?}"));
            if self.oversized_answer {
                return vec![0; 70_000];
            }
            apdu.iter().rev().copied().collect()
        }
    }

    /// Serves `card` on a loopback connection whose other end, playing vpcd, runs `vpcd`
    /// and then closes: what `serve_connection` returned.
    fn serve(
        card: &mut impl vpicc::VSmartCard,
        vpcd: impl FnOnce(&mut TcpStream) + Send + 'static,
    ) -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let card_side = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut vpcd_side, _) = listener.accept().unwrap();
        let driver = std::thread::spawn(move || vpcd(&mut vpcd_side));
        let served = serve_connection(card_side, card);
        driver.join().unwrap();
        served
    }

    /// vpcd's way of sending: the length, then the body, in two writes.
    fn send(vpcd: &mut TcpStream, message: &[u8]) {
        let length = u16::try_from(message.len()).unwrap().to_be_bytes();
        vpcd.write_all(&length).unwrap();
        vpcd.write_all(message).unwrap();
    }

    fn receive(vpcd: &mut TcpStream) -> Vec<u8> {
        let mut length = [0u8; 2];
        vpcd.read_exact(&mut length).unwrap();
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        vpcd.read_exact(&mut answer).unwrap();
        answer
    }

    #[test]
    fn reader_commands_and_apdus_are_answered_in_vpcds_framing() {
        let mut card = Noting::default();
        let served = serve(&mut card, |vpcd| {
            send(vpcd, &[1]);
            send(vpcd, &[4]);
            assert_eq!(receive(vpcd), [0x3B, 0x00]);
            send(vpcd, &[0x00, 0xA4, 0x04]);
            assert_eq!(receive(vpcd), [0x04, 0xA4, 0x00]);
            send(vpcd, &[2]);
            send(vpcd, &[0]);
        });
        // vpcd closing the connection ends it.
        assert_eq!(served.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            card.heard,
            ["power on", "APDU [00, A4, 04]", "reset", "power off"]
        );
    }

    #[test]
    fn an_unknown_reader_command_ends_the_connection_with_its_reason() {
        let mut card = Noting::default();
        let served = serve(&mut card, |vpcd| send(vpcd, &[3]));
        let error = served.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("unknown reader command 3"),
            "{error}"
        );
        assert!(card.heard.is_empty());
    }

    #[test]
    fn an_empty_message_ends_the_connection_with_its_reason() {
        let mut card = Noting::default();
        let served = serve(&mut card, |vpcd| send(vpcd, &[]));
        let error = served.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(error.to_string().contains("empty message"), "{error}");
    }

    #[test]
    fn a_message_cut_short_never_reaches_the_card() {
        let mut card = Noting::default();
        let served = serve(&mut card, |vpcd| {
            vpcd.write_all(&[0x00, 0x05, 0x00, 0xA4]).unwrap();
        });
        assert_eq!(served.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(card.heard.is_empty());
    }

    #[test]
    fn an_answer_longer_than_the_framing_carries_is_an_error_not_a_truncation() {
        let mut card = Noting {
            oversized_answer: true,
            ..Noting::default()
        };
        let served = serve(&mut card, |vpcd| {
            send(vpcd, &[0x00, 0xCA, 0x3F, 0xFF]);
            // Nothing comes back: the connection ends.
            let mut byte = [0u8; 1];
            assert_eq!(vpcd.read(&mut byte).unwrap(), 0);
        });
        assert_eq!(served.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn the_piv_card_answers_select_through_the_connection() {
        let applet = PivApplet::new(&CardConfig::default()).unwrap();
        let mut card = VpcdCard::new(applet, None);
        let served = serve(&mut card, |vpcd| {
            send(vpcd, &[1]);
            send(vpcd, &[4]);
            assert_eq!(receive(vpcd), YUBIKEY_5_ATR);
            // SELECT the PIV application (NIST SP 800-73-4 AID A0 00 00 03 08).
            send(
                vpcd,
                &[
                    0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
                ],
            );
            let answer = receive(vpcd);
            assert_eq!(answer[answer.len() - 2..], [0x90, 0x00], "{answer:02X?}");
            // The application property template (tag 61) with the PIV AID.
            assert_eq!(answer[0], 0x61, "{answer:02X?}");
        });
        assert_eq!(served.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
