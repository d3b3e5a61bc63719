//! Entering the chain after a restart, from the journal: [`Resume`] collects a request the CA
//! left pending; [`Recover`] finishes or undoes a renewal a crash or a pulled card cut short.

use x509_cert::Certificate;

use super::{
    Context, Effects, Finished, Install, NewKey, Next, OldCertificate, RenewalError, RollBack,
    RollbackCause, State, Step, Submit, Supersede, cmp,
};
use crate::{client::journal::Record, cmc::Retained, token::ContainerId};

/// A pending request from the journal, to collect after a restart.
pub struct Resume {
    /// The new key's container (`Generated`).
    new: ContainerId,
    /// The request as sent (`Submitted`).
    request: Vec<u8>,
    /// The CA's handle for it (`Pending`), when the protocol has one.
    request_id: Option<u64>,
    /// CMP: the CA's last nonce (`Pending`), for the next message's recipNonce.
    cmp_nonce: Option<Vec<u8>>,
}

impl Resume {
    /// Reads the pending renewal from the current journal records.
    pub fn from_journal(records: &[Record]) -> Result<Self, RenewalError> {
        if !matches!(
            records.last(),
            Some(Record::Pending { .. } | Record::Retry { .. })
        ) {
            return Err(RenewalError::Precondition(
                "no pending renewal in the journal".into(),
            ));
        }
        let request = records
            .iter()
            .find_map(|r| match r {
                Record::Submitted { request } => hex_decode(request),
                _ => None,
            })
            .ok_or(RenewalError::Precondition(
                "journal: pending without a request".into(),
            ))?;
        let new = generated(records).ok_or(RenewalError::Precondition(
            "journal: pending without a key".into(),
        ))?;
        let request_id = records.iter().rev().find_map(|r| match r {
            Record::Pending { request_id, .. } => *request_id,
            _ => None,
        });
        let cmp_nonce = records.iter().rev().find_map(|r| match r {
            Record::Pending { cmp_nonce, .. } => cmp_nonce.as_deref().and_then(hex_decode),
            _ => None,
        });
        Ok(Self {
            new,
            request,
            request_id,
            cmp_nonce,
        })
    }

    pub(super) fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        let containers = fx.containers(Step::Await)?;
        let new = containers
            .iter()
            .find(|c| c.id == self.new)
            .and_then(|c| c.public_key.clone());
        let (Ok(old), Some(spki)) = (OldCertificate::find(&containers, &cx.old), new) else {
            return Err(RenewalError::Precondition(
                "the card no longer holds the keys of the pending request".into(),
            ));
        };
        if let Err(e) = fx.warm_up() {
            return Err(RenewalError::Precondition(format!(
                "cannot reach the CA: {e}"
            )));
        }
        if let Some(id) = self.request_id {
            fx.resume_pending(&self.request, id);
        }
        Ok(Next::Continue(State::Submit(Submit {
            old,
            // The journaled request carries the attestation already, if any.
            new: NewKey {
                id: self.new,
                spki,
                attestation: None,
            },
            // The CA's last answer as far as the next message needs it: its nonce.
            cmp_answer: self.cmp_nonce.and_then(|nonce| {
                let mut header = cmp::header_of(&self.request).ok()?;
                header.sender_nonce = Some(der::asn1::OctetString::new(nonce).ok()?);
                Some(Box::new(header))
            }),
            request: self.request,
            polls: 1,
            tries: 0,
        })))
    }
}

/// The journal of an interrupted renewal.
pub struct Recover {
    records: Vec<Record>,
}

impl Recover {
    /// Recovery from the current journal records.
    pub fn from_journal(records: &[Record]) -> Self {
        Self {
            records: records.to_vec(),
        }
    }

    pub(super) fn step(self, cx: &Context, fx: &mut dyn Effects) -> Result<Next, RenewalError> {
        let records = self.records;
        if !matches!(records.first(), Some(Record::Begin { .. })) {
            return Ok(Next::Finished(Finished::Clean));
        }
        let old = &cx.old;
        let new = generated(&records);
        match records.last() {
            None | Some(Record::Done { .. } | Record::RolledBack) => {
                Ok(Next::Finished(Finished::Clean))
            }
            // Pending at the CA, or an answer lost between re-sends: the request may be (or
            // become) a certificate; the key stays and `resume` sends the same bytes again.
            Some(Record::Pending { .. } | Record::Retry { .. }) => {
                Ok(Next::Finished(Finished::Pending))
            }
            Some(Record::InstallIntent { .. } | Record::Installed | Record::SupersedeIntent) => {
                // The CA issued and the certificate passed the checks: go forward.
                let new = new.ok_or(RenewalError::Precondition(
                    "journal: install without a generated key".into(),
                ))?;
                let certificate = records
                    .iter()
                    .rev()
                    .find_map(|r| match r {
                        Record::InstallIntent { certificate } => hex_decode(certificate),
                        _ => None,
                    })
                    .ok_or(RenewalError::Precondition(
                        "journal: install without a certificate".into(),
                    ))?;
                let containers = fx.containers(Step::Install)?;
                let holds = |id: &ContainerId| {
                    containers
                        .iter()
                        .any(|c| c.id == *id && c.certificate.as_deref() == Some(&certificate[..]))
                };
                let new_exists = containers.iter().any(|c| c.id == new);
                if holds(old) && !new_exists {
                    fx.record(Record::Done {
                        container: old.0.clone(),
                    })?;
                    return Ok(Next::Finished(Finished::Renewed {
                        container: old.clone(),
                        certificate,
                    }));
                }
                if !new_exists && !holds(old) {
                    // The new key is gone and the old container never got the certificate:
                    // there is nothing to go forward with (a card that lost a write). The old
                    // certificate stays; claiming "completed" here would be a lie.
                    return Ok(Next::Continue(State::RollBack(RollBack {
                        reason: RollbackCause::Recovery(
                            "recovery: the new key is no longer on the card".into(),
                        ),
                        orphans: Vec::new(),
                        cause: None,
                    })));
                }
                if new_exists && !holds(&new) {
                    let issued = Retained::<Certificate>::from_der(&certificate).map_err(|e| {
                        RenewalError::Precondition(format!("journal: the certificate: {e}"))
                    })?;
                    return Ok(Next::Continue(State::Install(Install {
                        new,
                        issued: Box::new(issued),
                        intent_journaled: true,
                    })));
                }
                Ok(Next::Continue(State::Supersede(Supersede {
                    new,
                    certificate,
                })))
            }
            Some(_) => {
                // Begin, GenerateIntent, Generated, Submitted, RollbackIntent: undo. Ours is
                // the generated container and anything that appeared since `GenerateIntent`
                // (a key the card made but never reported); never the old container.
                let containers = fx.containers(Step::GenerateKey)?;
                let before = records.iter().find_map(|r| match r {
                    Record::GenerateIntent { before } => Some(before.clone()),
                    _ => None,
                });
                let mut orphans: Vec<ContainerId> = new.into_iter().collect();
                if let Some(before) = before {
                    for c in &containers {
                        if !before.contains(&c.id.0) && !orphans.contains(&c.id) {
                            orphans.push(c.id.clone());
                        }
                    }
                }
                orphans.retain(|o| o != old && containers.iter().any(|c| c.id == *o));
                Ok(Next::Continue(State::RollBack(RollBack {
                    reason: RollbackCause::Recovery("recovery after a crash".into()),
                    orphans,
                    cause: None,
                })))
            }
        }
    }
}

fn generated(records: &[Record]) -> Option<ContainerId> {
    records.iter().find_map(|r| match r {
        Record::Generated { container } => Some(ContainerId(container.clone())),
        _ => None,
    })
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
