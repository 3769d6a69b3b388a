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
//!
//! A record is read with [`from_row!`]: each field from the column of its
//! name, decoded by its type ([`FromColumn`]), unless the field names
//! another column (`kind = "type"`) or gives its own expression
//! (`lanes: row.json_as("lanes")?`).

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

/// A field's type, read from one column of either database.
pub(crate) trait FromColumn: Sized {
    fn from_column(row: &impl Columns, column: &str) -> Result<Self>;
}

/// Types both databases store alike.
macro_rules! plain_columns {
    ($($ty:ty),* $(,)?) => {$(
        impl FromColumn for $ty {
            fn from_column(row: &impl Columns, column: &str) -> Result<Self> {
                row.get(column)
            }
        }
    )*};
}

plain_columns!(
    String,
    Option<String>,
    i64,
    Option<i64>,
    i32,
    Option<i32>,
    i16,
    Option<i16>,
    bool,
    Option<bool>,
    Vec<u8>,
    Option<Vec<u8>>,
);

/// Types each database stores its own way (see the table above).
macro_rules! coded_columns {
    ($($ty:ty => $read:ident),* $(,)?) => {$(
        impl FromColumn for $ty {
            fn from_column(row: &impl Columns, column: &str) -> Result<Self> {
                row.$read(column)
            }
        }
    )*};
}

coded_columns!(
    Uuid => uuid, Option<Uuid> => opt_uuid,
    DateTime<Utc> => time, Option<DateTime<Utc>> => opt_time,
    Value => json, Option<Value> => opt_json,
);

/// Closed sets kept as text (a status, a kind): each type, and the words
/// that name it in an error.
macro_rules! named_columns {
    ($($ty:ty => $what:expr),* $(,)?) => {$(
        impl $crate::store::columns::FromColumn for $ty {
            fn from_column(row: &impl $crate::store::Columns, column: &str) -> $crate::store::Result<Self> {
                $crate::store::Columns::parsed(row, column, $what)
            }
        }
    )*};
}
pub(crate) use named_columns;

/// Reads a record from `row`: `from_row!(row => Trip { id, name, kind =
/// "type", count: expression })`. A bare field reads the column of its
/// name, `field = "column"` another column, both decoded by the field's
/// type; `field: expression` takes the expression's value.
macro_rules! from_row {
    ($row:ident => $ty:ident { $($field:ident $(= $column:literal)? $(: $value:expr)?),* $(,)? }) => {
        Ok($ty { $($field: $crate::store::columns::from_row!(@read $row, $field $(= $column)? $(: $value)?),)* })
    };
    (@read $row:ident, $field:ident) => {
        $crate::store::columns::FromColumn::from_column($row, stringify!($field))?
    };
    (@read $row:ident, $field:ident = $column:literal) => {
        $crate::store::columns::FromColumn::from_column($row, $column)?
    };
    (@read $row:ident, $field:ident : $value:expr) => {
        $value
    };
}
pub(crate) use from_row;

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

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use sqlx::{sqlite::SqliteRow, Connection, SqliteConnection};
    use uuid::Uuid;

    use super::Columns;
    use crate::{model::Lane, store::StoreError};

    #[derive(Debug, PartialEq)]
    struct Record {
        id: Uuid,
        name: String,
        note: Option<String>,
        lane: Lane,
        at: DateTime<Utc>,
        renamed: i64,
        doubled: i64,
    }

    fn record(row: &impl Columns) -> Result<Record, StoreError> {
        from_row!(row => Record { id, name, note, lane, at, renamed = "other", doubled: row.get::<i64>("other")? * 2 })
    }

    async fn row(select: &str) -> SqliteRow {
        let mut db = SqliteConnection::connect("sqlite::memory:").await.expect("an in-memory database");
        sqlx::query(select).fetch_one(&mut db).await.expect("a row")
    }

    #[tokio::test]
    async fn a_record_reads_each_field_from_its_column_by_its_type() {
        let id = Uuid::from_u128(7);
        let row = row(&format!(
            "SELECT '{id}' AS id, 'n' AS name, NULL AS note, 'video' AS lane, 1700000000000 AS at, 21 AS other"
        ))
        .await;
        let at = Utc.timestamp_millis_opt(1_700_000_000_000).single().expect("a time");
        let expected = Record { id, name: "n".into(), note: None, lane: Lane::Video, at, renamed: 21, doubled: 42 };
        assert_eq!(record(&row).expect("the record"), expected);
    }

    #[tokio::test]
    async fn a_value_that_does_not_decode_names_its_column() {
        let bad_id = row("SELECT 'x' AS id, 'n' AS name, NULL AS note, 'video' AS lane, 0 AS at, 1 AS other").await;
        let err = record(&bad_id).expect_err("not a uuid");
        assert!(matches!(&err, StoreError::Corrupt(message) if message.starts_with("id `x`")), "{err}");
        let bad_lane = row(&format!(
            "SELECT '{}' AS id, 'n' AS name, NULL AS note, 'nowhere' AS lane, 0 AS at, 1 AS other",
            Uuid::nil()
        ))
        .await;
        let err = record(&bad_lane).expect_err("no such lane");
        assert!(matches!(&err, StoreError::Corrupt(message) if message.contains("lane `nowhere`")), "{err}");
    }
}
