//! The one path every renewal takes, whoever decides it and whatever its endpoint: the ledger's
//! check and claim, then the decider, then the decider's record — with the refusals, the
//! answers given before, and the requests still in flight handled here, once, the same way for
//! both deciders.
//!
//! ```text
//! intake (endpoint)  →  Desk::decide ───────────────────────────────────────┐
//!   TLS identity,        one transaction: count the request, the ledger's     │
//!   RA unwrap, policy    check (revoked, poll, answered before, key reuse,    │
//!                        pending cap, replay) and claim; refused / answered / │
//!                        in flight → answered here; poll / fresh → decider    │
//!                          ├─ authority: decides and records in this          │
//!                          │  transaction (nothing deferred)                  │
//!                          └─ forwarder: defers — the upstream is asked       │
//!                             without the store, the answer recorded with     │
//!                             the claim settled in a transaction of its own ──┘
//!                                       →  the signed answer (endpoint)
//! ```
//!
//! What is genuinely per decider is a stated property of its [`Decider`] implementation:
//! whether it holds a claim across an exchange ([`Decider::holds_claims`]), how long a renewed
//! certificate may be renewed after it expired, how long a client is told to wait when the
//! state database cannot decide, and who issues.

use renewal_codec::cmc::{PublicKey, Retained, verify_request::hex};
use x509_cert::{Certificate, ext::Extension};

use super::Desk;
use crate::{
    error::UpstreamFailure,
    ledger::{Claim, Lookup, Origin, Standing, guard_until},
    policy::Rejection,
    store::{Pending, Store},
    templates::Template,
};

/// A renewal as the desk decides it, once its endpoint's intake has checked it: whatever the
/// wire form (full CMC, EST simplereenroll, an RA's wrapper, a CMP key update), it renews
/// exactly `renewed` — the certificate that authenticated it — with `new_key`.
pub(crate) struct Renewal<'a> {
    /// Where it came from (its identity: the renewed certificate).
    pub(crate) origin: &'a Origin,
    /// The template it renews under.
    pub(crate) template: &'a Template,
    /// The certificate it renews.
    pub(crate) renewed: &'a Retained<Certificate>,
    /// The new key.
    pub(crate) new_key: &'a PublicKey,
    /// The new certificate's extensions.
    pub(crate) extensions: &'a [Extension],
    /// What the request asks that the certificate will not say (recorded with the decision).
    pub(crate) findings: &'a [String],
    /// Which pending record would be its poll (the transactionId, or the new key).
    pub(crate) pending_key: &'a str,
    /// The transaction it claims.
    pub(crate) transaction: &'a str,
    /// Its nonce, when the protocol has one.
    pub(crate) nonce: Option<&'a [u8]>,
    /// Whether a stored pending request is this one (compared as parsed values).
    pub(crate) same_request: &'a dyn Fn(&Pending) -> bool,
    /// What a pending record keeps of it (the request as the client sent it).
    pub(crate) stored: &'a [u8],
    /// Whether its answer carries a CMC status, which can say "failed" or "issued out of
    /// band"; a bare answer (a certs-only PKCS#7, a re-enrollment, a CMP reply) only issues,
    /// pends or refuses.
    pub(crate) full_status: bool,
    /// Whether its protocol polls a pending request by a token (CMC's pendToken), so that a
    /// forwarder collects it by the upstream's own request id; otherwise a poll re-sends it.
    pub(crate) polls_by_token: bool,
}

impl<'a> Renewal<'a> {
    /// A full CMC request (EST fullcmc, RFC 5273, MS-WSTEP, an RA's nested request): its
    /// transaction is its transactionId, polled by its pendToken; its answer can say anything
    /// a CMC status says.
    pub(crate) fn cmc(
        origin: &'a Origin,
        accepted: &'a crate::policy::Accepted,
        renewed: &'a Retained<Certificate>,
        stored: &'a [u8],
        same_request: &'a dyn Fn(&Pending) -> bool,
    ) -> Self {
        Self {
            origin,
            template: &accepted.template,
            renewed,
            new_key: &accepted.new_key,
            extensions: &accepted.extensions,
            findings: &accepted.findings,
            pending_key: &accepted.transaction,
            transaction: &accepted.transaction,
            nonce: accepted.facts.sender_nonce.as_deref(),
            same_request,
            stored,
            full_status: true,
            polls_by_token: true,
        }
    }

    /// A re-enrollment (EST simplereenroll, an RA's re-enrollment wrapper): no transactionId
    /// and no nonce, so its transaction is its new key (`key_fingerprint`, and `transaction`
    /// = `key:` + it); polled by sending it again.
    pub(crate) fn reenrollment(
        origin: &'a Origin,
        accepted: &'a crate::policy::SimpleAccepted,
        renewed: &'a Retained<Certificate>,
        stored: &'a [u8],
        (key_fingerprint, transaction): (&'a str, &'a str),
        same_request: &'a dyn Fn(&Pending) -> bool,
    ) -> Self {
        Self {
            origin,
            template: &accepted.template,
            renewed,
            new_key: &accepted.new_key,
            extensions: &accepted.extensions,
            findings: &[],
            pending_key: key_fingerprint,
            transaction,
            nonce: None,
            same_request,
            stored,
            full_status: false,
            polls_by_token: false,
        }
    }

    /// A CMP key update: its transaction is the transactionID (`transaction`), polled by a
    /// pollReq naming it.
    pub(crate) fn key_update(
        origin: &'a Origin,
        accepted: &'a crate::policy::KurAccepted,
        kur: &'a renewal_codec::cmp::PkiMessage,
        stored: &'a [u8],
        transaction: &'a str,
        same_request: &'a dyn Fn(&Pending) -> bool,
    ) -> Self {
        Self {
            origin,
            template: &accepted.template,
            renewed: &accepted.renewed,
            new_key: &accepted.new_key,
            extensions: &accepted.extensions,
            findings: &[],
            pending_key: transaction,
            transaction,
            nonce: kur.header.sender_nonce.as_ref().map(|n| n.as_bytes()),
            same_request,
            stored,
            full_status: false,
            polls_by_token: false,
        }
    }
}

/// What a decider leaves after the ledger's transaction.
pub(crate) enum Next<D: Decider + ?Sized> {
    /// Decided and recorded in the transaction.
    Answered(D::Answer),
    /// To be finished without the store held (a forwarder's exchange with its upstream).
    Deferred(D::Deferred),
}

/// Who decides a renewal the ledger let through: the simulated authority ([`crate::Ca`]),
/// which issues itself, or the forwarder to an upstream CA ([`crate::gateway::Gateway`]).
pub(crate) trait Decider {
    /// Its answer, before the endpoint's wire form.
    type Answer;
    /// What it leaves to do without the store (an authority leaves nothing).
    type Deferred;

    /// Whether a fresh request's claim stays open while the decision is made elsewhere (the
    /// forwarder asks its upstream without the store held: the same transaction arriving
    /// meanwhile, at this instance or another, is told to come back), rather than settled in
    /// the ledger's transaction.
    fn holds_claims(&self) -> bool;
    /// How long after expiry a certificate may still be renewed.
    fn grace(&self) -> std::time::Duration;
    /// Seconds a client is told to wait when the state database cannot decide.
    fn retry_after(&self) -> u64;
    /// The answer to a request answered before: the certificate it got then.
    fn answered(&self, cert: Retained<Certificate>) -> Self::Answer;
    /// The answer to a refused request (audited already).
    fn refused(&self, rejection: &Rejection) -> Self::Answer;
    /// A poll of `pending`, inside the ledger's transaction.
    fn poll(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        pending: Pending,
    ) -> Result<Next<Self>, Rejection>;
    /// A fresh request, its transaction claimed, inside the ledger's transaction.
    fn fresh(
        &self,
        store: &Store,
        renewal: &Renewal<'_>,
        claim: Claim,
    ) -> Result<Next<Self>, Rejection>;
}

impl Desk {
    /// Decides `renewal` with `decider`: the ledger's check and claim and whatever the decider
    /// decides in the same transaction — then `within`, the endpoint's own record of the answer,
    /// still in it (CMP: the certificate that waits for its confirmation). What the decider
    /// deferred is finished by `finish` after the store is released. A refusal is audited
    /// here; a state database that cannot decide is a 503 (nothing decided).
    pub(crate) fn decide<D: Decider>(
        &self,
        decider: &D,
        renewal: &Renewal<'_>,
        within: impl FnOnce(&Store, &D::Answer) -> Result<(), Rejection>,
        finish: impl FnOnce(D::Deferred) -> Result<D::Answer, UpstreamFailure>,
    ) -> Result<D::Answer, UpstreamFailure> {
        let template = renewal.template.name.as_str();
        let store = self.decision();
        let stood = store.atomically(|s| {
            s.bump("requests")?;
            let stood = self.stand(decider, s, renewal)?;
            if let Stood::Answered(answer) = &stood {
                within(s, answer)?;
            }
            Ok::<_, Rejection>(stood)
        });
        match stood {
            Ok(Stood::Answered(answer)) => Ok(answer),
            Ok(Stood::Deferred(deferred)) => {
                // Only a claim was written: no answer leaves before a later transaction's sync.
                store.release_unsynced();
                finish(deferred)
            }
            Ok(Stood::InFlight(retry_after)) => Err(UpstreamFailure {
                status: 503,
                retry_after: Some(retry_after),
                text: "the same request is being decided: try again".into(),
            }),
            Err(r) => {
                if let Some(failure) = r.unavailable(decider.retry_after()) {
                    return Err(failure);
                }
                // Rolled back: the refusal is recorded in a transaction of its own.
                self.record_refusal(&store, renewal.origin, Some(template), &r, None);
                Ok(decider.refused(&r))
            }
        }
    }

    /// Where `renewal` stands in the ledger, and what the decider makes of it.
    fn stand<D: Decider>(
        &self,
        decider: &D,
        store: &Store,
        renewal: &Renewal<'_>,
    ) -> Result<Stood<D>, Rejection> {
        let template = renewal.template.name.as_str();
        let key_fingerprint = hex(&renewal.new_key.fingerprint());
        let lookup = Lookup {
            renewed: renewal.renewed.value(),
            pending_key: renewal.pending_key,
            same_request: renewal.same_request,
            key_fingerprint: &key_fingerprint,
            transaction: renewal.transaction,
            nonce: renewal.nonce,
            hold: decider.holds_claims(),
            guard_until: guard_until(renewal.renewed.value(), decider.grace()),
        };
        let standing =
            self.ledger
                .stand(store, renewal.origin, self.clock.unix(), template, &lookup)?;
        let next = match standing {
            Standing::Refused(r, pending) => {
                self.refused(store, renewal.origin, Some(template), &r, pending)?;
                Next::Answered(decider.refused(&r))
            }
            Standing::Answered(cert) => Next::Answered(decider.answered(*cert)),
            Standing::InFlight { retry_after } => return Ok(Stood::InFlight(retry_after)),
            Standing::Poll(pending) => decider.poll(store, renewal, pending)?,
            Standing::Fresh(claim) => decider.fresh(store, renewal, claim)?,
        };
        Ok(match next {
            Next::Answered(answer) => Stood::Answered(answer),
            Next::Deferred(deferred) => Stood::Deferred(deferred),
        })
    }
}

/// Where the ledger's transaction leaves a request.
enum Stood<D: Decider + ?Sized> {
    /// Answered in it.
    Answered(D::Answer),
    /// Left to the decider, without the store.
    Deferred(D::Deferred),
    /// The same request is being decided now: come back after this many seconds.
    InFlight(u64),
}

#[cfg(test)]
mod tests {
    //! The path's contract, with a decider that records what it is asked: the ledger's
    //! answers never reach the decider, what is deferred runs without the store and with the
    //! claim held, and what fails inside the transaction leaves nothing of the decision.

    #![allow(clippy::unwrap_used)]

    use std::{cell::RefCell, time::SystemTime};

    use renewal_codec::cmc::{Signer, SoftwareKey};

    use super::*;
    use crate::{
        authority::Authority, clock::Clock, ledger::Ledger, store::AuditOutcome,
        templates::TemplateRegistry,
    };

    /// Answers with the name of what it was asked; defers a fresh request when it holds
    /// claims (a forwarder), decides it in the transaction otherwise (an authority).
    struct Recorder {
        holds: bool,
        asked: RefCell<Vec<&'static str>>,
    }

    impl Decider for Recorder {
        type Answer = &'static str;
        type Deferred = Claim;

        fn holds_claims(&self) -> bool {
            self.holds
        }
        fn grace(&self) -> std::time::Duration {
            std::time::Duration::ZERO
        }
        fn retry_after(&self) -> u64 {
            7
        }
        fn answered(&self, _: Retained<Certificate>) -> &'static str {
            "answered before"
        }
        fn refused(&self, _: &Rejection) -> &'static str {
            "refused"
        }
        fn poll(&self, _: &Store, _: &Renewal<'_>, _: Pending) -> Result<Next<Self>, Rejection> {
            self.asked.borrow_mut().push("poll");
            Ok(Next::Answered("polled"))
        }
        fn fresh(
            &self,
            store: &Store,
            _: &Renewal<'_>,
            claim: Claim,
        ) -> Result<Next<Self>, Rejection> {
            self.asked.borrow_mut().push("fresh");
            if self.holds {
                return Ok(Next::Deferred(claim));
            }
            claim.settle(store)?;
            store.bump("decided")?;
            Ok(Next::Answered("decided"))
        }
    }

    struct Bench {
        desk: Desk,
        template: crate::templates::Template,
        renewed: Retained<Certificate>,
        origin: Origin,
        new_key: PublicKey,
    }

    fn bench() -> Bench {
        let authority = Authority::generate(SystemTime::now()).unwrap();
        let renewed = authority.issuing.cert.clone();
        let key = SoftwareKey::generate_p256().unwrap();
        Bench {
            desk: Desk::new(
                Store::in_memory().unwrap(),
                Clock::system(),
                Ledger::new(crate::ledger::DEFAULT_PENDING_CAP),
            ),
            template: TemplateRegistry::builtin().all()[0].clone(),
            origin: Origin::new(crate::store::Endpoint::FullCmc, renewed.der(), b"request"),
            new_key: PublicKey::from_spki(key.public_key()).unwrap(),
            renewed,
        }
    }

    fn renewal<'a>(bench: &'a Bench, same: &'a dyn Fn(&Pending) -> bool) -> Renewal<'a> {
        Renewal {
            origin: &bench.origin,
            template: &bench.template,
            renewed: &bench.renewed,
            new_key: &bench.new_key,
            extensions: &[],
            findings: &[],
            pending_key: "tx-1",
            transaction: "tx-1",
            nonce: Some(b"nonce-1"),
            same_request: same,
            stored: b"request",
            full_status: true,
            polls_by_token: true,
        }
    }

    fn nothing(_: &Store, _: &&'static str) -> Result<(), Rejection> {
        Ok(())
    }

    /// A revoked certificate's renewal is refused and audited by the desk, whoever decides:
    /// neither decider is asked.
    #[test]
    fn a_revoked_certificate_never_reaches_the_decider() {
        let bench = bench();
        let serial = crate::policy::serial_text(bench.renewed.value());
        bench.desk.lock().revoke(&serial, 1).unwrap();
        let same = |_: &Pending| true;
        for holds in [false, true] {
            let decider = Recorder {
                holds,
                asked: RefCell::new(Vec::new()),
            };
            let answer = bench
                .desk
                .decide(&decider, &renewal(&bench, &same), nothing, |_| {
                    unreachable!("nothing deferred")
                })
                .unwrap();
            assert_eq!(answer, "refused");
            assert!(decider.asked.borrow().is_empty());
        }
        let trail = bench.desk.audit_trail();
        assert_eq!(trail.len(), 2);
        assert!(trail.iter().all(|r| r.outcome == AuditOutcome::Refused));
    }

    /// A forwarder's deferred work runs with the store released and the transaction still
    /// claimed: the same request arriving meanwhile is told to come back, not decided twice.
    #[test]
    fn deferred_work_runs_without_the_store_and_with_the_claim_held() {
        let bench = bench();
        let same = |_: &Pending| true;
        let forwarder = Recorder {
            holds: true,
            asked: RefCell::new(Vec::new()),
        };
        let answer = bench
            .desk
            .decide(&forwarder, &renewal(&bench, &same), nothing, |claim| {
                assert!(
                    bench.desk.store.try_lock().is_ok(),
                    "the store is held across the exchange"
                );
                let again = bench.desk.decide(
                    &forwarder,
                    &renewal(&bench, &same),
                    nothing,
                    |_| -> Result<&'static str, UpstreamFailure> { unreachable!("decided twice") },
                );
                let failure = again.unwrap_err();
                assert_eq!((failure.status, failure.retry_after.is_some()), (503, true));
                bench.desk.lock().atomically(|s| claim.settle(s)).unwrap();
                Ok("asked upstream")
            })
            .unwrap();
        assert_eq!(answer, "asked upstream");
        assert_eq!(*forwarder.asked.borrow(), ["fresh"]);
        // Settled: the transaction stays seen, so the same request again is a replay.
        let replay = bench
            .desk
            .decide(&forwarder, &renewal(&bench, &same), nothing, |_| {
                unreachable!("a replay is forwarded")
            })
            .unwrap();
        assert_eq!(replay, "refused");
    }

    /// What the endpoint records with the answer is in the decision's transaction: when it
    /// fails, the decision is rolled back (nothing decided, the transaction not consumed) and
    /// the refusal recorded.
    #[test]
    fn a_failed_record_rolls_the_decision_back() {
        let bench = bench();
        let same = |_: &Pending| true;
        let authority = Recorder {
            holds: false,
            asked: RefCell::new(Vec::new()),
        };
        let failing = |_: &Store, _: &&'static str| Err(Rejection::Internal("disk".into()));
        let answer = bench
            .desk
            .decide(&authority, &renewal(&bench, &same), failing, |_| {
                unreachable!("nothing deferred")
            })
            .unwrap();
        assert_eq!(answer, "refused");
        assert_eq!(bench.desk.lock().counter("decided").unwrap(), 0);
        let answer = bench
            .desk
            .decide(&authority, &renewal(&bench, &same), nothing, |_| {
                unreachable!("nothing deferred")
            })
            .unwrap();
        assert_eq!(answer, "decided");
        assert_eq!(bench.desk.lock().counter("decided").unwrap(), 1);
        assert_eq!(*authority.asked.borrow(), ["fresh", "fresh"]);
    }
}
