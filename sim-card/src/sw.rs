//! ISO 7816-4 / SP 800-73-4 status words the applet answers with.

/// Success.
pub const OK: u16 = 0x9000;
/// `61xx`: more data; `xx` bytes (00 = 256 or more) to fetch with GET RESPONSE.
pub const MORE_DATA: u16 = 0x6100;
/// `63Cx`: verification failed, `x` retries left.
pub const VERIFY_FAILED: u16 = 0x63C0;
/// Wrong length.
pub const WRONG_LENGTH: u16 = 0x6700;
/// Security status not satisfied (PIN or management key needed).
pub const SECURITY_STATUS: u16 = 0x6982;
/// Authentication method blocked (PIN or PUK blocked).
pub const BLOCKED: u16 = 0x6983;
/// Conditions of use not satisfied.
pub const CONDITIONS: u16 = 0x6985;
/// Incorrect data.
pub const WRONG_DATA: u16 = 0x6A80;
/// Function not supported.
pub const FUNC_NOT_SUPPORTED: u16 = 0x6A81;
/// File or application not found (data object absent, unknown AID).
pub const NOT_FOUND: u16 = 0x6A82;
/// Not enough memory: the card is full.
pub const NOT_ENOUGH_MEMORY: u16 = 0x6A84;
/// Incorrect P1/P2.
pub const WRONG_P1P2: u16 = 0x6A86;
/// Referenced data not found (empty key slot).
pub const REF_NOT_FOUND: u16 = 0x6A88;
/// Instruction not supported.
pub const INS_NOT_SUPPORTED: u16 = 0x6D00;
/// Class not supported.
pub const CLA_NOT_SUPPORTED: u16 = 0x6E00;
/// Memory failure / no precise diagnosis.
pub const NO_DIAGNOSIS: u16 = 0x6F00;
