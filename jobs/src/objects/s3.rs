//! Objects in S3 (production), through aws-sdk-s3.
//!
//! Large files go up as a multipart upload of [`MIN_PART_SIZE`] parts read
//! one at a time, so an hour of video never sits in memory; a failed upload
//! is aborted, so no half-written object (or billed orphan part) remains.
//! Every write asks for server-side encryption. When an endpoint is
//! configured (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, a local S3),
//! path-style addressing is used, because local endpoints do not resolve
//! bucket subdomains.

use std::{path::Path, time::Duration};

use async_trait::async_trait;
use aws_sdk_s3::{
    config::retry::RetryConfig,
    error::{DisplayErrorContext, SdkError},
    operation::get_object::GetObjectError,
    presigning::PresigningConfig,
    primitives::ByteStream,
    types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption},
    Client,
};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{ObjectError, ObjectKey, ObjectReader, ObjectStore, Result};

/// S3's smallest part is 5 MiB; 8 MiB parts keep the part count of a large
/// video low while holding only one part in memory at a time.
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;

/// SDK calls are retried with exponential backoff (the SDK's standard
/// mode) this many times in all.
const MAX_ATTEMPTS: u32 = 5;

pub struct S3Store {
    client: Client,
    bucket: String,
    /// Prepended to every key, without a trailing slash; may be empty.
    prefix: String,
    kms_key_id: Option<String>,
    part_size: usize,
}

fn backend_error<E: std::error::Error + 'static>(operation: &str, err: E) -> ObjectError {
    ObjectError::Backend(format!("S3 {operation}: {}", DisplayErrorContext(err)))
}

/// `s3://bucket/some/prefix` → (`bucket`, `some/prefix`).
fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| ObjectError::Config(format!("`{url}` is not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ObjectError::Config(format!("`{url}` names no bucket: expected s3://bucket/prefix")));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Whether S3 is reached at an endpoint of our choosing (`AWS_ENDPOINT_URL`,
/// or `AWS_ENDPOINT_URL_S3`, which the SDK prefers for S3 alone): a local S3
/// that addresses buckets by path, not by subdomain.
fn local_endpoint(sdk_config: &aws_config::SdkConfig) -> bool {
    sdk_config.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some_and(|url| !url.is_empty())
}

impl S3Store {
    /// From `s3://bucket/prefix` and the standard AWS configuration
    /// (`AWS_REGION`, credentials from the default chain, `AWS_ENDPOINT_URL`).
    /// `LONGHAUL_S3_KMS_KEY_ID` switches encryption from AES256 to that KMS key.
    pub async fn from_env(url: &str) -> Result<S3Store> {
        let sdk_config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let kms_key_id = std::env::var("LONGHAUL_S3_KMS_KEY_ID").ok().filter(|key| !key.is_empty());
        S3Store::new(&sdk_config, url, kms_key_id)
    }

    pub fn new(sdk_config: &aws_config::SdkConfig, url: &str, kms_key_id: Option<String>) -> Result<S3Store> {
        let (bucket, prefix) = parse_url(url)?;
        let config = aws_sdk_s3::config::Builder::from(sdk_config)
            .force_path_style(local_endpoint(sdk_config))
            .retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS))
            .build();
        Ok(S3Store { client: Client::from_conf(config), bucket, prefix, kms_key_id, part_size: MIN_PART_SIZE })
    }

    /// The SDK client, for callers (tests, setup) that need the raw API.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 key of `key`, under the configured prefix.
    pub fn s3_key(&self, key: &ObjectKey) -> String {
        if self.prefix.is_empty() {
            key.as_str().to_owned()
        } else {
            format!("{}/{}", self.prefix, key.as_str())
        }
    }

    fn encryption(&self) -> (ServerSideEncryption, Option<String>) {
        match &self.kms_key_id {
            Some(key) => (ServerSideEncryption::AwsKms, Some(key.clone())),
            None => (ServerSideEncryption::Aes256, None),
        }
    }

    async fn put_multipart(&self, key: &str, mut file: tokio::fs::File, content_type: &str) -> Result<u64> {
        let (sse, kms_key) = self.encryption();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .send()
            .await
            .map_err(|err| backend_error("CreateMultipartUpload", err))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| ObjectError::Backend("S3 CreateMultipartUpload returned no upload id".into()))?
            .to_owned();
        let uploaded = async {
            let mut parts = Vec::new();
            let mut total = 0u64;
            let mut buffer = vec![0u8; self.part_size];
            for part_number in 1.. {
                let filled = read_full(&mut file, &mut buffer).await?;
                if filled == 0 {
                    break;
                }
                total += filled as u64;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(part_number)
                    .body(ByteStream::from(buffer[..filled].to_vec()))
                    .send()
                    .await
                    .map_err(|err| backend_error("UploadPart", err))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .part_number(part_number)
                        .build(),
                );
                if filled < buffer.len() {
                    break;
                }
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(|err| backend_error("CompleteMultipartUpload", err))?;
            Ok(total)
        }
        .await;
        if uploaded.is_err() {
            // Best effort: the bucket's lifecycle rule aborts what this misses.
            let abort =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
            if let Err(err) = abort {
                tracing::warn!(key, error = %DisplayErrorContext(err), "could not abort a failed multipart upload");
            }
        }
        uploaded
    }
}

/// Reads until `buffer` is full or the file ends; returns how much was read.
async fn read_full(file: &mut tokio::fs::File, buffer: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        let read = file.read(&mut buffer[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(filled)
}

#[async_trait]
impl ObjectStore for S3Store {
    fn backend(&self) -> &'static str {
        "s3"
    }

    async fn put_bytes(&self, key: &ObjectKey, bytes: Bytes, content_type: &str) -> Result<()> {
        let (sse, kms_key) = self.encryption();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|err| backend_error("PutObject", err))?;
        Ok(())
    }

    async fn put_file(&self, key: &ObjectKey, path: &Path, content_type: &str) -> Result<u64> {
        let file = tokio::fs::File::open(path).await?;
        let size = file.metadata().await?.len();
        if size > self.part_size as u64 {
            return self.put_multipart(&self.s3_key(key), file, content_type).await;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let mut file = file;
        file.read_to_end(&mut bytes).await?;
        let written = bytes.len() as u64;
        self.put_bytes(key, Bytes::from(bytes), content_type).await?;
        Ok(written)
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<ObjectReader>> {
        match self.client.get_object().bucket(&self.bucket).key(self.s3_key(key)).send().await {
            Ok(object) => Ok(Some(Box::pin(object.body.into_async_read()))),
            Err(SdkError::ServiceError(err)) if matches!(err.err(), GetObjectError::NoSuchKey(_)) => Ok(None),
            Err(err) => Err(backend_error("GetObject", err)),
        }
    }

    async fn delete(&self, key: &ObjectKey) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .send()
            .await
            .map_err(|err| backend_error("DeleteObject", err))?;
        Ok(())
    }

    async fn presign_get(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<String>> {
        let presigning = PresigningConfig::expires_in(ttl).map_err(|err| backend_error("presigning", err))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .presigned(presigning)
            .await
            .map_err(|err| backend_error("presign GetObject", err))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        length: u64,
        ttl: Duration,
    ) -> Result<Option<String>> {
        // No encryption header is signed: the client could not be trusted to
        // send it. The bucket's default encryption covers these uploads.
        // Content-Length is signed (SigV4 signs it when the request has
        // one): S3 refuses a body of any other size, so a presigned URL
        // cannot carry more than the caller declared and was allowed.
        let presigning = PresigningConfig::expires_in(ttl).map_err(|err| backend_error("presigning", err))?;
        let length = i64::try_from(length).map_err(|_| backend_error("presigning", LengthTooLarge))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.s3_key(key))
            .content_type(content_type)
            .content_length(length)
            .presigned(presigning)
            .await
            .map_err(|err| backend_error("presign PutObject", err))?;
        Ok(Some(request.uri().to_owned()))
    }

    /// [`ObjectError::Config`] when S3 answers that the bucket is wrong
    /// (missing, forbidden); [`ObjectError::Backend`] when it does not
    /// answer, which may pass.
    async fn ping(&self) -> Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(|err| {
            let refused = crate::aws::refused(&err);
            let err = backend_error("HeadBucket", err);
            if refused {
                ObjectError::Config(err.to_string())
            } else {
                err
            }
        })?;
        Ok(())
    }
}

/// A length past what S3's API can carry (over `i64::MAX`).
#[derive(Debug)]
struct LengthTooLarge;

impl std::fmt::Display for LengthTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the length is too large to sign")
    }
}

impl std::error::Error for LengthTooLarge {}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn s3_urls_name_a_bucket_and_a_prefix() {
        assert_eq!(parse_url("s3://b/p/q/").ok(), Some(("b".into(), "p/q".into())));
        assert_eq!(parse_url("s3://b").ok(), Some(("b".into(), String::new())));
        assert!(parse_url("s3:///p").is_err());
        assert!(parse_url("file:///x").is_err());
    }
}
