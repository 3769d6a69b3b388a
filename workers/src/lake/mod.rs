//! The data lake's events table: its columns, how a page of raw events
//! becomes an Arrow batch of them, and the Parquet files they are written
//! to.
//!
//! The layout is Hive-style, so Athena, Snowflake and DuckDB read it as
//! one table partitioned by tenant, date and hour:
//! `lake/events/tenant=<t>/date=<YYYY-MM-DD>/hour=<HH>/part-<n>.parquet`,
//! with a `_manifest.json` per partition. Columns are typed: the lake's own
//! (`event_id`, `event_name`, `user_id`, the times, the device) and one per
//! property the tenant's catalogue names, with the catalogue's type; what
//! the catalogue does not type goes to `extra`, as JSON. Personal data never
//! reaches a file in clear: `user_id` and every personal property are
//! pseudonymised (HMAC-SHA-256 under the tenant's key) or dropped.

pub mod files;
pub mod pseudonym;

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    path::Path,
    sync::Arc,
};

use arrow_array::{
    builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder},
    Array, ArrayRef, BooleanArray, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use longhaul_jobs::events::{catalogue::Catalogue, Pii, PropertyType, StoredEvent};
use parquet::{
    arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ArrowWriter, ProjectionMask},
    basic::Compression,
    file::properties::{EnabledStatistics, WriterProperties},
};
use serde_json::{Map, Value};

pub use files::{exclusive, part_names, TenantLake};

pub use pseudonym::Pseudonymiser;

/// The lake's table of events, under `lake/`.
pub const EVENTS_TABLE: &str = "events";

/// Rows per row group: large enough that a scan reads long runs of a
/// column, small enough that a writer holds one group in memory (about
/// 30 MB of typical events).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The partition path of an hour under a tenant: `date=…/hour=…`.
pub fn partition_path(hour: DateTime<Utc>) -> String {
    format!("date={}/hour={}", hour.format("%Y-%m-%d"), hour.format("%H"))
}

/// One property column: its name, type and what the lake keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyColumn {
    pub name: String,
    pub kind: PropertyType,
    pub pii: Pii,
}

/// The events table's columns for one tenant's catalogue.
#[derive(Debug, Clone)]
pub struct EventsTable {
    schema: SchemaRef,
    /// Every catalogue property by name, dropped ones included (so that a
    /// dropped property never falls through to `extra`).
    properties: HashMap<String, PropertyColumn>,
    /// The property columns written, in schema order.
    columns: Vec<PropertyColumn>,
}

/// The lake's own columns, before the properties'.
fn own_fields() -> Vec<Field> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("event_name", DataType::Utf8, false),
        Field::new("known", DataType::Boolean, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("occurred_at", time.clone(), false),
        Field::new("received_at", time, false),
        Field::new("session_id", DataType::Utf8, true),
        Field::new("device_platform", DataType::Utf8, true),
        Field::new("device_app_version", DataType::Utf8, true),
        Field::new("device_os_version", DataType::Utf8, true),
        Field::new("device_model", DataType::Utf8, true),
    ]
}

impl EventsTable {
    pub fn new(catalogue: &Catalogue) -> EventsTable {
        let mut fields = own_fields();
        let mut properties = HashMap::new();
        let mut columns = Vec::new();
        for (name, kind, pii) in catalogue.columns() {
            let column = PropertyColumn { name: name.clone(), kind, pii };
            if pii != Pii::Drop {
                fields.push(Field::new(&name, column_type(kind, pii), true));
                columns.push(column.clone());
            }
            properties.insert(name, column);
        }
        fields.push(Field::new("extra", DataType::Utf8, true));
        EventsTable { schema: Arc::new(Schema::new(fields)), properties, columns }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The property columns, for the manifest.
    pub fn property_columns(&self) -> &[PropertyColumn] {
        &self.columns
    }

    /// A page of events as one batch, personal data pseudonymised or left
    /// out.
    pub fn batch(&self, events: &[StoredEvent], pseudonyms: &Pseudonymiser) -> Result<RecordBatch, LakeError> {
        let rows = events.len();
        let mut event_id = StringBuilder::with_capacity(rows, rows * 36);
        let mut event_name = StringBuilder::with_capacity(rows, rows * 16);
        let mut known = BooleanBuilder::with_capacity(rows);
        let mut user_id = StringBuilder::with_capacity(rows, rows * 64);
        let mut occurred_at = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut received_at = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        let mut session_id = StringBuilder::new();
        let mut device = [StringBuilder::new(), StringBuilder::new(), StringBuilder::new(), StringBuilder::new()];
        let mut properties: Vec<ColumnBuilder> =
            self.columns.iter().map(|column| ColumnBuilder::new(column.kind, column.pii, rows)).collect();
        let index: HashMap<&str, usize> =
            self.columns.iter().enumerate().map(|(n, column)| (column.name.as_str(), n)).collect();
        let mut extra = StringBuilder::new();

        for event in events {
            event_id.append_value(event.id.to_string());
            event_name.append_value(&event.name);
            known.append_value(event.known);
            user_id.append_value(pseudonyms.pseudonym(&event.user_id));
            occurred_at.append_value(event.occurred_at.timestamp_micros());
            received_at.append_value(event.received_at.timestamp_micros());
            session_id.append_option(event.session_id.as_deref());
            for (builder, value) in device.iter_mut().zip([
                &event.device_platform,
                &event.device_app_version,
                &event.device_os_version,
                &event.device_model,
            ]) {
                builder.append_option(value.as_deref());
            }
            let mut filled = vec![false; properties.len()];
            let mut untyped = Map::new();
            if let Value::Object(map) = &event.properties {
                for (name, value) in map {
                    let column = self.properties.get(name);
                    let pii = column.map_or_else(|| Catalogue::untyped_pii(name), |column| column.pii);
                    if pii == Pii::Drop {
                        continue;
                    }
                    if let Some(&n) = index.get(name.as_str()) {
                        if properties[n].append(value, pseudonyms) {
                            filled[n] = true;
                            continue;
                        }
                    }
                    // Untyped, or of another type than the catalogue says now
                    // (it changed since the event came): kept, as JSON.
                    let kept = match pii {
                        Pii::Pseudonymise => Value::String(pseudonyms.pseudonym(&scalar_text(value))),
                        _ => value.clone(),
                    };
                    untyped.insert(name.clone(), kept);
                }
            }
            for (builder, filled) in properties.iter_mut().zip(filled) {
                if !filled {
                    builder.append_null();
                }
            }
            if untyped.is_empty() {
                extra.append_null();
            } else {
                extra.append_value(Value::Object(untyped).to_string());
            }
        }

        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(event_id.finish()),
            Arc::new(event_name.finish()),
            Arc::new(known.finish()),
            Arc::new(user_id.finish()),
            Arc::new(occurred_at.finish()),
            Arc::new(received_at.finish()),
            Arc::new(session_id.finish()),
        ];
        arrays.extend(device.iter_mut().map(|builder| Arc::new(builder.finish()) as ArrayRef));
        arrays.extend(properties.iter_mut().map(ColumnBuilder::finish));
        arrays.push(Arc::new(extra.finish()));
        RecordBatch::try_new(self.schema.clone(), arrays).map_err(|err| LakeError(err.to_string()))
    }
}

/// A property's column type: its own, or text once pseudonymised.
fn column_type(kind: PropertyType, pii: Pii) -> DataType {
    if pii == Pii::Pseudonymise {
        return DataType::Utf8;
    }
    match kind {
        PropertyType::String => DataType::Utf8,
        PropertyType::Integer => DataType::Int64,
        PropertyType::Number => DataType::Float64,
        PropertyType::Boolean => DataType::Boolean,
        PropertyType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// A value as the text its pseudonym is taken of: a string as itself,
/// anything else as its JSON.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The builder of one property column.
enum ColumnBuilder {
    Text(StringBuilder),
    Pseudonym(StringBuilder),
    Integer(Int64Builder),
    Number(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(kind: PropertyType, pii: Pii, rows: usize) -> ColumnBuilder {
        if pii == Pii::Pseudonymise {
            return ColumnBuilder::Pseudonym(StringBuilder::with_capacity(rows, rows * 64));
        }
        match kind {
            PropertyType::String => ColumnBuilder::Text(StringBuilder::new()),
            PropertyType::Integer => ColumnBuilder::Integer(Int64Builder::with_capacity(rows)),
            PropertyType::Number => ColumnBuilder::Number(Float64Builder::with_capacity(rows)),
            PropertyType::Boolean => ColumnBuilder::Boolean(BooleanBuilder::with_capacity(rows)),
            PropertyType::Timestamp => {
                ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"))
            }
        }
    }

    /// Appends `value` if it fits the column; false (nothing appended) if
    /// not.
    fn append(&mut self, value: &Value, pseudonyms: &Pseudonymiser) -> bool {
        match self {
            ColumnBuilder::Pseudonym(builder) => {
                builder.append_value(pseudonyms.pseudonym(&scalar_text(value)));
                true
            }
            ColumnBuilder::Text(builder) => value.as_str().map(|text| builder.append_value(text)).is_some(),
            ColumnBuilder::Integer(builder) => value.as_i64().map(|n| builder.append_value(n)).is_some(),
            ColumnBuilder::Number(builder) => value.as_f64().map(|n| builder.append_value(n)).is_some(),
            ColumnBuilder::Boolean(builder) => value.as_bool().map(|b| builder.append_value(b)).is_some(),
            ColumnBuilder::Timestamp(builder) => value
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|at| builder.append_value(at.timestamp_micros()))
                .is_some(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text(builder) | ColumnBuilder::Pseudonym(builder) => builder.append_null(),
            ColumnBuilder::Integer(builder) => builder.append_null(),
            ColumnBuilder::Number(builder) => builder.append_null(),
            ColumnBuilder::Boolean(builder) => builder.append_null(),
            ColumnBuilder::Timestamp(builder) => builder.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Text(builder) | ColumnBuilder::Pseudonym(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Integer(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Number(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Boolean(builder) => Arc::new(builder.finish()),
            ColumnBuilder::Timestamp(builder) => Arc::new(builder.finish()),
        }
    }
}

/// Something the lake's files could not be made of.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LakeError(pub String);

/// The lake's store or a spool failed: worth another attempt.
impl From<LakeError> for crate::error::JobError {
    fn from(err: LakeError) -> Self {
        crate::error::JobError::retryable(err.0)
    }
}

/// One Parquet file being written, to a local file: snappy pages,
/// dictionary encoding, page statistics, [`ROW_GROUP_ROWS`] per row group.
pub struct PartWriter {
    writer: ArrowWriter<File>,
    rows: usize,
}

impl PartWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<PartWriter, LakeError> {
        let file = File::create(path).map_err(|err| LakeError(format!("cannot create {}: {err}", path.display())))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_created_by(format!("longhaul {}", env!("CARGO_PKG_VERSION")))
            .build();
        let writer = ArrowWriter::try_new(file, schema, Some(properties)).map_err(|err| LakeError(err.to_string()))?;
        Ok(PartWriter { writer, rows: 0 })
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.writer.write(batch).map_err(|err| LakeError(err.to_string()))?;
        self.rows += batch.num_rows();
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the footer; the file is complete.
    pub fn finish(self) -> Result<usize, LakeError> {
        self.writer.close().map_err(|err| LakeError(err.to_string()))?;
        Ok(self.rows)
    }
}

/// What rewriting a file without some users did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    /// Rows removed (the users').
    pub removed: usize,
    /// Rows kept, now in the new file.
    pub kept: usize,
}

/// Writes `input` again to `output` without the rows whose `user_id` is in
/// `users` (pseudonyms), with the same schema and settings. `None`, and
/// nothing written, when no row is theirs: only the `user_id` column is read
/// to find out, so a file without them costs a column's read.
pub fn rewrite_without(input: &Path, output: &Path, users: &HashSet<String>) -> Result<Option<Rewrite>, LakeError> {
    let open = || {
        let file = File::open(input).map_err(|err| LakeError(format!("cannot open {}: {err}", input.display())))?;
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|err| LakeError(format!("not a Parquet file: {err}")))
    };
    let builder = open()?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["user_id"]);
    let mut removed = 0;
    for batch in builder.with_projection(mask).build().map_err(|err| LakeError(err.to_string()))? {
        let batch = batch.map_err(|err| LakeError(err.to_string()))?;
        removed += keep_mask(&batch, users)?.iter().filter(|keep| *keep == Some(false)).count();
    }
    if removed == 0 {
        return Ok(None);
    }
    let builder = open()?;
    let mut writer = PartWriter::create(output, builder.schema().clone())?;
    for batch in builder.build().map_err(|err| LakeError(err.to_string()))? {
        let batch = batch.map_err(|err| LakeError(err.to_string()))?;
        let keep = keep_mask(&batch, users)?;
        let kept =
            arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|err| LakeError(err.to_string()))?;
        writer.write(&kept)?;
    }
    let kept = writer.finish()?;
    Ok(Some(Rewrite { removed, kept }))
}

/// One event of a funnel's steps, as read back from the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEvent {
    /// The user's pseudonym.
    pub user: String,
    /// Which step (its index in the funnel).
    pub step: usize,
    /// When it happened, in microseconds since the epoch (UTC).
    pub at: i64,
    pub platform: Option<String>,
}

/// The events of a Parquet file that are one of `steps` and happened in
/// `[from, until)` (microseconds), reading only the four columns that
/// tell: `user_id`, `event_name`, `occurred_at`, `device_platform`.
pub fn read_steps(path: &Path, steps: &[String], from: i64, until: i64) -> Result<Vec<StepEvent>, LakeError> {
    use arrow_array::TimestampMicrosecondArray;
    let file = File::open(path).map_err(|err| LakeError(format!("cannot open {}: {err}", path.display())))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|err| LakeError(format!("not a Parquet file: {err}")))?;
    let columns = ["user_id", "event_name", "occurred_at", "device_platform"];
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns);
    let mut found = Vec::new();
    for batch in builder.with_projection(mask).build().map_err(|err| LakeError(err.to_string()))? {
        let batch = batch.map_err(|err| LakeError(err.to_string()))?;
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|column| column.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| LakeError(format!("the file has no text column `{name}`")))
        };
        let (users, names, platforms) = (text("user_id")?, text("event_name")?, text("device_platform")?);
        let times = batch
            .column_by_name("occurred_at")
            .and_then(|column| column.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or_else(|| LakeError("the file has no timestamp column `occurred_at`".into()))?;
        for row in 0..batch.num_rows() {
            let Some(step) = steps.iter().position(|step| step == names.value(row)) else { continue };
            let at = times.value(row);
            if at < from || at >= until || users.is_null(row) {
                continue;
            }
            let platform = (!platforms.is_null(row)).then(|| platforms.value(row).to_owned());
            found.push(StepEvent { user: users.value(row).to_owned(), step, at, platform });
        }
    }
    Ok(found)
}

/// The rows of a Parquet file, from its footer.
pub fn row_count(path: &Path) -> Result<usize, LakeError> {
    let file = File::open(path).map_err(|err| LakeError(format!("cannot open {}: {err}", path.display())))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|err| LakeError(format!("not a Parquet file: {err}")))?;
    Ok(usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
}

/// True for the rows of `batch` whose `user_id` is not one of `users`.
fn keep_mask(batch: &RecordBatch, users: &HashSet<String>) -> Result<BooleanArray, LakeError> {
    let column = batch
        .column_by_name("user_id")
        .and_then(|column| column.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| LakeError("the file has no text column `user_id`".into()))?;
    Ok(column.iter().map(|user| Some(user.is_none_or(|user| !users.contains(user)))).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;

    fn event(user: &str, name: &str, properties: Value) -> StoredEvent {
        let at: DateTime<Utc> = "2026-12-05T08:10:00Z".parse().expect("time");
        StoredEvent {
            id: Uuid::now_v7(),
            user_id: user.into(),
            name: name.into(),
            known: true,
            occurred_at: at,
            received_at: at,
            properties,
            session_id: None,
            device_platform: Some("ios".into()),
            device_app_version: None,
            device_os_version: None,
            device_model: None,
        }
    }

    #[test]
    fn partitions_are_named_by_date_and_hour() {
        assert_eq!(partition_path("2026-12-05T08:00:00Z".parse().expect("t")), "date=2026-12-05/hour=08");
    }

    #[test]
    fn personal_data_is_pseudonymised_or_dropped_and_never_kept_in_clear() {
        let table = EventsTable::new(&Catalogue::default_catalogue());
        let pseudonyms = Pseudonymiser::new(b"a key of the tenant's");
        let events = [event(
            "alice",
            "booking_confirmed",
            json!({"email": "alice@example.com", "passport_number": "X123", "value": 120.5, "phone": 5551234,
                   "coupon": "WINTER", "ip_address": "192.0.2.1"}),
        )];
        let batch = table.batch(&events, &pseudonyms).expect("a batch");
        let text = format!("{batch:?}");
        for secret in ["alice@example.com", "X123", "5551234", "192.0.2.1", "\"alice\""] {
            assert!(!text.contains(secret), "{secret} reached the batch in clear");
        }
        assert!(text.contains(&pseudonyms.pseudonym("alice@example.com")));
        assert!(text.contains(&pseudonyms.pseudonym("192.0.2.1")), "untyped personal data is pseudonymised in extra");
        assert!(text.contains("WINTER"), "an untyped clear property is kept in extra");
        assert!(batch.schema().field_with_name("passport_number").is_err(), "a dropped property has no column");
        assert_eq!(
            batch.schema().field_with_name("value").map(|f| f.data_type().clone()).ok(),
            Some(DataType::Float64)
        );
    }

    #[test]
    fn a_value_of_another_type_than_the_catalogue_says_goes_to_extra() {
        let table = EventsTable::new(&Catalogue::default_catalogue());
        let pseudonyms = Pseudonymiser::new(b"k");
        let batch = table.batch(&[event("bob", "search", json!({"results": "many"}))], &pseudonyms).expect("batch");
        let extra = batch.column_by_name("extra").map(|c| format!("{c:?}")).unwrap_or_default();
        assert!(extra.contains("many"), "{extra}");
    }
}
