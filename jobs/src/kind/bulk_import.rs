//! `bulk_import`: an admin's file of reservations or users, loaded row by
//! row (see `longhaul_jobs::imports`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::Kind;
use crate::{
    imports::{ImportEntity, ImportMode},
    model::Lane,
};

pub struct BulkImport;

impl Kind for BulkImport {
    const NAME: &'static str = "bulk_import";
    const LANE: Lane = Lane::Data;
    // A file of millions of rows; a retry starts over, and the rows it
    // already loaded come back `unchanged`.
    const TIMEOUT: Duration = Duration::from_secs(2 * 60 * 60);
    const MAX_ATTEMPTS: i32 = 3;
    const ADMIN_ONLY: bool = true;
    type Payload = BulkImportPayload;
}

/// `bulk_import`: which upload to load, as what.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkImportPayload {
    /// The `id` that `POST /v1/uploads` answered.
    pub upload_id: Uuid,
    pub entity: ImportEntity,
    /// `upsert` (the only mode): a row's key decides whether it is inserted
    /// or updated; a row equal to what is stored changes nothing.
    #[serde(default = "upsert")]
    pub mode: ImportMode,
}

fn upsert() -> ImportMode {
    ImportMode::Upsert
}
