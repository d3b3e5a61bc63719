//! How a desk takes in a CMP message, whoever decides (the simulated CA, the gateway as RA):
//! reading it, knowing who sent it, checking a key update before the desk decides it, finding
//! the key update a `pollReq` asks for, and refusing what is not served — written once, so the
//! two deciders cannot read a message differently. What each does next (issue, forward,
//! confirm, answer a `genm` with its own certificates) stays with it.

use crate::store::Endpoint;
use renewal_codec::cmp::{CertStatus, PkiBody, PkiHeader, PkiMessage};
use x509_cert::Certificate;

use renewal_codec::cmc::Retained;

use crate::{
    cmp_answer::{CmpReply, cmp_transaction, unreadable_header},
    desk::{Decider, Desk},
    error::UpstreamFailure,
    ledger::Origin,
    policy::{self, KurAccepted, PolicyContext, Rejection},
};

/// A decider's side of the CMP intake.
pub(crate) trait CmpDesk: Decider {
    /// Its desk (limits, store, clock).
    fn desk(&self) -> &Desk;
    /// The policy's context: who issued the certificates it renews, its templates, the time.
    fn policy_context(&self) -> PolicyContext<'_>;
    /// Whether `signer` is one of its RA certificates: an RA forwards users' renewals and never
    /// renews itself through them.
    fn is_ra(&self, signer: &Retained<Certificate>) -> bool;
    /// The signed `error` answering the message with `header` for `rejection`.
    fn error_answer(&self, header: &PkiHeader, rejection: &Rejection) -> CmpReply;
}

/// The refusal of the message with `header` from `origin`: audited (in a transaction of its
/// own) and answered with `error`.
pub(crate) fn refuse<D: CmpDesk>(
    desk: &D,
    origin: &Origin,
    header: &PkiHeader,
    rejection: &Rejection,
) -> CmpReply {
    let base = desk.desk();
    base.record_refusal(&base.decision(), origin, None, rejection, None);
    desk.error_answer(header, rejection)
}

/// The PKIMessage in `body`, or the refusal of what does not parse.
pub(crate) fn read<D: CmpDesk>(
    desk: &D,
    origin: &Origin,
    body: &[u8],
) -> Result<PkiMessage, Box<CmpReply>> {
    PkiMessage::parse(body, &desk.desk().limits).map_err(|e| {
        let r = Rejection::Malformed(format!("PKIMessage: {e}"));
        Box::new(refuse(desk, origin, &unreadable_header(), &r))
    })
}

/// Who sent a follow-up (`pollReq`, `certConf`): the certificate that protected it, as for a
/// kur. A message that does not say is refused.
pub(crate) fn sender<D: CmpDesk>(
    desk: &D,
    origin: Origin,
    message: &PkiMessage,
) -> Result<Origin, Box<CmpReply>> {
    match policy::protected_by(message, &desk.policy_context()) {
        Ok(identity) => Ok(origin.renewing(&identity)),
        Err(r) => Err(Box::new(refuse(desk, &origin, &message.header, &r))),
    }
}

/// A `certConf`: who sent it, its statuses and its transaction's ledger key (per renewed
/// certificate) — or the refusal of one that does not say who sends it.
pub(crate) fn certconf<'m, D: CmpDesk>(
    desk: &D,
    origin: Origin,
    message: &'m PkiMessage,
) -> Result<(Origin, &'m [CertStatus], String), Box<CmpReply>> {
    let origin = sender(desk, origin, message)?;
    let PkiBody::CertConf(statuses) = &message.body else {
        let r = Rejection::Internal("not a certConf".into());
        return Err(Box::new(desk.error_answer(&message.header, &r)));
    };
    let key = origin.transaction_key(&cmp_transaction(&message.header));
    Ok((origin, statuses, key))
}

/// A key update checked by the policy's stateless rules (identity = the certificate whose key
/// protected it); an RA's own certificate renews nothing here.
pub(crate) fn check_kur<D: CmpDesk>(desk: &D, kur: &PkiMessage) -> Result<KurAccepted, Rejection> {
    match kur.protecting_certificate() {
        Some(signer) if desk.is_ra(signer) => Err(Rejection::IdentityMismatch),
        _ => policy::validate_kur(kur, &desk.policy_context()),
    }
}

/// What a `pollReq` from `origin` asks for: the key update pending under its transaction for
/// the certificate that protected the poll (parsed, and as stored). `Ok(None)` when there is
/// none — or none this user may poll; a state database that cannot say is a 503.
pub(crate) fn pending_kur<D: CmpDesk>(
    desk: &D,
    origin: &Origin,
    poll: &PkiMessage,
) -> Result<Option<(PkiMessage, Vec<u8>)>, UpstreamFailure> {
    let base = desk.desk();
    let stored = base
        .lock()
        .find_pending(&origin.identity, &cmp_transaction(&poll.header));
    match stored {
        Ok(Some(p)) if p.kind == Endpoint::Cmp => Ok(PkiMessage::parse(&p.request, &base.limits)
            .ok()
            .map(|kur| (kur, p.request))),
        Ok(_) => Ok(None),
        Err(e) => match Rejection::from(e).unavailable(desk.retry_after()) {
            Some(failure) => Err(failure),
            None => Ok(None),
        },
    }
}

/// The refusal of a poll that finds no key update to ask for.
pub(crate) fn nothing_to_poll<D: CmpDesk>(
    desk: &D,
    origin: &Origin,
    poll: &PkiMessage,
) -> CmpReply {
    refuse(desk, origin, &poll.header, &Rejection::PollMismatch(-1))
}

/// The refusal of a message this desk does not serve (`ir`, `cr`, `p10cr`, ...): `what` says
/// what it does instead.
pub(crate) fn unserved<D: CmpDesk>(
    desk: &D,
    origin: &Origin,
    message: &PkiMessage,
    what: &str,
) -> CmpReply {
    let r = Rejection::Denied(format!(
        "{what}: a {} is not served here; send a key update request (kur) protected by the \
         certificate to renew",
        message.body.name()
    ));
    refuse(desk, origin, &message.header, &r)
}
