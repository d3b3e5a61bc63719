//! One APDU session with the card: command chaining and GET RESPONSE, SELECT, the PIN and
//! the management key, data objects.

use zeroize::Zeroizing;

use super::{
    ApduTransport, FACTORY_KEY, ManagementAlgorithm, ManagementKey, PIV_AID, PivToken, Reply,
    SW_BLOCKED, SW_FULL, SW_NOT_FOUND, SW_OK, SW_SECURITY, SW_WRONG_P1P2, find_tlv, management,
    tlv,
};
use crate::token::{PinContext, PinRequest, TokenError};

impl<T: ApduTransport> PivToken<T> {
    /// Sends a command, handling command chaining (data over 255 bytes) and 61xx GET RESPONSE.
    pub(super) fn exchange(
        &mut self,
        ins: u8,
        p1: u8,
        p2: u8,
        data: &[u8],
    ) -> Result<Reply, TokenError> {
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(255).collect()
        };
        let last = chunks.len() - 1;
        let mut raw = Vec::new();
        for (i, chunk) in chunks.iter().enumerate() {
            let cla = if i < last { 0x10 } else { 0x00 };
            let mut apdu = vec![cla, ins, p1, p2];
            if !chunk.is_empty() {
                apdu.push(chunk.len() as u8);
                apdu.extend_from_slice(chunk);
            }
            if i == last {
                apdu.push(0x00);
            }
            let resp = self.transmit(&apdu)?;
            if i < last && resp.sw != SW_OK {
                return Ok(resp);
            }
            raw = vec![resp];
        }
        let mut reply = raw.pop().ok_or(TokenError::Malformed("empty exchange"))?;
        let mut guard = 0;
        while reply.sw >> 8 == 0x61 {
            guard += 1;
            if guard > 256 {
                return Err(TokenError::Malformed("endless GET RESPONSE"));
            }
            let more = self.transmit(&[0x00, 0xC0, 0x00, 0x00, (reply.sw & 0xff) as u8])?;
            reply.data.extend_from_slice(&more.data);
            reply.sw = more.sw;
        }
        Ok(reply)
    }

    pub(super) fn transmit(&mut self, apdu: &[u8]) -> Result<Reply, TokenError> {
        let bytes = self
            .transport
            .transmit(apdu)
            .inspect_err(|_| self.reset_session())?;
        let split = bytes
            .len()
            .checked_sub(2)
            .ok_or(TokenError::Malformed("response shorter than a status word"))?;
        Ok(Reply {
            data: bytes[..split].to_vec(),
            sw: u16::from_be_bytes([bytes[split], bytes[split + 1]]),
        })
    }

    pub(super) fn expect_ok(reply: Reply, operation: &'static str) -> Result<Vec<u8>, TokenError> {
        match reply.sw {
            SW_OK => Ok(reply.data),
            SW_FULL => Err(TokenError::Full),
            sw => Err(TokenError::Card { operation, sw }),
        }
    }

    pub(super) fn select(&mut self) -> Result<(), TokenError> {
        if self.selected {
            return Ok(());
        }
        let reply = self.exchange(0xA4, 0x04, 0x00, &PIV_AID)?;
        Self::expect_ok(reply, "SELECT PIV")?;
        self.selected = true;
        Ok(())
    }

    /// Verifies the PIN unless this session already did: one prompt per session.
    pub(super) fn login(&mut self) -> Result<(), TokenError> {
        self.select()?;
        if self.pin_verified {
            return Ok(());
        }
        // An empty VERIFY tells whether the PIN is already verified and how many tries are
        // left, without spending one.
        let status = self.exchange(0x20, 0x00, 0x80, &[])?;
        let retries_left = match status.sw {
            SW_OK => {
                self.pin_verified = true;
                return Ok(());
            }
            SW_BLOCKED => return Err(TokenError::PinBlocked),
            sw if sw & 0xFFF0 == 0x63C0 => Some((sw & 0x0F) as u8),
            _ => None,
        };
        self.verify_pin(retries_left)
    }

    /// Asks for the PIN and verifies it, whatever the session's state: what a key whose PIN
    /// policy is "always" (a YubiKey's 9C by default) needs before every use.
    pub(super) fn verify_pin(&mut self, retries_left: Option<u8>) -> Result<(), TokenError> {
        let pin = self.pins.pin(&PinRequest {
            context: PinContext::Card,
            token: self.label.clone(),
            retries_left,
        })?;
        if pin.as_bytes().len() > 8 {
            return Err(TokenError::PinIncorrect {
                retries_left: retries_left.unwrap_or(0),
            });
        }
        let mut padded = Zeroizing::new(pin.as_bytes().to_vec());
        padded.resize(8, 0xFF);
        let reply = self.exchange(0x20, 0x00, 0x80, &padded)?;
        match reply.sw {
            SW_OK => {
                self.pin_verified = true;
                self.pin_fresh = true;
                Ok(())
            }
            SW_BLOCKED => Err(TokenError::PinBlocked),
            sw if sw & 0xFFF0 == 0x63C0 => Err(TokenError::PinIncorrect {
                retries_left: (sw & 0x0F) as u8,
            }),
            sw => Err(TokenError::Card {
                operation: "VERIFY",
                sw,
            }),
        }
    }

    /// Management-key mutual authentication (SP 800-73-4 part 2 appendix A.1 witness /
    /// challenge), once per session, with the key and algorithm [`ManagementKey`] resolves.
    pub(super) fn authenticate_management(&mut self) -> Result<(), TokenError> {
        self.select()?;
        if self.management_authenticated {
            return Ok(());
        }
        let key = self.management_key_value()?;
        let alg = match &self.management_key {
            ManagementKey::Known {
                algorithm: Some(a), ..
            } => *a,
            _ => self.management_algorithm(key.len())?,
        };
        if key.len() != alg.key_len() {
            return Err(TokenError::ManagementKeyLength {
                algorithm: alg.name(),
                expected: alg.key_len(),
                got: key.len(),
            });
        }
        let block = alg.block_len();
        let reply = self.exchange(0x87, alg.id(), 0x9B, &tlv(&[0x7C], &tlv(&[0x80], &[])))?;
        if reply.sw == SW_WRONG_P1P2 {
            // The card's key is of another algorithm than the one we were told.
            return Err(TokenError::ManagementKeyRejected);
        }
        let data = Self::expect_ok(reply, "management key witness")?;
        let witness = find_tlv(&data, &[0x7C])
            .and_then(|t| find_tlv(t, &[0x80]))
            .filter(|w| w.len() == block)
            .ok_or(TokenError::Malformed("management key witness"))?;
        let decrypted = Zeroizing::new(
            alg.cipher(&key, witness, false)
                .ok_or(TokenError::Unsupported("management key algorithm"))?,
        );
        let mut challenge = vec![0u8; block];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut challenge)
            .map_err(|_| TokenError::Malformed("system RNG"))?;
        let mut body = tlv(&[0x80], &decrypted);
        body.extend(tlv(&[0x81], &challenge));
        let reply = self.exchange(0x87, alg.id(), 0x9B, &tlv(&[0x7C], &body))?;
        if reply.sw == SW_SECURITY {
            return Err(TokenError::ManagementKeyRejected);
        }
        let data = Self::expect_ok(reply, "management key authentication")?;
        let answer = find_tlv(&data, &[0x7C])
            .and_then(|t| find_tlv(t, &[0x82]))
            .ok_or(TokenError::Malformed("management key response"))?;
        let expected = alg
            .cipher(&key, &challenge, true)
            .ok_or(TokenError::Unsupported("management key algorithm"))?;
        if answer != expected.as_slice() {
            // The card does not know our key: it is not the card we think it is.
            return Err(TokenError::ManagementKeyRejected);
        }
        self.management_authenticated = true;
        Ok(())
    }

    /// The management key's value: the one given, or the card's PIN-protected one (after
    /// the PIN verification — the session's one prompt), or — asked to find out — the
    /// protected one when ykman's data flags it, else the factory key.
    pub(super) fn management_key_value(&mut self) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let protected = match &self.management_key {
            ManagementKey::Known { key, .. } => return Ok(key.clone()),
            ManagementKey::PinProtected => true,
            ManagementKey::Auto => self
                .read_object(&management::PIVMAN_DATA)?
                .is_some_and(|data| management::flags_protected_key(&data)),
        };
        if !protected {
            return Ok(Zeroizing::new(FACTORY_KEY.to_vec()));
        }
        self.login()?;
        self.read_object(&management::PIVMAN_PROTECTED_DATA)?
            .and_then(|data| management::protected_key(&data))
            .ok_or(TokenError::NoProtectedManagementKey)
    }

    /// The card's management key algorithm (YubiKey GET METADATA on 9B); on a card that
    /// cannot say, the one a key of `key_len` bytes has by default.
    pub(super) fn management_algorithm(
        &mut self,
        key_len: usize,
    ) -> Result<ManagementAlgorithm, TokenError> {
        let reply = self.exchange(0xF7, 0x00, 0x9B, &[])?;
        if reply.sw == SW_OK {
            return find_tlv(&reply.data, &[0x01])
                .and_then(|id| id.first().copied())
                .and_then(ManagementAlgorithm::from_id)
                .ok_or(TokenError::Malformed("management key metadata"));
        }
        ManagementAlgorithm::for_key_len(key_len)
            .ok_or(TokenError::Unsupported("management key of this length"))
    }

    /// A data object's content (inside its `53` template); `None` when the card has none.
    pub(super) fn read_object(
        &mut self,
        tag: &[u8; 3],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, TokenError> {
        self.select()?;
        let reply = self.exchange(0xCB, 0x3F, 0xFF, &tlv(&[0x5C], tag))?;
        match reply.sw {
            SW_OK => Ok(Some(Zeroizing::new(
                find_tlv(&reply.data, &[0x53])
                    .ok_or(TokenError::Malformed("data object"))?
                    .to_vec(),
            ))),
            SW_NOT_FOUND => Ok(None),
            sw => Err(TokenError::Card {
                operation: "GET DATA",
                sw,
            }),
        }
    }
}
