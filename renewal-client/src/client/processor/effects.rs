//! Everything the renewal states ask of the world — the card, the CA, the journal and the
//! clock — behind one trait, and the driver that performs it for real. The states never touch
//! a token, a socket or a file themselves: a test can implement [`Effects`] to fail, alter or
//! stop any one effect, or drive the states one at a time.

use std::time::Duration;

use spki::SubjectPublicKeyInfoOwned;

use super::{CrashPoint, RenewalError, Step};
use crate::{
    client::{
        RenewalService, ServiceAnswer, ServiceError,
        https::SharedToken,
        journal::{Journal, Record},
    },
    cmc::{SignError, SignatureAlgorithm, Signer, attestation::KeyAttestation},
    token::{Container, ContainerId, KeyAlgorithm, Token, TokenError},
};

/// The effects of a renewal. Card errors come back as [`RenewalError::Card`] carrying the step
/// they happened in; the journal's as [`RenewalError::Journal`].
pub trait Effects {
    /// The card's containers, in a stable order.
    fn containers(&mut self, step: Step) -> Result<Vec<Container>, RenewalError>;
    /// A new key of `algorithm` in a new container, made like the key in `like` (the one it
    /// will replace: same PIN policy where the token has policies).
    fn generate(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &ContainerId,
    ) -> Result<Container, RenewalError>;
    /// The card's attestation of the key in `id`.
    fn attest(&mut self, id: &ContainerId) -> Result<KeyAttestation, RenewalError>;
    /// A signer for the key in `id` (the card signs; the CMC encoder calls it).
    fn signer(
        &self,
        id: &ContainerId,
        spki: SubjectPublicKeyInfoOwned,
        algorithm: SignatureAlgorithm,
    ) -> Box<dyn Signer + '_>;
    /// Stores `certificate` (DER) in `id`.
    fn install(&mut self, id: &ContainerId, certificate: &[u8]) -> Result<(), RenewalError>;
    /// Deletes `old` and moves `new` into its place; returns where the new container is.
    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, RenewalError>;
    /// Deletes a container (rollback).
    fn delete(&mut self, step: Step, id: &ContainerId) -> Result<(), RenewalError>;
    /// Opens the TLS session before any card work.
    fn warm_up(&mut self) -> Result<(), ServiceError>;
    /// Sends (or re-sends, to poll) the request.
    fn submit(&mut self, request: &[u8]) -> Result<ServiceAnswer, ServiceError>;
    /// The CA's handle for the pending request (MS-WSTEP RequestID), if any.
    fn pending_id(&self) -> Option<u64>;
    /// After a restart: the journaled request is pending under `id`.
    fn resume_pending(&mut self, request: &[u8], id: u64);
    /// Writes and syncs a journal record; nothing happens after a record that failed.
    fn record(&mut self, record: Record) -> Result<(), RenewalError>;
    /// Waits out a `Retry-After`.
    fn wait(&mut self, duration: Duration);
    /// The card, as it describes itself (type and serial), for the journal: `None` when it
    /// cannot say.
    fn token_identity(&mut self) -> Option<String> {
        None
    }
}

/// How a token names itself in the journal: its description and serial ("PIV (YubiKey-
/// compatible 5.7.1) #12345678"); `None` when it cannot say.
pub fn token_identity(token: &SharedToken) -> Option<String> {
    let mut guard = token.lock().ok()?;
    let info = guard.info().ok()?;
    Some(format!("{} #{}", info.description, info.serial))
}

/// The real effects: a token, a service, a journal, a sleeper, and (tests) a crash point.
pub struct Driver<'a> {
    token: SharedToken,
    service: &'a mut dyn RenewalService,
    journal: &'a mut Journal,
    sleep: super::Sleeper,
    crash_after: Option<CrashPoint>,
}

impl<'a> Driver<'a> {
    /// Effects on `token`, `service` and `journal`; `sleep` waits out `Retry-After` (tests pass
    /// a virtual one); the driver stops as if the process died right after the journal record
    /// `crash_after` names.
    pub fn new(
        token: SharedToken,
        service: &'a mut dyn RenewalService,
        journal: &'a mut Journal,
        sleep: super::Sleeper,
        crash_after: Option<CrashPoint>,
    ) -> Self {
        Self {
            token,
            service,
            journal,
            sleep,
            crash_after,
        }
    }

    fn card<T>(
        &self,
        step: Step,
        f: impl FnOnce(&mut (dyn Token + Send)) -> Result<T, TokenError>,
    ) -> Result<T, RenewalError> {
        token_call(&self.token, step, f)
    }
}

/// Runs `f` on the locked token; its error is a card error at `step`.
pub(super) fn token_call<T>(
    token: &SharedToken,
    step: Step,
    f: impl FnOnce(&mut (dyn Token + Send)) -> Result<T, TokenError>,
) -> Result<T, RenewalError> {
    let mut guard = token.lock().map_err(|_| RenewalError::Card {
        step,
        source: TokenError::Backend {
            backend: "token",
            detail: "lock poisoned".into(),
        },
    })?;
    f(guard.as_mut()).map_err(|source| RenewalError::Card { step, source })
}

impl Effects for Driver<'_> {
    fn containers(&mut self, step: Step) -> Result<Vec<Container>, RenewalError> {
        self.card(step, |t| t.containers())
    }

    fn token_identity(&mut self) -> Option<String> {
        token_identity(&self.token)
    }

    fn generate(
        &mut self,
        algorithm: KeyAlgorithm,
        like: &ContainerId,
    ) -> Result<Container, RenewalError> {
        self.card(Step::GenerateKey, |t| t.generate_like(algorithm, like))
    }

    fn attest(&mut self, id: &ContainerId) -> Result<KeyAttestation, RenewalError> {
        self.card(Step::GenerateKey, |t| t.attest(id))
    }

    fn signer(
        &self,
        id: &ContainerId,
        spki: SubjectPublicKeyInfoOwned,
        algorithm: SignatureAlgorithm,
    ) -> Box<dyn Signer + '_> {
        Box::new(CardKey {
            token: self.token.clone(),
            id: id.clone(),
            spki,
            algorithm,
        })
    }

    fn install(&mut self, id: &ContainerId, certificate: &[u8]) -> Result<(), RenewalError> {
        self.card(Step::Install, |t| t.install_certificate(id, certificate))
    }

    fn supersede(
        &mut self,
        old: &ContainerId,
        new: &ContainerId,
    ) -> Result<ContainerId, RenewalError> {
        self.card(Step::DeleteOld, |t| t.supersede(old, new))
    }

    fn delete(&mut self, step: Step, id: &ContainerId) -> Result<(), RenewalError> {
        self.card(step, |t| t.delete(id))
    }

    fn warm_up(&mut self) -> Result<(), ServiceError> {
        self.service.warm_up().map(drop)
    }

    fn submit(&mut self, request: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        self.service.submit(request)
    }

    fn pending_id(&self) -> Option<u64> {
        self.service.pending_id()
    }

    fn resume_pending(&mut self, request: &[u8], id: u64) {
        self.service.resume_pending(request, id);
    }

    fn record(&mut self, record: Record) -> Result<(), RenewalError> {
        let crash = self.crash_after.filter(|c| c.matches(&record));
        self.journal.write(record)?;
        match crash {
            Some(point) => Err(RenewalError::Crashed(point)),
            None => Ok(()),
        }
    }

    fn wait(&mut self, duration: Duration) {
        (self.sleep)(duration);
    }
}

/// A key on the token as a CMC signer.
struct CardKey {
    token: SharedToken,
    id: ContainerId,
    spki: SubjectPublicKeyInfoOwned,
    algorithm: SignatureAlgorithm,
}

impl Signer for CardKey {
    fn public_key(&self) -> &SubjectPublicKeyInfoOwned {
        &self.spki
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let mut token = self.token.lock().map_err(|_| SignError::Backend {
            backend: "token",
            detail: "lock poisoned".into(),
        })?;
        token
            .sign(&self.id, self.algorithm, message)
            .map_err(|e| SignError::Backend {
                backend: "token",
                detail: e.to_string(),
            })
    }
}
