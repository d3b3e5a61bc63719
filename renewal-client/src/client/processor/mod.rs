//! The renewal flow: named [`states`] that each hold only what is valid at their point and
//! return the next, and the [`effects`] they ask of the card, the CA, the journal and the
//! clock, performed by a [`Driver`]. `run` ([`Renewal`]), [`resume`], [`recover`] and the
//! agent enter the same chain; a test can stop between any two states
//! ([`RenewalConfig::crash_after`], or [`drive`] one [`State::step`] at a time), and
//! [`recover`] brings the card back to "exactly one valid certificate, no orphan container"
//! from whatever the journal says.

mod checks;
mod cmp;
pub mod effects;
pub mod states;

use std::time::Duration;

use x509_cert::Certificate;

pub use effects::{Driver, Effects, token_identity};
pub use states::{Context, Finished, Next, Recover, Resume, Start, State, drive};

use super::{
    Mode, RenewalService, ServiceAnswer, ServiceError,
    https::SharedToken,
    journal::{Journal, JournalError, Record},
};
use crate::{
    cmc::{Retained, microsoft::TemplateRef, status::CmcFailInfo},
    token::{CardRefusal, ContainerId, PinRefusal, TokenError},
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

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "the connection to the CA",
            Self::GenerateKey => "key generation",
            Self::BuildRequest => "the request's signatures",
            Self::Submit => "the submission",
            Self::Await => "the wait for the CA",
            Self::Verify => "the check of the new certificate",
            Self::Install => "the installation of the new certificate",
            Self::DeleteOld => "the removal of the old key",
        })
    }
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
    /// After a `Retry` (reached only when an answer was lost; not in [`CrashPoint::ALL`]).
    Retry,
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
                | (Self::Retry, Record::Retry { .. })
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

/// Waits out a `Retry-After` (tests pass a virtual one that advances the CA's clock).
pub type Sleeper = Box<dyn FnMut(Duration)>;

/// The client's clock, against which an issued certificate must be valid before it replaces
/// the old one (`SystemTime::now`; tests pass the simulated CA's).
pub type Now = Box<dyn Fn() -> std::time::SystemTime>;

/// How a lost answer is retried before the renewal rolls back: the same request bytes —
/// same new key, transactionId and nonce — sent again over a new connection (the card
/// session, and its one PIN verification, stay); the CA answers a re-sent request with its
/// decision, never a second one. Only a definite answer (a refusal, a 4xx), or the retries
/// exhausted, rolls back.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct RetryPolicy {
    /// Re-sends after the first try (0: roll back at once).
    pub attempts: u32,
    /// The wait before the first re-send; each next one doubles.
    pub first_wait: Duration,
    /// The longest wait, also for a `Retry-After` the server asked for.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// Four re-sends within about half a minute: 2, 4, 8, 16 s.
    fn default() -> Self {
        Self {
            attempts: 4,
            first_wait: Duration::from_secs(2),
            max_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before re-send `attempt` (1-based): the doubling backoff, or longer when the
    /// server's `Retry-After` asks for longer (it is the least a client ought to wait, RFC 9110
    /// §10.2.3: a server that keeps answering "in 1 s" while its database restarts would
    /// otherwise see every re-send within seconds); never more than `max_wait`.
    pub fn wait(&self, attempt: u32, asked: Option<u64>) -> Duration {
        let backoff = self
            .first_wait
            .saturating_mul(1 << attempt.saturating_sub(1).min(16));
        asked
            .map_or(backoff, |secs| Duration::from_secs(secs).max(backoff))
            .min(self.max_wait)
    }
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
    pub sleep: Sleeper,
    /// The time now: an issued certificate not valid at it is refused (tests pass the
    /// simulated CA's clock).
    pub now: Now,
    /// Stop as if crashed after this journal record (tests).
    pub crash_after: Option<CrashPoint>,
    /// How a lost answer is retried.
    pub retry: RetryPolicy,
    /// Attach the card's attestation of the new key to the request (a CA whose template
    /// requires attested keys refuses a request without one). A token that cannot attest
    /// rolls the attempt back before anything is sent.
    pub attest: bool,
    /// CMP: ask the CA to skip `certConf` (RFC 4210 §5.1.1.1 `implicitConfirm`). Granted, the
    /// exchange ends with the certificate; refused (or ignored), the client confirms as usual.
    pub implicit_confirm: bool,
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
        reason: RollbackCause,
    },
}

/// Why an attempt was rolled back — what the user reads, and what the agent decides on: a
/// refusal is the CA's decision (the agent keeps the certificate and waits long), a PIN
/// refusal is never retried by itself, anything else is retried with backoff.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum RollbackCause {
    /// The CA decided against the request; sending it again gets the same answer.
    Refused {
        /// The CMC fail info, when the answer was a CMC response.
        fail_info: Option<CmcFailInfo>,
        /// The CA's status text (an ADCS HRESULT and its reason, an HTTP body).
        text: String,
    },
    /// The card refused the PIN, or no PIN could be had.
    Pin(PinRefusal),
    /// The card failed or refused another operation.
    Card {
        /// During which step.
        step: Step,
        /// The card's error.
        detail: String,
    },
    /// The exchange with the CA failed: unreachable, timed out, an HTTP error, every re-send
    /// of a lost answer lost too.
    Transport(String),
    /// The CA's answer did not hold up (its signer, the certificate's key, chain, dates).
    BadAnswer(String),
    /// The CA issued a certificate that is not the renewed one again (another subject,
    /// subjectAltName, purpose, power or template): what its template makes, so asking again
    /// gets the same — the agent waits long, as after a refusal.
    NotARenewal(String),
    /// The request could not be made (the card's new key unusable, the request unbuildable).
    Request(String),
    /// `recover` undid an attempt a crash interrupted.
    Recovery(String),
}

impl std::fmt::Display for RollbackCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused {
                fail_info: Some(info),
                text,
            } => write!(f, "the CA refused ({}): {text}", info.name()),
            Self::Refused {
                fail_info: None,
                text,
            } => write!(f, "the CA refused: {text}"),
            Self::Pin(refusal) => write!(f, "{refusal}"),
            Self::Card { step, detail } => write!(f, "the card failed during {step}: {detail}"),
            Self::Transport(detail) => write!(f, "{detail}"),
            Self::BadAnswer(detail) => write!(f, "the CA's answer was not accepted: {detail}"),
            Self::NotARenewal(detail) => write!(
                f,
                "the CA issued a certificate that is not a renewal of the old one: {detail}"
            ),
            Self::Request(detail) | Self::Recovery(detail) => write!(f, "{detail}"),
        }
    }
}

impl RollbackCause {
    /// The cause of a card failure at `step`: a PIN refusal when it is one.
    pub fn of_card(step: Step, error: &TokenError) -> Self {
        match error.card_refusal() {
            Some(refusal) => Self::of_refusal(step, refusal),
            None => Self::Card {
                step,
                detail: error.to_string(),
            },
        }
    }

    /// The cause of a card refusal at `step` (a touch that never came is the card's).
    pub fn of_refusal(step: Step, refusal: CardRefusal) -> Self {
        match refusal {
            CardRefusal::Pin(pin) => Self::Pin(pin),
            other => Self::Card {
                step,
                detail: other.to_string(),
            },
        }
    }

    /// A short name of the kind, for reports and JSON (`refused`, `pin`, `card`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Refused { .. } => "refused",
            Self::Pin(_) => "pin",
            Self::Card { .. } => "card",
            Self::Transport(_) => "transport",
            Self::BadAnswer(_) => "bad-answer",
            Self::NotARenewal(_) => "not-a-renewal",
            Self::Request(_) => "request",
            Self::Recovery(_) => "recovery",
        }
    }
}

/// Why a run stopped without a clean outcome.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenewalError {
    /// The card failed and the failure could not be rolled back (e.g. the card was pulled):
    /// run `recover` when it is back.
    #[error("the card failed during {step}: {source}; run `renew recover` when the card is back")]
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
    /// The journal's unfinished renewal happened on another card: nothing was done on this
    /// one. The card it needs is named.
    #[error(
        "the journal's unfinished renewal (container {container}) is on card {needed}, not on \
         this one ({present}); nothing was changed here: insert card {needed} and run \
         `renew recover`"
    )]
    OtherCard {
        /// The card the journal's renewal is on.
        needed: String,
        /// The card present.
        present: String,
        /// The container being renewed.
        container: String,
    },
}

/// One renewal, from the card's current certificate to a new one (or back to nothing
/// changed).
pub struct Renewal<'a> {
    driver: Driver<'a>,
    context: Context,
}

impl<'a> Renewal<'a> {
    /// A renewal of `config.old` on `token` through `service`, journaled in `journal`.
    pub fn new(
        token: SharedToken,
        service: &'a mut dyn RenewalService,
        journal: &'a mut Journal,
        config: RenewalConfig,
    ) -> Self {
        let (context, sleep, crash_after) = config.into_parts();
        Self {
            driver: Driver::new(token, service, journal, sleep, crash_after),
            context,
        }
    }

    /// Runs the whole flow.
    pub fn run(mut self) -> Result<RenewalOutcome, RenewalError> {
        drive(State::Start(Start), &self.context, &mut self.driver)?.try_into()
    }
}

impl RenewalConfig {
    /// The renewal's context, the sleeper and the crash point, for a caller that drives the
    /// states itself ([`drive`], [`State::step`]) with a [`Driver`].
    pub fn into_parts(self) -> (Context, Sleeper, Option<CrashPoint>) {
        let context = Context {
            old: self.old,
            mode: self.mode,
            template: self.template,
            trust_anchors: self.trust_anchors,
            max_polls: self.max_polls,
            retry: self.retry,
            attest: self.attest,
            implicit_confirm: self.implicit_confirm,
            now: self.now,
        };
        (context, self.sleep, self.crash_after)
    }
}

impl TryFrom<Finished> for RenewalOutcome {
    type Error = RenewalError;

    fn try_from(finished: Finished) -> Result<Self, RenewalError> {
        match finished {
            Finished::Renewed {
                container,
                certificate,
            } => Ok(Self::Renewed {
                container,
                certificate,
            }),
            Finished::Pending => Ok(Self::Pending),
            Finished::RolledBack { reason, .. } => Ok(Self::RolledBack { reason }),
            // Only `Recover` finishes "clean", and `run`/`resume` never enter it.
            Finished::Clean => Err(RenewalError::Precondition("no renewal in progress".into())),
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

impl RecoveryOutcome {
    /// The outcome's name for `--json` (`clean`, `rolled-back`, `completed`, `pending`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Clean => "clean",
            Self::RolledBack { .. } => "rolled-back",
            Self::Completed { .. } => "completed",
            Self::Pending => "pending",
        }
    }
}

/// Restores the invariant after a crash at any point: exactly one valid certificate, no
/// orphan container. Enters the renewal states at [`Recover`], with the container and mode
/// the journal's `Begin` names.
pub fn recover(
    token: &SharedToken,
    journal: &mut Journal,
) -> Result<RecoveryOutcome, RenewalError> {
    let records = journal.current().to_vec();
    let Some(Record::Begin {
        old,
        mode,
        old_certificate,
        token: journaled_token,
    }) = records.first().cloned()
    else {
        return Ok(RecoveryOutcome::Clean);
    };
    same_card(
        token,
        &records,
        &old,
        &old_certificate,
        journaled_token.as_deref(),
    )?;
    let context = Context {
        old: ContainerId(old),
        mode,
        template: None,
        trust_anchors: Vec::new(),
        max_polls: 0,
        retry: RetryPolicy::default(),
        attest: false,
        implicit_confirm: false,
        now: Box::new(std::time::SystemTime::now),
    };
    let mut service = NoService;
    let mut driver = Driver::new(token.clone(), &mut service, journal, Box::new(drop), None);
    let start = State::Recover(Recover::from_journal(&records));
    Ok(match drive(start, &context, &mut driver)? {
        Finished::Clean => RecoveryOutcome::Clean,
        Finished::Pending => RecoveryOutcome::Pending,
        Finished::RolledBack { deleted, .. } => RecoveryOutcome::RolledBack { deleted },
        Finished::Renewed { container, .. } => RecoveryOutcome::Completed { container },
    })
}

/// Refuses to recover on another card than the journal's: the card must describe itself as
/// the journal says (when both can say), and — until the old certificate was superseded — its
/// old container must still hold the certificate the renewal started from. Recovering a
/// journal against another card would delete that card's containers and mark the real card's
/// orphan key as handled.
fn same_card(
    token: &SharedToken,
    records: &[Record],
    old: &str,
    old_certificate: &str,
    journaled: Option<&str>,
) -> Result<(), RenewalError> {
    let present = effects::token_identity(token);
    let other = |present: Option<String>| RenewalError::OtherCard {
        needed: journaled.unwrap_or("unknown").to_string(),
        present: present.unwrap_or_else(|| "unknown".into()),
        container: old.to_string(),
    };
    if let (Some(journaled), Some(present)) = (journaled, &present)
        && journaled != present
    {
        return Err(other(Some(present.clone())));
    }
    if records
        .iter()
        .any(|r| matches!(r, Record::SupersedeIntent | Record::Done { .. }))
    {
        return Ok(());
    }
    let containers = {
        let mut guard = token.lock().map_err(|_| RenewalError::Card {
            step: Step::Connect,
            source: crate::token::TokenError::Backend {
                backend: "token",
                detail: "lock poisoned".into(),
            },
        })?;
        guard.containers().map_err(|source| RenewalError::Card {
            step: Step::Connect,
            source,
        })?
    };
    let holds_it = containers.iter().any(|c| {
        c.id.0 == old
            && c.certificate.as_deref().is_some_and(|der| {
                crate::cmc::verify_request::hex(&crate::cmc::DigestAlgorithm::Sha256.digest(der))
                    == old_certificate
            })
    });
    if holds_it {
        Ok(())
    } else {
        Err(other(present))
    }
}

/// Recovery talks to the card only: the states that reach the CA are never entered from
/// [`Recover`].
struct NoService;

impl RenewalService for NoService {
    fn warm_up(&mut self) -> Result<Vec<Retained<Certificate>>, ServiceError> {
        Err(ServiceError::Config(
            "recovery does not contact the CA".into(),
        ))
    }

    fn submit(&mut self, _: &[u8]) -> Result<ServiceAnswer, ServiceError> {
        Err(ServiceError::Config(
            "recovery does not contact the CA".into(),
        ))
    }
}

/// Collects a pending request (also after a restart): re-submits the journaled request, then
/// installs, or rolls back on denial. Enters the renewal states at [`Resume`].
pub fn resume(
    token: SharedToken,
    service: &mut dyn RenewalService,
    journal: &mut Journal,
    config: RenewalConfig,
) -> Result<RenewalOutcome, RenewalError> {
    let start = State::Resume(Resume::from_journal(journal.current())?);
    let (context, sleep, crash_after) = config.into_parts();
    let mut driver = Driver::new(token, service, journal, sleep, crash_after);
    drive(start, &context, &mut driver)?.try_into()
}

#[cfg(test)]
mod pin_refusal_tests {
    use super::*;

    #[test]
    fn a_refused_pin_is_a_pin_cause_and_says_the_tries_left() {
        let wrong =
            RollbackCause::of_card(Step::Connect, &TokenError::PinIncorrect { retries_left: 2 });
        assert_eq!(
            wrong,
            RollbackCause::Pin(PinRefusal::Wrong { retries_left: 2 })
        );
        assert_eq!(wrong.to_string(), "wrong PIN, 2 tries left");
        assert_eq!(
            RollbackCause::of_card(Step::Connect, &TokenError::PinBlocked),
            RollbackCause::Pin(PinRefusal::Blocked)
        );
        let full = RollbackCause::of_card(Step::GenerateKey, &TokenError::Full);
        assert_eq!(full.kind(), "card");
        assert_eq!(
            full.to_string(),
            "the card failed during key generation: the card is full: no free key container"
        );
        let refused = RollbackCause::Refused {
            fail_info: Some(CmcFailInfo::BadRequest),
            text: "0x8009481A: no attestation".into(),
        };
        assert_eq!(
            refused.to_string(),
            "the CA refused (badRequest): 0x8009481A: no attestation"
        );
    }
}

#[cfg(test)]
mod retry_policy_tests {
    use super::*;

    #[test]
    fn retry_after_is_the_least_wait_and_the_backoff_still_doubles() {
        let policy = RetryPolicy::default();
        let secs = |attempt, asked| policy.wait(attempt, asked).as_secs();
        // No Retry-After: 2, 4, 8, 16 s.
        assert_eq!([1, 2, 3, 4].map(|a| secs(a, None)), [2, 4, 8, 16]);
        // "Retry in 1 s" every time: the backoff still grows.
        assert_eq!([1, 2, 3, 4].map(|a| secs(a, Some(1))), [2, 4, 8, 16]);
        // A longer Retry-After is honoured, up to the longest wait.
        assert_eq!(secs(1, Some(10)), 10);
        assert_eq!(secs(1, Some(3600)), 30);
    }
}
