//! Photos users register for their yearly video.
//!
//! A client announces a photo (`POST /v1/media`), which makes a `pending`
//! row and an upload URL: a presigned S3 PUT, or the API's own upload
//! endpoint on a local object directory. Once the bytes are there they are
//! checked: the type is sniffed from the content (the client's word is kept,
//! but not trusted), and the size is capped. The row then becomes `ready` or
//! `rejected`, with the reason. Objects live under the tenant's prefix, at
//! `tenants/<tenant>/media/<id>`.

use crate::store::{from_row, Columns};
mod sql;

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

/// The most pixels a photo may have: 100 megapixels (decoding one takes
/// 400 MB of RGBA).
pub const MAX_PIXELS: u64 = 100_000_000;

/// The start of a file that is read to check it: enough for a JPEG's
/// frame header after large EXIF and colour-profile segments.
pub const CHECK_BYTES: usize = 256 * 1024;

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
    /// Its size in pixels, as stored (before any EXIF rotation); set once
    /// checked.
    pub width: Option<i32>,
    pub height: Option<i32>,
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
    Ready { content_type: &'static str, size_bytes: u64, width: u32, height: u32 },
    Rejected { reason: String },
}

/// A check as the `media` row's columns.
pub(crate) struct CheckColumns<'a> {
    pub status: &'static str,
    pub content_type: Option<&'static str>,
    pub size_bytes: Option<i64>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub error: Option<&'a str>,
}

impl MediaCheck {
    pub(crate) fn columns(&self) -> CheckColumns<'_> {
        match self {
            MediaCheck::Ready { content_type, size_bytes, width, height } => CheckColumns {
                status: "ready",
                content_type: Some(content_type),
                size_bytes: Some(i64::try_from(*size_bytes).unwrap_or(i64::MAX)),
                width: Some(i32::try_from(*width).unwrap_or(i32::MAX)),
                height: Some(i32::try_from(*height).unwrap_or(i32::MAX)),
                error: None,
            },
            MediaCheck::Rejected { reason } => CheckColumns {
                status: "rejected",
                content_type: None,
                size_bytes: None,
                width: None,
                height: None,
                error: Some(reason),
            },
        }
    }
}

/// The start of a file and its size, taken as its bytes stream past.
#[derive(Debug, Default)]
pub struct Probe {
    head: Vec<u8>,
    size: u64,
}

impl Probe {
    /// Takes the next chunk. False once the file is over [`MAX_MEDIA_BYTES`]:
    /// there is no need to read on.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let wanted = CHECK_BYTES.saturating_sub(self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..wanted]);
        self.size += chunk.len() as u64;
        self.size <= MAX_MEDIA_BYTES
    }

    /// The verdict on what was fed.
    pub fn check(&self) -> MediaCheck {
        check(&self.head, self.size)
    }
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

/// Checks an upload by its first [`CHECK_BYTES`] bytes (or all of it, if
/// shorter) and its size: the type from the signature, then the dimensions
/// from the image's own header, which must parse.
pub fn check(head: &[u8], size_bytes: u64) -> MediaCheck {
    let rejected = |reason: String| MediaCheck::Rejected { reason };
    if size_bytes == 0 {
        return rejected("the file is empty".into());
    }
    if size_bytes > MAX_MEDIA_BYTES {
        return rejected(format!("the file has {size_bytes} bytes; a photo may have at most {MAX_MEDIA_BYTES}"));
    }
    let Some(content_type) = sniff(head) else {
        return rejected("the file is not a JPEG, PNG or WebP image".into());
    };
    let format = match content_type {
        "image/jpeg" => image::ImageFormat::Jpeg,
        "image/png" => image::ImageFormat::Png,
        _ => image::ImageFormat::WebP,
    };
    let mut reader = image::ImageReader::new(std::io::Cursor::new(head));
    reader.set_format(format);
    let (width, height) = match reader.into_dimensions() {
        Ok(dimensions) => dimensions,
        Err(err) => return rejected(format!("the {content_type} header cannot be read: {err}")),
    };
    let pixels = u64::from(width) * u64::from(height);
    if width == 0 || height == 0 {
        return rejected(format!("the image is {width}×{height} pixels"));
    }
    if pixels > MAX_PIXELS {
        return rejected(format!(
            "the image is {width}×{height} pixels ({:.1} megapixels); at most {} are accepted",
            pixels as f64 / 1e6,
            MAX_PIXELS / 1_000_000
        ));
    }
    MediaCheck::Ready { content_type, size_bytes, width, height }
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

    /// How many photos `scope` sees, whatever their status (a rejected
    /// photo keeps its row until it is deleted). The API caps a user's.
    async fn count_media(&self, scope: &Scope) -> Result<u64>;
}

pub(crate) fn media_from_row(row: &impl Columns) -> Result<Media> {
    from_row!(row => Media {
        id, tenant_id, user_id, status, declared_type, content_type, size_bytes, width, height, taken_at, caption,
        error, object_key, created_at,
    })
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

    /// A real image of `width`×`height`, encoded in `format`.
    fn encoded(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
        let mut bytes = std::io::Cursor::new(Vec::new());
        image::RgbImage::from_pixel(width, height, image::Rgb([200, 120, 40]))
            .write_to(&mut bytes, format)
            .expect("encodes");
        bytes.into_inner()
    }

    #[test]
    fn checks_read_the_header_and_name_the_problem() {
        for (format, content_type) in [
            (image::ImageFormat::Jpeg, "image/jpeg"),
            (image::ImageFormat::Png, "image/png"),
            (image::ImageFormat::WebP, "image/webp"),
        ] {
            let bytes = encoded(64, 48, format);
            assert_eq!(
                check(&bytes, bytes.len() as u64),
                MediaCheck::Ready { content_type, size_bytes: bytes.len() as u64, width: 64, height: 48 }
            );
        }
        let rejected = |bytes: &[u8], size: u64| match check(bytes, size) {
            MediaCheck::Rejected { reason } => reason,
            ready => panic!("accepted: {ready:?}"),
        };
        assert!(rejected(b"%PDF-1.7", 10).contains("not a JPEG"));
        assert!(rejected(b"", 0).contains("empty"));
        let png = encoded(8, 8, image::ImageFormat::Png);
        assert!(rejected(&png, MAX_MEDIA_BYTES + 1).contains("at most"));
        // A PNG signature with a broken header.
        assert!(rejected(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDX", 16).contains("header cannot be read"));
        // A JPEG whose frame header says 20,000 × 10,000: 200 megapixels,
        // refused without decoding.
        let mut huge = encoded(8, 8, image::ImageFormat::Jpeg);
        let sof = huge.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline frame header");
        huge[sof + 5..sof + 7].copy_from_slice(&10_000u16.to_be_bytes());
        huge[sof + 7..sof + 9].copy_from_slice(&20_000u16.to_be_bytes());
        let reason = rejected(&huge, huge.len() as u64);
        assert!(reason.contains("20000×10000") && reason.contains("at most 100"), "{reason}");
    }
}
