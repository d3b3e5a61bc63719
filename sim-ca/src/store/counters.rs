//! Named counters (requests and outcomes by kind, and a subject's n-th request while a
//! scenario's rule names one): added to in one statement at the end of a decision's
//! transaction.

use super::{ReadBack, Store, StoreError, sql};

impl Store {
    /// One counter's value (0 when never bumped).
    pub fn counter(&self, name: &str) -> Result<i64, StoreError> {
        self.flush_bumps()?;
        self.db
            .row("SELECT value FROM counters WHERE name = ?1", &[name.into()])?
            .map_or(Ok(0), |r| r.int(0))
    }

    /// Adds to a named counter. Inside [`Store::atomically`] the additions are written
    /// together, in one statement before the commit: a decision counts its request and its
    /// outcome, and a statement less is a statement less in every decision.
    pub fn bump(&self, name: &str) -> Result<(), StoreError> {
        if self.in_transaction.get() {
            let mut bumps = self.bumps.borrow_mut();
            match bumps.iter_mut().find(|(n, _)| n == name) {
                Some((_, by)) => *by += 1,
                None => bumps.push((name.to_owned(), 1)),
            }
            return Ok(());
        }
        self.add_to_counters(&[(name.to_owned(), 1)])
    }

    /// Writes the additions [`Store::bump`] kept for the transaction's end.
    pub(super) fn flush_bumps(&self) -> Result<(), StoreError> {
        let mut bumps = std::mem::take(&mut *self.bumps.borrow_mut());
        if bumps.is_empty() {
            return Ok(());
        }
        // In one order whoever writes them: two transactions that lock the same counters rows
        // in opposite orders could deadlock on PostgreSQL, were they ever not serialized.
        bumps.sort();
        self.add_to_counters(&bumps)
    }

    fn add_to_counters(&self, additions: &[(String, i64)]) -> Result<(), StoreError> {
        let rows: Vec<String> = (0..additions.len())
            .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
            .collect();
        let params: Vec<sql::Value> = additions
            .iter()
            .flat_map(|(name, by)| [name.into(), (*by).into()])
            .collect();
        self.db.exec(
            &format!(
                "INSERT INTO counters (name, value) VALUES {}
                 ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
                rows.join(", ")
            ),
            &params,
        )?;
        Ok(())
    }

    /// Adds to a named counter and reads its new value, in one statement (a scenario's rule
    /// can match the subject's n-th request: every renewal counts and reads).
    pub fn count(&self, name: &str) -> Result<i64, StoreError> {
        self.flush_bumps()?;
        let name = [name.into()];
        self.db.write_then_int(
            "INSERT INTO counters (name, value) VALUES (?1, 1)
             ON CONFLICT(name) DO UPDATE SET value = counters.value + 1",
            &name,
            "RETURNING value",
            ReadBack::Query("SELECT value FROM counters WHERE name = ?1", &name),
        )
    }

    /// All counters, by name.
    pub fn counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.flush_bumps()?;
        self.db
            .rows("SELECT name, value FROM counters ORDER BY name", &[])?
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?)))
            .collect()
    }
}
