//! The ObjectStore contract, run against every backend: a directory, and S3
//! through the real SDK against a local `moto_server`.

use std::time::Duration;

use bytes::Bytes;
use longhaul_jobs::{
    objects::{ObjectKey, ObjectStore},
    testing::{ObjectBackend, TestObjectStore},
};
use tokio::io::AsyncReadExt;

longhaul_jobs::on_every_object_store!(
    bytes_put_are_read_back,
    a_missing_object_is_none,
    delete_removes_and_tolerates_missing,
    a_large_file_streams_up_and_back,
    presigned_urls_work_where_the_backend_has_them,
    writes_replace_whole_objects,
);

async fn store(backend: ObjectBackend) -> TestObjectStore {
    TestObjectStore::new(backend).await.expect("a fresh object store (is moto_server running?)")
}

fn key(path: &str) -> ObjectKey {
    ObjectKey::new("acme", path).expect("a valid key")
}

async fn read_all(store: &dyn ObjectStore, key: &ObjectKey) -> Option<Vec<u8>> {
    let mut reader = store.get(key).await.expect("get")?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).await.expect("read the object");
    Some(bytes)
}

async fn bytes_put_are_read_back(backend: ObjectBackend) {
    let store = store(backend).await;
    let key = key("artifacts/1/summary.json");
    store.put_bytes(&key, Bytes::from_static(b"{\"trips\":3}"), "application/json").await.expect("put");
    assert_eq!(read_all(store.as_ref(), &key).await.as_deref(), Some(&b"{\"trips\":3}"[..]));
}

async fn a_missing_object_is_none(backend: ObjectBackend) {
    let store = store(backend).await;
    assert!(store.get(&key("nothing/here")).await.expect("get").is_none());
}

async fn delete_removes_and_tolerates_missing(backend: ObjectBackend) {
    let store = store(backend).await;
    let key = key("media/photo.jpg");
    store.put_bytes(&key, Bytes::from_static(b"jpeg"), "image/jpeg").await.expect("put");
    store.delete(&key).await.expect("delete");
    assert!(read_all(store.as_ref(), &key).await.is_none());
    store.delete(&key).await.expect("deleting a missing object is fine");
}

async fn a_large_file_streams_up_and_back(backend: ObjectBackend) {
    let store = store(backend).await;
    // Over two parts on S3, with a short last part.
    let size = longhaul_jobs::objects::MIN_PART_SIZE * 2 + 12_345;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("video.mp4");
    std::fs::write(&path, &content).expect("write the source file");
    let key = key("artifacts/2/video.mp4");
    let written = store.put_file(&key, &path, "video/mp4").await.expect("put_file");
    assert_eq!(written, size as u64);
    let back = read_all(store.as_ref(), &key).await.expect("the object exists");
    assert!(back == content, "the object differs from the file");

    #[cfg(feature = "aws")]
    if let (ObjectBackend::S3, Some(bucket)) = (backend, &store.bucket) {
        // It went up in parts, with server-side encryption.
        let s3 = longhaul_jobs::objects::S3Store::new(
            &longhaul_jobs::testing::aws_sdk_config().await,
            &format!("s3://{bucket}/objects"),
            None,
        )
        .expect("a client");
        let head = s3.client().head_object().bucket(bucket).key(s3.s3_key(&key)).send().await.expect("head");
        assert!(head.e_tag().unwrap_or_default().contains("-3"), "a 3-part upload, got ETag {:?}", head.e_tag());
        assert!(head.server_side_encryption().is_some(), "encryption was requested");
        assert_eq!(head.content_type(), Some("video/mp4"));
    }
}

async fn presigned_urls_work_where_the_backend_has_them(backend: ObjectBackend) {
    let store = store(backend).await;
    let key = key("media/upload.png");
    let ttl = Duration::from_secs(300);
    let body = b"\x89PNG fake".to_vec();
    let put_url = store.presign_put(&key, "image/png", body.len() as u64, ttl).await.expect("presign put");
    let get_url = store.presign_get(&key, ttl).await.expect("presign get");
    match backend {
        ObjectBackend::File => assert!(put_url.is_none() && get_url.is_none(), "files are served by the API"),
        #[cfg(feature = "aws")]
        ObjectBackend::S3 => {
            let client = reqwest::Client::new();
            let put_url = put_url.expect("a PUT URL");
            // The length is signed: S3 refuses any other (moto does not check
            // signatures, so the URL itself is what is checked here).
            let signed = put_url.split("X-Amz-SignedHeaders=").nth(1).unwrap_or_default();
            let signed = signed.split('&').next().unwrap_or_default();
            assert!(signed.contains("content-length"), "Content-Length is not signed: {put_url}");
            let put =
                client.put(&put_url).header("content-type", "image/png").body(body.clone()).send().await.expect("PUT");
            assert!(put.status().is_success(), "PUT answered {}", put.status());
            let get = client.get(get_url.expect("a GET URL")).send().await.expect("GET");
            assert!(get.status().is_success(), "GET answered {}", get.status());
            assert_eq!(get.bytes().await.expect("body").as_ref(), b"\x89PNG fake");
        }
    }
}

async fn writes_replace_whole_objects(backend: ObjectBackend) {
    let store = store(backend).await;
    let key = key("artifacts/3/report.csv");
    store.put_bytes(&key, Bytes::from_static(b"first version, longer"), "text/csv").await.expect("put");
    store.put_bytes(&key, Bytes::from_static(b"second"), "text/csv").await.expect("put again");
    assert_eq!(read_all(store.as_ref(), &key).await.as_deref(), Some(&b"second"[..]));
}
