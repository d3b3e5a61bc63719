//! The renewal flow as named steps. Each step's effect (card, network, journal) is performed
//! by the driver, so a test can stop between any two steps ([`RenewalConfig::crash_after`]),
//! and [`recover`] brings the card back to "exactly one valid certificate, no orphan
//! container" from whatever the journal says.
//!
//! ```text
//! Connect -> GenerateKey -> BuildRequest -> Submit -> (Await)* -> Verify -> Install -> DeleteOld -> Done
//!                 \______________ any failure: RollBack (delete the new container) ____/
//! ```

use std::time::Duration;

use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::{
    Mode, RenewalService, ServiceAnswer, ServiceError,
    https::SharedToken,
    journal::{Journal, JournalError, Record},
};
use crate::{
    cmc::{
        DigestAlgorithm, Outcome, ParsedResponse, PublicKey, RenewalParams, ResponseForm, Retained,
        SignError, SignatureAlgorithm, Signer, build_renewal_request, microsoft::TemplateRef,
        request::build_renewal_pkcs10, request::certificate_template, verify_request::hex,
    },
    token::{Container, ContainerId, KeyAlgorithm, TokenError},
    x509::verify_issued_by,
};

/// The steps, in order.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Hash)]
pub enum Step {
    /// Warm-up call: the TLS session exists before any card work.
    Connect,
    /// New key in a new container.
    GenerateKey,
    /// CMC request signed by both keys.
    BuildRequest,
    /// Send it.
    Submit,
    /// Poll a pending request.
    Await,
    /// Check the issued certificate.
    Verify,
    /// Install it in the new container.
    Install,
    /// Delete the old key and certificate; the new ones take their place.
    DeleteOld,
}

/// Where to stop as if the process died (tests): right after this journal record kind was
/// written and before anything else happens.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum CrashPoint {
    /// After `Begin`.
    Begin,
    /// After `GenerateIntent` (the key may or may not exist).
    GenerateIntent,
    /// After `Generated`.
    Generated,
    /// After `Submitted` (the CA may or may not have the request).
    Submitted,
    /// After `InstallIntent`.
    InstallIntent,
    /// After `Installed`.
    Installed,
    /// After `SupersedeIntent`.
    SupersedeIntent,
    /// After `RollbackIntent`.
    RollbackIntent,
}

impl CrashPoint {
    fn matches(self, record: &Record) -> bool {
        matches!(
            (self, record),
            (Self::Begin, Record::Begin { .. })
                | (Self::GenerateIntent, Record::GenerateIntent { .. })
                | (Self::Generated, Record::Generated { .. })
                | (Self::Submitted, Record::Submitted { .. })
                | (Self::InstallIntent, Record::InstallIntent { .. })
                | (Self::Installed, Record::Installed)
                | (Self::SupersedeIntent, Record::SupersedeIntent)
                | (Self::RollbackIntent, Record::RollbackIntent { .. })
        )
    }

    /// Every crash point.
    pub const ALL: [Self; 8] = [
        Self::Begin,
        Self::GenerateIntent,
        Self::Generated,
        Self::Submitted,
        Self::InstallIntent,
        Self::Installed,
        Self::SupersedeIntent,
        Self::RollbackIntent,
    ];
}

/// How to renew.
pub struct RenewalConfig {
    /// The container holding the certificate to renew.
    pub old: ContainerId,
    /// Protocol.
    pub mode: Mode,
    /// Template override (default: the old certificate's).
    pub template: Option<TemplateRef>,
    /// The CA certificates the issued certificate and the response signer must chain to.
    pub trust_anchors: Vec<Retained<Certificate>>,
    /// How many times to poll a pending request before leaving it for `resume`.
    pub max_polls: u32,
    /// Waits out a `Retry-After` (tests pass a virtual sleeper).
    pub sleep: Box<dyn FnMut(Duration)>,
    /// Stop as if crashed after this journal record (tests).
    pub crash_after: Option<CrashPoint>,
}

/// How a run ended.
#[derive(Debug, Eq, PartialEq)]
pub enum RenewalOutcome {
    /// The new certificate is installed in `container`; the old one is gone.
    Renewed {
        /// Where.
        container: ContainerId,
        /// The certificate (DER).
        certificate: Vec<u8>,
    },
    /// The CA has not decided; the new key is kept and `resume` will collect.
    Pending,
    /// Nothing changed on the card (the new container was deleted).
    RolledBack {
        /// Why.
        reason: String,
    },
}

/// How the reason of a rollback starts when the CA refused the request (as opposed to an
/// outage or a failure on our side): the agent keeps the certificate and stops retrying
/// (`stuck`) instead of backing off.
pub const REFUSED: &str = "the CA refused";

/// Whether a rollback's reason is the CA's refusal.
pub fn is_refusal(reason: &str) -> bool {
    reason.starts_with(REFUSED)
}

/// Whether a failure's text says the card refused the PIN (wrong or blocked): retrying with the
/// same PIN would burn the card's remaining tries, so nothing retries it automatically. The
/// texts are `TokenError`'s own (a test keeps them in step).
pub fn is_pin_refusal(text: &str) -> bool {
    text.contains("wrong PIN") || text.contains("PIN is blocked")
}

/// Why a run stopped without a clean outcome.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// The card failed and the failure could not be rolled back (e.g. the card was pulled):
    /// run `recover` when it is back.
    #[error("card error at {step:?}: {source}; run `renew recover` when the card is back")]
    Card {
        /// Where.
        step: Step,
        /// Why.
        source: TokenError,
    },
    /// The journal could not be written: nothing further was done.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The configuration is unusable (no certificate in the old container, ...).
    #[error("cannot renew: {0}")]
    Precondition(String),
    /// Simulated crash (tests).
    #[error("simulated crash after {0:?}")]
    Crashed(CrashPoint),
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

fn token_call<T>(
    token: &SharedToken,
    step: Step,
    f: impl FnOnce(&mut (dyn crate::token::Token + Send)) -> Result<T, TokenError>,
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

fn key_algorithm(spki: &SubjectPublicKeyInfoOwned) -> Option<KeyAlgorithm> {
    KeyAlgorithm::of(&PublicKey::from_spki(spki).ok()?)
}

/// Checks what the card signed before anything leaves the machine: the proof of possession
/// verifies with the key the card reported at generation and, for full CMC, the whole request
/// verifies as a CA would check it, signed by the old certificate's key. A card (or middleware)
/// that generated one key and signs with another is caught here, not by the CA.
fn self_check(body: &[u8], mode: Mode, new_key: &SubjectPublicKeyInfoOwned) -> Result<(), String> {
    use crate::cmc::{Limits, input::decode_exact, parse_request, verify_request::verify_pkcs10};
    let pkcs10 = match mode {
        Mode::SimpleReenroll => {
            let req: Retained<x509_cert::request::CertReq> =
                decode_exact(body, "PKCS#10").map_err(|e| e.to_string())?;
            verify_pkcs10(&req).map_err(|e| e.to_string())?;
            req
        }
        Mode::FullCmc | Mode::Cmc => {
            let facts = parse_request(body, &Limits::default())
                .and_then(|p| p.verify())
                .map_err(|e| e.to_string())?;
            if !facts.old_key_signed {
                return Err("the old key's signature is missing".into());
            }
            facts.pkcs10
        }
    };
    let signed_with = PublicKey::from_spki(&pkcs10.value().info.public_key);
    if signed_with.ok() != PublicKey::from_spki(new_key).ok() {
        return Err("the request does not carry the key the card generated".into());
    }
    Ok(())
}

/// One renewal in progress.
pub struct Renewal<'a> {
    token: SharedToken,
    service: &'a mut dyn RenewalService,
    journal: &'a mut Journal,
    config: RenewalConfig,
    old: Option<Container>,
    old_cert: Option<Retained<Certificate>>,
    new: Option<Container>,
    /// Containers before key generation (to find a key the card made but never reported).
    before: Vec<String>,
    request: Option<Vec<u8>>,
    issued: Option<Retained<Certificate>>,
}

impl<'a> Renewal<'a> {
    /// A renewal of `config.old` on `token` through `service`, journaled in `journal`.
    pub fn new(
        token: SharedToken,
        service: &'a mut dyn RenewalService,
        journal: &'a mut Journal,
        config: RenewalConfig,
    ) -> Self {
        Self {
            token,
            service,
            journal,
            config,
            old: None,
            old_cert: None,
            new: None,
            before: Vec::new(),
            request: None,
            issued: None,
        }
    }

    fn record(&mut self, record: Record) -> Result<(), RenewalError> {
        let crash = self.config.crash_after.is_some_and(|c| c.matches(&record));
        self.journal.write(record)?;
        match (crash, self.config.crash_after) {
            (true, Some(point)) => Err(RenewalError::Crashed(point)),
            _ => Ok(()),
        }
    }

    /// Runs the whole flow.
    pub fn run(mut self) -> Result<RenewalOutcome, RenewalError> {
        let old = token_call(&self.token, Step::Connect, |t| t.containers())?
            .into_iter()
            .find(|c| c.id == self.config.old)
            .ok_or_else(|| {
                RenewalError::Precondition(format!("container {} is empty", self.config.old))
            })?;
        let cert_der = old.certificate.clone().ok_or_else(|| {
            RenewalError::Precondition(format!("container {} holds no certificate", old.id))
        })?;
        let old_cert = Retained::<Certificate>::from_der(&cert_der)
            .map_err(|e| RenewalError::Precondition(format!("certificate in {}: {e}", old.id)))?;
        // The new key is of the old certificate's type. A type we cannot generate is refused
        // here, before anything is written or asked: renewing a P-384 or RSA-3072 certificate
        // onto a P-256 key would silently change what the organisation chose.
        let spki = old_cert.value().tbs_certificate().subject_public_key_info();
        let old_key = PublicKey::from_spki(spki).map_err(|e| {
            RenewalError::Precondition(format!("the key of the certificate in {}: {e}", old.id))
        })?;
        if KeyAlgorithm::of(&old_key).is_none() {
            return Err(RenewalError::Precondition(format!(
                "the certificate in {} has a {} key; renewal generates P-256 or RSA-2048 keys \
                 only, and never renews onto another key type",
                old.id,
                old_key.describe()
            )));
        }
        self.record(Record::Begin {
            old: old.id.0.clone(),
            old_certificate: hex(&DigestAlgorithm::Sha256.digest(old_cert.der())),
            mode: self.config.mode,
        })?;
        self.old = Some(old);
        self.old_cert = Some(old_cert);

        // Connect first: the TLS handshake signs with the old key, and that login is then
        // reused by all card work (one PIN prompt).
        if let Err(e) = self.service.warm_up() {
            return self.roll_back(format!("warm-up: {e}"));
        }
        match self.generate() {
            Ok(()) => {}
            Err(RenewalError::Card { step, source }) if self.new.is_none() => {
                return self.clean_after_failed_generate(step, source);
            }
            Err(e) => return self.fail(e),
        }
        let request = match self.build() {
            Ok(r) => r,
            // The new key exists: whatever went wrong, it goes (no orphan container).
            Err(e @ RenewalError::Card { .. }) => return self.fail(e),
            Err(e) => return self.roll_back(format!("building the request: {e}")),
        };
        self.submit_and_finish(request, 0)
    }

    fn generate(&mut self) -> Result<(), RenewalError> {
        let before: Vec<String> = token_call(&self.token, Step::GenerateKey, |t| t.containers())?
            .into_iter()
            .map(|c| c.id.0)
            .collect();
        self.before = before.clone();
        self.record(Record::GenerateIntent { before })?;
        // The old certificate's key type (checked in `run`), then what the token reports.
        let old_key = self
            .old_cert
            .as_ref()
            .map(|c| c.value().tbs_certificate().subject_public_key_info())
            .and_then(key_algorithm)
            .or_else(|| {
                self.old
                    .as_ref()
                    .and_then(|o| o.public_key.as_ref())
                    .and_then(key_algorithm)
            })
            .or_else(|| self.old.as_ref().and_then(|o| o.algorithm))
            .unwrap_or(KeyAlgorithm::EcP256);
        let new = token_call(&self.token, Step::GenerateKey, |t| t.generate(old_key))?;
        self.new = Some(new.clone());
        self.record(Record::Generated {
            container: new.id.0,
        })
    }

    /// GENERATE failed, but the card may have made the key anyway (pulled after executing
    /// it): whatever container appeared since `GenerateIntent` is ours and goes. If the card
    /// cannot be reached, the journal stays at `GenerateIntent` for `recover`.
    fn clean_after_failed_generate(
        mut self,
        step: Step,
        source: TokenError,
    ) -> Result<RenewalOutcome, RenewalError> {
        let reason = format!("key generation: {source}");
        let before = self.before.clone();
        let token = self.token.clone();
        let orphans = match token_call(&token, step, |t| t.containers()) {
            Ok(now) => now
                .into_iter()
                .filter(|c| !before.contains(&c.id.0))
                .map(|c| c.id)
                .collect::<Vec<_>>(),
            Err(_) => return Err(RenewalError::Card { step, source }),
        };
        if !orphans.is_empty() {
            self.record(Record::RollbackIntent {
                reason: reason.clone(),
            })?;
            for id in &orphans {
                if token_call(&token, step, |t| t.delete(id)).is_err() {
                    return Err(RenewalError::Card { step, source });
                }
            }
        }
        self.finish_rolled_back(reason)
    }

    fn build(&mut self) -> Result<Vec<u8>, RenewalError> {
        let (Some(old), Some(old_cert), Some(new)) = (&self.old, &self.old_cert, &self.new) else {
            return Err(RenewalError::Precondition("build before generate".into()));
        };
        let old_spki = old_cert
            .value()
            .tbs_certificate()
            .subject_public_key_info()
            .clone();
        let new_spki = new.public_key.clone().ok_or_else(|| {
            RenewalError::Precondition("the new key's public part is unknown".into())
        })?;
        let alg = |spki: &SubjectPublicKeyInfoOwned| {
            key_algorithm(spki)
                .unwrap_or(KeyAlgorithm::EcP256)
                .signature_algorithm()
        };
        let old_key = CardKey {
            token: self.token.clone(),
            id: old.id.clone(),
            algorithm: alg(&old_spki),
            spki: old_spki,
        };
        let new_key = CardKey {
            token: self.token.clone(),
            id: new.id.clone(),
            algorithm: alg(&new_spki),
            spki: new_spki,
        };
        let card_error = |e: crate::cmc::CmcError| match e {
            crate::cmc::CmcError::Sign(s) => RenewalError::Card {
                step: Step::BuildRequest,
                source: TokenError::Backend {
                    backend: "token",
                    detail: s.to_string(),
                },
            },
            other => RenewalError::Precondition(other.to_string()),
        };
        let body = match self.config.mode {
            // EST simplereenroll sends the PKCS#10 only: no CMS layer, so no old-key and no
            // second new-key signature (the TLS client certificate is the authority).
            Mode::SimpleReenroll => {
                build_renewal_pkcs10(old_cert, &new_key, self.config.template.as_ref())
                    .map_err(card_error)?
                    .der()
                    .to_vec()
            }
            Mode::FullCmc | Mode::Cmc => {
                let mut params = RenewalParams::random()
                    .map_err(|e| RenewalError::Precondition(e.to_string()))?;
                params.template = self.config.template.clone();
                build_renewal_request(old_cert, &old_key, &new_key, &params)
                    .map_err(card_error)?
                    .der
            }
        };
        self_check(&body, self.config.mode, &new_key.spki).map_err(|detail| {
            RenewalError::Card {
                step: Step::BuildRequest,
                source: TokenError::Backend {
                    backend: "token",
                    detail: format!("the card's signatures do not match its keys: {detail}"),
                },
            }
        })?;
        self.request = Some(body.clone());
        Ok(body)
    }

    /// Submits (or re-submits, to poll) and carries the answer through to the end.
    fn submit_and_finish(
        mut self,
        request: Vec<u8>,
        polls_done: u32,
    ) -> Result<RenewalOutcome, RenewalError> {
        if polls_done == 0 {
            self.record(Record::Submitted {
                request: hex(&request),
            })?;
        }
        let mut polls = polls_done;
        loop {
            let answer = match self.service.submit(&request) {
                Ok(a) => a,
                Err(e) => return self.after_transport_failure(e),
            };
            let (pending, retry) = match answer {
                ServiceAnswer::Pending { retry_after } => (true, retry_after),
                ServiceAnswer::Response {
                    response,
                    retry_after,
                } => match &response.outcome {
                    Outcome::Pending { .. } => (true, retry_after.unwrap_or(5)),
                    Outcome::Issued => return self.verify_and_install(*response),
                    Outcome::Failed { fail_info } => {
                        let text = response.status_string.clone().unwrap_or_default();
                        return self.roll_back(format!("{REFUSED} ({fail_info:?}): {text}"));
                    }
                    Outcome::Other(status) => {
                        return self.roll_back(format!("the CA answered {status:?}"));
                    }
                },
            };
            if pending {
                if polls == 0 {
                    self.record(Record::Pending { retry_after: retry })?;
                }
                if polls >= self.config.max_polls {
                    return Ok(RenewalOutcome::Pending);
                }
                polls += 1;
                (self.config.sleep)(Duration::from_secs(retry));
            }
        }
    }

    fn after_transport_failure(self, error: ServiceError) -> Result<RenewalOutcome, RenewalError> {
        // The CA may or may not have acted on the request. The old certificate is still valid
        // either way; the new key is useless without the answer.
        self.roll_back(format!("submission: {error}"))
    }

    fn verify_and_install(
        mut self,
        response: ParsedResponse,
    ) -> Result<RenewalOutcome, RenewalError> {
        let issued = match self.verify(&response) {
            Ok(c) => c,
            Err(reason) => return self.roll_back(reason),
        };
        self.issued = Some(issued.clone());
        self.record(Record::InstallIntent {
            certificate: hex(issued.der()),
        })?;
        let new_id = self
            .new
            .as_ref()
            .map(|n| n.id.clone())
            .ok_or(RenewalError::Precondition("no new container".into()))?;
        if let Err(e) = token_call(&self.token, Step::Install, |t| {
            t.install_certificate(&new_id, issued.der())
        }) {
            return self.fail(e);
        }
        self.record(Record::Installed)?;
        self.record(Record::SupersedeIntent)?;
        let old_id = self.config.old.clone();
        let container = token_call(&self.token, Step::DeleteOld, |t| {
            t.supersede(&old_id, &new_id)
        })?;
        self.record(Record::Done {
            container: container.0.clone(),
        })?;
        Ok(RenewalOutcome::Renewed {
            container,
            certificate: issued.der().to_vec(),
        })
    }

    /// The checks before anything is installed: the response is signed by a CA we trust (full
    /// responses), the certificate chains to it, certifies the new key, and carries the old
    /// subject and template.
    fn verify(&self, response: &ParsedResponse) -> Result<Retained<Certificate>, String> {
        let anchors = &self.config.trust_anchors;
        let trusted = |c: &Retained<Certificate>| {
            anchors
                .iter()
                .any(|a| a == c || verify_issued_by(c, a.value()).is_ok())
        };
        if response.form == ResponseForm::FullPkiResponse {
            let signer = response
                .verify_signer()
                .map_err(|e| format!("response signature: {e}"))?;
            if !trusted(signer) {
                return Err("the response is signed by a certificate we do not trust".into());
            }
        }
        let new_key = self
            .new
            .as_ref()
            .and_then(|n| n.public_key.as_ref())
            .ok_or("no new key")?;
        let old = self.old_cert.as_ref().ok_or("no old certificate")?.value();
        // Keys compare as parsed values: a CA may re-encode the key canonically.
        let new_key = PublicKey::from_spki(new_key).map_err(|e| format!("the new key: {e}"))?;
        let issued = response
            .certificates
            .iter()
            .find(|c| {
                PublicKey::from_spki(c.value().tbs_certificate().subject_public_key_info())
                    .is_ok_and(|k| k == new_key)
            })
            .ok_or("no certificate in the answer certifies the new key")?;
        let chains = anchors
            .iter()
            .any(|a| verify_issued_by(issued, a.value()).is_ok());
        if !chains {
            return Err("the issued certificate does not chain to the CA".into());
        }
        let tbs = issued.value().tbs_certificate();
        if tbs.subject() != old.tbs_certificate().subject() {
            return Err("the issued certificate has another subject".into());
        }
        let wanted = self
            .config
            .template
            .clone()
            .or_else(|| certificate_template(old));
        if let Some(wanted) = wanted {
            let got = certificate_template(issued.value())
                .ok_or("the issued certificate names no template")?;
            if !wanted.matches(&got) {
                return Err(format!(
                    "the issued certificate is for template {got}, not {wanted}"
                ));
            }
        }
        Ok(issued.clone())
    }

    /// Deletes the new container and reports a rollback.
    fn roll_back(mut self, reason: String) -> Result<RenewalOutcome, RenewalError> {
        let Some(new) = self.new.take() else {
            self.record(Record::RolledBack)?;
            return Ok(RenewalOutcome::RolledBack { reason });
        };
        self.record(Record::RollbackIntent {
            reason: reason.clone(),
        })?;
        token_call(&self.token, Step::Install, |t| t.delete(&new.id))?;
        self.finish_rolled_back(reason)
    }

    fn finish_rolled_back(mut self, reason: String) -> Result<RenewalOutcome, RenewalError> {
        self.record(Record::RolledBack)?;
        Ok(RenewalOutcome::RolledBack { reason })
    }

    /// A card failure mid-flow: try to roll back; if the card cannot even do that, leave the
    /// journal for `recover`.
    fn fail(self, error: RenewalError) -> Result<RenewalOutcome, RenewalError> {
        match error {
            RenewalError::Card { step, source } => {
                let reason = format!("card error at {step:?}: {source}");
                match self.roll_back(reason) {
                    Ok(outcome) => Ok(outcome),
                    Err(_) => Err(RenewalError::Card { step, source }),
                }
            }
            other => Err(other),
        }
    }
}

/// What `recover` did.
#[derive(Debug, Eq, PartialEq)]
pub enum RecoveryOutcome {
    /// Nothing to do.
    Clean,
    /// Rolled back: orphan containers deleted.
    RolledBack {
        /// Deleted containers.
        deleted: Vec<ContainerId>,
    },
    /// Completed forward: the issued certificate was installed and the old one removed.
    Completed {
        /// Where the certificate is.
        container: ContainerId,
    },
    /// A pending request is waiting; `resume` collects it.
    Pending,
}

/// Restores the invariant after a crash at any point: exactly one valid certificate, no
/// orphan container.
pub fn recover(
    token: &SharedToken,
    journal: &mut Journal,
) -> Result<RecoveryOutcome, RenewalError> {
    let records = journal.current().to_vec();
    let Some(Record::Begin { old, .. }) = records.first().cloned() else {
        return Ok(RecoveryOutcome::Clean);
    };
    let old = ContainerId(old);
    let generated = records.iter().find_map(|r| match r {
        Record::Generated { container } => Some(ContainerId(container.clone())),
        _ => None,
    });
    let before = records.iter().find_map(|r| match r {
        Record::GenerateIntent { before } => Some(before.clone()),
        _ => None,
    });
    let issued = records.iter().rev().find_map(|r| match r {
        Record::InstallIntent { certificate } => crate_hex_decode(certificate),
        _ => None,
    });
    match records.last() {
        None | Some(Record::Done { .. }) | Some(Record::RolledBack) => Ok(RecoveryOutcome::Clean),
        Some(Record::Pending { .. }) => Ok(RecoveryOutcome::Pending),
        Some(Record::InstallIntent { .. } | Record::Installed | Record::SupersedeIntent) => {
            let new = generated.ok_or(RenewalError::Precondition(
                "journal: install without a generated key".into(),
            ))?;
            let cert = issued.ok_or(RenewalError::Precondition(
                "journal: install without a certificate".into(),
            ))?;
            let containers = token_call(token, Step::Install, |t| t.containers())?;
            let new_has_cert = containers
                .iter()
                .any(|c| c.id == new && c.certificate.as_deref() == Some(cert.as_slice()));
            let done = containers
                .iter()
                .any(|c| c.id == old && c.certificate.as_deref() == Some(cert.as_slice()))
                && !containers.iter().any(|c| c.id == new);
            if !done {
                if !new_has_cert && containers.iter().any(|c| c.id == new) {
                    token_call(token, Step::Install, |t| t.install_certificate(&new, &cert))?;
                }
                journal.write(Record::SupersedeIntent)?;
                token_call(token, Step::DeleteOld, |t| t.supersede(&old, &new))?;
            }
            journal.write(Record::Done {
                container: old.0.clone(),
            })?;
            Ok(RecoveryOutcome::Completed { container: old })
        }
        Some(_) => {
            // Begin, GenerateIntent, Generated, Submitted, RollbackIntent: undo.
            let containers = token_call(token, Step::GenerateKey, |t| t.containers())?;
            let mut orphans: Vec<ContainerId> = Vec::new();
            if let Some(new) = generated {
                orphans.push(new);
            }
            if let Some(before) = before {
                for c in &containers {
                    if !before.contains(&c.id.0) && !orphans.contains(&c.id) {
                        orphans.push(c.id.clone());
                    }
                }
            }
            orphans.retain(|o| *o != old);
            let mut deleted = Vec::new();
            journal.write(Record::RollbackIntent {
                reason: "recovery after a crash".into(),
            })?;
            for id in orphans {
                if containers.iter().any(|c| c.id == id) {
                    token_call(token, Step::Install, |t| t.delete(&id))?;
                    deleted.push(id);
                }
            }
            journal.write(Record::RolledBack)?;
            Ok(RecoveryOutcome::RolledBack { deleted })
        }
    }
}

fn crate_hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Collects a pending request (also after a restart): re-submits the journaled request, then
/// installs, or rolls back on denial.
pub fn resume(
    token: SharedToken,
    service: &mut dyn RenewalService,
    journal: &mut Journal,
    config: RenewalConfig,
) -> Result<RenewalOutcome, RenewalError> {
    let records = journal.current().to_vec();
    if !matches!(records.last(), Some(Record::Pending { .. })) {
        return Err(RenewalError::Precondition(
            "no pending renewal in the journal".into(),
        ));
    }
    let request = records
        .iter()
        .find_map(|r| match r {
            Record::Submitted { request } => crate_hex_decode(request),
            _ => None,
        })
        .ok_or(RenewalError::Precondition(
            "journal: pending without a request".into(),
        ))?;
    let new_id = records
        .iter()
        .find_map(|r| match r {
            Record::Generated { container } => Some(ContainerId(container.clone())),
            _ => None,
        })
        .ok_or(RenewalError::Precondition(
            "journal: pending without a key".into(),
        ))?;
    let containers = token_call(&token, Step::Await, |t| t.containers())?;
    let old = containers.iter().find(|c| c.id == config.old).cloned();
    let new = containers.iter().find(|c| c.id == new_id).cloned();
    let (Some(old), Some(new)) = (old, new) else {
        return Err(RenewalError::Precondition(
            "the card no longer holds the keys of the pending request".into(),
        ));
    };
    let old_cert = old
        .certificate
        .as_deref()
        .and_then(|d| Retained::<Certificate>::from_der(d).ok())
        .ok_or(RenewalError::Precondition(
            "the old certificate is gone".into(),
        ))?;
    if let Err(e) = service.warm_up() {
        return Err(RenewalError::Precondition(format!(
            "cannot reach the CA: {e}"
        )));
    }
    let renewal = Renewal {
        token,
        service,
        journal,
        config,
        old: Some(old),
        old_cert: Some(old_cert),
        new: Some(new),
        before: Vec::new(),
        request: Some(request.clone()),
        issued: None,
    };
    renewal.submit_and_finish(request, 1)
}

#[cfg(test)]
mod pin_refusal_tests {
    use super::*;

    #[test]
    fn the_token_errors_for_a_refused_pin_are_recognised() {
        assert!(is_pin_refusal(
            &TokenError::PinIncorrect { retries_left: 2 }.to_string()
        ));
        assert!(is_pin_refusal(&TokenError::PinBlocked.to_string()));
        assert!(!is_pin_refusal(&TokenError::Full.to_string()));
    }
}
