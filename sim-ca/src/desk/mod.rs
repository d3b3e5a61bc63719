//! The desk both deciders sit at: the simulated authority ([`crate::Ca`]) and the forwarder to
//! an upstream CA ([`crate::gateway::Gateway`]) keep their state the same way, so it is kept
//! in one place — the state database behind one lock and its group commit, the clock every
//! decision is dated by, the ledger (replay, idempotency, pending cap), the input limits, and
//! the bookkeeping every decision shares (audit records and refusals, in the decision's
//! transaction). What differs between the two — who issues — stays with each decider.

mod pipeline;

use std::sync::{Arc, Mutex, MutexGuard};

use renewal_codec::cmc::Limits;

pub(crate) use pipeline::{Decider, Next, Renewal};

use crate::{
    clock::Clock,
    cmp_nonce::NonceKey,
    durability::GroupSync,
    ledger::{Ledger, Origin},
    policy::Rejection,
    store::{AuditOutcome, AuditRecord, Store, StoreError},
};

/// The state and bookkeeping of a decider.
pub(crate) struct Desk {
    store: Mutex<Store>,
    sync: Arc<GroupSync>,
    /// What every decision is dated by (tests advance it).
    pub(crate) clock: Clock,
    /// Replay, idempotency and the pending cap.
    pub(crate) ledger: Ledger,
    /// Bounds on what a request may hold.
    pub(crate) limits: Limits,
    /// Binds the CMP nonces this desk sends to their transactions (the key is the state
    /// database's, so every instance on it recognises them).
    pub(crate) nonces: NonceKey,
}

impl Desk {
    /// A desk over `store`, dated by `clock`, its requests checked by `ledger`.
    pub(crate) fn new(store: Store, clock: Clock, ledger: Ledger) -> Self {
        Self {
            sync: store.group_sync(),
            nonces: store.nonce_key(),
            store: Mutex::new(store),
            clock,
            ledger,
            limits: Limits::default(),
        }
    }

    /// The store, locked for a decision (see [`LockedStore`]).
    pub(crate) fn decision(&self) -> LockedStore<'_> {
        let store = self.lock();
        LockedStore {
            changes_at_lock: store.rows_changed(),
            store: Some(store),
            sync: &self.sync,
        }
    }

    /// The store, locked for a read: no decision is made under it, so nothing waits for the
    /// group commit when it is released.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions), so
        // the poisoned guard is safe to reuse.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// fsyncs of the state database's WAL so far (group commits).
    pub(crate) fn fsyncs(&self) -> u64 {
        self.sync.fsyncs()
    }

    /// The audit trail, oldest first.
    pub(crate) fn audit_trail(&self) -> Vec<AuditRecord> {
        self.lock().audit().unwrap_or_default()
    }

    /// Counters, by name.
    pub(crate) fn counters(&self) -> Vec<(String, i64)> {
        self.lock().counters().unwrap_or_default()
    }

    /// Appends one audit record for `origin`, at the desk's time.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn audit(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        outcome: AuditOutcome,
        serial: Option<&str>,
        pending_id: Option<i64>,
        detail: String,
    ) -> Result<(), StoreError> {
        origin.audit(
            store,
            self.clock.unix(),
            template,
            outcome,
            serial,
            pending_id,
            detail,
        )
    }

    /// The counter and audit record of a refusal, inside the caller's transaction.
    pub(crate) fn refused(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) -> Result<(), StoreError> {
        origin.refused(store, self.clock.unix(), template, rejection, pending_id)
    }

    /// Records a refusal decided outside any transaction: the counter and the audit record,
    /// in one transaction of their own.
    pub(crate) fn record_refusal(
        &self,
        store: &Store,
        origin: &Origin,
        template: Option<&str>,
        rejection: &Rejection,
        pending_id: Option<i64>,
    ) {
        origin.record_refusal(store, self.clock.unix(), template, rejection, pending_id);
    }
}

/// The store locked for a decision. Releasing it first unlocks, then waits until everything
/// written under it is on disk (the group commit, [`crate::durability`]), so that no answer
/// computed under the lock can leave before its decision is durable — and the lock is never
/// held across an fsync. A use that wrote nothing (a read, a refusal whose audit failed)
/// waits only for what others wrote before it, which their own release syncs anyway: what it
/// read is never answered before it is durable, and it adds no fsync of its own.
pub(crate) struct LockedStore<'a> {
    store: Option<MutexGuard<'a, Store>>,
    sync: &'a GroupSync,
    /// [`Store::rows_changed`] when the lock was taken.
    changes_at_lock: u64,
}

impl std::ops::Deref for LockedStore<'_> {
    type Target = Store;
    fn deref(&self) -> &Store {
        // Only `drop` takes the guard out.
        self.store
            .as_deref()
            .unwrap_or_else(|| unreachable!("store used after release"))
    }
}

impl LockedStore<'_> {
    /// Unlocks without waiting for the group commit: for a transaction that only *claimed* a
    /// request, nothing of which is answered before a later transaction (the upstream's answer
    /// recorded, or the claim released) is synced — and that sync covers this commit too, the
    /// WAL being written in order. A claim lost with the page cache (power loss) leaves what a
    /// synced claim leaves once its holder is gone: the request forwarded again when a copy
    /// comes, only without waiting for the claim to expire. Against a killed process or a copy
    /// running at the same time, the commit protects as well synced or not.
    pub(crate) fn release_unsynced(mut self) {
        if let Some(store) = self.store.take() {
            // Numbered all the same: whoever reads it next waits until it is on disk.
            self.sync.committed();
            drop(store);
        }
    }
}

impl Drop for LockedStore<'_> {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let seq = if store.rows_changed() == self.changes_at_lock {
                self.sync.latest()
            } else {
                self.sync.committed()
            };
            drop(store);
            if !std::thread::panicking() {
                self.sync.sync_through(seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ledger::DEFAULT_PENDING_CAP;

    fn desk_on_disk(name: &str) -> (Desk, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("sim-ca-desk-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("state.db")).unwrap();
        let desk = Desk::new(store, Clock::system(), Ledger::new(DEFAULT_PENDING_CAP));
        (desk, dir)
    }

    /// What each release of the store costs in fsyncs: a write, one; a read of durable
    /// state, none; a claim, none until a later release syncs it — a read included, so what
    /// is read is never answered before it is on disk.
    #[test]
    fn only_a_release_after_an_unsynced_write_waits_for_an_fsync() {
        let (desk, dir) = desk_on_disk("sync");
        let start = desk.fsyncs();
        desk.decision().bump("requests").unwrap();
        assert_eq!(desk.fsyncs() - start, 1, "a write is synced");
        assert_eq!(desk.decision().counter("requests").unwrap(), 1);
        assert_eq!(
            desk.fsyncs() - start,
            1,
            "reading durable state syncs nothing"
        );
        {
            let store = desk.decision();
            store.bump("requests").unwrap();
            store.release_unsynced();
        }
        assert_eq!(desk.fsyncs() - start, 1, "a claim is not synced on its own");
        assert_eq!(desk.decision().counter("requests").unwrap(), 2);
        assert_eq!(
            desk.fsyncs() - start,
            2,
            "reading it waits until it is on disk"
        );
        assert_eq!(desk.decision().counter("requests").unwrap(), 2);
        assert_eq!(desk.fsyncs() - start, 2);
        drop(desk);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
