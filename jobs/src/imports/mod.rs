//! Bulk imports: files tenant admins upload, and the rows a `bulk_import`
//! job loads from them.
//!
//! An admin announces a file (`POST /v1/uploads`), which makes a `pending`
//! [`Upload`] and an upload URL (a presigned S3 PUT, or the API's own upload
//! path); the bytes land at `tenants/<tenant>/uploads/<id>`. A `bulk_import`
//! job then streams the file, turns each row into an [`ImportedReservation`]
//! or an [`ImportedUser`] (or the reasons it cannot be one, see [`rows`]),
//! and upserts them a batch at a time ([`ImportStore`]). A row is
//! identified by its key — (tenant, user, type, reservation number) for a
//! reservation, (tenant, user) for a user — and a row equal to what is
//! stored writes nothing, so the same file imported twice changes nothing.

mod rows;
mod sql;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use rows::{normalise_locale, reservation_row, user_row, RowError, IMPORT_YEARS, USER_ID_MAX_CHARS};

use crate::{
    model::Scope,
    objects::ObjectKey,
    store::{from_row, AttemptRef, Columns, Result},
    travel::{string_enum, ReservationFields},
};

string_enum!(
    UploadStatus {
        Pending = "pending",
        Uploaded = "uploaded",
    }
);

string_enum!(
    /// What an upload is for.
    UploadPurpose {
        Import = "import",
    }
);

string_enum!(
    /// What a `bulk_import` loads.
    ImportEntity {
        Reservations = "reservations",
        Users = "users",
    }
);

string_enum!(
    /// How a `bulk_import` writes: `upsert`, a row's key decides whether
    /// it is inserted or updated.
    ImportMode {
        Upsert = "upsert",
    }
);

/// The file types an import reads, as declared by the uploader.
pub const UPLOAD_TYPES: [&str; 4] = ["text/csv", "application/x-ndjson", "application/jsonl", "application/json-lines"];

/// The largest file an upload may be: 4 GiB.
pub const MAX_UPLOAD_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// How an import file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportFormat {
    /// CSV with a header row (RFC 4180).
    Csv,
    /// One JSON object per line.
    JsonLines,
}

impl ImportFormat {
    /// The format of a declared content type (parameters such as
    /// `; charset=utf-8` aside), if an import reads it.
    pub fn of_content_type(content_type: &str) -> Option<ImportFormat> {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "text/csv" => Some(ImportFormat::Csv),
            "application/x-ndjson" | "application/jsonl" | "application/json-lines" => Some(ImportFormat::JsonLines),
            _ => None,
        }
    }
}

/// A file uploaded for a job to read.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Upload {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    /// The admin who uploaded it.
    pub user_id: String,
    pub purpose: UploadPurpose,
    /// As declared: `text/csv`, or `application/x-ndjson` for JSON Lines.
    pub content_type: String,
    /// `pending` until the bytes went through the API (or, for a presigned
    /// S3 PUT, until a job found them); then `uploaded`.
    pub status: UploadStatus,
    /// The size in bytes: as uploaded, or as declared for a presigned PUT.
    pub size_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub uploaded_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub object_key: String,
}

impl Upload {
    /// Where its bytes are, under its tenant.
    pub fn key(&self) -> Result<ObjectKey> {
        upload_key(&self.tenant_id, self.id)
    }

    pub fn format(&self) -> Option<ImportFormat> {
        ImportFormat::of_content_type(&self.content_type)
    }
}

/// `uploads/<id>` under the tenant's prefix.
pub fn upload_key(tenant_id: &str, id: Uuid) -> Result<ObjectKey> {
    ObjectKey::new(tenant_id, &format!("uploads/{id}"))
        .map_err(|err| crate::store::StoreError::Config(format!("no object key for upload {id}: {err}")))
}

/// An upload being announced.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUpload {
    pub tenant_id: String,
    pub user_id: String,
    pub purpose: UploadPurpose,
    pub content_type: String,
    /// Declared by the client, for a presigned PUT of exactly that size.
    pub size_bytes: Option<u64>,
}

/// A reservation row of an import file, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedReservation {
    pub user_id: String,
    /// What the row says. `status`, `details`, `city` and `country` are
    /// not in the file: a new reservation is `confirmed`, placed at its
    /// destination airport; an existing one keeps its own.
    pub fields: ReservationFields,
    /// Columns the row left empty keep their stored value (`ends_at`,
    /// `from`, `to`); these are the ones it gave.
    pub has_ends_at: bool,
    pub has_origin: bool,
    pub has_destination: bool,
}

impl ImportedReservation {
    /// The key a reservation is found by, beside its tenant and user.
    pub fn dedupe_key(&self) -> String {
        format!("import/{}/{}", self.fields.kind, self.fields.reservation_number)
    }

    /// What the reservation becomes: `before` with what this row gives.
    pub fn merged_into(&self, before: &ReservationFields) -> ReservationFields {
        let row = &self.fields;
        ReservationFields {
            kind: row.kind,
            reservation_number: row.reservation_number.clone(),
            provider: row.provider.clone(),
            starts_at: row.starts_at,
            ends_at: if self.has_ends_at { row.ends_at } else { before.ends_at },
            origin: if self.has_origin { row.origin.clone() } else { before.origin.clone() },
            destination: if self.has_destination { row.destination.clone() } else { before.destination.clone() },
            ..before.clone()
        }
    }
}

/// A user row of an import file, checked. An empty cell (`None`) leaves
/// the stored value as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportedUser {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    /// An IANA time zone, such as `America/Sao_Paulo`.
    pub time_zone: Option<String>,
    /// A BCP 47 language tag, such as `pt-BR`.
    pub locale: Option<String>,
}

/// A tenant's user, as imported.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UserProfile {
    pub user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What one batch of an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
}

impl std::ops::AddAssign for BatchCounts {
    fn add_assign(&mut self, other: BatchCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// Uploads and the rows imports write, on both databases.
#[async_trait]
pub trait ImportStore: Send + Sync {
    async fn insert_upload(&self, upload: NewUpload) -> Result<Upload>;

    async fn get_upload(&self, scope: &Scope, id: Uuid) -> Result<Option<Upload>>;

    /// Records that the bytes are stored, and their size. False when there
    /// is no such upload.
    async fn mark_uploaded(&self, id: Uuid, size_bytes: u64) -> Result<bool>;

    /// Upserts a batch of reservation rows (at most one per key) in one
    /// transaction: new keys are inserted (`source: manual`, an admin's
    /// entry in bulk), changed ones updated with their history, equal ones
    /// left alone, and the trips of the users whose reservations moved are
    /// regrouped once each. With `attempt`, the writes are fenced on it:
    /// `None` when it no longer holds its job, and nothing is written.
    async fn import_reservations(
        &self,
        tenant_id: &str,
        attempt: Option<AttemptRef>,
        rows: &[ImportedReservation],
    ) -> Result<Option<BatchCounts>>;

    /// Upserts a batch of user rows (at most one per user) in one
    /// statement, fenced as [`ImportStore::import_reservations`] is.
    async fn import_users(
        &self,
        tenant_id: &str,
        attempt: Option<AttemptRef>,
        rows: &[ImportedUser],
    ) -> Result<Option<BatchCounts>>;

    async fn get_user_profile(&self, tenant_id: &str, user_id: &str) -> Result<Option<UserProfile>>;
}

pub(crate) fn upload_from_row(row: &impl Columns) -> Result<Upload> {
    from_row!(row => Upload {
        id, tenant_id, user_id, purpose, content_type, status, size_bytes, created_at, uploaded_at, object_key,
    })
}

pub(crate) fn profile_from_row(row: &impl Columns) -> Result<UserProfile> {
    from_row!(row => UserProfile { user_id, email, name, time_zone, locale, created_at, updated_at })
}
