//! The values a statement binds: one value ([`Arg`]), one column of many
//! ([`Column`]), or rows of them ([`Table`]), each bound in the encoding of
//! the database it runs on.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{postgres::PgArguments, query::Query, Postgres};
use uuid::Uuid;

/// A value bound to a statement, in the type the column has. `None` binds
/// NULL of that type.
#[derive(Clone, Debug)]
pub enum Arg {
    Uuid(Option<Uuid>),
    Time(Option<DateTime<Utc>>),
    Json(Option<Value>),
    Text(Option<String>),
    Int8(Option<i64>),
    Int4(Option<i32>),
    Int2(Option<i16>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Bytes(Option<Vec<u8>>),
    /// A whole column of values, bound as one PostgreSQL array.
    Array(Column),
}

macro_rules! arg_from {
    ($($variant:ident: $type:ty),* $(,)?) => {$(
        impl From<$type> for Arg {
            fn from(value: $type) -> Arg {
                Arg::$variant(Some(value))
            }
        }
        impl From<Option<$type>> for Arg {
            fn from(value: Option<$type>) -> Arg {
                Arg::$variant(value)
            }
        }
    )*};
}

arg_from!(
    Uuid: Uuid,
    Time: DateTime<Utc>,
    Json: Value,
    Text: String,
    Int8: i64,
    Int4: i32,
    Int2: i16,
    Float: f64,
    Bool: bool,
    Bytes: Vec<u8>,
);

impl From<&str> for Arg {
    fn from(value: &str) -> Arg {
        Arg::Text(Some(value.to_owned()))
    }
}

impl From<Option<&str>> for Arg {
    fn from(value: Option<&str>) -> Arg {
        Arg::Text(value.map(str::to_owned))
    }
}

impl From<&String> for Arg {
    fn from(value: &String) -> Arg {
        Arg::Text(Some(value.clone()))
    }
}

impl From<&Option<String>> for Arg {
    fn from(value: &Option<String>) -> Arg {
        Arg::Text(value.clone())
    }
}

impl From<&Value> for Arg {
    fn from(value: &Value) -> Arg {
        Arg::Json(Some(value.clone()))
    }
}

/// One column of a [`Table`], or the values of [`Sql::push_any`].
#[derive(Clone, Debug)]
pub enum Column {
    Uuid(Vec<Uuid>),
    Text(Vec<Option<String>>),
    Int8(Vec<i64>),
    Int4(Vec<i32>),
    Float(Vec<f64>),
    Time(Vec<Option<DateTime<Utc>>>),
    Json(Vec<Value>),
}

impl Column {
    pub(super) fn len(&self) -> usize {
        match self {
            Column::Uuid(values) => values.len(),
            Column::Text(values) => values.len(),
            Column::Int8(values) => values.len(),
            Column::Int4(values) => values.len(),
            Column::Float(values) => values.len(),
            Column::Time(values) => values.len(),
            Column::Json(values) => values.len(),
        }
    }

    pub(super) fn postgres_type(&self) -> &'static str {
        match self {
            Column::Uuid(_) => "uuid[]",
            Column::Text(_) => "text[]",
            Column::Int8(_) => "int8[]",
            Column::Int4(_) => "int4[]",
            Column::Float(_) => "float8[]",
            Column::Time(_) => "timestamptz[]",
            Column::Json(_) => "jsonb[]",
        }
    }

    pub(super) fn bind_postgres<'q>(self, query: Query<'q, Postgres, PgArguments>) -> Query<'q, Postgres, PgArguments> {
        match self {
            Column::Uuid(values) => query.bind(values),
            Column::Text(values) => query.bind(values),
            Column::Int8(values) => query.bind(values),
            Column::Int4(values) => query.bind(values),
            Column::Float(values) => query.bind(values),
            Column::Time(values) => query.bind(values),
            Column::Json(values) => query.bind(values),
        }
    }

    /// The values as SQLite holds them, in JSON: ids as text, times as
    /// milliseconds, documents as themselves.
    pub(super) fn json_values(self) -> Vec<Value> {
        match self {
            Column::Uuid(values) => values.into_iter().map(|id| Value::String(id.to_string())).collect(),
            Column::Text(values) => values.into_iter().map(|text| text.map_or(Value::Null, Value::String)).collect(),
            Column::Int8(values) => values.into_iter().map(Value::from).collect(),
            Column::Int4(values) => values.into_iter().map(Value::from).collect(),
            Column::Float(values) => values.into_iter().map(Value::from).collect(),
            Column::Time(values) => {
                values.into_iter().map(|time| time.map_or(Value::Null, |t| t.timestamp_millis().into())).collect()
            }
            Column::Json(values) => values,
        }
    }
}

macro_rules! column_from {
    ($($variant:ident: $type:ty),* $(,)?) => {$(
        impl From<Vec<$type>> for Column {
            fn from(values: Vec<$type>) -> Column {
                Column::$variant(values)
            }
        }
    )*};
}

column_from!(
    Uuid: Uuid,
    Text: Option<String>,
    Int8: i64,
    Int4: i32,
    Float: f64,
    Time: Option<DateTime<Utc>>,
    Json: Value,
);

impl From<Vec<String>> for Column {
    fn from(values: Vec<String>) -> Column {
        Column::Text(values.into_iter().map(Some).collect())
    }
}

impl From<Vec<DateTime<Utc>>> for Column {
    fn from(values: Vec<DateTime<Utc>>) -> Column {
        Column::Time(values.into_iter().map(Some).collect())
    }
}

/// Rows of values bound as one ([`Sql::push_table`]), built a column at a
/// time; every column has one value per row.
#[derive(Debug, Default)]
#[must_use]
pub struct Table {
    pub(super) columns: Vec<(&'static str, Column)>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn column(mut self, name: &'static str, values: impl Into<Column>) -> Table {
        self.columns.push((name, values.into()));
        self
    }

    /// The rows, each a JSON array of its columns' values (for SQLite).
    pub(super) fn rows(self) -> Vec<Value> {
        let len = self.columns.first().map_or(0, |(_, column)| column.len());
        let mut rows = vec![Vec::with_capacity(self.columns.len()); len];
        for (_, column) in self.columns {
            for (row, value) in rows.iter_mut().zip(column.json_values()) {
                row.push(value);
            }
        }
        rows.into_iter().map(Value::Array).collect()
    }
}
