//! Photos users register for their yearly video.
//!
//! A client announces a photo (`POST /v1/media`), which makes a `pending`
//! row and an upload URL: a presigned S3 PUT, or the API's own upload
//! endpoint on a local object directory. Once the bytes are there they are
//! checked: the type is sniffed from the content (the client's word is kept,
//! but not trusted), and the size is capped. The row then becomes `ready` or
//! `rejected`, with the reason. Objects live under the tenant's prefix, at
//! `tenants/<tenant>/media/<id>`.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{model::Scope, objects::ObjectKey, store::Result, travel::string_enum};

string_enum!(
    MediaStatus {
        Pending = "pending",
        Ready = "ready",
        Rejected = "rejected",
    }
);

/// The image types videos are made from.
pub const MEDIA_TYPES: [&str; 3] = ["image/jpeg", "image/png", "image/webp"];

/// The largest photo accepted: 25 MiB.
pub const MAX_MEDIA_BYTES: u64 = 25 * 1024 * 1024;

/// A registered photo.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Media {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: String,
    #[serde(skip)]
    pub user_id: String,
    /// `pending` until the bytes are uploaded and checked; then `ready`, or
    /// `rejected` with an `error`.
    pub status: MediaStatus,
    /// What the client said it would upload.
    pub declared_type: String,
    /// What the bytes are, sniffed from them; set once checked.
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub taken_at: Option<DateTime<Utc>>,
    pub caption: Option<String>,
    /// Why it was rejected.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip)]
    pub object_key: String,
}

impl Media {
    /// Where its bytes are, under its tenant.
    pub fn key(&self) -> Result<ObjectKey> {
        media_key(&self.tenant_id, self.id)
    }
}

/// `media/<id>` under the tenant's prefix.
pub fn media_key(tenant_id: &str, id: Uuid) -> Result<ObjectKey> {
    ObjectKey::new(tenant_id, &format!("media/{id}"))
        .map_err(|err| crate::store::StoreError::Config(format!("no object key for media {id}: {err}")))
}

/// A photo being announced.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMedia {
    pub tenant_id: String,
    pub user_id: String,
    pub declared_type: String,
    pub taken_at: Option<DateTime<Utc>>,
    pub caption: Option<String>,
}

/// What checking the uploaded bytes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCheck {
    Ready { content_type: &'static str, size_bytes: u64 },
    Rejected { reason: String },
}

/// The image type of a file, from its first bytes; None when it is none of
/// [`MEDIA_TYPES`].
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Checks an upload by its first bytes and its size.
pub fn check(head: &[u8], size_bytes: u64) -> MediaCheck {
    if size_bytes > MAX_MEDIA_BYTES {
        return MediaCheck::Rejected {
            reason: format!("the file has {size_bytes} bytes; a photo may have at most {MAX_MEDIA_BYTES}"),
        };
    }
    match sniff(head) {
        Some(content_type) => MediaCheck::Ready { content_type, size_bytes },
        None if size_bytes == 0 => MediaCheck::Rejected { reason: "the file is empty".into() },
        None => MediaCheck::Rejected { reason: "the file is not a JPEG, PNG or WebP image".into() },
    }
}

/// Photos, on both databases.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Registers a photo, `pending` until its bytes are checked.
    async fn insert_media(&self, media: NewMedia) -> Result<Media>;

    async fn get_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>>;

    /// Photos, newest first; `after` is the last of the previous page.
    async fn list_media(&self, scope: &Scope, after: Option<(DateTime<Utc>, Uuid)>, limit: u32) -> Result<Vec<Media>>;

    /// Records what checking a `pending` photo found. False when it is not
    /// pending (any more).
    async fn settle_media(&self, id: Uuid, check: &MediaCheck) -> Result<bool>;

    /// Forgets a photo; returns it, so that its object can be deleted too.
    async fn delete_media(&self, scope: &Scope, id: Uuid) -> Result<Option<Media>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_sniffed_from_the_content() {
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10]), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), None, "a WAV is RIFF too");
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b"<svg xmlns="), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn checks_name_the_problem() {
        assert_eq!(
            check(&[0xFF, 0xD8, 0xFF], 1_000),
            MediaCheck::Ready { content_type: "image/jpeg", size_bytes: 1_000 }
        );
        assert!(matches!(check(b"%PDF-1.7", 10), MediaCheck::Rejected { reason } if reason.contains("not a JPEG")));
        assert!(matches!(check(b"", 0), MediaCheck::Rejected { reason } if reason.contains("empty")));
        assert!(
            matches!(check(&[0xFF, 0xD8, 0xFF], MAX_MEDIA_BYTES + 1), MediaCheck::Rejected { reason } if reason.contains("at most"))
        );
    }
}
