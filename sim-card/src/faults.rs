//! Deterministic faults: a list of rules evaluated in order, first match wins, each matching
//! the n-th command of a kind and returning a verdict. Slowness is virtual time, never sleep.

use std::collections::BTreeMap;

use crate::apdu::Command;

/// Kinds of command a rule can match.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd)]
pub enum CommandKind {
    /// Any command.
    Any,
    /// SELECT.
    Select,
    /// GET DATA.
    GetData,
    /// PUT DATA.
    PutData,
    /// VERIFY.
    Verify,
    /// GENERATE ASYMMETRIC KEY PAIR.
    Generate,
    /// GENERAL AUTHENTICATE with a key slot (signing).
    Sign,
    /// GENERAL AUTHENTICATE with the management key.
    ManagementAuth,
    /// MOVE / DELETE KEY.
    MoveKey,
    /// Anything else.
    Other,
}

impl CommandKind {
    /// The kind of a command.
    pub fn of(cmd: &Command) -> Self {
        use crate::applet::ins;
        match cmd.ins {
            ins::SELECT => Self::Select,
            ins::GET_DATA => Self::GetData,
            ins::PUT_DATA => Self::PutData,
            ins::VERIFY => Self::Verify,
            ins::GENERATE => Self::Generate,
            ins::GENERAL_AUTHENTICATE if cmd.p2 == crate::objects::MANAGEMENT_KEY => {
                Self::ManagementAuth
            }
            ins::GENERAL_AUTHENTICATE => Self::Sign,
            ins::MOVE_KEY => Self::MoveKey,
            _ => Self::Other,
        }
    }
}

/// What happens to a matched command.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Fault {
    /// The card answers this status word without executing the command.
    Fail(u16),
    /// The card is pulled before the command reaches it: nothing happens, the host sees a
    /// transport error.
    RemoveBefore,
    /// The card executes the command, then is pulled before the answer: the effect happened,
    /// the host sees a transport error.
    RemoveAfter,
    /// The command takes this many extra virtual milliseconds.
    Delay(u64),
}

/// One rule: the `nth` (1-based) command of `kind` gets `fault`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Rule {
    /// Which commands count.
    pub kind: CommandKind,
    /// Which occurrence (1 = first).
    pub nth: u32,
    /// What happens.
    pub fault: Fault,
}

/// The rules and the per-kind counters.
#[derive(Clone, Debug, Default)]
pub struct FaultPlan {
    rules: Vec<Rule>,
    seen: BTreeMap<CommandKind, u32>,
}

impl FaultPlan {
    /// A plan from rules (evaluated in this order).
    pub fn new(rules: Vec<Rule>) -> Self {
        Self {
            rules,
            seen: BTreeMap::new(),
        }
    }

    /// Counts `cmd` and returns the first matching fault.
    pub fn on_command(&mut self, cmd: &Command) -> Option<Fault> {
        let kind = CommandKind::of(cmd);
        let n = {
            let c = self.seen.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        let any = {
            let c = self.seen.entry(CommandKind::Any).or_insert(0);
            *c += 1;
            *c
        };
        self.rules.iter().find_map(|r| {
            let count = if r.kind == CommandKind::Any { any } else { n };
            (r.kind == kind || r.kind == CommandKind::Any)
                .then_some(())
                .filter(|()| r.nth == count)
                .map(|()| r.fault)
        })
    }
}

/// Virtual time: how long operations would take on a real card (RSA-2048 generation takes
/// seconds), advanced instead of slept.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct VirtualClock {
    /// Milliseconds elapsed.
    pub now_ms: u64,
}

impl VirtualClock {
    /// Typical duration of a command on a contact card (measured orders of magnitude).
    pub fn cost_ms(cmd: &Command, rsa: bool) -> u64 {
        match CommandKind::of(cmd) {
            CommandKind::Generate if rsa => 6_000,
            CommandKind::Generate => 250,
            CommandKind::Sign if rsa => 400,
            CommandKind::Sign => 120,
            CommandKind::PutData => 60,
            _ => 15,
        }
    }
}
