//! Key attestation as a YubiKey does it ("PIV attestation", firmware 4.3 and later): the card
//! holds a device attestation key in slot F9 and its certificate in object `5FFF01`, issued by
//! the vendor's attestation root; `ATTEST` (INS F9, P1 = slot) answers a certificate for the
//! key in that slot, signed by the F9 key, carrying the card's firmware, serial and the key's
//! policies in Yubico's extensions (arc 1.3.6.1.4.1.41482.3). The card attests only keys it
//! generated — an imported key has no attestation — which is what lets a CA that trusts the
//! vendor root know a new key never left the card.
//!
//! The vendor root here is the simulator's own (a fixed key, so every simulated card chains to
//! the same root and a test CA can be configured with it). Its private key is public knowledge:
//! trust it in tests only.

use std::str::FromStr;

use der::{
    Decode, Encode, Sequence,
    asn1::{BitString, GeneralizedTime, ObjectIdentifier, OctetString, UtcTime},
    pem::LineEnding,
};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::{
    Certificate,
    ext::Extension,
    name::Name,
    serial_number::SerialNumber,
    time::{Time, Validity},
};

use crate::{
    crypto::{self, CryptoError, DetRng},
    state::{KeyAlgorithm, SlotKey},
};

/// The slot of the device attestation key.
pub const SLOT: u8 = 0xF9;
/// The data object holding the device attestation certificate (what `yubico-piv-tool -a
/// read-certificate -s f9` and `ykman piv certificates export f9` read).
pub const CERTIFICATE_OBJECT: [u8; 3] = [0x5F, 0xFF, 0x01];

/// Yubico's PIV attestation arc; the extensions below hang from it.
pub const YUBICO_PIV_ATTESTATION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3");
/// Firmware version: three raw bytes (major, minor, patch).
pub const EXT_FIRMWARE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.3");
/// Device serial: a DER INTEGER.
pub const EXT_SERIAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.7");
/// Key policies: two raw bytes, PIN policy then touch policy (1 never, 2 once / always, 3
/// always / cached).
pub const EXT_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.8");
/// Form factor: one raw byte (0x01: USB-A keychain).
pub const EXT_FORM_FACTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.41482.3.9");

const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
/// The seed of the simulated vendor root's key (any fixed value: the root must be the same
/// for every card and every run).
const ROOT_SEED: u64 = 0x5949_4B52_4F4F_5431;
/// Mixed into a card's seed for its device attestation key, so provisioning it leaves the
/// card's own RNG sequence (and every key it generates) as it was.
const DEVICE_SEED_MIX: u64 = 0x4639_4639_4639_4639;
/// Form factor reported: USB-A keychain.
const FORM_FACTOR: u8 = 0x01;

#[derive(Sequence)]
struct TbsCertificate {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT")]
    version: u8,
    serial_number: SerialNumber,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    validity: Validity,
    subject: Name,
    subject_public_key_info: SubjectPublicKeyInfoOwned,
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<Vec<Extension>>,
}

#[derive(Sequence)]
struct CertificateOut {
    tbs_certificate: TbsCertificate,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// The device attestation key and certificate a card is provisioned with.
pub struct DeviceAttestation {
    /// The F9 key (P-256).
    pub key: SlotKey,
    /// Its certificate (DER), issued by the vendor root.
    pub certificate: Vec<u8>,
}

/// The simulated vendor attestation root: its key and self-signed certificate (DER). The
/// same for every card and every run.
pub fn vendor_root() -> Result<(SlotKey, Vec<u8>), CryptoError> {
    // Made once per process: every card made after the first reuses it.
    static ROOT: std::sync::OnceLock<Result<(SlotKey, Vec<u8>), CryptoError>> =
        std::sync::OnceLock::new();
    ROOT.get_or_init(make_vendor_root).clone()
}

fn make_vendor_root() -> Result<(SlotKey, Vec<u8>), CryptoError> {
    let mut counter = 0;
    let key = crypto::generate(
        KeyAlgorithm::EccP256,
        &mut DetRng::new(ROOT_SEED, &mut counter),
    )?;
    let name = root_name()?;
    let certificate = sign_certificate(
        &CertificateFields {
            serial: vec![0x01],
            issuer: name.clone(),
            subject: name,
            public_key: crypto::spki_der(&key)?,
            validity: long_validity()?,
            extensions: vec![ca_constraints()?],
        },
        &key,
    )?;
    Ok((key, certificate))
}

/// The simulated vendor root certificate as PEM (what a test CA is configured to trust).
pub fn vendor_root_pem() -> Result<String, CryptoError> {
    let (_, der) = vendor_root()?;
    Certificate::from_der(&der)
        .and_then(|c| der::EncodePem::to_pem(&c, LineEnding::LF))
        .map_err(|_| CryptoError::BadKey)
}

/// A card's device attestation key and certificate, derived from the card's seed (so two
/// cards differ and a seeded card is reproducible).
pub fn provision(card_seed: u64) -> Result<DeviceAttestation, CryptoError> {
    let mut counter = 0;
    let mut rng = DetRng::new(card_seed ^ DEVICE_SEED_MIX, &mut counter);
    let key = crypto::generate(KeyAlgorithm::EccP256, &mut rng)?;
    let mut serial = rng.bytes(16);
    serial[0] &= 0x7F;
    serial[0] |= 0x01;
    let (root_key, root_certificate) = vendor_root()?;
    let root = Certificate::from_der(&root_certificate).map_err(|_| CryptoError::BadKey)?;
    let certificate = sign_certificate(
        &CertificateFields {
            serial,
            issuer: root.tbs_certificate().subject().clone(),
            subject: Name::from_str("CN=Yubico PIV Attestation")
                .map_err(|_| CryptoError::BadKey)?,
            public_key: crypto::spki_der(&key)?,
            validity: long_validity()?,
            extensions: vec![ca_constraints()?],
        },
        &root_key,
    )?;
    Ok(DeviceAttestation { key, certificate })
}

/// What an attestation states about the attested key besides the key itself.
pub struct Attested<'a> {
    /// The slot it is in.
    pub slot: u8,
    /// The key.
    pub key: &'a SlotKey,
    /// The card's serial.
    pub serial: u32,
    /// The firmware version.
    pub firmware: [u8; 3],
    /// Touch policy byte (1 never, 2 always, 3 cached).
    pub touch_policy: u8,
}

/// The attestation certificate for `attested`, issued under `device`'s certificate and signed
/// by its key. Its serial is derived from the attested public key (the same key attested twice
/// gets the same certificate); its validity is the device certificate's, as on a YubiKey.
pub fn attest(device: &DeviceAttestation, attested: &Attested<'_>) -> Result<Vec<u8>, CryptoError> {
    let device_cert =
        Certificate::from_der(&device.certificate).map_err(|_| CryptoError::BadKey)?;
    let public_key = crypto::spki_der(attested.key)?;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &public_key);
    let mut serial = digest.as_ref()[..16].to_vec();
    serial[0] &= 0x7F;
    serial[0] |= 0x01;
    let raw = |oid, value: &[u8]| -> Result<Extension, CryptoError> {
        Ok(Extension {
            extn_id: oid,
            critical: false,
            extn_value: OctetString::new(value).map_err(|_| CryptoError::BadInput)?,
        })
    };
    let serial_integer = attested
        .serial
        .to_der()
        .map_err(|_| CryptoError::BadInput)?;
    sign_certificate(
        &CertificateFields {
            serial,
            issuer: device_cert.tbs_certificate().subject().clone(),
            subject: Name::from_str(&format!("CN=YubiKey PIV Attestation {:02x}", attested.slot))
                .map_err(|_| CryptoError::BadInput)?,
            public_key,
            validity: *device_cert.tbs_certificate().validity(),
            extensions: vec![
                raw(EXT_FIRMWARE, &attested.firmware)?,
                raw(EXT_SERIAL, &serial_integer)?,
                raw(
                    EXT_POLICY,
                    &[attested.key.pin_policy.id(), attested.touch_policy],
                )?,
                raw(EXT_FORM_FACTOR, &[FORM_FACTOR])?,
            ],
        },
        &device.key,
    )
}

struct CertificateFields {
    serial: Vec<u8>,
    issuer: Name,
    subject: Name,
    public_key: Vec<u8>,
    validity: Validity,
    extensions: Vec<Extension>,
}

fn sign_certificate(
    fields: &CertificateFields,
    issuer_key: &SlotKey,
) -> Result<Vec<u8>, CryptoError> {
    let bad = |_| CryptoError::BadInput;
    let algorithm = AlgorithmIdentifierOwned {
        oid: ECDSA_WITH_SHA256,
        parameters: None,
    };
    let tbs = TbsCertificate {
        version: 2,
        serial_number: SerialNumber::new(&fields.serial).map_err(bad)?,
        signature: algorithm.clone(),
        issuer: fields.issuer.clone(),
        validity: fields.validity,
        subject: fields.subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(&fields.public_key)
            .map_err(bad)?,
        extensions: Some(fields.extensions.clone()),
    };
    let tbs_der = tbs.to_der().map_err(bad)?;
    let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &tbs_der);
    let signature = crypto::sign(issuer_key, hash.as_ref())?;
    CertificateOut {
        tbs_certificate: tbs,
        signature_algorithm: algorithm,
        signature: BitString::from_bytes(&signature).map_err(bad)?,
    }
    .to_der()
    .map_err(bad)
}

fn root_name() -> Result<Name, CryptoError> {
    Name::from_str("CN=Simulated Yubico PIV Root CA,O=cardrenew simulator (not Yubico)")
        .map_err(|_| CryptoError::BadInput)
}

/// 2024-01-01 to 9999-12-31 23:59:59 (RFC 5280 §4.1.2.5: no well-defined expiration).
fn long_validity() -> Result<Validity, CryptoError> {
    let start = UtcTime::from_unix_duration(std::time::Duration::from_secs(1_704_067_200))
        .map_err(|_| CryptoError::BadInput)?;
    let end = GeneralizedTime::from_date_time(
        der::DateTime::new(9999, 12, 31, 23, 59, 59).map_err(|_| CryptoError::BadInput)?,
    );
    Ok(Validity::new(Time::UtcTime(start), Time::GeneralTime(end)))
}

fn ca_constraints() -> Result<Extension, CryptoError> {
    // BasicConstraints { cA TRUE }.
    Ok(Extension {
        extn_id: BASIC_CONSTRAINTS,
        critical: true,
        extn_value: OctetString::new(vec![0x30, 0x03, 0x01, 0x01, 0xFF])
            .map_err(|_| CryptoError::BadInput)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::state::PinPolicy;

    #[test]
    fn the_vendor_root_is_the_same_every_time_and_each_card_has_its_own_device_key() {
        assert_eq!(vendor_root().unwrap().1, vendor_root().unwrap().1);
        let a = provision(1).unwrap();
        let b = provision(2).unwrap();
        assert_ne!(a.certificate, b.certificate);
        assert_eq!(a.certificate, provision(1).unwrap().certificate);
        let root = Certificate::from_der(&vendor_root().unwrap().1).unwrap();
        let device = Certificate::from_der(&a.certificate).unwrap();
        assert_eq!(
            device.tbs_certificate().issuer(),
            root.tbs_certificate().subject()
        );
    }

    #[test]
    fn an_attestation_names_the_slot_and_carries_the_cards_facts() {
        let device = provision(7).unwrap();
        let mut counter = 0;
        let mut key =
            crypto::generate(KeyAlgorithm::EccP256, &mut DetRng::new(9, &mut counter)).unwrap();
        key.pin_policy = PinPolicy::Always;
        let der = attest(
            &device,
            &Attested {
                slot: 0x9a,
                key: &key,
                serial: 1234,
                firmware: [5, 7, 1],
                touch_policy: 1,
            },
        )
        .unwrap();
        let cert = Certificate::from_der(&der).unwrap();
        let tbs = cert.tbs_certificate();
        assert_eq!(tbs.subject().to_string(), "CN=YubiKey PIV Attestation 9a");
        assert_eq!(
            tbs.subject_public_key_info().to_der().unwrap(),
            crypto::spki_der(&key).unwrap()
        );
        let ext = |oid| {
            tbs.extensions()
                .unwrap()
                .iter()
                .find(|e| e.extn_id == oid)
                .unwrap()
                .extn_value
                .as_bytes()
                .to_vec()
        };
        assert_eq!(ext(EXT_FIRMWARE), [5, 7, 1]);
        assert_eq!(ext(EXT_POLICY), [3, 1]);
        assert_eq!(ext(EXT_SERIAL), [0x02, 0x02, 0x04, 0xD2]);
    }
}
