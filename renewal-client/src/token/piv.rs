//! `Token` over a PIV card, driven with APDUs (SP 800-73-4, plus the YubiKey extensions
//! GET METADATA, MOVE/DELETE KEY, GET SERIAL/VERSION that real YubiKeys and our simulator
//! answer). The transport is a trait: PC/SC for real readers, memory for the simulator.
//!
//! Renewal layout: the certificate in use sits in 9A (where middleware looks). A new key is
//! generated in the first free *retired* slot (82–95), because generating into 9A would
//! destroy the old key before the new certificate exists. `supersede` then deletes 9A's key,
//! moves the new key into 9A and moves the certificate object, leaving the retired slot empty.

use std::sync::Arc;

use der::Decode;
use spki::SubjectPublicKeyInfoOwned;

use super::{
    Capacity, Container, ContainerId, KeyAlgorithm, PinSource, Token, TokenError, TokenInfo,
};
use crate::cmc::{KeyFamily, SignatureAlgorithm, attestation::KeyAttestation};

mod encoding;
mod management;
mod session;

pub(crate) use encoding::digest_info_prefix;
use encoding::{
    algorithm_id, certificate_tag, find_tlv, key_algorithm, parse_slot, slot_id,
    spki_from_template, tlv,
};

pub use management::{FACTORY_KEY, ManagementAlgorithm, ManagementKey};

/// Sends one APDU and returns the response (data + SW1 SW2).
pub trait ApduTransport {
    /// Exchanges one APDU. A removed card is `Err`.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, TokenError>;
}

/// The slots a renewal uses, in the order `containers` lists them.
const PRIMARY_SLOTS: [u8; 4] = [0x9A, 0x9C, 0x9D, 0x9E];
const RETIRED_SLOTS: std::ops::RangeInclusive<u8> = 0x82..=0x95;
const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

const SW_OK: u16 = 0x9000;
const SW_NOT_FOUND: u16 = 0x6A82;
const SW_REF_NOT_FOUND: u16 = 0x6A88;
const SW_FULL: u16 = 0x6A84;
const SW_BLOCKED: u16 = 0x6983;
const SW_SECURITY: u16 = 0x6982;
const SW_WRONG_P1P2: u16 = 0x6A86;

/// A PIV card behind a transport.
pub struct PivToken<T> {
    transport: T,
    pins: Arc<dyn PinSource>,
    management_key: ManagementKey,
    label: String,
    selected: bool,
    pin_verified: bool,
    management_authenticated: bool,
    /// What each slot holds, from one scan per session, kept current by our own mutations.
    /// Through pcscd + vpcd an APDU costs ~100 ms and a scan 48 APDUs, so re-scanning before
    /// every operation would make a renewal take minutes. Dropped on reset and on any failed
    /// mutation (the card's state is then uncertain).
    slots: Option<Vec<Container>>,
    /// Each key's PIN and touch policy (GET METADATA, asked once per slot and session);
    /// `None` for a slot the card gave none for (a card without GET METADATA).
    policies: std::collections::HashMap<u8, Option<KeyPolicy>>,
    /// A VERIFY with the PIN happened since the last private-key operation (what a
    /// PIN-"always" key needs; a 6982 after it is not the PIN's doing).
    pin_fresh: bool,
    /// Told when the card is about to wait for a touch (the CLI says "touch your key").
    touch_prompt: Option<TouchPrompt>,
    /// The firmware version GET VERSION reported (`Some(None)`: the card has no GET VERSION,
    /// a plain PIV card); asked by `info` and before a renewal's GENERATE.
    firmware: Option<Option<[u8; 3]>>,
}

/// Called with the slot before an operation the card will wait for a touch for.
pub type TouchPrompt = Arc<dyn Fn(u8) + Send + Sync>;

/// A key's policies as GET METADATA reports them (tag 02: PIN policy, touch policy; a
/// YubiKey's byte values).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct KeyPolicy {
    /// 0x01 never, 0x02 once, 0x03 always.
    pub pin: u8,
    /// 0x01 never, 0x02 always, 0x03 cached.
    pub touch: u8,
}

impl KeyPolicy {
    /// Whether an operation may wait for a touch.
    pub fn touch_required(self) -> bool {
        matches!(self.touch, 0x02 | 0x03)
    }
}

/// One exchanged response.
struct Reply {
    data: Vec<u8>,
    sw: u16,
}

impl<T: ApduTransport> PivToken<T> {
    /// A token over `transport`, asking `pins` for the PIN when the card needs it and using
    /// `management_key` for administrative operations.
    pub fn new(transport: T, pins: Arc<dyn PinSource>, management_key: ManagementKey) -> Self {
        Self {
            transport,
            pins,
            management_key,
            label: "PIV card".into(),
            selected: false,
            pin_verified: false,
            management_authenticated: false,
            slots: None,
            policies: std::collections::HashMap::new(),
            pin_fresh: false,
            touch_prompt: None,
            firmware: None,
        }
    }

    /// Calls `prompt` with the slot before every operation the card will wait for a touch for
    /// (keys whose touch policy is "always" or "cached").
    pub fn with_touch_prompt(mut self, prompt: TouchPrompt) -> Self {
        self.touch_prompt = Some(prompt);
        self
    }

    /// The transport (tests reach the simulator through it).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Forgets the session (after a card reset or reinsertion).
    pub fn reset_session(&mut self) {
        self.selected = false;
        self.pin_verified = false;
        self.management_authenticated = false;
        self.slots = None;
        self.policies.clear();
        self.pin_fresh = false;
        self.firmware = None;
    }

    /// Position of a slot in listing order (9A, 9C, 9D, 9E, then 82..95).
    fn order(id: &ContainerId) -> usize {
        let slot = u8::from_str_radix(&id.0, 16).unwrap_or(0xFF);
        PRIMARY_SLOTS
            .iter()
            .position(|s| *s == slot)
            .unwrap_or(PRIMARY_SLOTS.len() + usize::from(slot))
    }

    /// Records what a slot now holds (fresh from the card) in the session view.
    fn remember(&mut self, slot: u8, content: Option<Container>) {
        if let Some(slots) = &mut self.slots {
            slots.retain(|c| c.id != slot_id(slot));
            slots.extend(content);
            slots.sort_by_key(|c| Self::order(&c.id));
        }
    }

    /// Runs a mutation; on failure the session view is dropped.
    fn mutate<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, TokenError>,
    ) -> Result<R, TokenError> {
        let result = f(self);
        if result.is_err() {
            self.slots = None;
        }
        result
    }

    /// GENERATE in the first free retired slot, with PIN policy `pin_policy` (the byte of
    /// GENERATE's `AA` tag) when given, else the card's default for the slot.
    fn generate_with_policy(
        &mut self,
        algorithm: KeyAlgorithm,
        like: Option<KeyPolicy>,
    ) -> Result<Container, TokenError> {
        let used = self.containers()?;
        let slot = RETIRED_SLOTS
            .clone()
            .find(|s| !used.iter().any(|c| c.id == slot_id(*s)))
            .ok_or(TokenError::Full)?;
        self.mutate(|t| {
            t.authenticate_management()?;
            let mut template = tlv(&[0x80], &[algorithm_id(algorithm)]);
            // Only what differs from a retired slot's defaults (PIN once, touch never) is
            // asked for: a card without policies is never sent tags it may refuse.
            if let Some(policy) = like {
                if matches!(policy.pin, 0x01 | 0x03) {
                    template.extend(tlv(&[0xAA], &[policy.pin]));
                }
                if policy.touch_required() {
                    template.extend(tlv(&[0xAB], &[policy.touch]));
                }
            }
            let body = tlv(&[0xAC], &template);
            let reply = t.exchange(0x47, 0x00, slot, &body)?;
            // 6A80 (bad data) / 6A81 (function not supported): the card has no such algorithm
            // (SP 800-73-4 part 2 §3.3.2; YubiKeys before 5.7 answer so for RSA-3072/4096).
            if matches!(reply.sw, 0x6A80 | 0x6A81) {
                return Err(TokenError::Unsupported(
                    "the card cannot generate keys of this type",
                ));
            }
            let data = Self::expect_ok(reply, "GENERATE ASYMMETRIC KEY PAIR")?;
            let template = find_tlv(&data, &[0x7F, 0x49])
                .ok_or(TokenError::Malformed("public key template"))?;
            let public_key = spki_from_template(algorithm, template)
                .ok_or(TokenError::Malformed("public key"))?;
            let container = Container {
                id: slot_id(slot),
                algorithm: Some(algorithm),
                public_key: Some(public_key),
                certificate: None,
            };
            t.remember(slot, Some(container.clone()));
            // What was asked for is what the key has (a card that cannot do it refused); with
            // nothing asked, the card's defaults apply, which it will say when asked.
            match like {
                Some(p) => {
                    t.policies.insert(
                        slot,
                        Some(KeyPolicy {
                            pin: if matches!(p.pin, 0x01 | 0x03) {
                                p.pin
                            } else {
                                0x02
                            },
                            touch: if p.touch_required() { p.touch } else { 0x01 },
                        }),
                    );
                }
                None => {
                    t.policies.remove(&slot);
                }
            }
            Ok(container)
        })
    }

    /// The PIN and touch policy of the key in `slot` (YubiKey GET METADATA, tag 02), asked
    /// once per slot and session; `None` when the card does not say.
    fn key_policy(&mut self, slot: u8) -> Result<Option<KeyPolicy>, TokenError> {
        if let Some(known) = self.policies.get(&slot) {
            return Ok(*known);
        }
        self.select()?;
        let reply = self.exchange(0xF7, 0x00, slot, &[])?;
        let policy = (reply.sw == SW_OK)
            .then(|| find_tlv(&reply.data, &[0x02]))
            .flatten()
            .and_then(|p| match p {
                [pin, touch, ..] => Some(KeyPolicy {
                    pin: *pin,
                    touch: *touch,
                }),
                _ => None,
            });
        self.policies.insert(slot, policy);
        Ok(policy)
    }

    /// The key in a slot (YubiKey GET METADATA): `None` when the slot is empty.
    fn slot_key(
        &mut self,
        slot: u8,
    ) -> Result<Option<(KeyAlgorithm, Option<SubjectPublicKeyInfoOwned>)>, TokenError> {
        self.select()?;
        let reply = self.exchange(0xF7, 0x00, slot, &[])?;
        match reply.sw {
            SW_OK => {
                let alg = find_tlv(&reply.data, &[0x01])
                    .and_then(|a| a.first().copied())
                    .and_then(key_algorithm)
                    .ok_or(TokenError::Malformed("key metadata"))?;
                let spki = find_tlv(&reply.data, &[0x04]).and_then(|t| spki_from_template(alg, t));
                Ok(Some((alg, spki)))
            }
            SW_REF_NOT_FOUND | SW_NOT_FOUND => Ok(None),
            sw => Err(TokenError::Card {
                operation: "GET METADATA",
                sw,
            }),
        }
    }

    fn read_certificate(&mut self, slot: u8) -> Result<Option<Vec<u8>>, TokenError> {
        self.select()?;
        let reply = self.exchange(0xCB, 0x3F, 0xFF, &tlv(&[0x5C], &certificate_tag(slot)))?;
        match reply.sw {
            SW_OK => {
                let object = find_tlv(&reply.data, &[0x53])
                    .ok_or(TokenError::Malformed("certificate object"))?;
                match find_tlv(object, &[0x70]) {
                    Some(cert) if !cert.is_empty() => Ok(Some(cert.to_vec())),
                    _ => Ok(None),
                }
            }
            SW_NOT_FOUND => Ok(None),
            sw => Err(TokenError::Card {
                operation: "GET DATA certificate",
                sw,
            }),
        }
    }

    fn write_certificate(
        &mut self,
        slot: u8,
        certificate: Option<&[u8]>,
    ) -> Result<(), TokenError> {
        self.authenticate_management()?;
        let value = match certificate {
            Some(der) => {
                let mut v = tlv(&[0x70], der);
                v.extend(tlv(&[0x71], &[0x00]));
                v.extend(tlv(&[0xFE], &[]));
                v
            }
            None => vec![],
        };
        let mut body = tlv(&[0x5C], &certificate_tag(slot));
        body.extend(tlv(&[0x53], &value));
        let reply = self.exchange(0xDB, 0x3F, 0xFF, &body)?;
        // 6A84 here is not a full card but an object too large for it (a YubiKey holds 3,052
        // bytes per object): say so rather than "no free key container".
        if reply.sw == SW_FULL {
            return Err(TokenError::ObjectTooLarge { bytes: body.len() });
        }
        Self::expect_ok(reply, "PUT DATA certificate").map(|_| ())
    }

    fn container(&mut self, slot: u8) -> Result<Option<Container>, TokenError> {
        let key = self.slot_key(slot)?;
        let certificate = self.read_certificate(slot)?;
        if key.is_none() && certificate.is_none() {
            return Ok(None);
        }
        let has_key = key.is_some();
        let (algorithm, mut public_key) = match key {
            Some((alg, spki)) => (Some(alg), spki),
            None => (None, None),
        };
        if public_key.is_none() && has_key {
            public_key = certificate.as_ref().and_then(|c| {
                x509_cert::Certificate::from_der(c)
                    .ok()
                    .map(|c| c.tbs_certificate().subject_public_key_info().clone())
            });
        }
        Ok(Some(Container {
            id: slot_id(slot),
            algorithm,
            public_key,
            certificate,
        }))
    }

    /// A renewal puts the new key where the old one was (MOVE KEY) and deletes the old one
    /// (DELETE KEY): YubiKey extensions from firmware 5.7. On a card without them (a YubiKey
    /// 5.4, a plain PIV card) the new key would stay in a retired slot, outside where
    /// middleware looks, and the old one on the card: refused before anything is made.
    fn ensure_keys_can_move(&mut self) -> Result<(), TokenError> {
        let firmware = match self.firmware {
            Some(known) => known,
            None => {
                self.select()?;
                let version = self.exchange(0xFD, 0x00, 0x00, &[])?;
                let known = match (version.sw, version.data.as_slice()) {
                    (SW_OK, [a, b, c]) => Some([*a, *b, *c]),
                    _ => None,
                };
                self.firmware = Some(known);
                known
            }
        };
        match firmware {
            Some(v) if v >= [5, 7, 0] => Ok(()),
            Some([a, b, c]) => Err(TokenError::CannotMoveKeys {
                card: format!("a YubiKey with firmware {a}.{b}.{c}"),
            }),
            None => Err(TokenError::CannotMoveKeys {
                card: "a PIV card without Yubico's extensions".into(),
            }),
        }
    }

    /// The algorithm of the key in `slot`: from the session view, asking the card only when
    /// it does not know (each APDU costs ~100 ms through pcscd).
    fn key_algorithm_of(&mut self, id: &ContainerId, slot: u8) -> Result<KeyAlgorithm, TokenError> {
        let known = self
            .slots
            .as_ref()
            .and_then(|slots| slots.iter().find(|c| c.id == *id))
            .and_then(|c| c.algorithm);
        match known {
            Some(alg) => Ok(alg),
            None => Ok(self
                .slot_key(slot)?
                .ok_or_else(|| TokenError::NotFound(id.clone()))?
                .0),
        }
    }

    /// GENERAL AUTHENTICATE with the key in `slot` on `input` (a hash for ECDSA, a padded
    /// block for RSA), with the PIN and touch the key's policies ask for: the PIN verified
    /// once per session or again for a PIN-"always" key, a touch the card waits for.
    fn private_key_operation(
        &mut self,
        slot: u8,
        key_alg: KeyAlgorithm,
        input: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        if slot != 0x9E {
            self.login()?;
        }
        let policy = self.key_policy(slot)?;
        let mut body = tlv(&[0x82], &[]);
        body.extend(tlv(&[0x81], input));
        let mut reply = self.authenticate_with_key(slot, key_alg, &body, policy)?;
        if reply.sw == SW_SECURITY {
            // 6982 after a fresh VERIFY, on a key that needs a touch: nobody touched it in
            // time (a YubiKey waits 15 s). Asking for the PIN again would not help.
            let touch = policy.is_some_and(KeyPolicy::touch_required);
            let pin_always = policy.is_some_and(|p| p.pin == 0x03);
            if touch && (std::mem::take(&mut self.pin_fresh) || !pin_always) {
                return Err(TokenError::TouchTimeout { slot });
            }
            // The card wants the PIN again: the key's PIN policy is "always" (a VERIFY before
            // every use), or the card lost the session's PIN state (reset by another
            // application). Either way one fresh verification — a prompt, counted — and once
            // more.
            self.pin_verified = false;
            self.verify_pin(None)?;
            reply = self.authenticate_with_key(slot, key_alg, &body, policy)?;
            if reply.sw == SW_SECURITY && touch {
                return Err(TokenError::TouchTimeout { slot });
            }
        }
        self.pin_fresh = false;
        let data = Self::expect_ok(reply, "GENERAL AUTHENTICATE")?;
        find_tlv(&data, &[0x7C])
            .and_then(|t| find_tlv(t, &[0x82]))
            .map(<[u8]>::to_vec)
            .ok_or(TokenError::Malformed("signature"))
    }

    /// GENERAL AUTHENTICATE with the key in `slot`, saying "touch your key" first when its
    /// policy makes the card wait for one. The PIN verification (if any) is spent by it.
    fn authenticate_with_key(
        &mut self,
        slot: u8,
        key_alg: KeyAlgorithm,
        body: &[u8],
        policy: Option<KeyPolicy>,
    ) -> Result<Reply, TokenError> {
        // A PIN-"always" key without a fresh VERIFY is refused before the card waits.
        let waits = policy.is_some_and(|p| p.touch_required() && (p.pin != 0x03 || self.pin_fresh));
        if waits && let Some(prompt) = &self.touch_prompt {
            prompt(slot);
        }
        let reply = self.exchange(0x87, algorithm_id(key_alg), slot, &tlv(&[0x7C], body));
        if reply.as_ref().is_ok_and(|r| r.sw != SW_SECURITY) {
            self.pin_fresh = false;
        }
        reply
    }

    fn delete_key(&mut self, slot: u8) -> Result<(), TokenError> {
        self.policies.remove(&slot);
        self.authenticate_management()?;
        let reply = self.exchange(0xF6, 0xFF, slot, &[])?;
        match reply.sw {
            SW_OK | SW_REF_NOT_FOUND => Ok(()),
            sw => Err(TokenError::Card {
                operation: "DELETE KEY",
                sw,
            }),
        }
    }
}

impl<T: ApduTransport> Token for PivToken<T> {
    fn info(&mut self) -> Result<TokenInfo, TokenError> {
        self.select()?;
        let version = self.exchange(0xFD, 0x00, 0x00, &[])?;
        let serial = self.exchange(0xF8, 0x00, 0x00, &[])?;
        let description = match (version.sw, version.data.as_slice()) {
            (SW_OK, [a, b, c]) => {
                self.firmware = Some(Some([*a, *b, *c]));
                format!("PIV (YubiKey-compatible {a}.{b}.{c})")
            }
            _ => {
                self.firmware = Some(None);
                "PIV".to_string()
            }
        };
        let serial = match (serial.sw, serial.data.as_slice()) {
            (SW_OK, [a, b, c, d]) => u32::from_be_bytes([*a, *b, *c, *d]).to_string(),
            _ => "unknown".to_string(),
        };
        self.label = format!("PIV card {serial}");
        Ok(TokenInfo {
            description,
            serial,
        })
    }

    fn containers(&mut self) -> Result<Vec<Container>, TokenError> {
        if let Some(slots) = &self.slots {
            return Ok(slots.clone());
        }
        let mut out = Vec::new();
        for slot in PRIMARY_SLOTS.into_iter().chain(RETIRED_SLOTS) {
            if let Some(c) = self.container(slot)? {
                out.push(c);
            }
        }
        self.slots = Some(out.clone());
        Ok(out)
    }

    fn capacity(&mut self) -> Result<Capacity, TokenError> {
        let used = self.containers()?;
        let free_retired = RETIRED_SLOTS
            .clone()
            .filter(|s| !used.iter().any(|c| c.id == slot_id(*s)))
            .count();
        Ok(Capacity {
            used: used.len(),
            free: Some(free_retired),
        })
    }

    fn generate(&mut self, algorithm: KeyAlgorithm) -> Result<Container, TokenError> {
        self.generate_with_policy(algorithm, None)
    }

    fn generate_like(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &ContainerId,
    ) -> Result<Container, TokenError> {
        self.ensure_keys_can_move()?;
        let policy = self.key_policy(parse_slot(like)?)?;
        self.generate_with_policy(algorithm, policy)
    }

    /// YubiKey ATTEST (INS F9, P1 = slot) and the F9 certificate (object 5FFF01). Neither
    /// needs the PIN. A card without attestation answers 6D00 (INS not supported); an imported
    /// key 6A80.
    fn attest(&mut self, id: &ContainerId) -> Result<KeyAttestation, TokenError> {
        const NOT_SUPPORTED: u16 = 0x6D00;
        const ATTESTATION_OBJECT: [u8; 3] = [0x5F, 0xFF, 0x01];
        let slot = parse_slot(id)?;
        self.select()?;
        let reply = self.exchange(0xF9, slot, 0x00, &[])?;
        let statement = match reply.sw {
            NOT_SUPPORTED => {
                return Err(TokenError::Unsupported(
                    "key attestation (the card has no ATTEST command)",
                ));
            }
            _ => Self::expect_ok(reply, "ATTEST")?,
        };
        let object = self
            .read_object(&ATTESTATION_OBJECT)?
            .ok_or(TokenError::Unsupported(
                "key attestation (the card holds no attestation certificate in F9)",
            ))?;
        let device_certificate = find_tlv(&object, &[0x70])
            .ok_or(TokenError::Malformed("attestation certificate object"))?
            .to_vec();
        Ok(KeyAttestation {
            statement,
            device_certificate,
        })
    }

    fn sign(
        &mut self,
        id: &ContainerId,
        algorithm: SignatureAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        let slot = parse_slot(id)?;
        let key_alg = self.key_algorithm_of(id, slot)?;
        let hash = algorithm.digest.digest(message);
        let input = match (key_alg, algorithm.family) {
            (KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384, KeyFamily::Ecdsa) => hash,
            (
                KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096,
                KeyFamily::Rsa,
            ) => {
                // The card does raw RSA on a block of the modulus's size: EMSA-PKCS1-v1_5
                // (RFC 8017 §9.2) is done here.
                let size = key_alg.rsa_bits().map_or(256, |bits| bits as usize / 8);
                let info = [digest_info_prefix(algorithm.digest), &hash].concat();
                let mut block = vec![0x00, 0x01];
                block.resize(size - info.len() - 1, 0xFF);
                block.push(0x00);
                block.extend_from_slice(&info);
                block
            }
            _ => {
                return Err(TokenError::Unsupported(
                    "signature algorithm does not match the key",
                ));
            }
        };
        self.private_key_operation(slot, key_alg, &input)
    }

    fn can_sign_raw_rsa(&self) -> bool {
        true
    }

    fn sign_raw_rsa(&mut self, id: &ContainerId, block: &[u8]) -> Result<Vec<u8>, TokenError> {
        let slot = parse_slot(id)?;
        let key_alg = self.key_algorithm_of(id, slot)?;
        if key_alg.rsa_bits().is_none() {
            return Err(TokenError::Unsupported(
                "raw RSA with a key that is not RSA",
            ));
        }
        if Some(block.len()) != key_alg.rsa_bits().map(|bits| bits as usize / 8) {
            return Err(TokenError::Unsupported(
                "a raw RSA block of another length than the modulus",
            ));
        }
        self.private_key_operation(slot, key_alg, block)
    }

    fn install_certificate(
        &mut self,
        id: &ContainerId,
        certificate: &[u8],
    ) -> Result<(), TokenError> {
        let slot = parse_slot(id)?;
        self.mutate(|t| {
            t.write_certificate(slot, Some(certificate))?;
            let fresh = t.container(slot)?;
            t.remember(slot, fresh);
            Ok(())
        })
    }

    fn delete(&mut self, id: &ContainerId) -> Result<(), TokenError> {
        let slot = parse_slot(id)?;
        self.mutate(|t| {
            t.delete_key(slot)?;
            t.write_certificate(slot, None)?;
            // Re-read: a delete that reported success is not proof.
            if t.container(slot)?.is_some() {
                return Err(TokenError::DeleteNotEffective(id.clone()));
            }
            t.remember(slot, None);
            Ok(())
        })
    }

    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, TokenError> {
        let (old_slot, new_slot) = (parse_slot(old)?, parse_slot(new)?);
        // Resumable: after a crash inside a previous supersede, the card is in one of the
        // intermediate states below and this picks up from there.
        self.mutate(|t| {
            let certificate = t.read_certificate(new_slot)?;
            let new_has_key = t.slot_key(new_slot)?.is_some();
            match (new_has_key, certificate) {
                (true, Some(certificate)) => {
                    t.delete_key(old_slot)?;
                    t.authenticate_management()?;
                    let reply = t.exchange(0xF6, old_slot, new_slot, &[])?;
                    Self::expect_ok(reply, "MOVE KEY")?;
                    t.write_certificate(old_slot, Some(&certificate))?;
                    t.write_certificate(new_slot, None)?;
                }
                // The key moved; the certificate did not yet.
                (false, Some(certificate)) => {
                    t.write_certificate(old_slot, Some(&certificate))?;
                    t.write_certificate(new_slot, None)?;
                }
                (true, None) => {
                    return Err(TokenError::Unsupported(
                        "supersede before the new certificate is installed",
                    ));
                }
                // Nothing left in the new slot: a previous supersede finished.
                (false, None) => {}
            }
            if t.container(new_slot)?.is_some() {
                return Err(TokenError::DeleteNotEffective(new.clone()));
            }
            let moved = t.container(old_slot)?;
            t.remember(new_slot, None);
            t.remember(old_slot, moved);
            // The key took its policies along.
            match t.policies.remove(&new_slot) {
                Some(policy) => {
                    t.policies.insert(old_slot, policy);
                }
                None => {
                    t.policies.remove(&old_slot);
                }
            }
            Ok(old.clone())
        })
    }
}
