//! What a decision writes besides its effect, the same whoever decides — the simulated CA or
//! the gateway: where the request came from, its audit record, the bookkeeping of a refusal,
//! and the certificate a re-sent request already got. One place, so the two audit trails
//! cannot drift apart.

use crate::store::Endpoint;
use renewal_codec::cmc::{DigestAlgorithm, Retained, verify_request::hex};
use x509_cert::Certificate;

use crate::{
    policy::Rejection,
    store::{AuditOutcome, AuditRecord, KeyStanding, Pending, Sighting, Store, StoreError},
};

/// Where a request came from, as every audit record of it says.
pub(crate) struct Origin {
    /// `fullcmc`, `cmc`, `simplereenroll`, `wstep`, `wstep-query`, `cli`.
    pub(crate) endpoint: Endpoint,
    /// SHA-256 (hex) of the TLS client certificate, empty when there is none.
    pub(crate) tls_fingerprint: String,
    /// SHA-256 (hex) of the request, empty when there is none.
    pub(crate) request_hash: String,
    /// SHA-256 (hex) of the certificate being renewed: what pending requests and transaction
    /// ids are keyed by. The TLS client's own for a direct client; behind an RA, the user's —
    /// so that one user's transactionId can never block or collect another's.
    pub(crate) identity: String,
}

impl Origin {
    pub(crate) fn new(endpoint: Endpoint, tls_cert: &[u8], request: &[u8]) -> Self {
        let digest = |b: &[u8]| {
            if b.is_empty() {
                String::new()
            } else {
                hex(&DigestAlgorithm::Sha256.digest(b))
            }
        };
        let tls_fingerprint = digest(tls_cert);
        Self {
            endpoint,
            identity: tls_fingerprint.clone(),
            tls_fingerprint,
            request_hash: digest(request),
        }
    }

    /// The same origin, renewing `renewed` (the user's certificate behind an RA).
    pub(crate) fn renewing(mut self, renewed: &Retained<Certificate>) -> Self {
        self.identity = hex(&DigestAlgorithm::Sha256.digest(renewed.der()));
        self
    }

    /// The key a transaction id is recorded under: per renewed certificate.
    pub(crate) fn transaction_key(&self, transaction: &str) -> String {
        format!("{}:{transaction}", self.identity)
    }

    /// Appends one audit record for this request, at Unix time `at`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        outcome: AuditOutcome,
        serial: Option<&str>,
        pending_id: Option<i64>,
        detail: String,
    ) -> Result<(), StoreError> {
        store
            .append_audit(&AuditRecord {
                id: 0,
                at,
                endpoint: self.endpoint,
                tls_fingerprint: self.tls_fingerprint.clone(),
                request_hash: self.request_hash.clone(),
                template: template.map(str::to_string),
                outcome,
                serial: serial.map(str::to_string),
                pending_id,
                detail,
            })
            .map(|_| ())
    }

    /// The counter and audit record of a refusal, inside the caller's transaction.
    pub(crate) fn refused(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) -> Result<(), StoreError> {
        store.bump("rejected")?;
        let codes = rejection.codes();
        self.audit(
            store,
            at,
            template,
            AuditOutcome::Refused,
            None,
            pending_id,
            format!(
                "{:?} 0x{:08X} HTTP {}: {rejection}",
                codes.fail_info, codes.hresult, codes.http
            ),
        )
    }

    /// A refusal decided outside any transaction (the request did not pass the checks): the
    /// request counted, and [`Origin::refused`], in a transaction of their own. A store that
    /// fails here is logged; the refusal stands.
    pub(crate) fn record_refusal(
        &self,
        store: &Store,
        at: i64,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) {
        let result = store.atomically(|s| {
            s.bump("requests")?;
            self.refused(s, at, template, rejection, pending_id)
        });
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a refusal in the state database");
        }
    }

    /// Answers a re-sent request with `der`, the certificate already issued for it (serial
    /// `serial`), audited as a replay answered idempotently (`detail` says by whom): a client
    /// that lost the answer gets it again instead of a second certificate.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn answered_before(
        &self,
        store: &Store,
        at: i64,
        template: &str,
        serial: &str,
        der: &[u8],
        detail: &str,
    ) -> Result<Retained<Certificate>, Rejection> {
        let cert = Retained::from_der(der).map_err(|e| Rejection::Internal(e.to_string()))?;
        self.audit(
            store,
            at,
            Some(template),
            AuditOutcome::ReplayAnswered,
            Some(serial),
            None,
            detail.into(),
        )?;
        Ok(cert)
    }
}

/// Seconds until a pending answer says to poll (at least one), for the Retry-After header;
/// `None` for any other outcome.
pub(crate) fn retry_after(
    outcome: &renewal_codec::cmc::Outcome,
    now: std::time::SystemTime,
) -> Option<u64> {
    match outcome {
        renewal_codec::cmc::Outcome::Pending { retry_at, .. } => {
            let at = std::time::SystemTime::UNIX_EPOCH + retry_at.to_unix_duration();
            Some(at.duration_since(now).map_or(1, |d| d.as_secs().max(1)))
        }
        _ => None,
    }
}

/// How long a transaction claimed by a gateway stays "being forwarded" for the same request
/// before another instance may take it over (its holder crashed mid-forward), when the
/// upstream exchange has no bound of its own; otherwise that bound and 5 s more.
pub(crate) const CLAIM_TTL_SECS: i64 = 120;

/// What a request asks of the ledger's check: which pending request would be its poll, which
/// certificate its idempotent answer, which transaction it claims.
pub(crate) struct Lookup<'a> {
    /// The certificate being renewed.
    pub(crate) renewed: &'a Certificate,
    /// The pending record key: the CMC transactionId, or the new key for a re-enrollment.
    pub(crate) pending_key: &'a str,
    /// Whether a stored pending request is this one (its PKCS#10, compared parsed).
    pub(crate) same_request: &'a dyn Fn(&Pending) -> bool,
    /// Fingerprint of the new key.
    pub(crate) key_fingerprint: &'a str,
    /// The transaction claimed (transactionId for CMC, `key:` + new key otherwise).
    pub(crate) transaction: &'a str,
    /// The sender nonce, when the protocol has one.
    pub(crate) nonce: Option<&'a [u8]>,
    /// Whether the claim is held open while the decision is made elsewhere (a gateway
    /// forwarding to its upstream), rather than settled in this transaction.
    pub(crate) hold: bool,
    /// Until when its sightings guard anything: the renewed certificate's end of validity
    /// plus the grace (a request signed with it is refused as expired after that).
    pub(crate) guard_until: i64,
}

/// Open pending requests one certificate may have, unless configured otherwise.
pub const DEFAULT_PENDING_CAP: u32 = 8;

/// Sightings are pruned once every this many claims (one indexed DELETE).
const SWEEP_EVERY: u64 = 1024;

/// The ledger's per-decider settings and upkeep: how many pending requests one certificate may
/// have open, and the sweep of sightings that guard nothing any more — so that the state stays
/// bounded however long the server runs.
pub(crate) struct Ledger {
    pending_cap: u32,
    claims: std::sync::atomic::AtomicU64,
    /// Seconds a held claim stays in flight before a copy may take it over.
    claim_ttl: i64,
}

impl Ledger {
    pub(crate) fn new(pending_cap: u32) -> Self {
        Self {
            pending_cap,
            claims: std::sync::atomic::AtomicU64::new(0),
            claim_ttl: CLAIM_TTL_SECS,
        }
    }

    /// A held claim outlives one exchange bounded by `timeout` by 5 s, no more: a gateway
    /// that died mid-forward does not keep the same request waiting longer than that.
    pub(crate) fn with_exchange_bound(mut self, timeout: Option<std::time::Duration>) -> Self {
        if let Some(t) = timeout {
            self.claim_ttl = i64::try_from(t.as_secs()).unwrap_or(CLAIM_TTL_SECS) + 5;
        }
        self
    }
}

/// Until when a request renewing `renewed` can be accepted at all (validity plus `grace`).
pub(crate) fn guard_until(renewed: &Certificate, grace: std::time::Duration) -> i64 {
    let not_after = renewed
        .tbs_certificate()
        .validity()
        .not_after
        .to_unix_duration();
    i64::try_from((not_after + grace).as_secs()).unwrap_or(i64::MAX)
}

/// Where a request stands in the ledger, before anyone decides it.
pub(crate) enum Standing {
    /// A poll of this pending request.
    Poll(Pending),
    /// Answered before (same renewed certificate, same new key): this certificate again.
    Answered(Box<Retained<Certificate>>),
    /// New: its transaction is claimed — recorded in this very transaction, so that no other
    /// request (on this instance or another sharing the store) can claim it too.
    Fresh(Claim),
    /// The same request is being forwarded right now by this or another instance: try again
    /// in `retry_after` seconds — when the claim will have been settled, or will have expired
    /// and can be taken over (its holder may have died: a killed gateway, a crashed store).
    InFlight {
        /// Seconds until the claim expires (at least 1).
        retry_after: u64,
    },
    /// Refused (the caller audits it), with the pending request it concerns.
    Refused(Rejection, Option<i64>),
}

/// A claimed transaction.
#[derive(Debug)]
pub(crate) struct Claim {
    transaction: String,
    nonce: Option<String>,
    in_flight: Option<String>,
}

impl Claim {
    /// The decision is recorded: the request is no longer in flight (the transaction and nonce
    /// stay seen for good).
    pub(crate) fn settle(&self, store: &Store) -> Result<(), StoreError> {
        match &self.in_flight {
            Some(v) => store.forget_sighting(Sighting::InFlight, v),
            None => Ok(()),
        }
    }

    /// The upstream decided, and nothing was delivered (it issued a certificate that is not a
    /// renewal of the one presented): the transaction and nonce stay seen, and the request is
    /// marked undelivered, so that a re-send is told its transaction was decided instead of
    /// being forwarded again — an upstream that does not remember what it answered would
    /// issue one more certificate each time.
    pub(crate) fn spend(&self, store: &Store) -> Result<(), StoreError> {
        match &self.in_flight {
            Some(v) => store.rename_sighting(Sighting::InFlight, Sighting::Undelivered, v),
            None => Ok(()),
        }
    }

    /// Nothing was decided (the upstream could not be asked): the transaction is free again,
    /// so the same request can come back and be forwarded.
    pub(crate) fn release(&self, store: &Store) -> Result<(), StoreError> {
        store.forget_sighting(Sighting::Transaction, &self.transaction)?;
        if let Some(n) = &self.nonce {
            store.forget_sighting(Sighting::Nonce, n)?;
        }
        self.settle(store)
    }
}

impl Ledger {
    /// Refused when the renewed certificate already has as many open pending requests as the
    /// cap allows.
    pub(crate) fn check_pending_cap(
        &self,
        store: &Store,
        origin: &Origin,
    ) -> Result<(), Rejection> {
        if store.open_pending(&origin.identity)? >= i64::from(self.pending_cap) {
            return Err(Rejection::PendingLimit(self.pending_cap));
        }
        Ok(())
    }

    /// The ledger's check, the same for every decider and endpoint, in the caller's
    /// transaction: revoked → poll → answered before → key reuse → open pending cap → replay
    /// (transactionId, then nonce). A fresh request leaves with its transaction claimed.
    pub(crate) fn stand(
        &self,
        store: &Store,
        origin: &Origin,
        at: i64,
        template: &str,
        lookup: &Lookup<'_>,
    ) -> Result<Standing, Rejection> {
        let this = origin;
        let claims = self
            .claims
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if claims.is_multiple_of(SWEEP_EVERY) {
            store.prune_sightings(at)?;
        }
        if let Err(r) = crate::policy::check_not_revoked(lookup.renewed, store) {
            return Ok(Standing::Refused(r, None));
        }
        if let Some(pending) = store.find_pending(&this.identity, lookup.pending_key)? {
            if !(lookup.same_request)(&pending) {
                let id = pending.id;
                return Ok(Standing::Refused(Rejection::PollMismatch(id), Some(id)));
            }
            return Ok(Standing::Poll(pending));
        }
        // Answered before (the client lost the answer), or a key certified before (an earlier
        // certificate's: the user's own older key, not a new key): one look-up by the key.
        let old_serial = crate::policy::serial_text(lookup.renewed);
        match store.key_standing(&old_serial, lookup.key_fingerprint)? {
            KeyStanding::Renewed { serial, der } => {
                let cert = this.answered_before(
                    store,
                    at,
                    template,
                    &serial,
                    &der,
                    "re-sent request answered with the certificate already issued",
                )?;
                return Ok(Standing::Answered(Box::new(cert)));
            }
            KeyStanding::Certified => return Ok(Standing::Refused(Rejection::KeyReuse, None)),
            KeyStanding::New => {}
        }
        // A forwarder learns only from the upstream whether a request will pend: it checks
        // the cap before forwarding. A decider that knows checks when it pends
        // ([`Ledger::check_pending_cap`]), and no other request pays the count.
        if lookup.hold
            && let Err(r) = self.check_pending_cap(store, this)
        {
            return Ok(Standing::Refused(r, None));
        }
        let transaction = this.transaction_key(lookup.transaction);
        let in_flight = format!("{transaction}:{}", lookup.key_fingerprint);
        if !store.first_sighting_until(
            Sighting::Transaction,
            &transaction,
            at,
            lookup.guard_until,
        )? {
            // Claimed already. By this very request (same new key) still being forwarded?
            return Ok(match store.sighting_at(Sighting::InFlight, &in_flight)? {
                Some(since) if at - since < self.claim_ttl => Standing::InFlight {
                    retry_after: u64::try_from(self.claim_ttl - (at - since))
                        .unwrap_or(1)
                        .max(1),
                },
                Some(_) => {
                    // Its holder vanished mid-forward: this request takes the claim over.
                    store.touch_sighting(Sighting::InFlight, &in_flight, at)?;
                    Standing::Fresh(Claim {
                        transaction,
                        nonce: lookup.nonce.map(hex),
                        in_flight: Some(in_flight),
                    })
                }
                // Decided upstream, its certificate not delivered: said so again, never
                // forwarded again. Anything else claimed it before: a replay.
                None => match store.sighting_at(Sighting::Undelivered, &in_flight)? {
                    Some(_) => Standing::Refused(Rejection::Undelivered, None),
                    None => Standing::Refused(Rejection::Replay, None),
                },
            });
        }
        let nonce = lookup.nonce.map(hex);
        if let Some(n) = &nonce
            && !store.first_sighting_until(Sighting::Nonce, n, at, lookup.guard_until)?
        {
            return Ok(Standing::Refused(Rejection::Replay, None));
        }
        let in_flight = if lookup.hold {
            store.first_sighting_until(Sighting::InFlight, &in_flight, at, lookup.guard_until)?;
            Some(in_flight)
        } else {
            None
        };
        Ok(Standing::Fresh(Claim {
            transaction,
            nonce,
            in_flight,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// 10^5 renewals, one a second, each renewing a certificate that stays acceptable for an
    /// hour after it: the sightings that guard them never exceed what an hour (plus one sweep
    /// interval) can hold, however long the run.
    #[test]
    fn sightings_stay_bounded_over_100_000_renewals() {
        let store = Store::in_memory().unwrap();
        let ledger = Ledger::new(DEFAULT_PENDING_CAP);
        let renewed = renewal_codec::sample::Sample::deterministic()
            .unwrap()
            .old_cert;
        let origin = Origin::new(Endpoint::FullCmc, renewed.der(), &[]);
        let same_request = |_: &Pending| true;
        const WINDOW: i64 = 3600;
        let mut largest = 0;
        for at in 0..100_000_i64 {
            let (transaction, key) = (format!("t{at}"), format!("k{at}"));
            let nonce = at.to_be_bytes();
            let lookup = Lookup {
                renewed: renewed.value(),
                pending_key: &transaction,
                same_request: &same_request,
                key_fingerprint: &key,
                transaction: &transaction,
                nonce: Some(&nonce),
                hold: false,
                guard_until: at + WINDOW,
            };
            let standing = ledger.stand(&store, &origin, at, "T", &lookup).unwrap();
            assert!(matches!(standing, Standing::Fresh(_)), "renewal {at}");
            if at % 997 == 0 {
                largest = largest.max(store.sightings().unwrap());
            }
        }
        let bound = 2 * (WINDOW + SWEEP_EVERY as i64);
        assert!(
            largest > WINDOW,
            "the run never filled its window: {largest}"
        );
        assert!(largest <= bound, "{largest} sightings > {bound}");
        assert!(store.sightings().unwrap() <= bound);
    }

    /// A certificate with as many open pending requests as the cap gets no new decision; a
    /// poll of one of them still goes through.
    #[test]
    fn open_pending_requests_are_capped_per_certificate() {
        let store = Store::in_memory().unwrap();
        let ledger = Ledger::new(2);
        let renewed = renewal_codec::sample::Sample::deterministic()
            .unwrap()
            .old_cert;
        let origin = Origin::new(Endpoint::FullCmc, renewed.der(), &[]);
        let same_request = |_: &Pending| true;
        let lookup = |transaction: &'static str| Lookup {
            renewed: renewed.value(),
            pending_key: transaction,
            same_request: &same_request,
            key_fingerprint: transaction,
            transaction,
            nonce: None,
            hold: true,
            guard_until: i64::MAX,
        };
        for transaction in ["a", "b"] {
            let standing = ledger.stand(&store, &origin, 1, "T", &lookup(transaction));
            assert!(matches!(standing, Ok(Standing::Fresh(_))));
            store
                .add_pending(&Pending {
                    id: 0,
                    tls_fingerprint: origin.identity.clone(),
                    transaction: transaction.into(),
                    request: Vec::new(),
                    kind: Endpoint::FullCmc,
                    created_at: 1,
                    polls: 0,
                    resolve: crate::store::Resolve::Admin,
                    end: crate::store::PendingEnd::Issue,
                    status: crate::store::PendingStatus::Pending,
                    cert_serial: None,
                    upstream_id: None,
                })
                .unwrap();
        }
        let third = ledger.stand(&store, &origin, 1, "T", &lookup("c")).unwrap();
        assert!(matches!(
            third,
            Standing::Refused(Rejection::PendingLimit(2), None)
        ));
        assert!(matches!(
            ledger.stand(&store, &origin, 1, "T", &lookup("a")).unwrap(),
            Standing::Poll(_)
        ));
    }

    /// A claim held while forwarding: a copy of the same request is told it is in flight until
    /// the exchange's bound (plus 5 s) has passed, then takes it over (its holder died); a
    /// request for another key under the transaction is a replay either way.
    #[test]
    fn a_held_claim_is_in_flight_until_the_exchange_bound_then_taken_over() {
        let store = Store::in_memory().unwrap();
        let ledger = Ledger::new(DEFAULT_PENDING_CAP)
            .with_exchange_bound(Some(std::time::Duration::from_secs(10)));
        let renewed = renewal_codec::sample::Sample::deterministic()
            .unwrap()
            .old_cert;
        let origin = Origin::new(Endpoint::FullCmc, renewed.der(), &[]);
        let same_request = |_: &Pending| true;
        let lookup = |key: &'static str| Lookup {
            renewed: renewed.value(),
            pending_key: "t",
            same_request: &same_request,
            key_fingerprint: key,
            transaction: "t",
            nonce: None,
            hold: true,
            guard_until: i64::MAX,
        };
        let at = |t: i64, key| ledger.stand(&store, &origin, t, "T", &lookup(key)).unwrap();
        assert!(matches!(at(0, "k1"), Standing::Fresh(_)));
        assert!(matches!(
            at(5, "k1"),
            Standing::InFlight { retry_after: 10 }
        ));
        assert!(matches!(
            at(14, "k1"),
            Standing::InFlight { retry_after: 1 }
        ));
        assert!(matches!(at(15, "k1"), Standing::Fresh(_)), "taken over");
        assert!(matches!(
            at(16, "k2"),
            Standing::Refused(Rejection::Replay, None)
        ));
    }
}
