//! PIV data objects and key references (SP 800-73-4 part 1 tables 3 and 4).

use crate::tlv::tlv;

/// The PIV application identifier (with version); real tools may select only the first five
/// bytes (`A0 00 00 03 08`), which must work too.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];
/// The largest data object a YubiKey stores (bytes of PUT DATA's data field).
pub const MAX_OBJECT_SIZE: usize = 3052;

/// The YubiKey management application's AID (device info for `ykman`).
pub const MANAGEMENT_AID: [u8; 8] = [0xA0, 0x00, 0x00, 0x05, 0x27, 0x47, 0x11, 0x17];
/// The truncated AID yubico-piv-tool selects.
pub const PIV_AID_PREFIX: [u8; 5] = [0xA0, 0x00, 0x00, 0x03, 0x08];

/// Card Holder Unique Identifier.
pub const CHUID: [u8; 3] = [0x5F, 0xC1, 0x02];
/// Card Capability Container.
pub const CCC: [u8; 3] = [0x5F, 0xC1, 0x07];
/// Key history object.
pub const KEY_HISTORY: [u8; 3] = [0x5F, 0xC1, 0x0C];
/// Discovery object (one-byte tag).
pub const DISCOVERY: [u8; 1] = [0x7E];

/// Management key reference.
pub const MANAGEMENT_KEY: u8 = 0x9B;
/// PIN reference.
pub const PIN_REF: u8 = 0x80;
/// PUK reference.
pub const PUK_REF: u8 = 0x81;

/// The first and last retired key-management slots.
pub const RETIRED: std::ops::RangeInclusive<u8> = 0x82..=0x95;

/// Whether `slot` is an asymmetric key slot this card has.
pub fn is_key_slot(slot: u8) -> bool {
    matches!(slot, 0x9A | 0x9C | 0x9D | 0x9E) || RETIRED.contains(&slot)
}

/// The certificate object tag of a key slot.
pub fn certificate_tag(slot: u8) -> Option<[u8; 3]> {
    let last = match slot {
        0x9A => 0x05,
        0x9C => 0x0A,
        0x9D => 0x0B,
        0x9E => 0x01,
        s if RETIRED.contains(&s) => 0x0D + (s - 0x82),
        _ => return None,
    };
    Some([0x5F, 0xC1, last])
}

/// The key slot a certificate object belongs to.
pub fn slot_of_certificate_tag(tag: &[u8]) -> Option<u8> {
    [0x9A, 0x9C, 0x9D, 0x9E]
        .into_iter()
        .chain(RETIRED)
        .find(|s| certificate_tag(*s).as_ref().map(|t| &t[..]) == Some(tag))
}

/// ykman's own data object ("PIVMAN data"): flags, among them whether the management key is
/// stored on the card under the PIN. Readable by anyone.
pub const PIVMAN_DATA: [u8; 3] = [0x5F, 0xFF, 0x00];
/// Where ykman stores a PIN-protected management key: the printed-information object, which
/// PIV lets nobody read without the PIN.
pub const PIVMAN_PROTECTED_DATA: [u8; 3] = [0x5F, 0xC1, 0x09];
/// PIVMAN data flag: the management key is stored in [`PIVMAN_PROTECTED_DATA`].
pub const PIVMAN_FLAG_MANAGEMENT_KEY_PROTECTED: u8 = 0x02;

/// The PIVMAN data object's content with `flags` (`80 { 81 flags }`, as ykman writes it).
pub fn pivman_data(flags: u8) -> Vec<u8> {
    tlv(&[0x80], &tlv(&[0x81], &[flags]))
}

/// The PIVMAN protected data object's content holding `key` (`88 { 89 key }`).
pub fn pivman_protected_data(key: &[u8]) -> Vec<u8> {
    tlv(&[0x88], &tlv(&[0x89], key))
}

/// Whether a data object may be read without the PIN: all but the fingerprints (5FC103),
/// facial image (5FC108), printed information (5FC109) and iris images (5FC121), SP 800-73-4
/// part 1 table 3.
pub fn is_readable_without_pin(tag: &[u8]) -> bool {
    !matches!(
        tag,
        [0x5F, 0xC1, 0x03] | [0x5F, 0xC1, 0x08] | [0x5F, 0xC1, 0x09] | [0x5F, 0xC1, 0x21]
    )
}

/// A certificate object's content (SP 800-73-4 part 1 table 15): the certificate (`70`),
/// CertInfo `71` = 00 (not compressed), an empty error detection code (`FE`).
pub fn certificate_object(der: &[u8]) -> Vec<u8> {
    let mut value = tlv(&[0x70], der);
    value.extend(tlv(&[0x71], &[0x00]));
    value.extend(tlv(&[0xFE], &[]));
    value
}

/// The discovery object: PIV AID, PIN usage policy "PIV PIN only" (0x40 0x00).
pub fn discovery() -> Vec<u8> {
    let mut inner = tlv(&[0x4F], &PIV_AID);
    inner.extend(tlv(&[0x5F, 0x2F], &[0x40, 0x00]));
    tlv(&DISCOVERY, &inner)
}

/// A CHUID for this card: FASC-N (all-zero agency code, card serial digits), GUID, expiry
/// 2030-12-31, empty signature (the simulator does not sign it).
pub fn chuid(serial: u32, guid: &[u8]) -> Vec<u8> {
    let mut fascn = vec![
        0xD4, 0xE7, 0x39, 0xDA, 0x73, 0x9C, 0xED, 0x39, 0xCE, 0x73, 0x9D,
    ];
    fascn.extend_from_slice(&serial.to_be_bytes());
    fascn.resize(25, 0x21);
    let mut v = tlv(&[0x30], &fascn);
    v.extend(tlv(&[0x34], &guid[..16]));
    v.extend(tlv(&[0x35], b"20301231"));
    v.extend(tlv(&[0x3E], &[]));
    v.extend(tlv(&[0xFE], &[]));
    v
}

/// A Card Capability Container (SP 800-73-4 part 1 table 8).
pub fn ccc(card_id: &[u8]) -> Vec<u8> {
    let mut id = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x02];
    id.extend_from_slice(&card_id[..14]);
    let mut v = tlv(&[0xF0], &id);
    for (tag, value) in [
        (0xF1u8, &[0x21u8][..]),
        (0xF2, &[0x21]),
        (0xF3, &[]),
        (0xF4, &[0x00]),
        (0xF5, &[0x10]),
        (0xF6, &[]),
        (0xF7, &[]),
        (0xFA, &[]),
        (0xFB, &[]),
        (0xFC, &[]),
        (0xFD, &[]),
        (0xFE, &[]),
    ] {
        v.extend(tlv(&[tag], value));
    }
    v
}
