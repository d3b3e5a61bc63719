//! The two databases under [`super::Store`], behind one small interface: statements written
//! once with `?N` placeholders (SQLite's; rewritten to `$N` for PostgreSQL), parameters and
//! columns as [`Value`]s. SQLite is the embedded default; PostgreSQL lets several instances
//! share one state.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
};

use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::StoreError;

/// A parameter or a column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(v.to_string())
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Self::Text(v.clone())
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Self::Blob(v.to_vec())
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// One result row.
pub(crate) struct Row(Vec<Value>);

impl Row {
    fn get(&self, i: usize) -> Result<&Value, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Schema(format!("no column {i}")))
    }
    pub(crate) fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.get(i)? {
            Value::Int(v) => Ok(*v),
            other => Err(StoreError::Schema(format!(
                "column {i}: expected an integer, got {other:?}"
            ))),
        }
    }
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.int(i).map(Some),
        }
    }
    pub(crate) fn text(&self, i: usize) -> Result<String, StoreError> {
        match self.get(i)? {
            Value::Text(v) => Ok(v.clone()),
            other => Err(StoreError::Schema(format!(
                "column {i}: expected text, got {other:?}"
            ))),
        }
    }
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    pub(crate) fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        match self.get(i)? {
            Value::Null => Ok(None),
            _ => self.blob(i).map(Some),
        }
    }
    pub(crate) fn blob(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        match self.get(i)? {
            Value::Blob(v) => Ok(v.clone()),
            other => Err(StoreError::Schema(format!(
                "column {i}: expected bytes, got {other:?}"
            ))),
        }
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Self::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Self::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Self::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Self::Int(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Blob(v) => v.to_sql(ty, out),
            Self::Null => Ok(IsNull::Yes),
        }
    }
    fn accepts(ty: &Type) -> bool {
        // The statement decides the type; every column of ours is BIGINT, TEXT or BYTEA.
        [Type::INT8, Type::TEXT, Type::BYTEA, Type::VARCHAR].contains(ty)
    }
    to_sql_checked!();
}

/// A PostgreSQL connection with its prepared statements.
pub(crate) struct Postgres {
    url: String,
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

/// How [`Db::write_then_int`] learns its integer on SQLite.
pub(crate) enum ReadBack<'a> {
    /// The rowid of the row the write inserted.
    NewRowId,
    /// A query and its parameters (its first column of its first row).
    Query(&'a str, &'a [Value]),
}

/// A connection to one of the two databases.
pub(crate) enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Postgres>>),
}

/// The database, counting the statements it runs: what a decision costs it, checked by a test
/// (`sim-ca/tests/statements.rs`) so that a statement added to every decision is a choice.
pub(crate) struct Db {
    pub(crate) conn: Conn,
    statements: Cell<u64>,
}

/// `?N` placeholders as PostgreSQL writes them.
fn dollar(sql: &str) -> String {
    sql.replace('?', "$")
}

impl Postgres {
    pub(crate) fn connect(url: &str) -> Result<Self, StoreError> {
        use std::str::FromStr;
        let (plain_url, mode) = super::pg_tls::split(url)?;
        let mut config = postgres::Config::from_str(&plain_url)?;
        let client = match mode {
            super::pg_tls::Mode::Plain => config.connect(postgres::NoTls)?,
            super::pg_tls::Mode::Verified { root, full } => {
                config.ssl_mode(postgres::config::SslMode::Require);
                config.connect(super::pg_tls::connector(&root, full)?)?
            }
        };
        Ok(Self {
            url: url.to_string(),
            client,
            statements: HashMap::new(),
        })
    }

    /// The prepared statement for `sql`, reconnecting first when the server closed the
    /// connection (a restart): the next decision works again.
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if self.client.is_closed() {
            *self = Self::connect(&self.url)?;
        }
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.prepare(&dollar(sql))?;
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        if self.client.is_closed() {
            *self = Self::connect(&self.url)?;
        }
        Ok(self.client.batch_execute(sql)?)
    }
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

fn pg_row(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob)
        } else {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

fn sqlite_row(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<Row> {
    let mut values = Vec::with_capacity(columns);
    for i in 0..columns {
        values.push(match row.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(v) => Value::Int(v),
            ValueRef::Real(v) => Value::Int(v as i64),
            ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
        });
    }
    Ok(Row(values))
}

impl Db {
    pub(crate) fn new(conn: Conn) -> Self {
        Self {
            conn,
            statements: Cell::new(0),
        }
    }

    /// Statements run since the database was opened (transaction control included).
    pub(crate) fn statements(&self) -> u64 {
        self.statements.get()
    }

    /// `run`, counted as one statement (PostgreSQL's transaction control, sent as a batch).
    fn counted<T>(&self, run: impl FnOnce() -> T) -> T {
        self.statements.set(self.statements.get() + 1);
        run()
    }

    /// Runs a statement; returns the rows it changed.
    pub(crate) fn exec(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.statements.set(self.statements.get() + 1);
        match &self.conn {
            Conn::Sqlite(db) => Ok(db
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(params.iter()))?
                as u64),
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let statement = pg.statement(sql)?;
                Ok(pg.client.execute(&statement, &pg_params(params))?)
            }
        }
    }

    /// Runs a query; returns its rows.
    pub(crate) fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.statements.set(self.statements.get() + 1);
        match &self.conn {
            Conn::Sqlite(db) => {
                let mut stmt = db.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let rows = stmt.query_map(rusqlite::params_from_iter(params.iter()), |r| {
                    sqlite_row(r, columns)
                })?;
                Ok(rows.collect::<Result<_, _>>()?)
            }
            Conn::Postgres(pg) => {
                let mut pg = pg.borrow_mut();
                let statement = pg.statement(sql)?;
                pg.client
                    .query(&statement, &pg_params(params))?
                    .iter()
                    .map(pg_row)
                    .collect()
            }
        }
    }

    /// The first row, if any.
    pub(crate) fn row(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// Runs `write` and returns one integer it produced: the new row's id, or the value
    /// `then` reads back. PostgreSQL runs `write` with `returning` appended (one round trip).
    /// SQLite runs the write alone and reads the value in a second statement: its `RETURNING`
    /// buffers the rows in an ephemeral table, a B-tree and pager opened and closed per
    /// statement (with the allocator's trims and page faults after them) — 2.8 % of the
    /// CA's CPU for the two such statements of every renewal. Called inside a decision's
    /// transaction, so that nothing comes between the write and the read.
    pub(crate) fn write_then_int(
        &self,
        write: &str,
        params: &[Value],
        returning: &str,
        then: ReadBack<'_>,
    ) -> Result<i64, StoreError> {
        let no_value = || StoreError::Schema(format!("no value returned by: {write}"));
        match &self.conn {
            Conn::Sqlite(db) => {
                self.exec(write, params)?;
                match then {
                    ReadBack::NewRowId => Ok(db.last_insert_rowid()),
                    ReadBack::Query(sql, params) => {
                        self.row(sql, params)?.ok_or_else(no_value)?.int(0)
                    }
                }
            }
            Conn::Postgres(_) => self
                .row(&format!("{write} {returning}"), params)?
                .ok_or_else(no_value)?
                .int(0),
        }
    }

    /// Starts a decision's transaction. SQLite: `BEGIN IMMEDIATE` (the write lock, across
    /// processes too). PostgreSQL: a transaction holding one advisory lock, so decisions of
    /// every instance on the database are serialized exactly as SQLite serializes them —
    /// the check-then-write steps (replay, idempotency, serials) need no other reasoning.
    pub(crate) fn begin(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(_) => self.exec("BEGIN IMMEDIATE", &[]).map(|_| ()),
            Conn::Postgres(pg) => self.counted(|| {
                pg.borrow_mut()
                    .batch("BEGIN; SELECT pg_advisory_xact_lock(7262737265)")
            }),
        }
    }

    /// Commits.
    pub(crate) fn commit(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(_) => self.exec("COMMIT", &[]).map(|_| ()),
            Conn::Postgres(pg) => self.counted(|| pg.borrow_mut().batch("COMMIT")),
        }
    }

    /// Rolls back.
    pub(crate) fn rollback(&self) -> Result<(), StoreError> {
        match &self.conn {
            Conn::Sqlite(_) => self.exec("ROLLBACK", &[]).map(|_| ()),
            Conn::Postgres(pg) => self.counted(|| pg.borrow_mut().batch("ROLLBACK")),
        }
    }
}
