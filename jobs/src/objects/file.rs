//! Objects as files under a directory: the embedded default.
//!
//! A write goes to a temporary file in the destination's directory, is
//! synced, and is renamed into place, so a reader (or a crash) never sees
//! half an object.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{ObjectError, ObjectKey, ObjectReader, ObjectStore, Result};

pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub async fn new(root: impl Into<PathBuf>) -> Result<FileStore> {
        let root = root.into();
        tokio::fs::create_dir_all(&root).await?;
        Ok(FileStore { root })
    }

    /// Where `key` lives on disk. Keys are validated segments, so this never
    /// leaves the root.
    pub fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.root.join(key.as_str())
    }

    /// Writes through a temporary sibling, then renames it into place.
    async fn write_atomically<F, Fut>(&self, key: &ObjectKey, write: F) -> Result<u64>
    where
        F: FnOnce(tokio::fs::File) -> Fut,
        Fut: std::future::Future<Output = Result<(tokio::fs::File, u64)>>,
    {
        let target = self.path_of(key);
        let dir = target.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir).await?;
        let temporary = dir.join(format!(".{}.partial", uuid::Uuid::new_v4().simple()));
        let outcome = async {
            let file = tokio::fs::File::create(&temporary).await?;
            let (file, written) = write(file).await?;
            file.sync_all().await?;
            drop(file);
            tokio::fs::rename(&temporary, &target).await?;
            Ok(written)
        }
        .await;
        if outcome.is_err() {
            let _ = tokio::fs::remove_file(&temporary).await;
        }
        outcome
    }
}

#[async_trait]
impl ObjectStore for FileStore {
    fn backend(&self) -> &'static str {
        "file"
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes, _content_type: &str) -> Result<()> {
        self.write_atomically(key, |mut file| async move {
            file.write_all(&bytes).await?;
            Ok((file, bytes.len() as u64))
        })
        .await
        .map(drop)
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path, _content_type: &str) -> Result<u64> {
        let mut source = tokio::fs::File::open(path).await?;
        self.write_atomically(key, |mut file| async move {
            let written = tokio::io::copy(&mut source, &mut file).await?;
            Ok((file, written))
        })
        .await
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>> {
        match tokio::fs::File::open(self.path_of(key)).await {
            Ok(file) => Ok(Some(Box::pin(file))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        match tokio::fs::remove_file(self.path_of(key)).await {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    async fn presign_get(&self, _key: &ObjectKey, _ttl: Duration) -> Result<Option<String>> {
        Ok(None)
    }

    async fn presign_put(
        &self,
        _key: &ObjectKey,
        _content_type: &str,
        _length: u64,
        _ttl: Duration,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// A directory that cannot be read is a configuration error
    /// ([`ObjectError::Config`]), not an outage to wait out.
    async fn ping(&self) -> Result<()> {
        tokio::fs::metadata(&self.root)
            .await
            .map_err(|err| ObjectError::Config(format!("cannot read {}: {err}", self.root.display())))?;
        Ok(())
    }
}
