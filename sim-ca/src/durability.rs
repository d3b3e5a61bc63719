//! Group commit: concurrent decisions share one fsync, and no answer leaves before the fsync
//! that covers its commit.
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a commit appends its frames to the WAL
//! (in the page cache) and returns without an fsync; checkpoints still sync the WAL and the
//! database before the WAL is reused. After a decision commits and *releases the store lock*,
//! its thread calls [`GroupSync::sync_through`] with the sequence number of its commit. One
//! waiting thread becomes the leader and fsyncs the WAL file; every commit written before the
//! leader *started* its fsync is durable when it returns, so all the threads waiting for those
//! commits return together. This gives what `synchronous=FULL` gives (a committed decision
//! survives power loss before its answer is sent) at one fsync per batch instead of one per
//! decision, and the store lock is never held across an fsync.
//!
//! An fsync that fails leaves the WAL's durability unknown (Linux may drop the dirty pages and
//! report the error once): like PostgreSQL since 2018, we do not retry; the process stops, and
//! a restart recovers from what the disk holds.

use std::{
    fs::File,
    path::PathBuf,
    sync::{
        Condvar, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Shared between the store (which counts commits) and the threads waiting for durability.
#[derive(Debug)]
pub struct GroupSync {
    /// The WAL file to sync; `None` for an in-memory database (nothing to make durable).
    wal_path: Option<PathBuf>,
    /// Commits made so far (each gets the next number).
    written: AtomicU64,
    state: Mutex<SyncState>,
    synced_cv: Condvar,
    /// fsyncs issued (for `sim-ca` metrics and the load report).
    fsyncs: AtomicU64,
}

#[derive(Debug, Default)]
struct SyncState {
    /// Every commit numbered up to this one is durable.
    synced: u64,
    /// A leader is syncing now.
    syncing: bool,
    wal: Option<File>,
}

impl GroupSync {
    /// For the database whose WAL is `wal_path` (`None`: in memory).
    pub fn new(wal_path: Option<PathBuf>) -> Self {
        Self {
            wal_path,
            written: AtomicU64::new(0),
            state: Mutex::new(SyncState::default()),
            synced_cv: Condvar::new(),
            fsyncs: AtomicU64::new(0),
        }
    }

    /// Notes a commit (or a write that may have committed) and returns its number. Called
    /// after the commit returned, with the store lock still held.
    pub fn committed(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The number of the latest commit.
    pub fn latest(&self) -> u64 {
        self.written.load(Ordering::SeqCst)
    }

    /// fsyncs issued so far.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Returns once commit `seq` is on disk: syncs the WAL itself (as the leader of a batch)
    /// or waits for the leader whose fsync covers `seq`. Call it without the store lock.
    pub fn sync_through(&self, seq: u64) {
        let Some(path) = &self.wal_path else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.synced >= seq {
                return;
            }
            if state.syncing {
                state = self
                    .synced_cv
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            // Leader: everything committed up to `target` is in the page cache now.
            state.syncing = true;
            let target = self.latest();
            let wal = match state.wal.take() {
                Some(f) => Ok(f),
                None => File::open(path),
            };
            drop(state);
            let result = wal.and_then(|f| f.sync_data().map(|()| f));
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.syncing = false;
            match result {
                Ok(f) => {
                    state.wal = Some(f);
                    state.synced = state.synced.max(target);
                    self.synced_cv.notify_all();
                }
                Err(e) => {
                    tracing::error!(
                        wal = %path.display(),
                        error = %e,
                        "fsync of the state database's WAL failed; stopping: nothing more is \
                         answered without knowing it is durable"
                    );
                    std::process::abort();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn concurrent_commits_share_fsyncs_and_all_return_durable() {
        let dir = std::env::temp_dir().join(format!("sim-ca-groupsync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let wal = dir.join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let sync = Arc::new(GroupSync::new(Some(wal)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let sync = sync.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seq = sync.committed();
                        sync.sync_through(seq);
                        assert!(sync.state.lock().unwrap().synced >= seq);
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(sync.latest(), 400);
        assert_eq!(sync.state.lock().unwrap().synced, 400);
        // Never more fsyncs than commits; how many fewer depends on the scheduling.
        assert!(sync.fsyncs() <= 400, "{}", sync.fsyncs());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_in_memory_database_needs_no_fsync() {
        let sync = GroupSync::new(None);
        let seq = sync.committed();
        sync.sync_through(seq);
        assert_eq!(sync.fsyncs(), 0);
    }
}
