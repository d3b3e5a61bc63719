//! `Token` over a PKCS#11 module (feature `pkcs11`, via `cryptoki`): SoftHSM2, OpenSC's module
//! for smart cards, vendor modules. A container is the key pair and certificate objects that
//! share a `CKA_ID`. One session and one login, reused for everything.
//!
//! After every destroy the objects are searched again: a module that reports success without
//! deleting (SoftHSM2 #903, OpenSC #3121) is caught as [`TokenError::DeleteNotEffective`].

use std::{collections::BTreeMap, path::Path, sync::Arc};

use cryptoki::{
    context::{CInitializeArgs, CInitializeFlags, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::Mechanism,
    object::{Attribute, AttributeType, CertificateType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::AuthPin,
};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;

use super::{
    Capacity, Container, ContainerId, KeyAlgorithm, PinContext, PinRequest, PinSource, Token,
    TokenError, TokenInfo,
};
use crate::cmc::{KeyFamily, PublicKey, SignatureAlgorithm, public_key::Curve};

/// P-256 `CKA_EC_PARAMS`: the named-curve OID.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// `CKA_EC_PARAMS` for P-384: the DER of OID 1.3.132.0.34 (secp384r1).
const P384_PARAMS: [u8; 7] = [0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22];

fn backend(e: impl std::fmt::Display) -> TokenError {
    TokenError::Backend {
        backend: "PKCS#11",
        detail: e.to_string(),
    }
}

fn map_err(e: CkError) -> TokenError {
    match e {
        CkError::Pkcs11(RvError::PinIncorrect, _) => TokenError::PinIncorrect { retries_left: 0 },
        CkError::Pkcs11(RvError::PinLocked, _) => TokenError::PinBlocked,
        CkError::Pkcs11(
            RvError::DeviceRemoved | RvError::TokenNotPresent | RvError::SessionHandleInvalid,
            _,
        ) => TokenError::Removed(e.to_string()),
        CkError::Pkcs11(RvError::DeviceMemory, _) => TokenError::Full,
        CkError::Pkcs11(RvError::FunctionNotSupported | RvError::MechanismInvalid, _) => {
            TokenError::Unsupported("operation or mechanism not supported by the PKCS#11 module")
        }
        other => backend(other),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(id: &ContainerId) -> Result<Vec<u8>, TokenError> {
    let text = &id.0;
    if !text.len().is_multiple_of(2) {
        return Err(TokenError::NotFound(id.clone()));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16).ok())
        .collect::<Option<_>>()
        .ok_or_else(|| TokenError::NotFound(id.clone()))
}

/// A PKCS#11 token.
pub struct Pkcs11Token {
    ctx: Pkcs11,
    slot: Slot,
    session: Option<Session>,
    logged_in: bool,
    pins: Arc<dyn PinSource>,
    label: String,
}

impl Pkcs11Token {
    /// Loads `module` and opens the token labelled `label` (the first token when `None`).
    pub fn open(
        module: &Path,
        label: Option<&str>,
        pins: Arc<dyn PinSource>,
    ) -> Result<Self, TokenError> {
        let ctx = Pkcs11::new(module).map_err(|e| backend(format!("{}: {e}", module.display())))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(map_err(e)),
        }
        let mut chosen = None;
        for slot in ctx.get_slots_with_token().map_err(map_err)? {
            let info = ctx.get_token_info(slot).map_err(map_err)?;
            let token_label = info.label().trim().to_string();
            if label.is_none_or(|l| l == token_label) {
                chosen = Some((slot, token_label));
                break;
            }
        }
        let (slot, label) = chosen.ok_or_else(|| match label {
            Some(l) => TokenError::Removed(format!("no PKCS#11 token labelled {l:?}")),
            None => TokenError::Removed("no PKCS#11 token present".into()),
        })?;
        Ok(Self {
            ctx,
            slot,
            session: None,
            logged_in: false,
            pins,
            label,
        })
    }

    fn session(&mut self) -> Result<&Session, TokenError> {
        if self.session.is_none() {
            self.session = Some(self.ctx.open_rw_session(self.slot).map_err(map_err)?);
            self.logged_in = false;
        }
        self.session
            .as_ref()
            .ok_or_else(|| TokenError::Removed("no session".into()))
    }

    /// Logs in once per session (one PIN prompt).
    fn login(&mut self) -> Result<(), TokenError> {
        if self.logged_in {
            return Ok(());
        }
        let label = self.label.clone();
        let pins = Arc::clone(&self.pins);
        let session = self.session()?;
        let pin = pins.pin(&PinRequest {
            context: PinContext::Card,
            token: label,
            retries_left: None,
        })?;
        let text = std::str::from_utf8(pin.as_bytes())
            .map_err(|_| TokenError::PinIncorrect { retries_left: 0 })?
            .to_string();
        match session.login(UserType::User, Some(&AuthPin::from(text))) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                self.logged_in = true;
                Ok(())
            }
            Err(e) => Err(map_err(e)),
        }
    }

    /// Runs `f` with the session; a vanished session (card pulled, module reset) drops it so
    /// the next call opens a fresh one.
    fn with_session<R>(
        &mut self,
        f: impl FnOnce(&Session) -> Result<R, CkError>,
    ) -> Result<R, TokenError> {
        let session = self.session()?;
        match f(session) {
            Ok(r) => Ok(r),
            Err(e) => {
                let mapped = map_err(e);
                if matches!(mapped, TokenError::Removed(_)) {
                    self.session = None;
                    self.logged_in = false;
                }
                Err(mapped)
            }
        }
    }

    fn objects(&mut self, template: &[Attribute]) -> Result<Vec<ObjectHandle>, TokenError> {
        let template = template.to_vec();
        self.with_session(|s| s.find_objects(&template))
    }

    fn attribute(
        &mut self,
        object: ObjectHandle,
        kind: AttributeType,
    ) -> Result<Option<Attribute>, TokenError> {
        let attrs = self.with_session(|s| s.get_attributes(object, &[kind]))?;
        Ok(attrs.into_iter().next())
    }

    fn public_key(
        &mut self,
        object: ObjectHandle,
    ) -> Result<Option<(KeyAlgorithm, SubjectPublicKeyInfoOwned)>, TokenError> {
        let key_type = match self.attribute(object, AttributeType::KeyType)? {
            Some(Attribute::KeyType(k)) => k,
            _ => return Ok(None),
        };
        if key_type == KeyType::EC {
            let Some(Attribute::EcPoint(point)) = self.attribute(object, AttributeType::EcPoint)?
            else {
                return Ok(None);
            };
            // CKA_EC_POINT is a DER OCTET STRING around the point (SoftHSM2, OpenSC); accept
            // the bare point too.
            let raw = der::asn1::OctetString::from_der(&point)
                .map(|o| o.as_bytes().to_vec())
                .unwrap_or(point);
            let curve = match self.attribute(object, AttributeType::EcParams)? {
                Some(Attribute::EcParams(p)) if p == P256_PARAMS => Curve::P256,
                Some(Attribute::EcParams(p)) if p == P384_PARAMS => Curve::P384,
                // Another curve (or named differently): not a key renewal generates.
                _ => return Ok(None),
            };
            Self::checked(PublicKey::ec(curve, &raw))
        } else if key_type == KeyType::RSA {
            let (Some(Attribute::Modulus(n)), Some(Attribute::PublicExponent(e))) = (
                self.attribute(object, AttributeType::Modulus)?,
                self.attribute(object, AttributeType::PublicExponent)?,
            ) else {
                return Ok(None);
            };
            Self::checked(PublicKey::rsa_from_parts(&n, &e))
        } else {
            Ok(None)
        }
    }

    /// The algorithm of a private key without its public key object: from its curve or
    /// modulus, as the public key would say.
    fn private_key_algorithm(
        &mut self,
        object: ObjectHandle,
    ) -> Result<Option<KeyAlgorithm>, TokenError> {
        Ok(match self.attribute(object, AttributeType::KeyType)? {
            Some(Attribute::KeyType(k)) if k == KeyType::RSA => {
                match self.attribute(object, AttributeType::Modulus)? {
                    Some(Attribute::Modulus(n)) => {
                        let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                        KeyAlgorithm::ALL
                            .into_iter()
                            .find(|a| a.rsa_bits() == Some(bits as u32))
                    }
                    _ => None,
                }
            }
            Some(Attribute::KeyType(k)) if k == KeyType::EC => {
                match self.attribute(object, AttributeType::EcParams)? {
                    Some(Attribute::EcParams(p)) if p == P256_PARAMS => Some(KeyAlgorithm::EcP256),
                    Some(Attribute::EcParams(p)) if p == P384_PARAMS => Some(KeyAlgorithm::EcP384),
                    _ => None,
                }
            }
            _ => None,
        })
    }

    /// A key the module reported, parsed and checked: malformed is an error, a well-formed
    /// key of a kind renewal does not generate (RSA-3072, P-384) is "no usable key".
    fn checked(
        key: Result<PublicKey, crate::cmc::PublicKeyError>,
    ) -> Result<Option<(KeyAlgorithm, SubjectPublicKeyInfoOwned)>, TokenError> {
        match key {
            Ok(key) => Ok(KeyAlgorithm::of(&key).map(|a| (a, key.to_spki()))),
            Err(e) if e.is_unsupported() => Ok(None),
            Err(_) => Err(TokenError::Malformed("public key attributes")),
        }
    }

    fn by_id(&mut self, id: &[u8], class: ObjectClass) -> Result<Vec<ObjectHandle>, TokenError> {
        self.objects(&[Attribute::Class(class), Attribute::Id(id.to_vec())])
    }
}

impl Token for Pkcs11Token {
    fn info(&mut self) -> Result<TokenInfo, TokenError> {
        let info = self.ctx.get_token_info(self.slot).map_err(map_err)?;
        let lib = self.ctx.get_library_info().map_err(map_err)?;
        Ok(TokenInfo {
            description: format!(
                "PKCS#11 {} ({})",
                info.label().trim(),
                lib.manufacturer_id().trim()
            ),
            serial: info.serial_number().trim().to_string(),
        })
    }

    fn containers(&mut self) -> Result<Vec<Container>, TokenError> {
        // Private objects are only visible after login; asking for the PIN just to list is
        // what middleware does too.
        self.login()?;
        let mut by_id: BTreeMap<Vec<u8>, Container> = BTreeMap::new();
        for class in [
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
            ObjectClass::CERTIFICATE,
        ] {
            for object in self.objects(&[Attribute::Class(class)])? {
                let Some(Attribute::Id(id)) = self.attribute(object, AttributeType::Id)? else {
                    continue;
                };
                let entry = by_id.entry(id.clone()).or_insert_with(|| Container {
                    id: ContainerId(hex(&id)),
                    algorithm: None,
                    public_key: None,
                    certificate: None,
                });
                if class == ObjectClass::PUBLIC_KEY
                    && let Some((alg, spki)) = self.public_key(object)?
                {
                    entry.algorithm = Some(alg);
                    entry.public_key = Some(spki);
                } else if class == ObjectClass::CERTIFICATE
                    && let Some(Attribute::Value(der)) =
                        self.attribute(object, AttributeType::Value)?
                {
                    entry.certificate = Some(der);
                } else if class == ObjectClass::PRIVATE_KEY && entry.algorithm.is_none() {
                    entry.algorithm = self.private_key_algorithm(object)?;
                }
            }
        }
        // A certificate without its public key object still tells us the key.
        for c in by_id.values_mut() {
            if c.public_key.is_none()
                && let Some(cert) = c
                    .certificate
                    .as_deref()
                    .and_then(|d| x509_cert::Certificate::from_der(d).ok())
            {
                c.public_key = Some(cert.tbs_certificate().subject_public_key_info().clone());
            }
        }
        Ok(by_id.into_values().collect())
    }

    fn capacity(&mut self) -> Result<Capacity, TokenError> {
        let used = self.containers()?.len();
        Ok(Capacity { used, free: None })
    }

    fn generate(&mut self, algorithm: KeyAlgorithm) -> Result<Container, TokenError> {
        self.login()?;
        let mut id = vec![0u8; 8];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut id)
            .map_err(|_| backend("RNG"))?;
        let label = format!("cardrenew {}", hex(&id)).into_bytes();
        let common = |private: bool| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Id(id.clone()),
                Attribute::Label(label.clone()),
            ]
        };
        let mut public = common(false);
        let mut private = common(true);
        let mechanism = match algorithm {
            KeyAlgorithm::EcP256 => {
                public.push(Attribute::EcParams(P256_PARAMS.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::EcP384 => {
                public.push(Attribute::EcParams(P384_PARAMS.to_vec()));
                Mechanism::EccKeyPairGen
            }
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let bits = algorithm.rsa_bits().unwrap_or(2048);
                public.push(Attribute::ModulusBits(u64::from(bits).into()));
                public.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
                Mechanism::RsaPkcsKeyPairGen
            }
        };
        public.push(Attribute::Verify(true));
        private.extend([Attribute::Sensitive(true), Attribute::Sign(true)]);
        let (public, _) =
            self.with_session(|s| s.generate_key_pair(&mechanism, &public, &private))?;
        let (alg, spki) = self
            .public_key(public)?
            .ok_or(TokenError::Malformed("generated public key"))?;
        Ok(Container {
            id: ContainerId(hex(&id)),
            algorithm: Some(alg),
            public_key: Some(spki),
            certificate: None,
        })
    }

    fn sign(
        &mut self,
        id: &ContainerId,
        algorithm: SignatureAlgorithm,
        message: &[u8],
    ) -> Result<Vec<u8>, TokenError> {
        let raw_id = unhex(id)?;
        self.login()?;
        let key = *self
            .by_id(&raw_id, ObjectClass::PRIVATE_KEY)?
            .first()
            .ok_or_else(|| TokenError::NotFound(id.clone()))?;
        let hash = algorithm.digest.digest(message);
        match algorithm.family {
            KeyFamily::Ecdsa => {
                // Hash outside (SoftHSM2 2.6 has no CKM_ECDSA_SHA256), sign with CKM_ECDSA,
                // get raw r||s, return DER.
                let raw = self.with_session(|s| s.sign(&Mechanism::Ecdsa, key, &hash))?;
                crate::cmc::crypto::ecdsa_raw_to_der(&raw)
                    .ok_or(TokenError::Malformed("ECDSA signature"))
            }
            KeyFamily::Rsa => {
                let info = [super::piv_digest_info(algorithm.digest), &hash].concat();
                self.with_session(|s| s.sign(&Mechanism::RsaPkcs, key, &info))
            }
        }
    }

    fn install_certificate(
        &mut self,
        id: &ContainerId,
        certificate: &[u8],
    ) -> Result<(), TokenError> {
        let raw_id = unhex(id)?;
        self.login()?;
        let cert = x509_cert::Certificate::from_der(certificate)
            .map_err(|_| TokenError::Malformed("certificate"))?;
        let subject = cert.tbs_certificate().subject().to_der().map_err(backend)?;
        let template = vec![
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Id(raw_id),
            Attribute::Subject(subject),
            Attribute::Value(certificate.to_vec()),
        ];
        self.with_session(|s| s.create_object(&template))
            .map(|_| ())
    }

    fn delete(&mut self, id: &ContainerId) -> Result<(), TokenError> {
        let raw_id = unhex(id)?;
        self.login()?;
        for class in [
            ObjectClass::CERTIFICATE,
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
        ] {
            for object in self.by_id(&raw_id, class)? {
                self.with_session(|s| s.destroy_object(object))?;
            }
        }
        // A successful destroy is not proof: search again.
        for class in [
            ObjectClass::CERTIFICATE,
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
        ] {
            if !self.by_id(&raw_id, class)?.is_empty() {
                return Err(TokenError::DeleteNotEffective(id.clone()));
            }
        }
        Ok(())
    }

    /// The old key and certificate go; the new ones **take over the old CKA_ID and label**,
    /// so the same `--container` (or the agent's configuration) renews again next time.
    /// Crash-safe and idempotent (recovery calls it again after a crash anywhere in it):
    /// first every old object is deleted, then the new objects move — public key,
    /// certificate, and the private key last. So while the new id still holds a private key,
    /// any private key under the old id is the old one; a certificate or public key under the
    /// old id is the new key's exactly when it certifies that key (compared parsed).
    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, TokenError> {
        let (old_id, new_id) = (unhex(old)?, unhex(new)?);
        if old_id == new_id {
            return Ok(old.clone());
        }
        self.login()?;
        let new_private = self.by_id(&new_id, ObjectClass::PRIVATE_KEY)?;
        let new_public = self.by_id(&new_id, ObjectClass::PUBLIC_KEY)?;
        let new_cert = self.by_id(&new_id, ObjectClass::CERTIFICATE)?;
        if new_private.is_empty() && new_public.is_empty() && new_cert.is_empty() {
            // Moved already: the old id holds the new key and certificate.
            return if self.by_id(&old_id, ObjectClass::CERTIFICATE)?.is_empty() {
                Err(TokenError::NotFound(old.clone()))
            } else {
                Ok(old.clone())
            };
        }
        // The new key, parsed: from its public key object, else from its certificate (which
        // may already be under the old id).
        let mut new_key = None;
        for object in &new_public {
            new_key = self.public_key(*object)?.map(|(_, spki)| spki);
        }
        let certified = |me: &mut Self, object: ObjectHandle| -> Result<Option<_>, TokenError> {
            Ok(match me.attribute(object, AttributeType::Value)? {
                Some(Attribute::Value(der)) => x509_cert::Certificate::from_der(&der)
                    .ok()
                    .map(|c| c.tbs_certificate().subject_public_key_info().clone()),
                _ => None,
            })
        };
        if new_key.is_none() {
            for object in new_cert
                .iter()
                .chain(&self.by_id(&old_id, ObjectClass::CERTIFICATE)?)
            {
                if let Some(spki) = certified(self, *object)? {
                    new_key = Some(spki);
                    break;
                }
            }
        }
        let new_key = new_key
            .as_ref()
            .and_then(|spki| crate::cmc::PublicKey::from_spki(spki).ok())
            .ok_or(TokenError::Malformed("the new key"))?;
        let is_new = |spki: Option<SubjectPublicKeyInfoOwned>| {
            spki.and_then(|s| crate::cmc::PublicKey::from_spki(&s).ok()) == Some(new_key.clone())
        };
        let moved_cert = {
            let mut found = false;
            for object in self.by_id(&old_id, ObjectClass::CERTIFICATE)? {
                found |= is_new(certified(self, object)?);
            }
            found
        };
        if new_cert.is_empty() && !moved_cert {
            return Err(TokenError::Unsupported(
                "supersede before the new certificate is installed",
            ));
        }
        // The old label, while an old object still carries it.
        let mut label = None;
        for class in [ObjectClass::CERTIFICATE, ObjectClass::PRIVATE_KEY] {
            for object in self.by_id(&old_id, class)? {
                if label.is_none()
                    && let Some(Attribute::Label(l)) =
                        self.attribute(object, AttributeType::Label)?
                {
                    label = Some(l);
                }
            }
        }
        // 1. The old objects go (never one that is already the new key's).
        for object in self.by_id(&old_id, ObjectClass::CERTIFICATE)? {
            if !is_new(certified(self, object)?) {
                self.with_session(|s| s.destroy_object(object))?;
            }
        }
        for object in self.by_id(&old_id, ObjectClass::PUBLIC_KEY)? {
            if !is_new(self.public_key(object)?.map(|(_, spki)| spki)) {
                self.with_session(|s| s.destroy_object(object))?;
            }
        }
        if !new_private.is_empty() {
            for object in self.by_id(&old_id, ObjectClass::PRIVATE_KEY)? {
                self.with_session(|s| s.destroy_object(object))?;
            }
        }
        // 2. The new objects take the old id and label, the private key last.
        let mut rename = vec![Attribute::Id(old_id.clone())];
        if let Some(label) = label {
            rename.push(Attribute::Label(label));
        }
        for class in [
            ObjectClass::PUBLIC_KEY,
            ObjectClass::CERTIFICATE,
            ObjectClass::PRIVATE_KEY,
        ] {
            for object in self.by_id(&new_id, class)? {
                let rename = rename.clone();
                self.with_session(|s| s.update_attributes(object, &rename))?;
            }
        }
        // A successful update is not proof: nothing may be left under the new id.
        for class in [
            ObjectClass::CERTIFICATE,
            ObjectClass::PRIVATE_KEY,
            ObjectClass::PUBLIC_KEY,
        ] {
            if !self.by_id(&new_id, class)?.is_empty() {
                return Err(TokenError::DeleteNotEffective(new.clone()));
            }
        }
        Ok(old.clone())
    }
}
