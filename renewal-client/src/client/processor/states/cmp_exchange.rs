//! The CMP exchange's own steps inside the renewal's states: what `Submit` sends (the request,
//! or a `pollReq` in its transaction) and the confirmation `Verify` sends once the certificate
//! passed the client's checks (or failed them). Every message is protected by the old key on
//! the card, inside the session's one login.

use super::*;

/// A CMP certificate to confirm: the header of the message it answered and the answer's.
pub(super) struct Confirm {
    pub(super) request: crate::cmp::PkiHeader,
    pub(super) answer: crate::cmp::PkiHeader,
}

impl Submit {
    /// What to send: the request itself; in CMP after the first answer, a `pollReq` in its
    /// transaction. With the header of what is sent, for reading the answer (CMP only).
    pub(super) fn cmp_message(
        &self,
        cx: &Context,
        fx: &dyn Effects,
    ) -> Result<(Vec<u8>, Option<crate::cmp::PkiHeader>), Box<Next>> {
        if cx.mode != Mode::Cmp {
            return Ok((self.request.clone(), None));
        }
        let bad = |reason: String| {
            Box::new(RollBack::of(
                self.new.id.clone(),
                RollbackCause::Request(reason),
            ))
        };
        let request = cmp::header_of(&self.request).map_err(bad)?;
        if self.polls == 0 {
            return Ok((self.request.clone(), Some(request)));
        }
        let old_key = fx.signer(
            &cx.old,
            self.old.spki().clone(),
            self.old.key.signature_algorithm(),
        );
        let poll = cmp::poll(
            &request,
            self.cmp_answer.as_deref(),
            old_key.as_ref(),
            &self.old.certificate,
        )
        .map_err(|e| match e {
            crate::cmp::build::BuildError::Sign(s) => Box::new(RollBack::after_card_error(
                self.new.id.clone(),
                Step::Await,
                TokenError::Backend {
                    backend: "token",
                    detail: s.to_string(),
                },
            )),
            other => bad(other.to_string()),
        })?;
        let sent = cmp::header_of(&poll).map_err(bad)?;
        Ok((poll, Some(sent)))
    }
}

impl Verify {
    /// `certConf` for `issued` (rejecting it with `rejection`), acknowledged by `pkiConf`.
    pub(super) fn send_confirm(
        &self,
        cx: &Context,
        fx: &mut dyn Effects,
        confirm: &Confirm,
        issued: &Retained<Certificate>,
        rejection: Option<&str>,
    ) -> Result<(), Box<Next>> {
        let new = || self.new.id.clone();
        let message = {
            let old_key = fx.signer(
                &cx.old,
                self.old.spki().clone(),
                self.old.key.signature_algorithm(),
            );
            cmp::confirm(
                &confirm.request,
                Some(&confirm.answer),
                issued,
                rejection,
                old_key.as_ref(),
                &self.old.certificate,
            )
        }
        .map_err(|e| match e {
            crate::cmp::build::BuildError::Sign(s) => Box::new(RollBack::after_card_error(
                new(),
                Step::Verify,
                TokenError::Backend {
                    backend: "token",
                    detail: s.to_string(),
                },
            )),
            other => Box::new(RollBack::of(
                new(),
                RollbackCause::Request(other.to_string()),
            )),
        })?;
        let sent = cmp::header_of(&message)
            .map_err(|reason| Box::new(RollBack::of(new(), RollbackCause::Request(reason))))?;
        // A lost answer (the CA restarted, the connection dropped) is re-sent, the same bytes:
        // the CA acknowledges a repeated confirmation again.
        let mut tries = 0;
        let answer = loop {
            match fx.submit(&message) {
                Ok(answer) => break answer,
                Err(e) if e.lost_answer() && tries < cx.retry.attempts => {
                    tries += 1;
                    fx.wait(cx.retry.wait(tries, e.retry_after()));
                }
                Err(e) => {
                    return Err(Box::new(RollBack::of(
                        new(),
                        match e.card_refusal() {
                            Some(refusal) => RollbackCause::of_refusal(Step::Verify, refusal),
                            None => {
                                RollbackCause::Transport(format!("certificate confirmation: {e}"))
                            }
                        },
                    )));
                }
            }
        };
        let cause = match answer {
            ServiceAnswer::Cmp { message } => match cmp::read(&message, &sent, &cx.trust_anchors) {
                Ok((cmp::Answer::Acknowledged, _)) => return Ok(()),
                Ok((cmp::Answer::Refused { fail_info, text }, _)) => {
                    RollbackCause::Refused { fail_info, text }
                }
                Ok((other, _)) => RollbackCause::BadAnswer(format!(
                    "the CA answered our certificate confirmation with {other:?}"
                )),
                Err(reason) => RollbackCause::BadAnswer(reason),
            },
            _ => RollbackCause::BadAnswer("a non-CMP answer to our certConf".into()),
        };
        Err(Box::new(RollBack::of(new(), cause)))
    }
}
