//! The YubiKey extensions beyond SP 800-73-4, as firmware 5.7 answers them: MOVE / DELETE
//! KEY, GET METADATA, SET PIN RETRIES, IMPORT, SET MANAGEMENT KEY, ATTEST and RESET.

use super::{PivApplet, Reply, Session, hex, requested_pin_policy, requested_touch_policy};
use crate::{
    apdu::Command,
    attestation, crypto,
    objects::{self, MANAGEMENT_KEY, PIN_REF, PUK_REF},
    state::{CardConfig, Hex, KeyAlgorithm, ManagementAlgorithm, Reference, Secret, pad_pin},
    sw,
    tlv::{self, tlv},
};

impl PivApplet {
    /// YubiKey MOVE / DELETE KEY: P1 = destination slot (0xFF: delete), P2 = source. The
    /// destination must be empty. Certificates are data objects and are not moved.
    pub(super) fn move_key(&mut self, cmd: &Command) -> Reply {
        if !self.session.management_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let (to, from) = (cmd.p1, cmd.p2);
        if !objects::is_key_slot(from) || (to != 0xFF && !objects::is_key_slot(to)) {
            return Err(sw::WRONG_P1P2);
        }
        if to != 0xFF && self.state.keys.contains_key(&hex(&[to])) {
            return Err(sw::CONDITIONS);
        }
        let key = self
            .state
            .keys
            .remove(&hex(&[from]))
            .ok_or(sw::REF_NOT_FOUND)?;
        self.dirty = true;
        if to != 0xFF {
            self.state.keys.insert(hex(&[to]), key);
        }
        Ok(vec![])
    }

    pub(super) fn metadata(&mut self, cmd: &Command) -> Reply {
        let slot = cmd.p2;
        match slot {
            MANAGEMENT_KEY => {
                let mut v = tlv(&[0x01], &[self.state.management_algorithm.id()]);
                v.extend(tlv(&[0x02], &[0x00, 0x01]));
                let default =
                    self.state.management_key.0.as_slice() == crate::state::DEFAULT_MANAGEMENT_KEY;
                v.extend(tlv(&[0x05], &[u8::from(default)]));
                Ok(v)
            }
            PIN_REF | PUK_REF => {
                let default_value = pad_pin(if slot == PIN_REF {
                    crate::state::DEFAULT_PIN.as_bytes()
                } else {
                    crate::state::DEFAULT_PUK.as_bytes()
                })
                .unwrap_or_default();
                let r = self.reference(slot)?;
                let default = r.value.0.as_slice() == default_value.as_slice();
                let (max, left) = (r.retries_max, r.retries_left);
                let mut v = tlv(&[0x05], &[u8::from(default)]);
                v.extend(tlv(&[0x06], &[max, left]));
                Ok(v)
            }
            s if objects::is_key_slot(s) => {
                let key = self.state.keys.get(&hex(&[s])).ok_or(sw::REF_NOT_FOUND)?;
                let mut v = tlv(&[0x01], &[key.algorithm.id()]);
                v.extend(tlv(&[0x02], &[key.pin_policy.id(), key.touch_policy.id()]));
                v.extend(tlv(&[0x03], &[if key.generated { 0x01 } else { 0x02 }]));
                v.extend(tlv(
                    &[0x04],
                    &crypto::public_key_template(key).map_err(|_| sw::NO_DIAGNOSIS)?,
                ));
                Ok(v)
            }
            _ => Err(sw::REF_NOT_FOUND),
        }
    }

    /// Stores the current management key on the card under the PIN, as ykman's
    /// `piv access change-management-key --protect` leaves a YubiKey: the key in the PIVMAN
    /// protected object (readable after VERIFY only), the "protected" flag in the PIVMAN data.
    pub fn protect_management_key(&mut self) {
        let key = self.state.management_key.0.clone();
        self.state.objects.insert(
            hex(&objects::PIVMAN_DATA),
            Hex(objects::pivman_data(
                objects::PIVMAN_FLAG_MANAGEMENT_KEY_PROTECTED,
            )),
        );
        self.state.objects.insert(
            hex(&objects::PIVMAN_PROTECTED_DATA),
            Hex(objects::pivman_protected_data(&key)),
        );
        self.dirty = true;
    }

    /// YubiKey SET PIN RETRIES: the PIN's and the PUK's tries (1–255 each, P1 and P2), after
    /// management-key authentication and PIN verification; PIN and PUK return to their
    /// factory values, as on a YubiKey.
    pub(super) fn set_pin_retries(&mut self, cmd: &Command) -> Reply {
        if !self.session.management_authenticated || !self.session.pin_verified {
            return Err(sw::SECURITY_STATUS);
        }
        if cmd.p1 == 0 || cmd.p2 == 0 {
            return Err(sw::WRONG_P1P2);
        }
        let reset = |value: &[u8], tries: u8| -> Result<Reference, u16> {
            Ok(Reference {
                value: Secret::new(pad_pin(value).ok_or(sw::NO_DIAGNOSIS)?),
                retries_left: tries,
                retries_max: tries,
            })
        };
        self.state.pin = reset(crate::state::DEFAULT_PIN.as_bytes(), cmd.p1)?;
        self.state.puk = reset(crate::state::DEFAULT_PUK.as_bytes(), cmd.p2)?;
        self.session.pin_verified = false;
        self.dirty = true;
        Ok(vec![])
    }

    /// YubiKey IMPORT ASYMMETRIC KEY of an EC key (tag 06: the private scalar), after
    /// management-key authentication; the key's metadata says "imported". RSA import (tags
    /// 01–05, the CRT components) is not modelled: answered 6A81 rather than half done.
    pub(super) fn import_key(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if !self.session.management_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let slot = cmd.p2;
        if !objects::is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        let algorithm = KeyAlgorithm::from_id(cmd.p1)
            .filter(|a| self.state.algorithms.contains(a))
            .ok_or(sw::WRONG_P1P2)?;
        if algorithm.is_rsa() {
            return Err(sw::FUNC_NOT_SUPPORTED);
        }
        let scalar = tlv::find(data, &[0x06]).ok_or(sw::WRONG_DATA)?;
        let pin_policy = requested_pin_policy(data, slot)?;
        let touch_policy = requested_touch_policy(data)?;
        let mut key = crypto::import_ec(algorithm, scalar).map_err(|_| sw::WRONG_DATA)?;
        key.pin_policy = pin_policy;
        key.touch_policy = touch_policy;
        if !self.state.keys.contains_key(&hex(&[slot]))
            && self.state.keys.len() >= self.state.capacity
        {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        self.state.keys.insert(hex(&[slot]), key);
        self.dirty = true;
        Ok(vec![])
    }

    /// YubiKey SET MANAGEMENT KEY: data = algorithm id, then `9B` TLV with the key. Needs the
    /// current management key. Touch (P2 0xFE) is not modelled, so it is refused rather than
    /// accepted and ignored.
    pub(super) fn set_management_key(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if !self.session.management_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        if (cmd.p1, cmd.p2) != (0xFF, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        let (&id, rest) = data.split_first().ok_or(sw::WRONG_DATA)?;
        let algorithm = ManagementAlgorithm::from_id(id).ok_or(sw::WRONG_DATA)?;
        let key = tlv::find(rest, &[MANAGEMENT_KEY]).ok_or(sw::WRONG_DATA)?;
        if key.len() != algorithm.key_len() {
            return Err(sw::WRONG_DATA);
        }
        self.state.management_algorithm = algorithm;
        self.state.management_key = Secret::new(key.to_vec());
        self.dirty = true;
        Ok(vec![])
    }

    /// YubiKey ATTEST: a certificate for the key in slot P1, signed by the device attestation
    /// key — only for a key the card generated (an imported key answers 6A80, an empty slot
    /// 6A88). No PIN and no management key: the attestation is public.
    pub(super) fn attest(&mut self, cmd: &Command) -> Reply {
        let slot = cmd.p1;
        if cmd.p2 != 0 || !objects::is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        let key = self
            .state
            .keys
            .get(&hex(&[slot]))
            .ok_or(sw::REF_NOT_FOUND)?;
        if !key.generated {
            return Err(sw::WRONG_DATA);
        }
        let device = self.device_attestation().ok_or(sw::REF_NOT_FOUND)?;
        let key = self
            .state
            .keys
            .get(&hex(&[slot]))
            .ok_or(sw::REF_NOT_FOUND)?;
        attestation::attest(
            &device,
            &attestation::Attested {
                slot,
                key,
                serial: self.state.serial,
                firmware: self.version(),
                touch_policy: key.touch_policy.id(),
            },
        )
        .map_err(|_| sw::NO_DIAGNOSIS)
    }

    pub(super) fn factory_reset(&mut self) -> Reply {
        if self.state.pin.retries_left != 0 || self.state.puk.retries_left != 0 {
            return Err(sw::CONDITIONS);
        }
        let config = CardConfig {
            capacity: self.state.capacity,
            seed: self.state.rng_seed.wrapping_add(self.state.rng_counter),
            algorithms: self.state.algorithms.clone(),
            ..CardConfig::of_model(self.state.model)
        };
        let fresh = Self::new(&config).map_err(|_| sw::NO_DIAGNOSIS)?;
        // The serial and the attestation key and certificate are the device's, not the
        // application's: a reset keeps them.
        let serial = self.state.serial;
        let attestation_key = self.state.attestation_key.take();
        let attestation_object = self
            .state
            .objects
            .remove(&hex(&attestation::CERTIFICATE_OBJECT));
        self.state = fresh.state;
        self.state.serial = serial;
        if attestation_key.is_some() {
            self.state.attestation_key = attestation_key;
        }
        if let Some(object) = attestation_object {
            self.state
                .objects
                .insert(hex(&attestation::CERTIFICATE_OBJECT), object);
        }
        self.session = Session {
            selected: true,
            ..Session::default()
        };
        self.dirty = true;
        Ok(vec![])
    }
}
