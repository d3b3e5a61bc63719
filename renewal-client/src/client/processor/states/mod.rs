//! The renewal as a chain of named states. Each state holds only what is known at that point
//! (no `Option` filled in as the run goes), performs its effects through [`Effects`], and
//! consumes itself to return the next state — the shape of rustls's `Expect*` handshake states.
//! `run`, `resume`, `recover` and the agent all enter this chain (at [`Start`], [`Resume`] or
//! [`Recover`]) and leave it through the same [`Finished`] outcomes.
//!
//! ```text
//! Start -> Connect -> Generate -> Build -> Submit -(pending)-> Submit ... -> Verify -> Install -> Supersede -> Renewed
//!             \___________\__________\________\___________________\__________\-> RollBack -> RolledBack
//! Resume -> Submit ...                       Recover -> Install | Supersede | RollBack | Clean | Pending
//! ```

use std::time::Duration;

use spki::SubjectPublicKeyInfoOwned;
use x509_cert::Certificate;

use super::{
    RenewalError, RollbackCause, Step,
    checks::{self_check, verify_issued},
    cmp,
    effects::Effects,
};

mod cmp_exchange;
mod restart;
use crate::{
    client::{Mode, ServiceAnswer, journal::Record},
    cmc::{
        DigestAlgorithm, Outcome, ParsedResponse, PublicKey, RenewalParams, Retained,
        attestation::KeyAttestation, build_renewal_request, microsoft::TemplateRef,
        request::build_attested_pkcs10, verify_request::hex,
    },
    token::{ContainerId, KeyAlgorithm, TokenError},
};
use cmp_exchange::Confirm;
pub use restart::{Recover, Resume};

/// The longest a run waits in process before polling a pending request again; a CA asking for
/// more leaves the request pending (`renew resume` collects it).
pub const MAX_POLL_WAIT: Duration = Duration::from_secs(3600);

/// What stays the same for a whole renewal.
pub struct Context {
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
    /// How a lost answer is retried.
    pub retry: super::RetryPolicy,
    /// Attach the card's attestation of the new key to the request.
    pub attest: bool,
    /// CMP: ask for implicit confirmation.
    pub implicit_confirm: bool,
    /// The time now, against which the issued certificate must be valid.
    pub now: super::Now,
}

/// The certificate being renewed, as found on the card, with the key type its renewal gets.
#[derive(Clone, Debug)]
pub struct OldCertificate {
    certificate: Box<Retained<Certificate>>,
    key: KeyAlgorithm,
    /// The container it is in: the new key is made like its key (same PIN policy).
    id: ContainerId,
}

impl OldCertificate {
    /// Reads the certificate in `id` from a container listing. A certificate whose key type the
    /// token cannot generate is refused here, before anything is written or asked: renewing a
    /// P-384 or RSA-3072 certificate onto a P-256 key would silently change what the
    /// organisation chose.
    fn find(
        containers: &[crate::token::Container],
        id: &ContainerId,
    ) -> Result<Self, RenewalError> {
        let old = containers
            .iter()
            .find(|c| c.id == *id)
            .ok_or_else(|| RenewalError::Precondition(format!("container {id} is empty")))?;
        let der = old.certificate.as_deref().ok_or_else(|| {
            RenewalError::Precondition(format!("container {id} holds no certificate"))
        })?;
        let certificate = Retained::<Certificate>::from_der(der)
            .map_err(|e| RenewalError::Precondition(format!("certificate in {id}: {e}")))?;
        let spki = certificate
            .value()
            .tbs_certificate()
            .subject_public_key_info();
        let key = PublicKey::from_spki(spki).map_err(|e| {
            RenewalError::Precondition(format!("the key of the certificate in {id}: {e}"))
        })?;
        let Some(algorithm) = KeyAlgorithm::of(&key) else {
            return Err(RenewalError::Precondition(format!(
                "the certificate in {id} has a {} key; renewal generates {} keys only, and \
                 never renews onto another key type",
                key.describe(),
                KeyAlgorithm::SUPPORTED
            )));
        };
        Ok(Self {
            certificate: Box::new(certificate),
            key: algorithm,
            id: id.clone(),
        })
    }

    fn spki(&self) -> &SubjectPublicKeyInfoOwned {
        self.certificate
            .value()
            .tbs_certificate()
            .subject_public_key_info()
    }
}

/// The key the card generated for the renewal.
#[derive(Clone, Debug)]
pub struct NewKey {
    id: ContainerId,
    spki: SubjectPublicKeyInfoOwned,
    /// The card's attestation of it, when the renewal asks for one.
    attestation: Option<KeyAttestation>,
}

/// A state of the renewal.
pub enum State {
    /// Read the card: the old certificate and its key type.
    Start(Start),
    /// Open the TLS session (it signs with the old key: one login for all card work).
    Connect(Connect),
    /// New key, in a new container.
    Generate(Generate),
    /// CMC request (or PKCS#10) signed by the card, checked before it leaves.
    Build(Build),
    /// Send, or poll a pending request.
    Submit(Submit),
    /// Check the CA's answer.
    Verify(Verify),
    /// Store the issued certificate with the new key.
    Install(Install),
    /// Delete the old key and certificate; the new ones take their place.
    Supersede(Supersede),
    /// Delete what this renewal created.
    RollBack(RollBack),
    /// Enter after a restart with a pending request in the journal.
    Resume(Resume),
    /// Enter after a crash: go forward or back from what the journal says.
    Recover(Recover),
}

/// What a step returns.
pub enum Next {
    /// Carry on.
    Continue(State),
    /// The renewal is over (for this run).
    Finished(Finished),
}

/// How a renewal ended.
#[derive(Debug, Eq, PartialEq)]
pub enum Finished {
    /// The new certificate is installed in `container`; the old one is gone.
    Renewed {
        /// Where.
        container: ContainerId,
        /// The certificate (DER).
        certificate: Vec<u8>,
    },
    /// The CA has not decided; the new key is kept and `resume` will collect.
    Pending,
    /// Nothing this renewal made is left on the card.
    RolledBack {
        /// Why.
        reason: RollbackCause,
        /// The containers deleted.
        deleted: Vec<ContainerId>,
    },
    /// The journal shows no renewal in progress.
    Clean,
}

impl State {
    /// Performs this state's effects and returns what follows.
    pub fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        match self {
            Self::Start(s) => s.step(cx, fx),
            Self::Connect(s) => Ok(s.step(fx)),
            Self::Generate(s) => s.step(cx, fx),
            Self::Build(s) => s.step(cx, fx),
            Self::Submit(s) => s.step(cx, fx),
            Self::Verify(s) => s.step(cx, fx),
            Self::Install(s) => s.step(fx),
            Self::Supersede(s) => s.step(cx, fx),
            Self::RollBack(s) => s.step(fx),
            Self::Resume(s) => s.step(cx, fx),
            Self::Recover(s) => s.step(cx, fx),
        }
    }

    /// The state's name (logs, tests).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start(_) => "Start",
            Self::Connect(_) => "Connect",
            Self::Generate(_) => "Generate",
            Self::Build(_) => "Build",
            Self::Submit(_) => "Submit",
            Self::Verify(_) => "Verify",
            Self::Install(_) => "Install",
            Self::Supersede(_) => "Supersede",
            Self::RollBack(_) => "RollBack",
            Self::Resume(_) => "Resume",
            Self::Recover(_) => "Recover",
        }
    }
}

/// Runs states from `state` until the renewal finishes or an effect fails beyond rollback.
pub fn drive(
    mut state: State,
    cx: &Context,
    fx: &mut dyn Effects,
) -> Result<Finished, RenewalError> {
    loop {
        tracing::debug!(state = state.name(), "renewal step");
        match state.step(cx, fx)? {
            Next::Continue(next) => state = next,
            Next::Finished(finished) => return Ok(finished),
        }
    }
}

/// The first state of a renewal.
pub struct Start;

impl Start {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        let old = OldCertificate::find(&fx.containers(Step::Connect)?, &cx.old)?;
        let token = fx.token_identity();
        fx.record(Record::Begin {
            old: cx.old.0.clone(),
            old_certificate: hex(&DigestAlgorithm::Sha256.digest(old.certificate.der())),
            mode: cx.mode,
            token,
        })?;
        if cx.attest && cx.mode == Mode::Cmp {
            // Refused before the PIN is asked or a key is made.
            return Ok(RollBack::nothing_made(RollbackCause::Request(
                "a CMP key update has no place for the card's attestation: renew with \
                 --mode fullcmc, cmc, simplereenroll or wstep"
                    .into(),
            )));
        }
        Ok(Next::Continue(State::Connect(Connect { old })))
    }
}

/// The old certificate is known and `Begin` is journaled.
pub struct Connect {
    old: OldCertificate,
}

impl Connect {
    fn step(self, fx: &mut dyn Effects) -> Next {
        match fx.warm_up() {
            Ok(()) => Next::Continue(State::Generate(Generate { old: self.old })),
            Err(e) => RollBack::nothing_made(match e.card_refusal() {
                Some(refusal) => RollbackCause::of_refusal(Step::Connect, refusal),
                None => RollbackCause::Transport(e.to_string()),
            }),
        }
    }
}

/// Connected; no key made yet.
pub struct Generate {
    old: OldCertificate,
}

impl Generate {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        // The listing before generation is what tells a key the card made but never reported
        // (pulled mid-GENERATE) from the card's own containers. Without it nothing may be
        // deleted later, so a failure here ends the attempt with nothing made.
        let before: Vec<ContainerId> = match fx.containers(Step::GenerateKey) {
            Ok(list) => list.into_iter().map(|c| c.id).collect(),
            Err(RenewalError::Card { source, .. }) => {
                return Ok(RollBack::nothing_made(RollbackCause::of_card(
                    Step::GenerateKey,
                    &source,
                )));
            }
            Err(other) => return Err(other),
        };
        fx.record(Record::GenerateIntent {
            before: before.iter().map(|id| id.0.clone()).collect(),
        })?;
        let made = match fx.generate(self.old.key, &self.old.id) {
            Ok(made) => made,
            Err(RenewalError::Card { step, source }) => {
                return after_failed_generate(fx, &before, self.old.key, step, source);
            }
            Err(other) => return Err(other),
        };
        fx.record(Record::Generated {
            container: made.id.0.clone(),
        })?;
        let Some(spki) = made.public_key else {
            return Ok(RollBack::of(
                made.id,
                RollbackCause::Request("the card did not report the new key's public part".into()),
            ));
        };
        // A card (or middleware) that answers GENERATE with another key type than asked would
        // change what the organisation chose: the key goes, the certificate stays.
        let made_algorithm = PublicKey::from_spki(&spki)
            .ok()
            .as_ref()
            .and_then(KeyAlgorithm::of);
        if made_algorithm != Some(self.old.key) {
            return Ok(RollBack::of(
                made.id,
                RollbackCause::Request(format!(
                    "the card generated {} when asked for {}",
                    made_algorithm.map_or("an unusable key".to_string(), |a| a.to_string()),
                    self.old.key
                )),
            ));
        }
        // The attestation is asked for now, before anything is signed: a card that cannot
        // attest (an imported key, a token without attestation) ends the attempt here.
        let attestation = if cx.attest {
            match fx.attest(&made.id) {
                Ok(attestation) => Some(attestation),
                Err(RenewalError::Card { step, source }) => {
                    return Ok(RollBack::after_card_error(made.id, step, source));
                }
                Err(other) => return Err(other),
            }
        } else {
            None
        };
        Ok(Next::Continue(State::Build(Build {
            old: self.old,
            new: NewKey {
                id: made.id,
                spki,
                attestation,
            },
        })))
    }
}

/// GENERATE failed, but the card may have made the key anyway (pulled after executing it):
/// whatever container appeared since the listing is ours and goes. If the card cannot be
/// reached, the journal stays at `GenerateIntent` for `recover`.
fn after_failed_generate(
    fx: &mut dyn Effects,
    before: &[ContainerId],
    algorithm: KeyAlgorithm,
    step: Step,
    source: TokenError,
) -> Result<Next, RenewalError> {
    let now = match fx.containers(step) {
        Ok(now) => now,
        Err(_) => return Err(RenewalError::Card { step, source }),
    };
    let orphans = now
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !before.contains(id))
        .collect();
    Ok(Next::Continue(State::RollBack(RollBack {
        reason: match source.card_refusal() {
            Some(refusal) => RollbackCause::of_refusal(step, refusal),
            None => RollbackCause::Card {
                step,
                detail: format!("{algorithm} key generation: {source}"),
            },
        },
        orphans,
        cause: Some((step, source)),
    })))
}

/// The new key exists (`Generated` is journaled).
pub struct Build {
    old: OldCertificate,
    new: NewKey,
}

impl Build {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        match self.request(cx, &*fx) {
            Ok(request) => Ok(Next::Continue(State::Submit(Submit {
                old: self.old,
                new: self.new,
                request,
                polls: 0,
                tries: 0,
                cmp_answer: None,
            }))),
            // The new key exists: whatever went wrong, it goes (no orphan container).
            Err(RenewalError::Card { step, source }) => {
                Ok(RollBack::after_card_error(self.new.id, step, source))
            }
            Err(e) => Ok(RollBack::of(
                self.new.id,
                RollbackCause::Request(format!("building the request: {e}")),
            )),
        }
    }

    fn request(&self, cx: &Context, fx: &dyn Effects) -> Result<Vec<u8>, RenewalError> {
        let old_key = fx.signer(
            &cx.old,
            self.old.spki().clone(),
            self.old.key.signature_algorithm(),
        );
        let new_key = fx.signer(
            &self.new.id,
            self.new.spki.clone(),
            self.old.key.signature_algorithm(),
        );
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
        let old_cert = &self.old.certificate;
        let body = match cx.mode {
            // EST simplereenroll sends the PKCS#10 only: no CMS layer, so no old-key and no
            // second new-key signature (the TLS client certificate is the authority).
            Mode::SimpleReenroll => build_attested_pkcs10(
                old_cert,
                new_key.as_ref(),
                cx.template.as_ref(),
                self.new.attestation.as_ref(),
            )
            .map_err(card_error)?
            .der()
            .to_vec(),
            Mode::Cmp => {
                if self.new.attestation.is_some() {
                    return Err(RenewalError::Precondition(
                        "a CMP key update has no place for the card's attestation: renew with \
                         --mode fullcmc, cmc, simplereenroll or wstep"
                            .into(),
                    ));
                }
                cmp::key_update(
                    old_cert,
                    old_key.as_ref(),
                    new_key.as_ref(),
                    cx.implicit_confirm,
                )
                .map_err(|e| match e {
                    crate::cmp::build::BuildError::Sign(s) => RenewalError::Card {
                        step: Step::BuildRequest,
                        source: TokenError::Backend {
                            backend: "token",
                            detail: s.to_string(),
                        },
                    },
                    other => RenewalError::Precondition(other.to_string()),
                })?
            }
            Mode::FullCmc | Mode::Cmc | Mode::Wstep => {
                let mut params = RenewalParams::random()
                    .map_err(|e| RenewalError::Precondition(e.to_string()))?;
                params.template = cx.template.clone();
                params.attestation = self.new.attestation.clone();
                build_renewal_request(old_cert, old_key.as_ref(), new_key.as_ref(), &params)
                    .map_err(card_error)?
                    .der
            }
        };
        self_check(&body, cx.mode, &self.new.spki).map_err(|detail| RenewalError::Card {
            step: Step::BuildRequest,
            source: TokenError::Backend {
                backend: "token",
                detail: format!("the card's signatures do not match its keys: {detail}"),
            },
        })?;
        Ok(body)
    }
}

/// The request is built; `polls` submissions of it have been answered "pending".
pub struct Submit {
    old: OldCertificate,
    new: NewKey,
    request: Vec<u8>,
    polls: u32,
    /// Re-sends so far after lost answers.
    tries: u32,
    /// CMP: the header of the CA's last answer (its nonce is the next message's recipNonce).
    cmp_answer: Option<Box<crate::cmp::PkiHeader>>,
}

impl Submit {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        if self.polls == 0 && self.tries == 0 {
            fx.record(Record::Submitted {
                request: hex(&self.request),
            })?;
        }
        // CMP polls with a pollReq of its own (protected by the old key), not the request again.
        let (message, sent) = match self.cmp_message(cx, &*fx) {
            Ok(m) => m,
            Err(next) => return Ok(*next),
        };
        let mut cmp_answer = self.cmp_answer.clone();
        let retry_after = match fx.submit(&message) {
            // The answer was lost: the CA may have decided. The same bytes again get its
            // decision (never a second one), journaled first so a crash resumes with them.
            Err(e) if e.lost_answer() && self.tries < cx.retry.attempts => {
                let attempt = self.tries + 1;
                fx.record(Record::Retry {
                    attempt,
                    reason: e.to_string(),
                })?;
                fx.wait(cx.retry.wait(attempt, e.retry_after()));
                return Ok(Next::Continue(State::Submit(Self {
                    tries: attempt,
                    ..self
                })));
            }
            // A definite answer, or the retries exhausted: the old certificate is still valid;
            // the new key is useless without a certificate.
            Err(e) => {
                let cause = match e.card_refusal() {
                    Some(refusal) => RollbackCause::of_refusal(Step::Submit, refusal),
                    None => RollbackCause::Transport(format!("submission: {e}")),
                };
                return Ok(RollBack::of(self.new.id, cause));
            }
            Ok(ServiceAnswer::Pending { retry_after }) => retry_after,
            Ok(ServiceAnswer::Cmp { message }) => {
                let Some(sent) = &sent else {
                    return Ok(RollBack::of(
                        self.new.id,
                        RollbackCause::BadAnswer(
                            "a CMP answer to a request that is not CMP".into(),
                        ),
                    ));
                };
                match cmp::read(&message, sent, &cx.trust_anchors) {
                    Err(reason) => {
                        return Ok(RollBack::of(self.new.id, RollbackCause::BadAnswer(reason)));
                    }
                    Ok((cmp::Answer::Waiting { check_after }, header)) => {
                        cmp_answer = Some(Box::new(header));
                        check_after
                    }
                    Ok((cmp::Answer::Issued { response, implicit }, header)) => {
                        let confirm = (!implicit).then(|| {
                            Box::new(Confirm {
                                request: sent.clone(),
                                answer: header,
                            })
                        });
                        return Ok(Next::Continue(State::Verify(Verify {
                            old: self.old,
                            new: self.new,
                            response,
                            confirm,
                        })));
                    }
                    Ok((cmp::Answer::Refused { fail_info, text }, _)) => {
                        return Ok(RollBack::of(
                            self.new.id,
                            RollbackCause::Refused { fail_info, text },
                        ));
                    }
                    Ok((cmp::Answer::Acknowledged, _)) => {
                        return Ok(RollBack::of(
                            self.new.id,
                            RollbackCause::BadAnswer(
                                "the CA answered our request with pkiConf".into(),
                            ),
                        ));
                    }
                }
            }
            Ok(ServiceAnswer::Refused { text }) => {
                return Ok(RollBack::of(
                    self.new.id,
                    RollbackCause::Refused {
                        fail_info: None,
                        text,
                    },
                ));
            }
            Ok(ServiceAnswer::Response {
                response,
                retry_after,
            }) => match &response.outcome {
                Outcome::Pending { .. } => retry_after.unwrap_or(5),
                Outcome::Issued => {
                    return Ok(Next::Continue(State::Verify(Verify {
                        old: self.old,
                        new: self.new,
                        response,
                        confirm: None,
                    })));
                }
                Outcome::Failed { fail_info } => {
                    let text = response.status_string.clone().unwrap_or_default();
                    return Ok(RollBack::of(
                        self.new.id,
                        RollbackCause::Refused {
                            fail_info: *fail_info,
                            text,
                        },
                    ));
                }
                Outcome::Other(status) => {
                    return Ok(RollBack::of(
                        self.new.id,
                        RollbackCause::BadAnswer(format!(
                            "the CA answered the status {}",
                            status.name()
                        )),
                    ));
                }
            },
        };
        // CMP answers each carry a new nonce for the next message: journaled every time, so a
        // restart polls with the latest one.
        let cmp_nonce = cmp_answer
            .as_ref()
            .and_then(|h| h.sender_nonce.as_ref())
            .map(|n| hex(n.as_bytes()));
        if self.polls == 0 || cmp_nonce.is_some() {
            fx.record(Record::Pending {
                retry_after,
                request_id: fx.pending_id(),
                cmp_nonce,
            })?;
        }
        // A CA that asks to come back later than `MAX_POLL_WAIT` is not waited for in the
        // process: the request stays pending (journaled) for `renew resume` or the agent, which
        // schedules by the CA's time. A hostile or broken `Retry-After` cannot hang a run.
        if self.polls >= cx.max_polls || Duration::from_secs(retry_after) > MAX_POLL_WAIT {
            return Ok(Next::Finished(Finished::Pending));
        }
        fx.wait(Duration::from_secs(retry_after));
        Ok(Next::Continue(State::Submit(Self {
            polls: self.polls + 1,
            cmp_answer,
            ..self
        })))
    }
}

/// The CA answered "issued".
pub struct Verify {
    old: OldCertificate,
    new: NewKey,
    response: Box<ParsedResponse>,
    /// CMP without implicit confirmation: the exchange to confirm (or reject) it in.
    confirm: Option<Box<Confirm>>,
}

impl Verify {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        let checked = verify_issued(
            cx,
            &self.response,
            self.old.certificate.value(),
            &self.new.spki,
        );
        if let Some(confirm) = &self.confirm {
            // What the CA issued, confirmed only once it passed every check; rejected (so the
            // CA revokes it) otherwise.
            let received = checked.as_ref().ok().or(self.response.certificates.first());
            let refusal = checked.as_ref().err().map(ToString::to_string);
            if let Some(received) = received
                && let Err(next) = self.send_confirm(cx, fx, confirm, received, refusal.as_deref())
                && checked.is_ok()
            {
                return Ok(*next);
            }
        }
        Ok(match checked {
            Ok(issued) => Next::Continue(State::Install(Install {
                new: self.new.id,
                issued: Box::new(issued),
                intent_journaled: false,
            })),
            Err(unaccepted) => RollBack::of(self.new.id, unaccepted.into()),
        })
    }
}

/// The issued certificate passed every check.
pub struct Install {
    new: ContainerId,
    issued: Box<Retained<Certificate>>,
    /// `InstallIntent` is already in the journal (recovery).
    intent_journaled: bool,
}

impl Install {
    fn step(self, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        if !self.intent_journaled {
            fx.record(Record::InstallIntent {
                certificate: hex(self.issued.der()),
            })?;
        }
        match fx.install(&self.new, self.issued.der()) {
            Ok(()) => {}
            Err(RenewalError::Card { step, source }) => {
                return Ok(RollBack::after_card_error(self.new, step, source));
            }
            Err(other) => return Err(other),
        }
        fx.record(Record::Installed)?;
        Ok(Next::Continue(State::Supersede(Supersede {
            new: self.new,
            certificate: self.issued.der().to_vec(),
        })))
    }
}

/// The new container holds the new key and certificate.
pub struct Supersede {
    new: ContainerId,
    certificate: Vec<u8>,
}

impl Supersede {
    fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        // Past this point the renewal only goes forward: a failure leaves the journal at
        // `SupersedeIntent`, and `recover` completes it.
        fx.record(Record::SupersedeIntent)?;
        let container = fx.supersede(&cx.old, &self.new)?;
        fx.record(Record::Done {
            container: container.0.clone(),
        })?;
        Ok(Next::Finished(Finished::Renewed {
            container,
            certificate: self.certificate,
        }))
    }
}

/// Something failed: delete what this renewal made.
pub struct RollBack {
    reason: RollbackCause,
    orphans: Vec<ContainerId>,
    /// The card failure that started the rollback: reported instead if the card cannot even
    /// delete (it was pulled), so the user knows to run `recover` once it is back.
    cause: Option<(Step, TokenError)>,
}

impl RollBack {
    fn nothing_made(reason: RollbackCause) -> Next {
        Next::Continue(State::RollBack(Self {
            reason,
            orphans: Vec::new(),
            cause: None,
        }))
    }

    fn of(new: ContainerId, reason: RollbackCause) -> Next {
        Next::Continue(State::RollBack(Self {
            reason,
            orphans: vec![new],
            cause: None,
        }))
    }

    fn after_card_error(new: ContainerId, step: Step, source: TokenError) -> Next {
        Next::Continue(State::RollBack(Self {
            reason: RollbackCause::of_card(step, &source),
            orphans: vec![new],
            cause: Some((step, source)),
        }))
    }

    fn step(self, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        if !self.orphans.is_empty() {
            fx.record(Record::RollbackIntent {
                reason: self.reason.to_string(),
            })?;
            for id in &self.orphans {
                match fx.delete(Step::Install, id) {
                    Ok(()) => {}
                    Err(e @ RenewalError::Card { .. }) => {
                        return Err(match self.cause {
                            Some((step, source)) => RenewalError::Card { step, source },
                            None => e,
                        });
                    }
                    Err(other) => return Err(other),
                }
            }
        }
        fx.record(Record::RolledBack)?;
        Ok(Next::Finished(Finished::RolledBack {
            reason: self.reason,
            deleted: self.orphans,
        }))
    }
}
