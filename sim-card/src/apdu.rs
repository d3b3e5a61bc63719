//! ISO 7816-4 command and response APDUs: parsing at the boundary, so the applet only sees
//! typed commands.

/// A parsed command APDU (short or extended length).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Command {
    /// Class byte (bit 0x10: command chaining, more to come).
    pub cla: u8,
    /// Instruction.
    pub ins: u8,
    /// Parameter 1.
    pub p1: u8,
    /// Parameter 2.
    pub p2: u8,
    /// Command data (empty when Lc is absent).
    pub data: Vec<u8>,
    /// Expected response length: `None` when Le is absent, `Some(n)` with 0 already mapped to
    /// 256 (short) or 65536 (extended).
    pub le: Option<usize>,
}

/// Why bytes are not a command APDU.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum ApduError {
    /// Fewer than four header bytes.
    #[error("APDU shorter than its 4-byte header")]
    TooShort,
    /// Lc/Le do not add up with the length.
    #[error("APDU length fields do not match its size")]
    BadLength,
}

impl Command {
    /// Whether the chaining bit is set (ISO 7816-4 §5.1.1).
    pub fn is_chained(&self) -> bool {
        self.cla & 0x10 != 0
    }

    /// Parses the four ISO 7816-4 cases in short and extended form.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let [cla, ins, p1, p2, body @ ..] = bytes else {
            return Err(ApduError::TooShort);
        };
        let (data, le) = match body {
            [] => (vec![], None),
            [le] => (vec![], Some(if *le == 0 { 256 } else { usize::from(*le) })),
            [0, hi, lo] => {
                let n = usize::from(u16::from_be_bytes([*hi, *lo]));
                (vec![], Some(if n == 0 { 65536 } else { n }))
            }
            [0, hi, lo, rest @ ..] if rest.len() >= 2 || (*hi, *lo) != (0, 0) => {
                // Extended Lc.
                let lc = usize::from(u16::from_be_bytes([*hi, *lo]));
                match rest.len().checked_sub(lc) {
                    Some(0) => (rest.to_vec(), None),
                    Some(2) => {
                        let n = usize::from(u16::from_be_bytes([rest[lc], rest[lc + 1]]));
                        (rest[..lc].to_vec(), Some(if n == 0 { 65536 } else { n }))
                    }
                    _ => return Err(ApduError::BadLength),
                }
            }
            [lc, rest @ ..] => {
                let lc = usize::from(*lc);
                match rest.len().checked_sub(lc) {
                    Some(0) => (rest.to_vec(), None),
                    Some(1) => {
                        let le = rest[lc];
                        (
                            rest[..lc].to_vec(),
                            Some(if le == 0 { 256 } else { usize::from(le) }),
                        )
                    }
                    _ => return Err(ApduError::BadLength),
                }
            }
        };
        Ok(Self {
            cla: *cla,
            ins: *ins,
            p1: *p1,
            p2: *p2,
            data,
            le,
        })
    }

    /// Encodes the command (short form when it fits, extended otherwise).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.cla, self.ins, self.p1, self.p2];
        let extended = self.data.len() > 255 || self.le.is_some_and(|l| l > 256);
        if extended {
            out.push(0);
            if !self.data.is_empty() {
                out.extend_from_slice(&(self.data.len() as u16).to_be_bytes());
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.extend_from_slice(&((le % 65536) as u16).to_be_bytes());
            }
        } else {
            if !self.data.is_empty() {
                out.push(self.data.len() as u8);
                out.extend_from_slice(&self.data);
            }
            if let Some(le) = self.le {
                out.push((le % 256) as u8);
            }
        }
        out
    }
}

/// A response APDU: data and status word.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word (SW1 SW2).
    pub sw: u16,
}

impl Response {
    /// A bare status word.
    pub fn status(sw: u16) -> Self {
        Self { data: vec![], sw }
    }

    /// Data with 9000.
    pub fn ok(data: Vec<u8>) -> Self {
        Self {
            data,
            sw: crate::sw::OK,
        }
    }

    /// Data followed by SW1 SW2.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        out.extend_from_slice(&self.sw.to_be_bytes());
        out
    }

    /// Splits response bytes into data and status word.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let split = bytes.len().checked_sub(2)?;
        Some(Self {
            data: bytes[..split].to_vec(),
            sw: u16::from_be_bytes([bytes[split], bytes[split + 1]]),
        })
    }
}
