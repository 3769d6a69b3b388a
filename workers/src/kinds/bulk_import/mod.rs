//! `bulk_import`: loads an admin's upload — reservations or users, CSV or
//! JSON Lines — row by row.
//!
//! The file is streamed from the object store (see [`read`]): memory holds
//! one chunk, one row and one batch, whatever the file's size. Each row is
//! sanitised and checked (`longhaul_jobs::imports::rows`); a good one joins
//! the batch, a bad one goes to the rejects file (`row, field, reason`, one
//! line per bad field), spooled to disk and stored as the artifact
//! `rejects.csv`. A batch of [`BATCH_ROWS`] is upserted in one transaction,
//! fenced on the attempt. Rows are identified by their key, and a row equal
//! to what is stored writes nothing: a retried attempt, or the same file
//! imported again, finds its rows `unchanged`.

mod read;

use std::collections::HashSet;

use async_trait::async_trait;
use longhaul_jobs::{
    admin::NewAudit,
    imports::{reservation_row, user_row, BatchCounts, ImportEntity, ImportFormat, RowError, UploadStatus},
    kind::{self, BulkImportPayload},
    model::Scope,
    objects::ObjectReader,
};
use serde_json::json;

use crate::{context::JobContext, error::JobError, handler::Handler, JobResult};
use read::{CsvRows, FileError, JsonRows, Row};

/// Rows per upsert: one transaction, and at most this many rows in memory.
pub const BATCH_ROWS: usize = 1_000;

const RESERVATION_COLUMNS: &[&str] =
    &["user", "type", "reservation_number", "provider", "starts_at", "ends_at", "from", "to"];
const RESERVATION_REQUIRED: &[&str] = &["user", "type", "reservation_number", "provider", "starts_at"];
const USER_COLUMNS: &[&str] = &["user", "email", "name", "time_zone", "locale"];
const USER_REQUIRED: &[&str] = &["user", "email"];

pub struct BulkImport;

#[async_trait]
impl Handler for BulkImport {
    type Kind = kind::BulkImport;

    async fn run(&self, ctx: &JobContext, payload: BulkImportPayload) -> JobResult {
        let tenant = ctx.job.tenant_id.clone();
        let scope = Scope::Tenant { tenant_id: tenant.clone() };
        let id = payload.upload_id;
        let Some(upload) = ctx.store.get_upload(&scope, id).await? else {
            return Err(JobError::permanent(format!("no upload `{id}` in this tenant")));
        };
        let Some(format) = upload.format() else {
            return Err(JobError::permanent(format!(
                "upload `{id}` is `{}`, which an import cannot read; upload CSV (`text/csv`) or JSON Lines \
                 (`application/x-ndjson`)",
                upload.content_type
            )));
        };
        let key = upload.key()?;
        let reader = ctx
            .objects()?
            .get(&key)
            .await
            .map_err(|err| JobError::retryable(format!("cannot read upload `{id}`: {err}")))?
            .ok_or_else(|| {
                JobError::permanent(format!("upload `{id}` has no file yet: PUT it to its `upload_url` first"))
            })?;
        let (columns, required) = match payload.entity {
            ImportEntity::Reservations => (RESERVATION_COLUMNS, RESERVATION_REQUIRED),
            ImportEntity::Users => (USER_COLUMNS, USER_REQUIRED),
        };
        let mut rows = Rows::open(format, reader, columns, required).await.map_err(file_error)?;
        let mut run = Run::new(ctx, payload.entity, upload.size_bytes)?;
        while let Some(row) = rows.next().await.map_err(file_error)? {
            run.take(row, columns).await?;
            if run.pending() >= BATCH_ROWS {
                run.flush(rows.bytes_read()).await?;
            }
        }
        run.flush(rows.bytes_read()).await?;
        let size = rows.bytes_read();
        if upload.status == UploadStatus::Pending {
            ctx.store.mark_uploaded(id, size).await?;
        }
        run.finish(rows.ignored(), upload.id, size).await
    }
}

fn file_error(err: FileError) -> JobError {
    match err {
        FileError::Format(reason) => JobError::permanent(format!("the file cannot be imported: {reason}")),
        FileError::Io(err) => JobError::retryable(format!("cannot read the upload: {err}")),
    }
}

/// The rows of a file of either format.
enum Rows {
    Csv(Box<CsvRows<ObjectReader>>, Vec<String>),
    Json(JsonRows<ObjectReader>),
}

impl Rows {
    async fn open(
        format: ImportFormat,
        reader: ObjectReader,
        columns: &'static [&'static str],
        required: &[&str],
    ) -> Result<Rows, FileError> {
        Ok(match format {
            ImportFormat::Csv => {
                let (rows, ignored) = CsvRows::open(reader, columns, required).await?;
                Rows::Csv(Box::new(rows), ignored)
            }
            ImportFormat::JsonLines => Rows::Json(JsonRows::new(reader, columns)),
        })
    }

    async fn next(&mut self) -> Result<Option<Row>, FileError> {
        match self {
            Rows::Csv(rows, _) => rows.next().await,
            Rows::Json(rows) => rows.next().await,
        }
    }

    fn bytes_read(&self) -> u64 {
        match self {
            Rows::Csv(rows, _) => rows.bytes_read(),
            Rows::Json(rows) => rows.bytes_read(),
        }
    }

    fn ignored(&self) -> Vec<String> {
        match self {
            Rows::Csv(_, ignored) => ignored.clone(),
            Rows::Json(_) => Vec::new(),
        }
    }
}

/// A batch of checked rows, of one entity, with their keys (a key seen
/// again flushes the batch first, so rows apply in the file's order).
enum Batch {
    Reservations(Vec<longhaul_jobs::imports::ImportedReservation>),
    Users(Vec<longhaul_jobs::imports::ImportedUser>),
}

/// One import as it runs: the batch, the rejects spool, the counts.
struct Run<'a> {
    ctx: &'a JobContext,
    entity: ImportEntity,
    size: Option<u64>,
    batch: Batch,
    keys: HashSet<(String, String)>,
    rejects: csv::Writer<std::io::BufWriter<std::fs::File>>,
    spool: tempfile::NamedTempFile,
    rows: u64,
    rejected: u64,
    counts: BatchCounts,
}

impl<'a> Run<'a> {
    fn new(ctx: &'a JobContext, entity: ImportEntity, size: Option<i64>) -> Result<Run<'a>, JobError> {
        let io = |err: std::io::Error| JobError::retryable(format!("cannot spool the rejects: {err}"));
        let spool = tempfile::NamedTempFile::new().map_err(io)?;
        let mut rejects = csv::Writer::from_writer(std::io::BufWriter::new(spool.reopen().map_err(io)?));
        rejects.write_record(["row", "field", "reason"]).map_err(|err| JobError::retryable(err.to_string()))?;
        let batch = match entity {
            ImportEntity::Reservations => Batch::Reservations(Vec::with_capacity(BATCH_ROWS)),
            ImportEntity::Users => Batch::Users(Vec::with_capacity(BATCH_ROWS)),
        };
        Ok(Run {
            ctx,
            entity,
            size: size.and_then(|size| u64::try_from(size).ok()).filter(|size| *size > 0),
            batch,
            keys: HashSet::new(),
            rejects,
            spool,
            rows: 0,
            rejected: 0,
            counts: BatchCounts::default(),
        })
    }

    fn pending(&self) -> usize {
        match &self.batch {
            Batch::Reservations(rows) => rows.len(),
            Batch::Users(rows) => rows.len(),
        }
    }

    /// Checks a row: into the batch, or into the rejects.
    async fn take(&mut self, row: Row, columns: &[&str]) -> Result<(), JobError> {
        self.rows += 1;
        let (number, cells) = match row {
            Row::Unreadable { number, reason } => return self.reject(number, &[RowError::new("row", reason)]),
            Row::Cells { number, cells } => (number, cells),
        };
        let cell = |name: &str| columns.iter().position(|c| *c == name).and_then(|at| cells[at].clone());
        match self.entity {
            ImportEntity::Reservations => match reservation_row(cell) {
                Err(errors) => self.reject(number, &errors),
                Ok(row) => {
                    if !self.keys.insert((row.user_id.clone(), row.dedupe_key())) {
                        self.flush_batch().await?;
                        self.keys.insert((row.user_id.clone(), row.dedupe_key()));
                    }
                    if let Batch::Reservations(rows) = &mut self.batch {
                        rows.push(row);
                    }
                    Ok(())
                }
            },
            ImportEntity::Users => match user_row(cell) {
                Err(errors) => self.reject(number, &errors),
                Ok(row) => {
                    if !self.keys.insert((row.user_id.clone(), String::new())) {
                        self.flush_batch().await?;
                        self.keys.insert((row.user_id.clone(), String::new()));
                    }
                    if let Batch::Users(rows) = &mut self.batch {
                        rows.push(row);
                    }
                    Ok(())
                }
            },
        }
    }

    fn reject(&mut self, number: u64, errors: &[RowError]) -> Result<(), JobError> {
        self.rejected += 1;
        for error in errors {
            let record = [number.to_string(), defused(&error.field), defused(&error.reason)];
            self.rejects
                .write_record(&record)
                .map_err(|err| JobError::retryable(format!("cannot spool the rejects: {err}")))?;
        }
        Ok(())
    }

    /// Upserts the batch, and reports progress by the bytes read.
    async fn flush(&mut self, read: u64) -> Result<(), JobError> {
        self.flush_batch().await?;
        if let Some(size) = self.size {
            let percent = (read.saturating_mul(100) / size).min(99);
            self.ctx.set_progress(i16::try_from(percent).unwrap_or(99)).await;
        }
        Ok(())
    }

    async fn flush_batch(&mut self) -> Result<(), JobError> {
        if self.ctx.cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        let (tenant, attempt) = (&self.ctx.job.tenant_id, Some(self.ctx.attempt()));
        let done = match &mut self.batch {
            Batch::Reservations(rows) if !rows.is_empty() => {
                let done = self.ctx.store.import_reservations(tenant, attempt, rows).await?;
                rows.clear();
                done
            }
            Batch::Users(rows) if !rows.is_empty() => {
                let done = self.ctx.store.import_users(tenant, attempt, rows).await?;
                rows.clear();
                done
            }
            _ => return Ok(()),
        };
        self.keys.clear();
        let counts = done.ok_or_else(|| JobError::retryable("this attempt lost its lease; another run has the job"))?;
        self.counts += counts;
        metrics::counter!("longhaul_import_rows_total", "outcome" => "inserted").increment(counts.inserted);
        metrics::counter!("longhaul_import_rows_total", "outcome" => "updated").increment(counts.updated);
        metrics::counter!("longhaul_import_rows_total", "outcome" => "unchanged").increment(counts.unchanged);
        Ok(())
    }

    /// Stores the rejects, audits the import, and makes the job's result.
    async fn finish(mut self, ignored: Vec<String>, upload: uuid::Uuid, bytes: u64) -> JobResult {
        metrics::counter!("longhaul_import_rows_total", "outcome" => "rejected").increment(self.rejected);
        let io = |err: std::io::Error| JobError::retryable(format!("cannot spool the rejects: {err}"));
        self.rejects.flush().map_err(io)?;
        drop(self.rejects);
        self.ctx.put_artifact_file("rejects.csv", "text/csv", self.spool.path()).await?;
        let counts = self.counts;
        let imported = counts.inserted + counts.updated;
        let result = json!({
            "entity": self.entity,
            "rows": self.rows,
            "imported": imported,
            "unchanged": counts.unchanged,
            "rejected": self.rejected,
            "inserted": counts.inserted,
            "updated": counts.updated,
            "bytes": bytes,
            "ignored_columns": ignored,
        });
        let tenant = self.ctx.job.tenant_id.clone();
        let entry = NewAudit {
            tenant_id: tenant.clone(),
            actor: self.ctx.job.user_id.clone(),
            role: "admin".into(),
            action: format!("import.{}", self.entity),
            target: format!("uploads/{upload}"),
            subject_tenant: Some(tenant),
            detail: result.clone(),
            source_ip: None,
            user_agent: None,
        };
        self.ctx.store.record_audit(&entry).await?;
        tracing::info!(
            rows = self.rows,
            imported,
            unchanged = counts.unchanged,
            rejected = self.rejected,
            "imported an upload"
        );
        Ok(Some(result))
    }
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, a tab
/// or a carriage return first) is prefixed with `'`: the rejects file is
/// opened by admins, and its reasons quote what the upload said.
fn defused(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::defused;

    #[test]
    fn a_cell_a_spreadsheet_would_run_is_defused_and_others_are_left_alone() {
        assert_eq!(defused("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defused("+1"), "'+1");
        assert_eq!(defused("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defused("is required"), "is required");
        assert_eq!(defused("`=1` is not a type"), "`=1` is not a type");
    }
}
