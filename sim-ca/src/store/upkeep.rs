//! The store's upkeep: how big it is and may grow (a quota, the way tests fill the disk), its
//! consistency check, and the sweep of sightings that guard nothing any more.

use super::{Conn, Store, StoreError};

impl Store {
    /// Caps a SQLite database at (about) `bytes` (`PRAGMA max_page_count`): past it every
    /// write fails as on a full disk ("database or disk is full"). A quota for operators, and
    /// the way tests fill the disk without a filesystem of their own. `None` lifts it. No
    /// effect on PostgreSQL (its disk is the server's).
    pub fn limit_size(&self, bytes: Option<u64>) -> Result<(), StoreError> {
        let Conn::Sqlite(db) = &self.db.conn else {
            return Ok(());
        };
        let page: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = bytes.map_or(i64::from(u32::MAX - 1), |b| {
            i64::try_from(b).unwrap_or(i64::MAX) / page.max(1)
        });
        db.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
        Ok(())
    }

    /// The SQLite database's size in bytes (page count × page size); 0 on PostgreSQL.
    pub fn size(&self) -> Result<u64, StoreError> {
        let Conn::Sqlite(db) = &self.db.conn else {
            return Ok(0);
        };
        let pages: i64 = db.query_row("PRAGMA page_count", [], |r| r.get(0))?;
        let page: i64 = db.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        Ok(u64::try_from(pages * page).unwrap_or(0))
    }

    /// SQLite's own consistency check (`PRAGMA integrity_check`): `true` when it finds
    /// nothing wrong (always on PostgreSQL).
    pub fn intact(&self) -> Result<bool, StoreError> {
        let Conn::Sqlite(db) = &self.db.conn else {
            return Ok(true);
        };
        let verdict: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        Ok(verdict == "ok")
    }

    /// Forgets the sightings that guard nothing any more (expired before `now`); returns how
    /// many went.
    pub fn prune_sightings(&self, now: i64) -> Result<u64, StoreError> {
        self.db
            .exec("DELETE FROM seen WHERE expires_at < ?1", &[now.into()])
    }

    /// Sightings recorded (a gauge of the replay state's size).
    pub fn sightings(&self) -> Result<i64, StoreError> {
        self.db
            .row("SELECT COUNT(*) FROM seen", &[])?
            .map_or(Ok(0), |r| r.int(0))
    }
}
