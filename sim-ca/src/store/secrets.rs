//! The `secrets` table: keys the desk keeps with its state rather than in its configuration,
//! so that every instance on one database, and the same instance after a restart, uses the
//! same one. The first instance to open the database creates each; the others read it.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use super::{StoreError, sql::Db};
use crate::cmp_nonce::NonceKey;

/// The name of the key that binds CMP nonces to their transactions.
const CMP_NONCE: &str = "cmp-nonce";

/// The key of the desk's CMP nonces ([`crate::cmp_nonce`]), created on first use.
pub(super) fn nonce_key(db: &Db) -> Result<NonceKey, StoreError> {
    let mut fresh = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(fresh.as_mut())
        .map_err(|_| StoreError::Config("no random bytes for the CMP nonce key".into()))?;
    db.exec(
        "INSERT INTO secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        &[CMP_NONCE.into(), fresh.as_slice().into()],
    )?;
    let stored = Zeroizing::new(
        db.row(
            "SELECT value FROM secrets WHERE name = ?1",
            &[CMP_NONCE.into()],
        )?
        .ok_or_else(|| StoreError::Schema("the CMP nonce key was not stored".into()))?
        .blob(0)?,
    );
    if stored.len() < 32 {
        return Err(StoreError::Schema(
            "the stored CMP nonce key is shorter than 32 bytes".into(),
        ));
    }
    Ok(NonceKey::new(&stored))
}
