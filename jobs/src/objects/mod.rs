//! The ObjectStore port: where artifacts (reports, videos) and uploaded media
//! live. `file://` on embedded defaults, `s3://` in production.
//!
//! Every key sits under its tenant's prefix ([`ObjectKey`]; the data lake's
//! under its tenant's partition), so a key built for one tenant can never
//! name another tenant's object. Writes are atomic:
//! a reader sees the whole object or nothing, never half of one.

mod file;
#[cfg(feature = "aws")]
mod s3;

use std::{path::Path, pin::Pin, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncRead;

pub use file::FileStore;
#[cfg(feature = "aws")]
pub use s3::{S3Store, MIN_PART_SIZE};

pub type DynObjectStore = Arc<dyn ObjectStore>;

/// A streaming read of an object.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid object key: {0}")]
    InvalidKey(String),
    #[error("{0}")]
    Config(String),
    #[error("object store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("object store request failed: {0}")]
    Backend(String),
}

pub type Result<T, E = ObjectError> = std::result::Result<T, E>;

/// `tenants/<tenant>/<path>`, or a lake file (`lake/<table>/tenant=<tenant>/…`):
/// the only way to name an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// A key for `path` (such as `artifacts/<job>/report.pdf`) under
    /// `tenant`. Both are checked: no empty, `.` or `..` segments, no
    /// backslashes or control characters, so no key escapes its prefix on
    /// any backend.
    pub fn new(tenant: &str, path: &str) -> Result<ObjectKey> {
        check_tenant_path(tenant, path)?;
        Ok(ObjectKey(format!("tenants/{tenant}/{path}")))
    }

    /// A file of the data lake: `lake/<table>/tenant=<tenant>/<path>`, the
    /// Hive-style layout warehouses read (`path` such as
    /// `date=2026-12-05/hour=08/part-0.parquet`). The lake is a prefix of its
    /// own, beside `tenants/`, so that one lifecycle rule keeps it and one
    /// grant reads it; each tenant is still one partition of it, and the
    /// same checks keep a key inside that partition.
    pub fn lake(table: &str, tenant: &str, path: &str) -> Result<ObjectKey> {
        check_tenant_path(tenant, path)?;
        if table.contains('/') || !is_safe_segment(table) {
            return Err(ObjectError::InvalidKey(format!("`{table}` cannot be a lake table")));
        }
        Ok(ObjectKey(format!("lake/{table}/tenant={tenant}/{path}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Both are checked: no empty, `.` or `..` segments, no backslashes or
/// control characters, so no key escapes its prefix on any backend.
fn check_tenant_path(tenant: &str, path: &str) -> Result<()> {
    if tenant.is_empty() || tenant.contains('/') || !is_safe_segment(tenant) {
        return Err(ObjectError::InvalidKey(format!("tenant `{tenant}` cannot be a key prefix")));
    }
    if path.is_empty() || !path.split('/').all(is_safe_segment) {
        return Err(ObjectError::InvalidKey(format!("`{path}` is not a relative path of plain segments")));
    }
    Ok(())
}

fn is_safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment.len() <= 255
        && !segment.chars().any(|c| c == '\\' || c.is_control())
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where objects live.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// `file` or `s3`.
    fn backend(&self) -> &'static str;

    /// Stores a small object in one request.
    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<()>;

    /// Stores a file, streaming it: large files go up in parts on S3, and
    /// are never held in memory whole. Returns the size in bytes.
    async fn put_file(&self, key: &ObjectKey, path: &Path, content_type: &str) -> Result<u64>;

    /// Streams an object, or `None` if there is none under `key`.
    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>>;

    /// Removes an object. Removing a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<()>;

    /// A URL anyone may GET the object from until `ttl` passes, or `None`
    /// when the backend has no such URLs (the API then streams the object).
    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<String>>;

    /// A URL a client may PUT exactly `length` bytes of the object to until
    /// `ttl` passes (the length is part of the signature, so a larger or
    /// smaller body is refused by the store itself), or `None` when uploads
    /// must go through the API.
    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        length: u64,
        ttl: Duration,
    ) -> Result<Option<String>>;

    /// A cheap round trip, for readiness.
    async fn ping(&self) -> Result<()>;
}

/// Opens the store a URL names: `file:///dir` or `s3://bucket/prefix`.
pub async fn connect(url: &str) -> Result<DynObjectStore> {
    if let Some(dir) = url.strip_prefix("file://") {
        if dir.is_empty() {
            return Err(ObjectError::Config("`file://` needs a directory, such as file:///var/lib/longhaul".into()));
        }
        return Ok(Arc::new(FileStore::new(dir).await?));
    }
    if url.starts_with("s3://") {
        #[cfg(feature = "aws")]
        return Ok(Arc::new(S3Store::from_env(url).await?));
        #[cfg(not(feature = "aws"))]
        return Err(ObjectError::Config("this build of longhaul has no S3 support (the `aws` feature is off)".into()));
    }
    Err(ObjectError::Config(format!("unsupported object store `{url}`: expected file:///dir or s3://bucket/prefix")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_under_their_tenant() {
        assert_eq!(
            ObjectKey::new("acme", "artifacts/1/report.pdf").map(|k| k.0).ok().as_deref(),
            Some("tenants/acme/artifacts/1/report.pdf")
        );
        for path in ["", "/etc/passwd", "a/../../b", "./a", "a//b", "a\\b", "a/\u{0}"] {
            assert!(ObjectKey::new("acme", path).is_err(), "{path:?} must be refused");
        }
        for tenant in ["", "..", "a/b", "."] {
            assert!(ObjectKey::new(tenant, "x").is_err(), "tenant {tenant:?} must be refused");
            assert!(ObjectKey::lake("events", tenant, "x").is_err(), "tenant {tenant:?} must be refused in the lake");
        }
        assert_eq!(
            ObjectKey::lake("events", "acme", "date=2026-12-05/hour=08/part-0.parquet").map(|k| k.0).ok().as_deref(),
            Some("lake/events/tenant=acme/date=2026-12-05/hour=08/part-0.parquet")
        );
        assert!(ObjectKey::lake("events", "acme", "../x").is_err());
    }
}
