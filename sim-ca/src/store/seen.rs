//! The `seen` table: what the ledger has seen once and must recognise when it comes again —
//! transaction ids, sender nonces, the claims on transactions in flight, and the requests
//! decided upstream whose certificates were not delivered.

use super::{Store, StoreError};

/// What a sighting records. Each kind is its own namespace: a nonce never collides with a
/// transaction id of the same bytes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Sighting {
    /// A transaction id, keyed per renewed certificate (RFC 5272 §6.6).
    Transaction,
    /// A sender nonce (RFC 5272 §6.6), keyed per renewed certificate.
    Nonce,
    /// A transaction claimed by a decision that has not finished (the claim's time is its age).
    InFlight,
    /// A request the upstream decided whose certificate the gateway did not deliver (a claim
    /// spent: [`Sighting::InFlight`] renamed).
    Undelivered,
}

impl Sighting {
    /// The name stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transaction => "transaction",
            Self::Nonce => "nonce",
            Self::InFlight => "in-flight",
            Self::Undelivered => "undelivered",
        }
    }
}

impl Store {
    /// Records a nonce or transaction id for good; false when it was seen before (a replay).
    pub fn first_sighting(
        &self,
        kind: Sighting,
        value: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.first_sighting_until(kind, value, now, i64::MAX)
    }

    /// Records a nonce or transaction id that guards something until `expires_at` (a request
    /// signed with a certificate is refused anyway once it expired: its sightings may go then,
    /// [`Store::prune_sightings`]); false when it was seen before (a replay).
    pub fn first_sighting_until(
        &self,
        kind: Sighting,
        value: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let inserted = self.db.exec(
            "INSERT INTO seen (kind, value, seen_at, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT DO NOTHING",
            &[
                kind.as_str().into(),
                value.into(),
                now.into(),
                expires_at.into(),
            ],
        )?;
        Ok(inserted == 1)
    }

    /// When a sighting was recorded, if it was.
    pub fn sighting_at(&self, kind: Sighting, value: &str) -> Result<Option<i64>, StoreError> {
        self.db
            .row(
                "SELECT seen_at FROM seen WHERE kind = ?1 AND value = ?2",
                &[kind.as_str().into(), value.into()],
            )?
            .map(|r| r.int(0))
            .transpose()
    }

    /// Moves a sighting's time to `now` (a claim taken over).
    pub fn touch_sighting(&self, kind: Sighting, value: &str, now: i64) -> Result<(), StoreError> {
        self.db.exec(
            "UPDATE seen SET seen_at = ?3 WHERE kind = ?1 AND value = ?2",
            &[kind.as_str().into(), value.into(), now.into()],
        )?;
        Ok(())
    }

    /// Makes a sighting of `from` one of `to` (its times kept): a claim spent.
    pub fn rename_sighting(
        &self,
        from: Sighting,
        to: Sighting,
        value: &str,
    ) -> Result<(), StoreError> {
        self.db.exec(
            "UPDATE seen SET kind = ?3 WHERE kind = ?1 AND value = ?2",
            &[from.as_str().into(), value.into(), to.as_str().into()],
        )?;
        Ok(())
    }

    /// Forgets a sighting (a claim released: nothing was decided under it).
    pub fn forget_sighting(&self, kind: Sighting, value: &str) -> Result<(), StoreError> {
        self.db.exec(
            "DELETE FROM seen WHERE kind = ?1 AND value = ?2",
            &[kind.as_str().into(), value.into()],
        )?;
        Ok(())
    }
}
