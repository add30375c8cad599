//! `ObjectFiles` against a real S3-compatible server (s3s-fs over a
//! temporary directory). Fails when s3s-fs is missing (`scripts/test`
//! builds it: `cargo build -p genq-s3-test-server`); `GENQ_TEST_S3=off`
//! skips.

#[path = "../../genq/tests/common/s3.rs"]
mod s3;

use futures::TryStreamExt;
use genq_engine::{ByteStream, FileStore};
use genq_files::S3Settings;
use s3::S3Server;
use std::io;
use std::path::Path;
use std::sync::Arc;

fn settings(server: &S3Server) -> S3Settings {
    S3Settings {
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some(s3::ACCESS_KEY.into()),
        secret_access_key: Some(s3::SECRET_KEY.into()),
        allow_http: true,
    }
}

fn open(server: &S3Server, prefix: &str) -> Arc<dyn FileStore> {
    genq_files::open(
        Some(&server.storage_url(prefix)),
        &settings(server),
        Path::new("/nonexistent"),
    )
    .unwrap()
}

async fn read_all(stream: ByteStream) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

/// Bytes that differ at every offset, so a wrong range cannot pass.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[tokio::test]
async fn put_fetch_and_ranges_round_trip() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = open(&server, "genq/prod");
    assert!(storage.local_path("inputs/j1/image").is_none());
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(1000);
    let src = dir.path().join("upload.tmp");
    std::fs::write(&src, &data).unwrap();

    let size = storage.put_file("inputs/j1/image", &src).await.unwrap();
    assert_eq!(size, 1000);
    assert!(!src.exists(), "put_file consumes its source");
    // The prefix from the URL is where the object really lands.
    let on_server = server.object_file("genq/prod/inputs/j1/image");
    assert_eq!(std::fs::read(&on_server).unwrap(), data);

    let copy = dir.path().join("copy");
    storage.fetch_to("inputs/j1/image", &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), data);

    assert_eq!(storage.size("inputs/j1/image").await.unwrap(), 1000);
    for range in [0..1000, 0..1, 100..200, 999..1000] {
        let got = read_all(
            storage
                .read_range("inputs/j1/image", range.clone())
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got, &data[range.start as usize..range.end as usize]);
    }
    let empty = storage.read_range("inputs/j1/image", 5..5).await.unwrap();
    assert!(read_all(empty).await.is_empty());
}

#[tokio::test]
async fn large_files_go_up_in_parts_and_come_back_whole() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = open(&server, "p");
    let dir = tempfile::tempdir().unwrap();
    // Over two 8 MiB parts, with a partial last part.
    let data = pattern(19 * 1024 * 1024 + 123);
    let src = dir.path().join("video.mp4");
    std::fs::write(&src, &data).unwrap();
    let size = storage.put_file("outputs/j/video.mp4", &src).await.unwrap();
    assert_eq!(size, data.len() as u64);

    let copy = dir.path().join("copy.mp4");
    storage
        .fetch_to("outputs/j/video.mp4", &copy)
        .await
        .unwrap();
    assert!(
        std::fs::read(&copy).unwrap() == data,
        "fetched bytes differ"
    );

    // A range that spans the parts' boundary.
    let start = 8 * 1024 * 1024 - 10;
    let got = read_all(
        storage
            .read_range("outputs/j/video.mp4", start..start + 20)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got, &data[start as usize..start as usize + 20]);
}

#[tokio::test]
async fn missing_keys_are_not_found() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = open(&server, "p");
    let dir = tempfile::tempdir().unwrap();
    let e = storage.size("outputs/none/video.mp4").await.unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(
        e.to_string().contains("object storage") && e.to_string().contains("outputs/none"),
        "the message says what failed: {e}"
    );
    let e = storage
        .read_range("outputs/none/video.mp4", 0..10)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    let dst = dir.path().join("dst");
    let e = storage
        .fetch_to("outputs/none/video.mp4", &dst)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    assert!(!dst.exists());
}

#[tokio::test]
async fn delete_prefix_removes_one_job_and_no_other() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = open(&server, "p");
    let dir = tempfile::tempdir().unwrap();
    for key in ["inputs/j1/image", "inputs/j1/audio", "inputs/j10/image"] {
        let src = dir.path().join("f");
        std::fs::write(&src, key).unwrap();
        storage.put_file(key, &src).await.unwrap();
    }
    storage.delete_prefix("inputs/j1").await.unwrap();
    for gone in ["inputs/j1/image", "inputs/j1/audio"] {
        let e = storage.size(gone).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{gone}: {e}");
    }
    assert_eq!(storage.size("inputs/j10/image").await.unwrap(), 16);
    // Deleting what is already gone is fine (cleanup is best effort).
    storage.delete_prefix("inputs/j1/").await.unwrap();
    storage.delete_prefix("inputs/never").await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_fail_with_a_clear_error() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = genq_files::open(
        Some(&server.storage_url("p")),
        &S3Settings {
            secret_access_key: Some("wrong".into()),
            ..settings(&server)
        },
        Path::new("/nonexistent"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"x").unwrap();
    let e = storage.put_file("inputs/j/image", &src).await.unwrap_err();
    let message = e.to_string();
    assert!(
        message.contains("object storage") && message.contains("s3://genq-test/p"),
        "{message}"
    );
    assert!(src.exists(), "a failed put keeps its source");
}

#[tokio::test]
async fn a_plain_http_endpoint_needs_allow_http() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let storage = genq_files::open(
        Some(&server.storage_url("p")),
        &S3Settings {
            allow_http: false,
            ..settings(&server)
        },
        Path::new("/nonexistent"),
    )
    .unwrap();
    let e = storage.size("inputs/j/image").await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("http"), "{e}");
}
