//! The card's persistent state: PIN/PUK/management key, key slots and data objects. Saved as
//! JSON so a card survives a process restart (crash tests need that). Ordered maps only:
//! nothing observable depends on hash order.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// Bytes that serialize as hex.
#[derive(Clone, Debug, Default, Eq, PartialEq, Ord, PartialOrd)]
pub struct Hex(pub Vec<u8>);

/// Secret bytes: hex on disk (the file *is* the card's secure element), zeroized in memory,
/// never printed.
#[derive(Clone, Default, Eq, PartialEq)]
pub struct Secret(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex.
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        from_hex(&text)
            .map(Hex)
            .ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(to_hex(&self.0)))
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        from_hex(&text)
            .map(Secret::new)
            .ok_or_else(|| serde::de::Error::custom("invalid hex"))
    }
}

/// Asymmetric key algorithms (SP 800-78-5 identifiers; 0x16 as YubiKey 5.7 assigns RSA-4096).
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECC P-256, algorithm id 0x11.
    EccP256,
    /// ECC P-384, algorithm id 0x14.
    EccP384,
    /// RSA 2048, algorithm id 0x07.
    Rsa2048,
    /// RSA 3072, algorithm id 0x05.
    Rsa3072,
    /// RSA 4096, algorithm id 0x16.
    Rsa4096,
}

impl KeyAlgorithm {
    /// SP 800-78-5 algorithm identifier.
    pub fn id(self) -> u8 {
        match self {
            Self::EccP256 => 0x11,
            Self::EccP384 => 0x14,
            Self::Rsa2048 => 0x07,
            Self::Rsa3072 => 0x05,
            Self::Rsa4096 => 0x16,
        }
    }

    /// From an algorithm identifier.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            0x11 => Some(Self::EccP256),
            0x14 => Some(Self::EccP384),
            0x07 => Some(Self::Rsa2048),
            0x05 => Some(Self::Rsa3072),
            0x16 => Some(Self::Rsa4096),
            _ => None,
        }
    }

    /// Every algorithm, in the order above.
    pub const ALL: [Self; 5] = [
        Self::EccP256,
        Self::EccP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// Whether this is an RSA algorithm (slower on a real card: the timing model uses it).
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }
}

/// Management key algorithm (SP 800-78-4 table 5). A YubiKey 5.7 ships with (and resets to)
/// AES-192; earlier YubiKeys and most PIV cards with 3DES; YubiKeys from 5.4 take any of the
/// four.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub enum ManagementAlgorithm {
    /// Triple DES (id 0x03), 24-byte key, 8-byte blocks.
    Tdes,
    /// AES-128 (id 0x08), 16-byte key, 16-byte blocks.
    Aes128,
    /// AES-192 (id 0x0A), 24-byte key, 16-byte blocks.
    Aes192,
    /// AES-256 (id 0x0C), 32-byte key, 16-byte blocks.
    Aes256,
}

impl ManagementAlgorithm {
    /// The name `sim-card init --management-key-algorithm` takes (`3des`, `aes192`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Tdes => "3des",
            Self::Aes128 => "aes128",
            Self::Aes192 => "aes192",
            Self::Aes256 => "aes256",
        }
    }

    /// Every algorithm.
    pub const ALL: [Self; 4] = [Self::Tdes, Self::Aes128, Self::Aes192, Self::Aes256];

    /// SP 800-78-4 identifier.
    pub fn id(self) -> u8 {
        match self {
            Self::Tdes => 0x03,
            Self::Aes128 => 0x08,
            Self::Aes192 => 0x0A,
            Self::Aes256 => 0x0C,
        }
    }

    /// The algorithm with SP 800-78-4 identifier `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }

    /// Block size in bytes.
    pub fn block_len(self) -> usize {
        match self {
            Self::Tdes => 8,
            Self::Aes128 | Self::Aes192 | Self::Aes256 => 16,
        }
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Tdes | Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }
}

/// A name on a command line that is none of those a field takes.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{what} {given:?}: {expected}")]
pub struct UnknownName {
    /// The kind of name ("card model").
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The names it takes.
    pub expected: &'static str,
}

impl std::str::FromStr for ManagementAlgorithm {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        match s.to_ascii_lowercase().as_str() {
            "3des" | "tdes" => Ok(Self::Tdes),
            "aes128" => Ok(Self::Aes128),
            "aes192" => Ok(Self::Aes192),
            "aes256" => Ok(Self::Aes256),
            _ => Err(UnknownName {
                what: "management key algorithm",
                given: s.to_string(),
                expected: "3des, aes128, aes192 or aes256",
            }),
        }
    }
}

/// When a key needs the PIN (a YubiKey's PIN policy, set when the key is generated or
/// imported; byte values as in GENERATE's `AA` tag and GET METADATA).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub enum PinPolicy {
    /// Never (0x01): 9E's default.
    Never,
    /// Once per session (0x02): 9A's, 9D's and the retired slots' default.
    #[default]
    Once,
    /// Before every use (0x03): 9C's default (signatures need the PIN each time).
    Always,
}

impl PinPolicy {
    /// The byte in `AA` and in metadata.
    pub fn id(self) -> u8 {
        match self {
            Self::Never => 0x01,
            Self::Once => 0x02,
            Self::Always => 0x03,
        }
    }

    /// The policy a key gets in `slot` when none is asked for (0x00, "default").
    pub fn default_for(slot: u8) -> Self {
        match slot {
            0x9C => Self::Always,
            0x9E => Self::Never,
            _ => Self::Once,
        }
    }

    /// The policy byte `id` asks for in `slot`; `None` for a value the card does not know.
    pub fn requested(id: u8, slot: u8) -> Option<Self> {
        match id {
            0x00 => Some(Self::default_for(slot)),
            0x01 => Some(Self::Never),
            0x02 => Some(Self::Once),
            0x03 => Some(Self::Always),
            _ => None,
        }
    }
}

/// A private key in a slot.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SlotKey {
    /// Algorithm.
    pub algorithm: KeyAlgorithm,
    /// EC: the scalar (32 bytes for P-256, 48 for P-384); RSA: PKCS#8 DER.
    pub private: Secret,
    /// Generated on the card (true) or imported.
    pub generated: bool,
    /// When it needs the PIN (state files from before policies: once).
    #[serde(default)]
    pub pin_policy: PinPolicy,
    /// When it needs a touch (state files from before touch: never).
    #[serde(default)]
    pub touch_policy: crate::touch::TouchPolicy,
}

/// The PIN or PUK and its retry counter.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reference {
    /// The value, padded to 8 bytes with 0xFF.
    pub value: Secret,
    /// Tries left.
    pub retries_left: u8,
    /// Tries after a reset.
    pub retries_max: u8,
}

/// Everything the card remembers across power cycles.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CardState {
    /// Card serial number (YubiKey GET SERIAL).
    pub serial: u32,
    /// PIN.
    pub pin: Reference,
    /// PUK.
    pub puk: Reference,
    /// Management key algorithm.
    pub management_algorithm: ManagementAlgorithm,
    /// Management key (of the algorithm's length).
    pub management_key: Secret,
    /// How many key slots may hold a key at once (a full card answers 6A84).
    pub capacity: usize,
    /// Keys by slot (0x9A, 0x9C, 0x9D, 0x9E, 0x82..=0x95), as two hex digits.
    pub keys: BTreeMap<String, SlotKey>,
    /// Data objects by tag (hex), values as stored (the `53` template contents).
    pub objects: BTreeMap<String, Hex>,
    /// Seed of the card's deterministic RNG.
    pub rng_seed: u64,
    /// Draws taken from it so far (so a reloaded card continues the sequence).
    pub rng_counter: u64,
    /// The key algorithms GENERATE accepts (state saved before this field: all).
    #[serde(default = "all_algorithms")]
    pub algorithms: Vec<KeyAlgorithm>,
    /// The device attestation key (slot F9; its certificate is object `5FFF01`). State saved
    /// before attestation was modelled has none, and attests nothing.
    #[serde(default)]
    pub attestation_key: Option<SlotKey>,
    /// How long an operation waits for a touch before failing with 6982 (a YubiKey: 15 s).
    #[serde(default = "default_touch_timeout_ms")]
    pub touch_timeout_ms: u64,
    /// The card model (state saved before models: a YubiKey 5.7).
    #[serde(default)]
    pub model: CardModel,
}

fn default_touch_timeout_ms() -> u64 {
    crate::touch::DEFAULT_TIMEOUT.as_millis() as u64
}

/// The well-known PIV test values (also yubico-piv-tool's defaults).
pub const DEFAULT_PIN: &str = "123456";
/// Default PUK.
pub const DEFAULT_PUK: &str = "12345678";
/// Default management key, 3DES: 01 02 03 04 05 06 07 08 repeated three times.
pub const DEFAULT_MANAGEMENT_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// PIN/PUK padding: ASCII digits padded with 0xFF to 8 bytes (SP 800-73-4 part 2 §2.4.3).
pub fn pad_pin(pin: &[u8]) -> Option<Vec<u8>> {
    if pin.len() > 8 {
        return None;
    }
    let mut v = pin.to_vec();
    v.resize(8, 0xFF);
    Some(v)
}

/// The length of a PIN or PUK block without its 0xFF padding.
pub fn unpadded_len(block: &[u8]) -> usize {
    block.iter().position(|&b| b == 0xFF).unwrap_or(block.len())
}

/// Which card the virtual card is: what it answers to reset, its firmware, the commands and
/// key types it has, its factory management key.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize, Deserialize)]
pub enum CardModel {
    /// A YubiKey 5 with firmware 5.7: AES-192 factory management key, MOVE/DELETE KEY,
    /// RSA-3072/4096.
    #[default]
    #[serde(rename = "yubikey-5.7")]
    YubiKey57,
    /// A YubiKey 5 with firmware 5.4: 3DES factory management key, no MOVE/DELETE KEY (5.7
    /// added them), no RSA-3072/4096.
    #[serde(rename = "yubikey-5.4")]
    YubiKey54,
    /// A plain NIST SP 800-73-4 card: none of Yubico's extensions (version, serial, metadata,
    /// attestation, move, import, reset, management key change: 6D00), 3DES management key,
    /// RSA-2048 and P-256 (P-384 too), no key policies in GENERATE.
    #[serde(rename = "piv")]
    Piv,
}

impl CardModel {
    /// Every model, in `--model` order.
    pub const ALL: [Self; 3] = [Self::YubiKey57, Self::YubiKey54, Self::Piv];

    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::YubiKey57 => "yubikey-5.7",
            Self::YubiKey54 => "yubikey-5.4",
            Self::Piv => "piv",
        }
    }

    /// The firmware version GET VERSION reports (`None`: the card has no GET VERSION).
    pub fn version(self) -> Option<[u8; 3]> {
        match self {
            Self::YubiKey57 => Some([5, 7, 1]),
            Self::YubiKey54 => Some([5, 4, 3]),
            Self::Piv => None,
        }
    }

    /// Whether the card has instruction `ins` (the standard PIV ones every model has).
    pub fn supports(self, ins: u8) -> bool {
        const YUBICO: [u8; 9] = [0xF6, 0xF7, 0xF8, 0xF9, 0xFA, 0xFB, 0xFD, 0xFE, 0xFF];
        match self {
            Self::YubiKey57 => true,
            Self::YubiKey54 => ins != 0xF6,
            Self::Piv => !YUBICO.contains(&ins),
        }
    }

    /// Whether GENERATE and IMPORT take PIN and touch policies (`AA`, `AB`).
    pub fn has_key_policies(self) -> bool {
        self != Self::Piv
    }

    /// The factory management key's algorithm.
    pub fn management_algorithm(self) -> ManagementAlgorithm {
        match self {
            Self::YubiKey57 => ManagementAlgorithm::Aes192,
            Self::YubiKey54 | Self::Piv => ManagementAlgorithm::Tdes,
        }
    }

    /// The key algorithms GENERATE accepts.
    pub fn algorithms(self) -> Vec<KeyAlgorithm> {
        match self {
            Self::YubiKey57 => all_algorithms(),
            Self::YubiKey54 => vec![
                KeyAlgorithm::EccP256,
                KeyAlgorithm::EccP384,
                KeyAlgorithm::Rsa2048,
            ],
            Self::Piv => vec![
                KeyAlgorithm::EccP256,
                KeyAlgorithm::EccP384,
                KeyAlgorithm::Rsa2048,
            ],
        }
    }

    /// Whether the card has a device attestation key (F9).
    pub fn attests(self) -> bool {
        self != Self::Piv
    }
}

impl std::str::FromStr for CardModel {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, UnknownName> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownName {
                what: "card model",
                given: s.to_string(),
                expected: "yubikey-5.7, yubikey-5.4 or piv",
            })
    }
}

/// How a new card is set up.
#[derive(Clone, Debug)]
pub struct CardConfig {
    /// PIN (6–8 characters).
    pub pin: String,
    /// PUK (6–8 characters).
    pub puk: String,
    /// Management key algorithm and key (of the algorithm's length).
    pub management_key: (ManagementAlgorithm, Vec<u8>),
    /// Key slot capacity.
    pub capacity: usize,
    /// PIN and PUK retries.
    pub retries: u8,
    /// RNG seed (also the serial number's source).
    pub seed: u64,
    /// The key algorithms GENERATE accepts (a card model's list; all by default). Others are
    /// answered 6A81, function not supported, as a card without them answers.
    pub algorithms: Vec<KeyAlgorithm>,
    /// The card model.
    pub model: CardModel,
}

impl Default for CardConfig {
    fn default() -> Self {
        Self {
            pin: DEFAULT_PIN.into(),
            puk: DEFAULT_PUK.into(),
            // A YubiKey 5.7's factory key: the well-known bytes, as AES-192.
            management_key: (ManagementAlgorithm::Aes192, DEFAULT_MANAGEMENT_KEY.to_vec()),
            capacity: 24,
            retries: 3,
            seed: 1,
            algorithms: KeyAlgorithm::ALL.to_vec(),
            model: CardModel::YubiKey57,
        }
    }
}

impl CardConfig {
    /// A factory-fresh card of `model`: its management key algorithm and key types.
    pub fn of_model(model: CardModel) -> Self {
        Self {
            management_key: (
                model.management_algorithm(),
                DEFAULT_MANAGEMENT_KEY.to_vec(),
            ),
            algorithms: model.algorithms(),
            model,
            ..Self::default()
        }
    }
}

/// Errors loading or saving state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// File I/O.
    #[error("card state file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a card state.
    #[error("card state file {path} is not valid: {source}")]
    Format {
        /// The file.
        path: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A configuration value out of range.
    #[error("invalid card configuration: {0}")]
    Config(&'static str),
}

impl CardState {
    /// Saves atomically (write to a temp file, fsync, rename) so a crash never leaves half a
    /// card.
    pub fn save(&self, path: &std::path::Path) -> Result<(), StateError> {
        use std::io::Write;
        let io = |source| StateError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = Zeroizing::new(serde_json::to_vec_pretty(self).map_err(|source| {
            StateError::Format {
                path: path.display().to_string(),
                source,
            }
        })?);
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Loads a saved card.
    pub fn load(path: &std::path::Path) -> Result<Self, StateError> {
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| StateError::Io {
            path: path.display().to_string(),
            source,
        })?);
        serde_json::from_slice(&bytes).map_err(|source| StateError::Format {
            path: path.display().to_string(),
            source,
        })
    }
}

fn all_algorithms() -> Vec<KeyAlgorithm> {
    KeyAlgorithm::ALL.to_vec()
}
