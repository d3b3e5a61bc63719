//! The `cmp_confirm` table: certificates a CMP key update issued that wait for the client's
//! `certConf` (RFC 4210 §5.3.18). A certificate the client rejects, or does not confirm by the
//! deadline, is revoked: the client never installed it, and nobody else should use it.

use super::{Store, StoreError};

/// Where a certificate's confirmation stands.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum ConfirmState {
    /// Issued, not confirmed yet.
    Waiting,
    /// The client accepted it.
    Confirmed,
    /// The client rejected it: revoked.
    Rejected,
    /// No confirmation came by the deadline: revoked.
    Expired,
}

impl ConfirmState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Confirmed => "confirmed",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Self::Waiting,
            Self::Confirmed,
            Self::Rejected,
            Self::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A certificate issued in a CMP transaction, and its confirmation.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Confirmation {
    /// The transaction, keyed per renewed certificate.
    pub transaction_key: String,
    /// The issued certificate's serial (hex).
    pub serial: String,
    /// Unix time by which `certConf` must come.
    pub deadline: i64,
    /// Where it stands.
    pub state: ConfirmState,
    /// The nonce of the answer that delivered it, when a gateway passed on its upstream's
    /// (answered again from the gateway's state, the certificate goes with the same nonce, so
    /// that the upstream recognises the certConf that answers it).
    pub nonce: Option<Vec<u8>>,
}

impl Store {
    /// Records that `serial`, issued in `transaction_key`, waits for its confirmation until
    /// `deadline`, delivered with `nonce` when it is not this desk's own (a repeated answer in
    /// the same transaction keeps the first record).
    pub fn await_confirmation(
        &self,
        transaction_key: &str,
        serial: &str,
        deadline: i64,
        nonce: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        self.db.exec(
            "INSERT INTO cmp_confirm (transaction_key, serial, deadline, state, nonce)
             VALUES (?1, ?2, ?3, 'waiting', ?4) ON CONFLICT (transaction_key) DO NOTHING",
            &[
                transaction_key.into(),
                serial.into(),
                deadline.into(),
                nonce.into(),
            ],
        )?;
        Ok(())
    }

    /// The confirmation record of a transaction.
    pub fn confirmation(&self, transaction_key: &str) -> Result<Option<Confirmation>, StoreError> {
        self.db
            .row(
                "SELECT transaction_key, serial, deadline, state, nonce FROM cmp_confirm
                 WHERE transaction_key = ?1",
                &[transaction_key.into()],
            )?
            .map(|r| {
                Ok(Confirmation {
                    transaction_key: r.text(0)?,
                    serial: r.text(1)?,
                    deadline: r.int(2)?,
                    state: ConfirmState::parse(&r.text(3)?).unwrap_or(ConfirmState::Waiting),
                    nonce: r.opt_blob(4)?,
                })
            })
            .transpose()
    }

    /// Moves a transaction's confirmation to `state`.
    pub fn set_confirmation(
        &self,
        transaction_key: &str,
        state: ConfirmState,
    ) -> Result<(), StoreError> {
        self.db.exec(
            "UPDATE cmp_confirm SET state = ?2 WHERE transaction_key = ?1",
            &[transaction_key.into(), state.as_str().into()],
        )?;
        Ok(())
    }

    /// Confirmations still waiting after their deadline (at most `limit`, oldest first).
    pub fn overdue_confirmations(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<Confirmation>, StoreError> {
        self.db
            .rows(
                "SELECT transaction_key, serial, deadline, state FROM cmp_confirm
                 WHERE state = 'waiting' AND deadline < ?1 ORDER BY deadline LIMIT ?2",
                &[now.into(), limit.into()],
            )?
            .iter()
            .map(|r| {
                Ok(Confirmation {
                    transaction_key: r.text(0)?,
                    serial: r.text(1)?,
                    deadline: r.int(2)?,
                    state: ConfirmState::Waiting,
                    nonce: None,
                })
            })
            .collect()
    }
}
