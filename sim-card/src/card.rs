//! The in-process card: the applet behind a fault plan, a virtual clock and an APDU log. This
//! is one of the two transports (the other is [`crate::vpcd`]).

use crate::{
    apdu::{Command, Response},
    applet::PivApplet,
    faults::{Fault, FaultPlan, VirtualClock},
    state::CardState,
};

/// The host lost the card (pulled, reader gone).
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("card removed")]
pub struct CardRemoved;

/// One exchanged APDU, for transcripts.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct LogEntry {
    /// INS byte.
    pub ins: u8,
    /// P1, P2.
    pub p1p2: (u8, u8),
    /// Command data length.
    pub lc: usize,
    /// Status word answered (None: the card was removed).
    pub sw: Option<u16>,
    /// Virtual time after the command.
    pub at_ms: u64,
}

/// A simulated card in a simulated reader.
pub struct SimCard {
    applet: PivApplet,
    faults: FaultPlan,
    clock: VirtualClock,
    removed: bool,
    log: Vec<LogEntry>,
}

impl SimCard {
    /// A card with no faults.
    pub fn new(applet: PivApplet) -> Self {
        Self::with_faults(applet, FaultPlan::default())
    }

    /// A card with a fault plan.
    pub fn with_faults(applet: PivApplet, faults: FaultPlan) -> Self {
        Self {
            applet,
            faults,
            clock: VirtualClock::default(),
            removed: false,
            log: Vec::new(),
        }
    }

    /// Sends one APDU. A removed card (by a fault or [`Self::remove`]) fails every exchange
    /// until [`Self::reinsert`].
    pub fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, CardRemoved> {
        if self.removed {
            return Err(CardRemoved);
        }
        let Ok(cmd) = Command::parse(apdu) else {
            return Ok(self.applet.process_bytes(apdu));
        };
        let rsa = self.uses_rsa(&cmd);
        self.clock.now_ms += VirtualClock::cost_ms(&cmd, rsa);
        let fault = self.faults.on_command(&cmd);
        let response = match fault {
            Some(Fault::RemoveBefore) => {
                self.removed = true;
                None
            }
            Some(Fault::Fail(sw)) => Some(Response::status(sw)),
            Some(Fault::RemoveAfter) => {
                let _ = self.applet.process(&cmd);
                self.removed = true;
                None
            }
            Some(Fault::Delay(ms)) => {
                self.clock.now_ms += ms;
                Some(self.applet.process(&cmd))
            }
            None => Some(self.applet.process(&cmd)),
        };
        self.log.push(LogEntry {
            ins: cmd.ins,
            p1p2: (cmd.p1, cmd.p2),
            lc: cmd.data.len(),
            sw: response.as_ref().map(|r| r.sw),
            at_ms: self.clock.now_ms,
        });
        response.map(|r| r.to_bytes()).ok_or(CardRemoved)
    }

    fn uses_rsa(&self, cmd: &Command) -> bool {
        use crate::state::KeyAlgorithm;
        let rsa = |id: u8| KeyAlgorithm::from_id(id).is_some_and(KeyAlgorithm::is_rsa);
        rsa(cmd.p1)
            || cmd
                .data
                .windows(3)
                .any(|w| w[..2] == [0x80, 0x01] && rsa(w[2]))
    }

    /// Pulls the card out.
    pub fn remove(&mut self) {
        self.removed = true;
    }

    /// Puts it back: a fresh session (nothing selected, PIN not verified), same state.
    pub fn reinsert(&mut self) {
        self.removed = false;
        self.applet.reset();
    }

    /// Whether the card is out.
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Replaces the fault plan.
    pub fn set_faults(&mut self, faults: FaultPlan) {
        self.faults = faults;
    }

    /// The virtual clock.
    pub fn clock(&self) -> VirtualClock {
        self.clock
    }

    /// The APDU log.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }

    /// The card's state (what a state file would hold).
    pub fn state(&self) -> &CardState {
        self.applet.state()
    }

    /// The applet, for provisioning and fault setup (e.g. blocking the PIN).
    pub fn applet_mut(&mut self) -> &mut PivApplet {
        &mut self.applet
    }
}
