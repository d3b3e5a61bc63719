//! The PIV applet: a function from a parsed command to a reply whose errors are status words.
//! It knows no transport; [`crate::card::SimCard`] and the vpcd server feed it bytes.

use std::collections::BTreeMap;

mod yubico;

use crate::{
    apdu::{Command, Response},
    attestation,
    crypto::{self, DetRng},
    objects::{self, MANAGEMENT_KEY, PIN_REF, PUK_REF},
    state::{
        CardConfig, CardState, Hex, KeyAlgorithm, ManagementAlgorithm, PinPolicy, Reference,
        Secret, StateError, pad_pin, unpadded_len,
    },
    sw,
    tlv::{self, tlv},
    touch::{TouchPolicy, TouchSensor},
};

/// Instruction bytes this card implements.
pub mod ins {
    /// SELECT.
    pub const SELECT: u8 = 0xA4;
    /// GET DATA.
    pub const GET_DATA: u8 = 0xCB;
    /// PUT DATA.
    pub const PUT_DATA: u8 = 0xDB;
    /// VERIFY.
    pub const VERIFY: u8 = 0x20;
    /// CHANGE REFERENCE DATA.
    pub const CHANGE_REFERENCE: u8 = 0x24;
    /// RESET RETRY COUNTER.
    pub const RESET_RETRY: u8 = 0x2C;
    /// GENERATE ASYMMETRIC KEY PAIR.
    pub const GENERATE: u8 = 0x47;
    /// GENERAL AUTHENTICATE.
    pub const GENERAL_AUTHENTICATE: u8 = 0x87;
    /// GET RESPONSE.
    pub const GET_RESPONSE: u8 = 0xC0;
    /// YubiKey MOVE / DELETE KEY (P1 = destination or 0xFF to delete, P2 = source).
    pub const MOVE_KEY: u8 = 0xF6;
    /// YubiKey GET METADATA.
    pub const GET_METADATA: u8 = 0xF7;
    /// YubiKey GET SERIAL.
    pub const GET_SERIAL: u8 = 0xF8;
    /// YubiKey RESET (only when PIN and PUK are blocked).
    pub const RESET: u8 = 0xFB;
    /// YubiKey GET VERSION.
    pub const GET_VERSION: u8 = 0xFD;
    /// YubiKey SET MANAGEMENT KEY (P1 0xFF, P2 0xFF; 0xFE would require touch).
    pub const SET_MANAGEMENT_KEY: u8 = 0xFF;
    /// YubiKey SET PIN RETRIES (P1 PIN tries, P2 PUK tries).
    pub const SET_PIN_RETRIES: u8 = 0xFA;
    /// YubiKey IMPORT ASYMMETRIC KEY (P1 algorithm, P2 slot).
    pub const IMPORT_KEY: u8 = 0xFE;
    /// YubiKey ATTEST (P1 slot, P2 0x00): the attestation certificate of a generated key.
    pub const ATTEST: u8 = 0xF9;
}

/// The firmware version reported to YubiKey-aware tools: 5.7.x has MOVE/DELETE KEY.
pub const VERSION: [u8; 3] = [5, 7, 1];

/// What the applet remembers until the card is reset or powered off.
#[derive(Default)]
struct Session {
    selected: bool,
    /// The YubiKey management application is selected instead of PIV.
    management: bool,
    pin_verified: bool,
    /// A VERIFY with the PIN's value since the last use of a PIN-always key (an empty
    /// status VERIFY does not count).
    pin_fresh: bool,
    management_authenticated: bool,
    /// Witness the host must decrypt (mutual authentication step 1).
    witness: Option<Vec<u8>>,
    /// Challenge the host must encrypt (single authentication).
    challenge: Option<Vec<u8>>,
    /// Data of chained commands so far, with their INS/P1/P2.
    chain: Option<(u8, u8, u8, Vec<u8>)>,
    /// Response data not yet fetched with GET RESPONSE.
    pending: Vec<u8>,
}

/// A PIV card application over a [`CardState`].
pub struct PivApplet {
    state: CardState,
    session: Session,
    dirty: bool,
    /// The touch sensor of the device (hardware, not state).
    touch: TouchSensor,
}

type Reply = Result<Vec<u8>, u16>;

impl PivApplet {
    /// A fresh card.
    pub fn new(config: &CardConfig) -> Result<Self, StateError> {
        let pin = pad_pin(config.pin.as_bytes()).ok_or(StateError::Config("PIN longer than 8"))?;
        let puk = pad_pin(config.puk.as_bytes()).ok_or(StateError::Config("PUK longer than 8"))?;
        if config.pin.len() < 6 || config.puk.len() < 6 {
            return Err(StateError::Config("PIN and PUK need at least 6 characters"));
        }
        if config.retries == 0 || config.retries > 15 {
            return Err(StateError::Config("retries must be 1..=15"));
        }
        if config.management_key.1.len() != config.management_key.0.key_len() {
            return Err(StateError::Config(
                "the management key's length does not match its algorithm",
            ));
        }
        let mut counter = 0;
        let mut rng = DetRng::new(config.seed, &mut counter);
        let serial_bytes = rng.bytes(4);
        let serial = u32::from_be_bytes([
            serial_bytes[0] & 0x7f,
            serial_bytes[1],
            serial_bytes[2],
            serial_bytes[3],
        ]);
        let guid = rng.bytes(16);
        let card_id = rng.bytes(14);
        let mut objects = BTreeMap::new();
        objects.insert(hex(&objects::CHUID), Hex(objects::chuid(serial, &guid)));
        objects.insert(hex(&objects::CCC), Hex(objects::ccc(&card_id)));

        let reference = |value: Vec<u8>| Reference {
            value: Secret::new(value),
            retries_left: config.retries,
            retries_max: config.retries,
        };
        Ok(Self::from_state(CardState {
            serial,
            pin: reference(pin),
            puk: reference(puk),
            management_algorithm: config.management_key.0,
            management_key: Secret::new(config.management_key.1.to_vec()),
            capacity: config.capacity,
            keys: BTreeMap::new(),
            objects,
            rng_seed: config.seed,
            rng_counter: counter,
            algorithms: config.algorithms.clone(),
            // Made when first needed (ATTEST, or reading F9's certificate): it derives from
            // the seed, and making it costs three signatures a card that is never asked
            // need not spend.
            attestation_key: None,
            touch_timeout_ms: crate::touch::DEFAULT_TIMEOUT.as_millis() as u64,
            model: config.model,
        }))
    }

    /// A card from saved state (powered on, nothing selected or verified).
    pub fn from_state(state: CardState) -> Self {
        Self {
            state,
            session: Session::default(),
            dirty: false,
            touch: TouchSensor::default(),
        }
    }

    /// The touch sensor (a clone: press it from another thread).
    pub fn touch_sensor(&self) -> TouchSensor {
        self.touch.clone()
    }

    /// Replaces the touch sensor (a simulated user who touches, or nobody).
    pub fn set_touch_sensor(&mut self, sensor: TouchSensor) {
        self.touch = sensor;
    }

    /// The card's state.
    pub fn state(&self) -> &CardState {
        &self.state
    }

    /// Mutable state, for fault injection and provisioning tools.
    pub fn state_mut(&mut self) -> &mut CardState {
        self.dirty = true;
        &mut self.state
    }

    /// Whether the state changed since the last call (the vpcd server saves then).
    pub fn take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.dirty)
    }

    /// Power cycle / reset: the session is forgotten, the state kept.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// The management application's commands: READ CONFIG (INS 1D) answers the device info
    /// ykman parses — the applications this card has (PIV only: the virtual card is nothing
    /// else), serial, form factor (USB-A keychain), firmware, configuration unlocked.
    fn management(&mut self, cmd: &Command) -> Reply {
        const READ_CONFIG: u8 = 0x1D;
        const PIV: [u8; 2] = [0x00, 0x10];
        if cmd.ins != READ_CONFIG {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        let mut info = tlv(&[0x01], &PIV);
        info.extend(tlv(&[0x02], &self.state.serial.to_be_bytes()));
        info.extend(tlv(&[0x03], &PIV));
        info.extend(tlv(&[0x04], &[0x01]));
        info.extend(tlv(&[0x05], &self.version()));
        info.extend(tlv(&[0x0A], &[0x00]));
        let mut out = vec![u8::try_from(info.len()).map_err(|_| sw::NO_DIAGNOSIS)?];
        out.extend(info);
        Ok(out)
    }

    /// The device attestation key and certificate (F9), made from the seed the first time
    /// they are needed and kept from then on (a factory reset keeps them); `None` on a model
    /// without attestation.
    fn device_attestation(&mut self) -> Option<attestation::DeviceAttestation> {
        if !self.state.model.attests() {
            return None;
        }
        let object = hex(&attestation::CERTIFICATE_OBJECT);
        if self.state.attestation_key.is_none() || !self.state.objects.contains_key(&object) {
            let device = attestation::provision(self.state.rng_seed).ok()?;
            self.state.objects.insert(
                object.clone(),
                Hex(objects::certificate_object(&device.certificate)),
            );
            self.state.attestation_key = Some(device.key);
            self.dirty = true;
        }
        let certificate = self
            .state
            .objects
            .get(&object)
            .and_then(|o| tlv::find(&o.0, &[0x70]))?
            .to_vec();
        Some(attestation::DeviceAttestation {
            key: self.state.attestation_key.clone()?,
            certificate,
        })
    }

    /// The firmware version this model reports.
    fn version(&self) -> [u8; 3] {
        self.state.model.version().unwrap_or(VERSION)
    }

    /// Whether the PIN has been verified in this session.
    pub fn pin_verified(&self) -> bool {
        self.session.pin_verified
    }

    /// Processes raw APDU bytes (parse errors become status words).
    pub fn process_bytes(&mut self, apdu: &[u8]) -> Vec<u8> {
        match Command::parse(apdu) {
            Ok(cmd) => self.process(&cmd).to_bytes(),
            Err(_) => Response::status(sw::WRONG_LENGTH).to_bytes(),
        }
    }

    /// Processes one command: chaining, dispatch, and splitting long replies into 61xx chunks.
    pub fn process(&mut self, cmd: &Command) -> Response {
        if cmd.cla & !0x10 != 0 {
            return Response::status(sw::CLA_NOT_SUPPORTED);
        }
        if cmd.ins == ins::GET_RESPONSE {
            return self.next_chunk(cmd.le.unwrap_or(256));
        }
        self.session.pending.clear();
        // A command that does not continue the pending chain abandons it (what was sent is
        // dropped, nothing applied) and is processed on its own: a chain cut short by a failed
        // or lost APDU must not wedge the card until it is reset.
        if self
            .session
            .chain
            .as_ref()
            .is_some_and(|c| (c.0, c.1, c.2) != (cmd.ins, cmd.p1, cmd.p2))
        {
            self.session.chain = None;
        }
        if cmd.is_chained() {
            let chain = self
                .session
                .chain
                .get_or_insert_with(|| (cmd.ins, cmd.p1, cmd.p2, Vec::new()));
            chain.3.extend_from_slice(&cmd.data);
            if chain.3.len() > 64 * 1024 {
                self.session.chain = None;
                return Response::status(sw::WRONG_LENGTH);
            }
            return Response::status(sw::OK);
        }
        let data = match self.session.chain.take() {
            Some((_, _, _, mut data)) => {
                data.extend_from_slice(&cmd.data);
                data
            }
            None => cmd.data.clone(),
        };
        if !self.session.selected && cmd.ins != ins::SELECT {
            // Before SELECT the PIV application does not answer (a real card's default
            // application would say "not supported").
            return Response::status(sw::INS_NOT_SUPPORTED);
        }
        let reply = if self.session.management && cmd.ins != ins::SELECT {
            self.management(cmd)
        } else {
            self.dispatch(cmd, &data)
        };
        match reply {
            Ok(reply) => {
                self.session.pending = reply;
                self.next_chunk(cmd.le.unwrap_or(256))
            }
            Err(status) => Response::status(status),
        }
    }

    fn next_chunk(&mut self, le: usize) -> Response {
        let take = le.min(self.session.pending.len());
        let data: Vec<u8> = self.session.pending.drain(..take).collect();
        let left = self.session.pending.len();
        if left == 0 {
            Response::ok(data)
        } else {
            Response {
                data,
                sw: sw::MORE_DATA | (left.min(256) % 256) as u16,
            }
        }
    }

    fn dispatch(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        // What the model does not have it answers as such a card does: INS not supported.
        if !self.state.model.supports(cmd.ins) {
            return Err(sw::INS_NOT_SUPPORTED);
        }
        match cmd.ins {
            ins::SELECT => self.select(cmd, data),
            ins::GET_DATA => self.get_data(cmd, data),
            ins::PUT_DATA => self.put_data(cmd, data),
            ins::VERIFY => self.verify(cmd, data),
            ins::CHANGE_REFERENCE => self.change_reference(cmd, data),
            ins::RESET_RETRY => self.reset_retry(cmd, data),
            ins::GENERATE => self.generate(cmd, data),
            ins::GENERAL_AUTHENTICATE => self.general_authenticate(cmd, data),
            ins::MOVE_KEY => self.move_key(cmd),
            ins::GET_METADATA => self.metadata(cmd),
            ins::GET_SERIAL => Ok(self.state.serial.to_be_bytes().to_vec()),
            ins::GET_VERSION => Ok(self.version().to_vec()),
            ins::RESET => self.factory_reset(),
            ins::SET_MANAGEMENT_KEY => self.set_management_key(cmd, data),
            ins::SET_PIN_RETRIES => self.set_pin_retries(cmd),
            ins::IMPORT_KEY => self.import_key(cmd, data),
            ins::ATTEST => self.attest(cmd),
            _ => Err(sw::INS_NOT_SUPPORTED),
        }
    }

    fn select(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p1 != 0x04 {
            return Err(sw::WRONG_P1P2);
        }
        if data == objects::MANAGEMENT_AID && self.state.model.version().is_some() {
            // The YubiKey management application (what `ykman info` and `ykman list` read):
            // SELECT answers the firmware version as text.
            self.session.selected = true;
            self.session.management = true;
            let [a, b, c] = self.version();
            return Ok(format!("{a}.{b}.{c}").into_bytes());
        }
        self.session.management = false;
        if data.len() < objects::PIV_AID_PREFIX.len() || !objects::PIV_AID.starts_with(data) {
            self.session.selected = false;
            return Err(sw::NOT_FOUND);
        }
        self.session.selected = true;
        // Application property template: AID (PIX part) and the coexistent tag allocation
        // authority (SP 800-73-4 part 2 §3.1.1).
        let mut apt = tlv(&[0x4F], &objects::PIV_AID[5..]);
        apt.extend(tlv(&[0x79], &tlv(&[0x4F], &objects::PIV_AID_PREFIX)));
        Ok(tlv(&[0x61], &apt))
    }

    fn get_data(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        let tag = tlv::find(data, &[0x5C]).ok_or(sw::WRONG_DATA)?;
        if tag == objects::DISCOVERY {
            return Ok(objects::discovery());
        }
        if tag == objects::KEY_HISTORY {
            return Ok(tlv(&[0x53], &self.key_history()));
        }
        if !objects::is_readable_without_pin(tag) && !self.session.pin_verified {
            return Err(sw::SECURITY_STATUS);
        }
        if tag == attestation::CERTIFICATE_OBJECT {
            self.device_attestation().ok_or(sw::NOT_FOUND)?;
        }
        let value = self.state.objects.get(&hex(tag)).ok_or(sw::NOT_FOUND)?;
        Ok(tlv(&[0x53], &value.0))
    }

    /// Key history (SP 800-73-4 part 1 §3.3.2): how many retired keys have their certificate
    /// on the card and how many off it.
    fn key_history(&self) -> Vec<u8> {
        let (mut on, mut off) = (0u8, 0u8);
        for slot in objects::RETIRED {
            if self.state.keys.contains_key(&hex(&[slot])) {
                let has_cert = objects::certificate_tag(slot)
                    .is_some_and(|t| self.state.objects.contains_key(&hex(&t)));
                if has_cert { on += 1 } else { off += 1 }
            }
        }
        let mut v = tlv(&[0xC1], &[on]);
        v.extend(tlv(&[0xC2], &[off]));
        v.extend(tlv(&[0xFE], &[]));
        v
    }

    fn put_data(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.session.management_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let items = tlv::parse(data).ok_or(sw::WRONG_DATA)?;
        let tag = items
            .iter()
            .find(|t| t.tag == [0x5C])
            .ok_or(sw::WRONG_DATA)?
            .value;
        let value = items
            .iter()
            .find(|t| t.tag == [0x53])
            .ok_or(sw::WRONG_DATA)?
            .value;
        if tag.len() != 3 || tag[0] != 0x5F || tag == objects::KEY_HISTORY {
            return Err(sw::WRONG_DATA);
        }
        // A YubiKey stores at most 3,052 bytes per object (the whole PUT DATA value with its
        // tags): a larger certificate does not fit, as on the real card.
        if data.len() > objects::MAX_OBJECT_SIZE {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        self.dirty = true;
        if value.is_empty() {
            self.state.objects.remove(&hex(tag));
        } else {
            self.state.objects.insert(hex(tag), Hex(value.to_vec()));
        }
        Ok(vec![])
    }

    fn reference(&mut self, p2: u8) -> Result<&mut Reference, u16> {
        match p2 {
            PIN_REF => Ok(&mut self.state.pin),
            PUK_REF => Ok(&mut self.state.puk),
            _ => Err(sw::REF_NOT_FOUND),
        }
    }

    /// Compares `candidate` with a reference, counting a failure. The comparison does not
    /// stop at the first difference.
    fn check_reference(&mut self, p2: u8, candidate: &[u8]) -> Result<(), u16> {
        self.dirty = true;
        let reference = self.reference(p2)?;
        if reference.retries_left == 0 {
            return Err(sw::BLOCKED);
        }
        let stored: &[u8] = &reference.value.0;
        let equal = stored.len() == candidate.len()
            && stored
                .iter()
                .zip(candidate)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if equal {
            reference.retries_left = reference.retries_max;
            Ok(())
        } else {
            reference.retries_left -= 1;
            Err(match reference.retries_left {
                0 => sw::BLOCKED,
                n => sw::VERIFY_FAILED | u16::from(n),
            })
        }
    }

    fn verify(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p2 != PIN_REF {
            return Err(sw::REF_NOT_FOUND);
        }
        if cmd.p1 == 0xFF {
            self.session.pin_verified = false;
            self.session.pin_fresh = false;
            return Ok(vec![]);
        }
        if data.is_empty() {
            return match (self.session.pin_verified, self.state.pin.retries_left) {
                (true, _) => Ok(vec![]),
                (false, 0) => Err(sw::BLOCKED),
                (false, n) => Err(sw::VERIFY_FAILED | u16::from(n)),
            };
        }
        if data.len() != 8 {
            return Err(sw::WRONG_DATA);
        }
        self.session.pin_verified = false;
        self.session.pin_fresh = false;
        self.check_reference(PIN_REF, data)?;
        self.session.pin_verified = true;
        self.session.pin_fresh = true;
        Ok(vec![])
    }

    fn change_reference(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if data.len() != 16 || cmd.p1 != 0 {
            return Err(sw::WRONG_DATA);
        }
        // A PIN or PUK is 6 to 8 bytes (SP 800-73-4 part 2 §2.4.3; a YubiKey refuses a
        // shorter one with 6A80, before checking the old value).
        if unpadded_len(&data[8..]) < 6 {
            return Err(sw::WRONG_DATA);
        }
        self.check_reference(cmd.p2, &data[..8])?;
        self.reference(cmd.p2)?.value = Secret::new(data[8..].to_vec());
        Ok(vec![])
    }

    fn reset_retry(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        if cmd.p2 != PIN_REF || data.len() != 16 || unpadded_len(&data[8..]) < 6 {
            return Err(sw::WRONG_DATA);
        }
        self.check_reference(PUK_REF, &data[..8])?;
        let pin = &mut self.state.pin;
        pin.value = Secret::new(data[8..].to_vec());
        pin.retries_left = pin.retries_max;
        Ok(vec![])
    }

    fn generate(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        let slot = cmd.p2;
        if cmd.p1 != 0 || !objects::is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        if !self.session.management_authenticated {
            return Err(sw::SECURITY_STATUS);
        }
        let template = tlv::find(data, &[0xAC]).ok_or(sw::WRONG_DATA)?;
        let alg_id = tlv::find(template, &[0x80])
            .and_then(|v| v.first().copied())
            .ok_or(sw::WRONG_DATA)?;
        let algorithm = KeyAlgorithm::from_id(alg_id)
            .filter(|a| self.state.algorithms.contains(a))
            .ok_or(sw::FUNC_NOT_SUPPORTED)?;
        if !self.state.keys.contains_key(&hex(&[slot]))
            && self.state.keys.len() >= self.state.capacity
        {
            return Err(sw::NOT_ENOUGH_MEMORY);
        }
        if !self.state.model.has_key_policies()
            && (tlv::find(template, &[0xAA]).is_some() || tlv::find(template, &[0xAB]).is_some())
        {
            return Err(sw::WRONG_DATA);
        }
        let pin_policy = requested_pin_policy(template, slot)?;
        let touch_policy = requested_touch_policy(template)?;
        let mut key = {
            let mut rng = DetRng::new(self.state.rng_seed, &mut self.state.rng_counter);
            crypto::generate(algorithm, &mut rng).map_err(|_| sw::NO_DIAGNOSIS)?
        };
        key.pin_policy = pin_policy;
        key.touch_policy = touch_policy;
        let public = crypto::public_key_template(&key).map_err(|_| sw::NO_DIAGNOSIS)?;
        self.dirty = true;
        self.state.keys.insert(hex(&[slot]), key);
        Ok(tlv(&[0x7F, 0x49], &public))
    }

    fn general_authenticate(&mut self, cmd: &Command, data: &[u8]) -> Reply {
        let template = tlv::find(data, &[0x7C]).ok_or(sw::WRONG_DATA)?;
        let items = tlv::parse(template).ok_or(sw::WRONG_DATA)?;
        let get = |t: u8| items.iter().find(|i| i.tag == [t]).map(|i| i.value);
        if cmd.p2 == MANAGEMENT_KEY {
            return self.authenticate_management(cmd.p1, get(0x80), get(0x81), get(0x82));
        }
        let slot = cmd.p2;
        if !objects::is_key_slot(slot) {
            return Err(sw::WRONG_P1P2);
        }
        let key = self
            .state
            .keys
            .get(&hex(&[slot]))
            .ok_or(sw::REF_NOT_FOUND)?;
        if key.algorithm.id() != cmd.p1 {
            return Err(sw::WRONG_P1P2);
        }
        // The key's PIN policy: never (9E's default), once per session, or a VERIFY before
        // every use: a verification counts for the one private-key operation after it.
        let fresh = std::mem::take(&mut self.session.pin_fresh);
        match key.pin_policy {
            PinPolicy::Never => {}
            PinPolicy::Once if self.session.pin_verified => {}
            PinPolicy::Always if fresh => {}
            PinPolicy::Once | PinPolicy::Always => return Err(sw::SECURITY_STATUS),
        }
        // The key's touch policy: the operation waits for a touch (or a recent one, cached);
        // none within the timeout fails it as a YubiKey does.
        let timeout = std::time::Duration::from_millis(self.state.touch_timeout_ms);
        if !self.touch.confirm(key.touch_policy, timeout) {
            return Err(sw::SECURITY_STATUS);
        }
        match (get(0x82), get(0x81), get(0x85)) {
            // Sign (ECDSA over a hash; raw RSA over whatever block the host padded) or RSA
            // decrypt: a challenge in 81.
            (Some([]), Some(input), None) => {
                let signature = crypto::sign(key, input).map_err(|_| sw::WRONG_DATA)?;
                Ok(tlv(&[0x7C], &tlv(&[0x82], &signature)))
            }
            // Key agreement: the peer's point in 85 (EC keys only).
            (Some([]), None, Some(point)) if !key.algorithm.is_rsa() => {
                let secret = crypto::ecdh(key, point).map_err(|_| sw::WRONG_DATA)?;
                Ok(tlv(&[0x7C], &tlv(&[0x82], &secret)))
            }
            _ => Err(sw::WRONG_DATA),
        }
    }

    fn authenticate_management(
        &mut self,
        alg: u8,
        witness: Option<&[u8]>,
        challenge: Option<&[u8]>,
        response: Option<&[u8]>,
    ) -> Reply {
        let mgmt = self.state.management_algorithm;
        // YubiKeys also accept 0x00 for their default 3DES key.
        if alg != mgmt.id() && !(alg == 0x00 && mgmt == ManagementAlgorithm::Tdes) {
            return Err(sw::WRONG_P1P2);
        }
        let key = self.state.management_key.0.clone();
        let block = mgmt.block_len();
        let random = |state: &mut CardState| {
            DetRng::new(state.rng_seed, &mut state.rng_counter).bytes(block)
        };
        self.session.management_authenticated = false;
        match (witness, challenge, response) {
            // Step 1 of mutual authentication: send an encrypted witness.
            (Some([]), None, None) => {
                let w = random(&mut self.state);
                let encrypted = crypto::mgmt_encrypt(mgmt, &key, &w).ok_or(sw::NO_DIAGNOSIS)?;
                self.session.witness = Some(w);
                Ok(tlv(&[0x7C], &tlv(&[0x80], &encrypted)))
            }
            // Step 2: the host decrypted the witness and challenges us back.
            (Some(decrypted), challenge, None) => {
                let expected = self.session.witness.take().ok_or(sw::CONDITIONS)?;
                if decrypted != expected.as_slice() {
                    return Err(sw::SECURITY_STATUS);
                }
                self.session.management_authenticated = true;
                match challenge {
                    None => Ok(vec![]),
                    Some(c) if c.len() == block => {
                        let answer = crypto::mgmt_encrypt(mgmt, &key, c).ok_or(sw::NO_DIAGNOSIS)?;
                        Ok(tlv(&[0x7C], &tlv(&[0x82], &answer)))
                    }
                    Some(_) => {
                        self.session.management_authenticated = false;
                        Err(sw::WRONG_DATA)
                    }
                }
            }
            // Single authentication, step 1: a challenge for the host to encrypt.
            (None, Some([]), None) => {
                let c = random(&mut self.state);
                self.session.challenge = Some(c.clone());
                Ok(tlv(&[0x7C], &tlv(&[0x81], &c)))
            }
            (None, None, Some(answer)) => {
                let c = self.session.challenge.take().ok_or(sw::CONDITIONS)?;
                let expected = crypto::mgmt_encrypt(mgmt, &key, &c).ok_or(sw::NO_DIAGNOSIS)?;
                if answer != expected.as_slice() {
                    return Err(sw::SECURITY_STATUS);
                }
                self.session.management_authenticated = true;
                Ok(vec![])
            }
            _ => Err(sw::WRONG_DATA),
        }
    }
}

/// The PIN policy asked for in a GENERATE template or an IMPORT (`AA`; absent or 0x00: the
/// slot's default); a value the card does not know is refused (6A80).
fn requested_pin_policy(data: &[u8], slot: u8) -> Result<PinPolicy, u16> {
    match tlv::find(data, &[0xAA]) {
        None => Ok(PinPolicy::default_for(slot)),
        Some([id]) => PinPolicy::requested(*id, slot).ok_or(sw::WRONG_DATA),
        Some(_) => Err(sw::WRONG_DATA),
    }
}

/// The touch policy asked for (`AB`; absent or 0x00: never); an unknown value is refused
/// (6A80).
fn requested_touch_policy(data: &[u8]) -> Result<TouchPolicy, u16> {
    match tlv::find(data, &[0xAB]) {
        None => Ok(TouchPolicy::Never),
        Some([id]) => TouchPolicy::requested(*id).ok_or(sw::WRONG_DATA),
        Some(_) => Err(sw::WRONG_DATA),
    }
}

/// Lower-case hex of a slot or tag, the key format of the state maps.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
