//! The PIV management key: which key (one the host knows — given, or the well-known factory
//! value — or one the card keeps under the PIN, as ykman's `--protect` leaves a YubiKey) and
//! which algorithm (SP 800-78-4 table 5: a YubiKey says in GET METADATA; a card that cannot
//! is judged by the key's length). A YubiKey 5.7 ships with the factory value as AES-192,
//! earlier YubiKeys and most PIV cards as 3DES: a client that assumed 3DES could not generate
//! a key on any new YubiKey.

use zeroize::Zeroizing;

use crate::cmc::InvalidValue;

use super::find_tlv;

/// The well-known factory management key (`0102030405060708` three times), whatever its
/// algorithm on a given card.
pub const FACTORY_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// ykman's PIVMAN data object (readable by anyone): its flags say whether the management key
/// is stored on the card.
pub(super) const PIVMAN_DATA: [u8; 3] = [0x5F, 0xFF, 0x00];
/// Where ykman stores a PIN-protected management key: the printed-information object, which
/// a PIV card lets nobody read without the PIN.
pub(super) const PIVMAN_PROTECTED_DATA: [u8; 3] = [0x5F, 0xC1, 0x09];
/// PIVMAN data flag: the management key is stored in [`PIVMAN_PROTECTED_DATA`].
const FLAG_MANAGEMENT_KEY_PROTECTED: u8 = 0x02;

/// A management key algorithm (SP 800-78-4 table 5).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ManagementAlgorithm {
    /// Triple DES, 24-byte key, 8-byte blocks (id 0x03).
    Tdes,
    /// AES-128, 16-byte key (id 0x08).
    Aes128,
    /// AES-192, 24-byte key (id 0x0A): a YubiKey 5.7's factory setting.
    Aes192,
    /// AES-256, 32-byte key (id 0x0C).
    Aes256,
}

impl ManagementAlgorithm {
    const ALL: [Self; 4] = [Self::Tdes, Self::Aes128, Self::Aes192, Self::Aes256];

    /// The SP 800-78-4 identifier (GENERAL AUTHENTICATE's P1).
    pub fn id(self) -> u8 {
        match self {
            Self::Tdes => 0x03,
            Self::Aes128 => 0x08,
            Self::Aes192 => 0x0A,
            Self::Aes256 => 0x0C,
        }
    }

    /// The algorithm with identifier `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.id() == id)
    }

    /// Key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Tdes | Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    /// The name users give it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tdes => "3DES",
            Self::Aes128 => "AES-128",
            Self::Aes192 => "AES-192",
            Self::Aes256 => "AES-256",
        }
    }

    /// Block length in bytes (witness and challenge).
    pub fn block_len(self) -> usize {
        match self {
            Self::Tdes => 8,
            Self::Aes128 | Self::Aes192 | Self::Aes256 => 16,
        }
    }

    /// What a key of `len` bytes is on a card that cannot say (no GET METADATA): 24 bytes is
    /// 3DES, the PIV default before AES; 16 and 32 are AES.
    pub fn for_key_len(len: usize) -> Option<Self> {
        match len {
            16 => Some(Self::Aes128),
            24 => Some(Self::Tdes),
            32 => Some(Self::Aes256),
            _ => None,
        }
    }

    /// One block of the cipher (ECB: a PIV authentication exchanges single blocks).
    pub(super) fn cipher(self, key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>> {
        use aws_lc_rs::cipher::{
            AES_128, AES_192, AES_256, Algorithm, DecryptingKey, DecryptionContext, EncryptingKey,
            UnboundCipherKey,
        };
        if key.len() != self.key_len() || block.len() != self.block_len() {
            return None;
        }
        let aes = |algorithm: &'static Algorithm| -> Option<Vec<u8>> {
            let mut buf = block.to_vec();
            if encrypt {
                let k = EncryptingKey::ecb(UnboundCipherKey::new(algorithm, key).ok()?).ok()?;
                k.encrypt(&mut buf).ok()?;
            } else {
                let k = DecryptingKey::ecb(UnboundCipherKey::new(algorithm, key).ok()?).ok()?;
                k.decrypt(&mut buf, DecryptionContext::None).ok()?;
            }
            Some(buf)
        };
        match self {
            Self::Tdes => tdes_block(key, block, encrypt),
            Self::Aes128 => aes(&AES_128),
            Self::Aes192 => aes(&AES_192),
            Self::Aes256 => aes(&AES_256),
        }
    }
}

/// 3DES-EDE3 on one block: `aws-lc-rs` has no 3DES, so the client uses RustCrypto's `des`.
fn tdes_block(key: &[u8], block: &[u8], encrypt: bool) -> Option<Vec<u8>> {
    use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
    let cipher = des::TdesEde3::new_from_slice(key).ok()?;
    let mut b = GenericArray::clone_from_slice(block);
    if encrypt {
        cipher.encrypt_block(&mut b);
    } else {
        cipher.decrypt_block(&mut b);
    }
    Some(b.to_vec())
}

/// Which management key to authenticate with.
#[derive(Clone, Default)]
pub enum ManagementKey {
    /// A key the host knows; its algorithm given, or (`None`) asked of the card.
    Known {
        /// The key.
        key: Zeroizing<Vec<u8>>,
        /// The algorithm, when the user said.
        algorithm: Option<ManagementAlgorithm>,
    },
    /// The key the card keeps under the PIN (ykman's `--protect`): read after the PIN
    /// verification the renewal does anyway — no second prompt.
    PinProtected,
    /// What the card says: its PIN-protected key when ykman's data flags one, else the
    /// factory key. The default.
    #[default]
    Auto,
}

impl std::fmt::Debug for ManagementKey {
    /// Never the key itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known { algorithm, .. } => write!(f, "Known({algorithm:?})"),
            Self::PinProtected => f.write_str("PinProtected"),
            Self::Auto => f.write_str("Auto"),
        }
    }
}

impl ManagementKey {
    /// The well-known factory key, its algorithm asked of the card.
    pub fn factory_default() -> Self {
        Self::Known {
            key: Zeroizing::new(FACTORY_KEY.to_vec()),
            algorithm: None,
        }
    }

    /// The well-known factory key as 3DES (a card that cannot say which it uses).
    pub fn factory_3des() -> Self {
        Self::Known {
            key: Zeroizing::new(FACTORY_KEY.to_vec()),
            algorithm: Some(ManagementAlgorithm::Tdes),
        }
    }

    /// A key in hex: 32 digits (AES-128), 48 (AES-192 or 3DES: the card says which) or 64
    /// (AES-256). How `--management-key` and the agent's `management_key` give it.
    pub fn from_hex(hex: &str) -> Result<Self, InvalidValue> {
        let hex = Zeroizing::new(hex.trim().to_string());
        if !matches!(hex.len(), 32 | 48 | 64) {
            return Err(InvalidValue::secret(
                "management key",
                format!(
                    "32 (AES-128), 48 (AES-192 or 3DES) or 64 (AES-256) hex digits, not {}",
                    hex.len()
                ),
            ));
        }
        let mut key = Zeroizing::new(vec![0u8; hex.len() / 2]);
        for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
                .ok_or_else(|| InvalidValue::secret("management key", "not hex"))?;
        }
        Ok(Self::Known {
            key,
            algorithm: None,
        })
    }

    /// `auto`, `pin-protected`, or a key in hex (with an optional `3des:`, `aes128:`,
    /// `aes192:` or `aes256:` prefix for a card that cannot say its algorithm).
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let text = text.trim();
        match text {
            "auto" => return Ok(Self::Auto),
            "pin-protected" => return Ok(Self::PinProtected),
            _ => {}
        }
        let (algorithm, hex) = match text.split_once(':') {
            Some((name, hex)) => {
                let algorithm = match name.to_ascii_lowercase().as_str() {
                    "3des" | "tdes" => ManagementAlgorithm::Tdes,
                    "aes128" => ManagementAlgorithm::Aes128,
                    "aes192" => ManagementAlgorithm::Aes192,
                    "aes256" => ManagementAlgorithm::Aes256,
                    other => {
                        return Err(InvalidValue::new(
                            "management key algorithm",
                            other,
                            "3des, aes128, aes192 or aes256",
                        ));
                    }
                };
                (Some(algorithm), hex)
            }
            None => (None, text),
        };
        let Self::Known { key, .. } = Self::from_hex(hex)? else {
            unreachable!("from_hex gives a known key")
        };
        if let Some(a) = algorithm
            && key.len() != a.key_len()
        {
            return Err(InvalidValue::secret(
                "management key",
                format!(
                    "{} takes {} hex digits, not {}",
                    a.name(),
                    2 * a.key_len(),
                    2 * key.len()
                ),
            ));
        }
        Ok(Self::Known { key, algorithm })
    }
}

/// Whether ykman's PIVMAN data (`80 { 81 flags }`, the content of object 5FFF00) says the
/// management key is stored under the PIN.
pub(super) fn flags_protected_key(pivman_data: &[u8]) -> bool {
    find_tlv(pivman_data, &[0x80])
        .and_then(|inner| find_tlv(inner, &[0x81]))
        .and_then(|flags| flags.first())
        .is_some_and(|flags| flags & FLAG_MANAGEMENT_KEY_PROTECTED != 0)
}

/// The key in ykman's PIVMAN protected data (`88 { 89 key }`, the content of object 5FC109).
pub(super) fn protected_key(protected_data: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    find_tlv(protected_data, &[0x88])
        .and_then(|inner| find_tlv(inner, &[0x89]))
        .filter(|key| !key.is_empty())
        .map(|key| Zeroizing::new(key.to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_given_in_hex_of_any_algorithms_length() {
        let factory = "010203040506070801020304050607080102030405060708";
        let Ok(ManagementKey::Known { key, algorithm }) = ManagementKey::parse(factory) else {
            panic!("the factory key in hex")
        };
        assert_eq!((key.as_slice(), algorithm), (&FACTORY_KEY[..], None));
        for (text, len) in [("00".repeat(16), 16), ("ab".repeat(32), 32)] {
            let Ok(ManagementKey::Known { key, .. }) = ManagementKey::parse(&text) else {
                panic!("{text}")
            };
            assert_eq!(key.len(), len);
        }
        let Ok(ManagementKey::Known { algorithm, .. }) =
            ManagementKey::parse(&format!("3des:{factory}"))
        else {
            panic!()
        };
        assert_eq!(algorithm, Some(ManagementAlgorithm::Tdes));
        assert!(ManagementKey::parse(&format!("aes256:{factory}")).is_err());
        assert!(ManagementKey::parse(&factory[2..]).is_err());
        assert!(ManagementKey::parse(&factory.replace('8', "g")).is_err());
        assert!(matches!(
            ManagementKey::parse("pin-protected"),
            Ok(ManagementKey::PinProtected)
        ));
        assert!(matches!(
            ManagementKey::parse("auto"),
            Ok(ManagementKey::Auto)
        ));
        assert_eq!(
            format!("{:?}", ManagementKey::factory_default()),
            "Known(None)",
            "no key in Debug output"
        );
    }

    #[test]
    fn every_algorithm_round_trips_a_block_and_refuses_a_wrong_length() {
        for (alg, key_len) in [
            (ManagementAlgorithm::Tdes, 24),
            (ManagementAlgorithm::Aes128, 16),
            (ManagementAlgorithm::Aes192, 24),
            (ManagementAlgorithm::Aes256, 32),
        ] {
            let key = vec![7u8; key_len];
            let block = vec![3u8; alg.block_len()];
            let sealed = alg.cipher(&key, &block, true).unwrap();
            assert_ne!(sealed, block);
            assert_eq!(alg.cipher(&key, &sealed, false).unwrap(), block);
            assert!(alg.cipher(&key[1..], &block, true).is_none());
            assert_eq!(ManagementAlgorithm::from_id(alg.id()), Some(alg));
        }
        // AES-192 and 3DES differ on the same key: the algorithm matters.
        assert_ne!(
            ManagementAlgorithm::Aes192.cipher(&FACTORY_KEY, &[0; 16], true),
            ManagementAlgorithm::Tdes
                .cipher(&FACTORY_KEY, &[0; 8], true)
                .map(|b| [b.clone(), b].concat())
        );
    }

    #[test]
    fn ykmans_objects_are_read_as_it_writes_them() {
        // 80 { 81 02 }: the key is protected; 80 { 81 01 }: only the PUK is blocked.
        assert!(flags_protected_key(&[0x80, 0x03, 0x81, 0x01, 0x02]));
        assert!(!flags_protected_key(&[0x80, 0x03, 0x81, 0x01, 0x01]));
        assert!(!flags_protected_key(&[0x80, 0x00]));
        let mut object = vec![0x88, 0x1A, 0x89, 0x18];
        object.extend_from_slice(&FACTORY_KEY);
        assert_eq!(
            protected_key(&object).as_deref().map(Vec::as_slice),
            Some(&FACTORY_KEY[..])
        );
        assert!(protected_key(&[0x88, 0x00]).is_none());
    }
}
