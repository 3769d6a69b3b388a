//! SQL written once for both databases.
//!
//! A domain operation builds its statement as [`Sql`] and runs it on a [`Db`]
//! (the pool) or a [`Tx`] (a transaction), both [`Exec`]. Its control flow is
//! written once, in the domain's `sql.rs`; what differs between the databases
//! lives here, in three small places:
//!
//! - **Values.** An [`Arg`] is bound in each database's encoding (the table
//!   in `columns.rs`): an id as `uuid` or hyphenated text, a time as
//!   `timestamptz` or milliseconds, JSON as `jsonb` or text. Rows come back
//!   as [`Row`], read through [`Columns`].
//! - **Text.** Statements are written in PostgreSQL's words, which SQLite
//!   (3.46, bundled) reads too: `$n` placeholders, `true`, `RETURNING`,
//!   `ON CONFLICT`, `IS DISTINCT FROM`, `UPDATE … FROM`. The one rewrite is
//!   `now()`, which on SQLite becomes the current time in milliseconds, the
//!   way its tables hold times. Row locks exist only on PostgreSQL
//!   ([`Sql::push_lock`]; SQLite's one writer already holds everything).
//! - **Transactions.** [`Db::begin`] opens `BEGIN` on PostgreSQL and
//!   `BEGIN IMMEDIATE` on SQLite, which takes the write lock up front rather
//!   than failing with `SQLITE_BUSY` when a reader upgrades.
//!
//! Where the dialects truly differ (array binds and `unnest`, advisory locks,
//! date arithmetic), an operation matches on [`Exec::dialect`] for that one
//! statement and keeps the rest of its flow shared.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{
    postgres::{PgArguments, PgRow},
    query::Query,
    sqlite::{SqliteArguments, SqliteRow},
    PgPool, Postgres, Sqlite, SqlitePool,
};
use uuid::Uuid;

mod values;

pub use values::{Arg, Column, Table};

use crate::model::Scope;
use crate::store::{columns::Plain, Columns, Result, StoreError};

/// SQLite's `now()`: the current time in whole milliseconds since the epoch.
const SQLITE_NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

fn millis(span: std::time::Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

/// Which database a statement runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The quarter-hour since the epoch (a 64-bit integer) a time column
    /// falls in: every time zone's offset is a whole number of quarter
    /// hours, so counts per quarter hour are counts per local month, day or
    /// hour in any zone, once the caller places them.
    pub fn quarter_hour(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("CAST(floor(extract(epoch FROM {column}) / 900) AS BIGINT)"),
            // Integer division floors for the times since 1970 it is used on.
            Dialect::Sqlite => format!("({column} / 900000)"),
        }
    }

    /// A length of time as a value for [`Dialect::later`]: seconds on
    /// PostgreSQL, milliseconds on SQLite.
    pub fn span(self, span: std::time::Duration) -> Arg {
        match self {
            Dialect::Postgres => Arg::Float(Some(span.as_secs_f64())),
            Dialect::Sqlite => Arg::Int8(Some(millis(span))),
        }
    }

    /// Lengths of time as a [`Table`] column of [`Dialect::span`]s.
    pub fn spans(self, spans: impl Iterator<Item = std::time::Duration>) -> Column {
        match self {
            Dialect::Postgres => Column::Float(spans.map(|span| span.as_secs_f64()).collect()),
            Dialect::Sqlite => Column::Int8(spans.map(millis).collect()),
        }
    }

    /// The time `span` (an SQL expression holding a [`Dialect::span`]) after
    /// now.
    pub fn later(self, span: &str) -> String {
        match self {
            Dialect::Postgres => format!("(now() + make_interval(secs => {span}))"),
            Dialect::Sqlite => format!("(now() + {span})"),
        }
    }
}

/// A statement and its values, built the way `sqlx::QueryBuilder` builds
/// one: [`Sql::push`] text, [`Sql::push_bind`] a value (which writes its
/// `$n`), or [`Sql::bind`] the next value of a text that numbers its own.
#[derive(Debug)]
#[must_use = "a statement does nothing until it runs on a Db or a Tx"]
pub struct Sql {
    dialect: Dialect,
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new(dialect: Dialect, text: impl Into<String>) -> Sql {
        Sql { dialect, text: text.into(), args: Vec::new() }
    }

    /// The next value of a statement whose text has its own `$n`s.
    pub fn bind(mut self, value: impl Into<Arg>) -> Sql {
        self.args.push(value.into());
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// A value, and its placeholder in the text.
    pub fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Sql {
        self.args.push(value.into());
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// `column = ANY(values)`: one value bound for the whole list, whatever
    /// its length (an array on PostgreSQL, a JSON array read by
    /// `json_each` on SQLite). An empty list matches nothing.
    pub fn push_any(&mut self, column: &str, values: impl Into<Column>) -> &mut Sql {
        let values = values.into();
        match self.dialect {
            Dialect::Postgres => self.push(column).push(" = ANY(").push_bind(Arg::Array(values)).push(")"),
            Dialect::Sqlite => {
                let json = Value::Array(values.json_values()).to_string();
                self.push(column).push(" IN (SELECT value FROM json_each(").push_bind(json).push("))")
            }
        }
    }

    /// A table of values bound as one, under `alias` with the columns'
    /// names: `unnest` of one array per column on PostgreSQL (each value
    /// bound with its type), the rows of one JSON array on SQLite. Batched
    /// writes join it (`UPDATE … FROM`, `INSERT … SELECT`), so a page of any
    /// size is one statement and one prepared plan.
    pub fn push_table(&mut self, table: Table, alias: &str) -> &mut Sql {
        let names = table.columns.iter().map(|(name, _)| *name).collect::<Vec<_>>();
        match self.dialect {
            Dialect::Postgres => {
                self.push("unnest(");
                for (n, (_, column)) in table.columns.into_iter().enumerate() {
                    let kind = column.postgres_type();
                    self.push(if n == 0 { "" } else { ", " }).push_bind(Arg::Array(column)).push("::").push(kind);
                }
                self.push(&format!(") AS {alias}({})", names.join(", ")))
            }
            Dialect::Sqlite => {
                let rows = table.rows();
                let select = names.iter().enumerate().map(|(n, name)| format!("r.value ->> {n} AS {name}"));
                self.push(&format!("(SELECT {} FROM json_each(", select.collect::<Vec<_>>().join(", ")));
                self.push_bind(Value::Array(rows).to_string()).push(&format!(") AS r) AS {alias}"))
            }
        }
    }

    /// The tenant/user condition of `scope` (` AND …`), so that a read
    /// cannot forget its tenant.
    pub fn push_scope(&mut self, scope: &Scope) -> &mut Sql {
        match scope {
            Scope::Platform => self,
            Scope::Tenant { tenant_id } => self.push(" AND tenant_id = ").push_bind(tenant_id),
            Scope::User { tenant_id, user_id } => {
                self.push(" AND tenant_id = ").push_bind(tenant_id).push(" AND user_id = ").push_bind(user_id)
            }
        }
    }

    /// A row lock (`" FOR UPDATE"`, `" FOR SHARE"`): PostgreSQL's. On SQLite
    /// the statement runs inside a write transaction, which already holds
    /// the whole database.
    pub fn push_lock(&mut self, lock: &str) -> &mut Sql {
        if self.dialect == Dialect::Postgres {
            self.push(lock);
        }
        self
    }

    /// The statement bound for PostgreSQL. The values move into the query
    /// (a page's table of JSON documents is not copied).
    fn postgres(text: &str, args: Vec<Arg>) -> Query<'_, Postgres, PgArguments> {
        args.into_iter().fold(sqlx::query(text), |query, arg| match arg {
            Arg::Uuid(value) => query.bind(value),
            Arg::Time(value) => query.bind(value),
            Arg::Json(value) => query.bind(value),
            Arg::Text(value) => query.bind(value),
            Arg::Int8(value) => query.bind(value),
            Arg::Int4(value) => query.bind(value),
            Arg::Int2(value) => query.bind(value),
            Arg::Float(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Bytes(value) => query.bind(value),
            Arg::Array(column) => column.bind_postgres(query),
        })
    }

    /// The SQLite text: `now()` in milliseconds.
    fn sqlite_text(text: &str) -> String {
        text.replace("now()", SQLITE_NOW)
    }

    /// The statement bound for SQLite, its values moved in.
    fn sqlite(text: &str, args: Vec<Arg>) -> Query<'_, Sqlite, SqliteArguments<'_>> {
        args.into_iter().fold(sqlx::query(text), |query, arg| match arg {
            Arg::Uuid(value) => query.bind(value.map(|id| id.to_string())),
            Arg::Time(value) => query.bind(value.map(|time| time.timestamp_millis())),
            Arg::Json(value) => query.bind(value.map(|json| json.to_string())),
            Arg::Text(value) => query.bind(value),
            Arg::Int8(value) => query.bind(value),
            Arg::Int4(value) => query.bind(value),
            Arg::Int2(value) => query.bind(value),
            Arg::Float(value) => query.bind(value),
            Arg::Bool(value) => query.bind(value),
            Arg::Bytes(value) => query.bind(value),
            // Never built for SQLite: `push_any` and `push_table` bind JSON.
            Arg::Array(column) => query.bind(Value::Array(column.json_values()).to_string()),
        })
    }
}

/// A row of either database.
pub enum Row {
    Postgres(PgRow),
    Sqlite(SqliteRow),
}

impl Columns for Row {
    fn get<T: Plain>(&self, column: &str) -> Result<T> {
        match self {
            Row::Postgres(row) => Columns::get(row, column),
            Row::Sqlite(row) => Columns::get(row, column),
        }
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        match self {
            Row::Postgres(row) => row.opt_uuid(column),
            Row::Sqlite(row) => row.opt_uuid(column),
        }
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        match self {
            Row::Postgres(row) => row.opt_time(column),
            Row::Sqlite(row) => row.opt_time(column),
        }
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        match self {
            Row::Postgres(row) => row.opt_json(column),
            Row::Sqlite(row) => row.opt_json(column),
        }
    }
}

/// Where statements run: the pool ([`Db`]) or one transaction ([`Tx`]).
#[async_trait]
pub trait Exec: Send {
    fn dialect(&self) -> Dialect;

    async fn rows(&mut self, sql: Sql) -> Result<Vec<Row>>;

    /// Runs a statement; how many rows it changed.
    async fn execute(&mut self, sql: Sql) -> Result<u64>;

    /// A statement of the database this runs on.
    fn sql(&self, text: &str) -> Sql {
        Sql::new(self.dialect(), text)
    }

    /// The first row, if any (statements that return at most one).
    async fn optional(&mut self, sql: Sql) -> Result<Option<Row>> {
        Ok(self.rows(sql).await?.into_iter().next())
    }

    async fn one(&mut self, sql: Sql) -> Result<Row> {
        self.optional(sql).await?.ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Every row, each read by `read` (a domain's `*_from_row`).
    async fn all<T, F>(&mut self, sql: Sql, read: F) -> Result<Vec<T>>
    where
        T: Send,
        F: Fn(&Row) -> Result<T> + Send,
    {
        let rows = self.rows(sql).await?;
        rows.iter().map(read).collect()
    }

    /// The first row if any, read by `read`.
    async fn maybe<T, F>(&mut self, sql: Sql, read: F) -> Result<Option<T>>
    where
        T: Send,
        F: Fn(&Row) -> Result<T> + Send,
    {
        let row = self.optional(sql).await?;
        row.as_ref().map(read).transpose()
    }
}

/// One connection of either database, in a transaction or not: where a
/// statement is bound and runs.
enum Conn<'c> {
    Postgres(&'c mut sqlx::PgConnection),
    Sqlite(&'c mut sqlx::SqliteConnection),
}

impl Conn<'_> {
    async fn rows(self, sql: Sql) -> Result<Vec<Row>> {
        Ok(match self {
            Conn::Postgres(conn) => {
                Sql::postgres(&sql.text, sql.args).fetch_all(conn).await?.into_iter().map(Row::Postgres).collect()
            }
            Conn::Sqlite(conn) => {
                let text = Sql::sqlite_text(&sql.text);
                Sql::sqlite(&text, sql.args).fetch_all(conn).await?.into_iter().map(Row::Sqlite).collect()
            }
        })
    }

    async fn execute(self, sql: Sql) -> Result<u64> {
        Ok(match self {
            Conn::Postgres(conn) => Sql::postgres(&sql.text, sql.args).execute(conn).await?.rows_affected(),
            Conn::Sqlite(conn) => {
                let text = Sql::sqlite_text(&sql.text);
                Sql::sqlite(&text, sql.args).execute(conn).await?.rows_affected()
            }
        })
    }
}

/// The pool of either database. Each statement run on it takes a
/// connection for its own length, as sqlx's pool does.
#[derive(Clone, Copy)]
pub enum Db<'a> {
    Postgres(&'a PgPool),
    Sqlite(&'a SqlitePool),
}

/// A connection taken from a [`Db`] for one statement.
enum Pooled {
    Postgres(sqlx::pool::PoolConnection<Postgres>),
    Sqlite(sqlx::pool::PoolConnection<Sqlite>),
}

impl Pooled {
    fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Postgres(conn) => Conn::Postgres(conn),
            Pooled::Sqlite(conn) => Conn::Sqlite(conn),
        }
    }
}

impl Db<'_> {
    /// A transaction: `BEGIN` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite.
    pub async fn begin(self) -> Result<Tx> {
        Ok(match self {
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
        })
    }

    async fn acquire(self) -> Result<Pooled> {
        Ok(match self {
            Db::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
            Db::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
        })
    }
}

#[async_trait]
impl Exec for Db<'_> {
    fn dialect(&self) -> Dialect {
        match self {
            Db::Postgres(_) => Dialect::Postgres,
            Db::Sqlite(_) => Dialect::Sqlite,
        }
    }

    async fn rows(&mut self, sql: Sql) -> Result<Vec<Row>> {
        self.acquire().await?.conn().rows(sql).await
    }

    async fn execute(&mut self, sql: Sql) -> Result<u64> {
        self.acquire().await?.conn().execute(sql).await
    }
}

/// A transaction of either database; dropped without [`Tx::commit`], it
/// rolls back.
pub enum Tx {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    pub async fn commit(self) -> Result<()> {
        match self {
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    fn conn(&mut self) -> Conn<'_> {
        match self {
            Tx::Postgres(tx) => Conn::Postgres(tx),
            Tx::Sqlite(tx) => Conn::Sqlite(tx),
        }
    }
}

#[async_trait]
impl Exec for Tx {
    fn dialect(&self) -> Dialect {
        match self {
            Tx::Postgres(_) => Dialect::Postgres,
            Tx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    async fn rows(&mut self, sql: Sql) -> Result<Vec<Row>> {
        self.conn().rows(sql).await
    }

    async fn execute(&mut self, sql: Sql) -> Result<u64> {
        self.conn().execute(sql).await
    }
}

/// A store on one of the two databases; the domains' ports are implemented
/// once for every such store, in their `sql.rs`.
pub trait SqlStore: Send + Sync {
    fn db(&self) -> Db<'_>;
}

impl SqlStore for crate::store::PgStore {
    fn db(&self) -> Db<'_> {
        Db::Postgres(self.pool())
    }
}

impl SqlStore for crate::store::SqliteStore {
    fn db(&self) -> Db<'_> {
        Db::Sqlite(self.pool())
    }
}

/// The fence of a job's domain writes, in their transaction: true if
/// `attempt` still holds its job (running, at its generation, with a live
/// lease). On PostgreSQL the job row is then share-locked until the
/// transaction ends, so the reaper (which skips locked rows) and an admin
/// cannot take the job from under the writes, and a heartbeat waits for
/// them; on SQLite the transaction's write lock does the same.
pub async fn attempt_holds(tx: &mut Tx, attempt: crate::store::AttemptRef) -> Result<bool> {
    let mut sql = tx
        .sql("SELECT 1 AS held FROM jobs WHERE id = $1 AND generation = $2 AND status = 'running' AND lease_until > now()")
        .bind(attempt.id)
        .bind(attempt.generation);
    sql.push_lock(" FOR SHARE");
    Ok(tx.optional(sql).await?.is_some())
}

#[cfg(test)]
mod tests {
    use super::{Arg, Dialect, Sql, Table};
    use crate::model::Scope;

    #[test]
    fn placeholders_number_the_values_in_order() {
        let mut sql = Sql::new(Dialect::Sqlite, "SELECT 1 FROM t WHERE a = $1").bind(1_i64);
        sql.push(" AND ")
            .push_any("b", vec!["x".to_owned(), "y".to_owned()])
            .push_scope(&Scope::User { tenant_id: "t".into(), user_id: "u".into() });
        assert_eq!(
            sql.text,
            "SELECT 1 FROM t WHERE a = $1 AND b IN (SELECT value FROM json_each($2)) AND tenant_id = $3 \
             AND user_id = $4"
        );
        assert!(matches!(&sql.args[1], Arg::Text(Some(list)) if list == r#"["x","y"]"#));
        assert!(matches!(&sql.args[3], Arg::Text(Some(user)) if user == "u"));
    }

    #[test]
    fn a_table_is_unnest_on_postgres_and_json_rows_on_sqlite() {
        let table = || Table::new().column("id", vec![1_i64, 2]).column("name", vec!["a".to_owned(), "b".to_owned()]);
        let mut sql = Sql::new(Dialect::Postgres, "SELECT * FROM ");
        sql.push_table(table(), "u").push_lock(" FOR UPDATE");
        assert_eq!(sql.text, "SELECT * FROM unnest($1::int8[], $2::text[]) AS u(id, name) FOR UPDATE");
        let mut sql = Sql::new(Dialect::Sqlite, "SELECT * FROM ");
        sql.push_table(table(), "u").push_lock(" FOR UPDATE");
        assert_eq!(
            sql.text,
            "SELECT * FROM (SELECT r.value ->> 0 AS id, r.value ->> 1 AS name FROM json_each($1) AS r) AS u"
        );
        assert!(matches!(&sql.args[0], Arg::Text(Some(rows)) if rows == r#"[[1,"a"],[2,"b"]]"#));
    }

    #[test]
    fn sqlite_reads_now_as_milliseconds() {
        let text = Sql::sqlite_text("UPDATE t SET at = now() WHERE b < now()");
        assert_eq!(text.matches("unixepoch('subsec')").count(), 2);
    }
}
