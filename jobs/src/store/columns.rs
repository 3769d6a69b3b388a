//! Reading a row, the same way on both databases. A domain's `*_from_row`
//! is written once against [`Columns`]; what differs between the dialects
//! is only how a column holds an id, a time or a JSON document:
//!
//! | value | PostgreSQL | SQLite |
//! | --- | --- | --- |
//! | id | `uuid` | `TEXT`, hyphenated |
//! | time | `timestamptz` | `INTEGER`, milliseconds since the epoch |
//! | JSON | `jsonb` | `TEXT` |
//!
//! A value that does not decode is [`StoreError::Corrupt`], naming the column.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::{postgres::PgRow, sqlite::SqliteRow, Decode, Postgres, Row, Sqlite, Type};
use uuid::Uuid;

use super::{parse_enum, Result, StoreError};

/// A column type both databases decode the same way (text, integers, bytes).
pub(crate) trait Plain:
    for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Plain for T where T: for<'r> Decode<'r, Postgres> + Type<Postgres> + for<'r> Decode<'r, Sqlite> + Type<Sqlite> {}

/// One row of either database.
pub(crate) trait Columns {
    /// A column both databases store alike.
    fn get<T: Plain>(&self, column: &str) -> Result<T>;
    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>>;
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>>;
    fn opt_json(&self, column: &str) -> Result<Option<Value>>;

    fn uuid(&self, column: &str) -> Result<Uuid> {
        self.opt_uuid(column)?.ok_or_else(|| null(column))
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        self.opt_time(column)?.ok_or_else(|| null(column))
    }

    fn json(&self, column: &str) -> Result<Value> {
        self.opt_json(column)?.ok_or_else(|| null(column))
    }

    /// A JSON column read into its type.
    fn json_as<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        serde_json::from_value(self.json(column)?).map_err(|err| StoreError::Corrupt(format!("{column}: {err}")))
    }

    /// A text column that names one of a set (a status, a kind).
    fn parsed<T: std::str::FromStr>(&self, column: &str, what: &str) -> Result<T> {
        parse_enum(&self.get::<String>(column)?, what)
    }
}

fn null(column: &str) -> StoreError {
    StoreError::Corrupt(format!("{column} is null"))
}

impl Columns for PgRow {
    fn get<T: Plain>(&self, column: &str) -> Result<T> {
        Ok(self.try_get(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        Ok(self.try_get(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.try_get(column)?)
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for SqliteRow {
    fn get<T: Plain>(&self, column: &str) -> Result<T> {
        Ok(self.try_get(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        self.try_get::<Option<&str>, _>(column)?
            .map(|text| Uuid::parse_str(text).map_err(|err| StoreError::Corrupt(format!("{column} `{text}`: {err}"))))
            .transpose()
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        self.try_get::<Option<i64>, _>(column)?
            .map(|ms| {
                Utc.timestamp_millis_opt(ms)
                    .single()
                    .ok_or_else(|| StoreError::Corrupt(format!("{column}: timestamp {ms} is out of range")))
            })
            .transpose()
    }

    fn opt_json(&self, column: &str) -> Result<Option<Value>> {
        self.try_get::<Option<&str>, _>(column)?
            .map(|text| {
                serde_json::from_str(text).map_err(|err| StoreError::Corrupt(format!("{column} is not JSON: {err}")))
            })
            .transpose()
    }
}
