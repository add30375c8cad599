//! Files in an object store (S3 and compatibles), through the `object_store`
//! crate. Every transfer is streamed: no object is held in memory whole.

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use genq_engine::{ByteStream, FileStore};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, RetryConfig};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

use crate::S3Settings;

/// Uploads larger than this go up in parts of this size (S3's minimum part
/// is 5 MiB); smaller ones are a single PUT.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight per upload: bounds an upload's memory to a few parts.
const PARTS_IN_FLIGHT: usize = 2;
/// Reads from disk for uploads, in chunks of this size.
const READ_CHUNK: usize = 256 * 1024;
/// A download streams for as long as its client reads, so it cannot live under
/// object_store's default 30 s request limit; this only ends reads that hang.
const STREAM_TIMEOUT: Duration = Duration::from_secs(3600);

/// object_store's default retries a failing request for up to 3 minutes,
/// which holds a submission open that long while the service is down. Four
/// retries (0.1 s … ~1.6 s apart) ride out a blip; past them the request
/// fails and the client gets a 503 to retry.
fn retries() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(15),
        ..RetryConfig::default()
    }
}

/// An object store holding genq's keys under a prefix.
#[derive(Debug)]
pub struct ObjectFiles {
    /// Short requests (HEAD, PUT of a part, list, delete) under the client's
    /// default time limits, so an unreachable service fails fast.
    store: Arc<dyn ObjectStore>,
    /// Streaming GETs, under [`STREAM_TIMEOUT`].
    reads: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix`, for error messages.
    name: String,
}

impl ObjectFiles {
    /// An S3 bucket (or a compatible service's, with `settings.endpoint`).
    pub fn s3(bucket: &str, prefix: &str, settings: &S3Settings) -> io::Result<Self> {
        let name = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        // AWS_* variables fill in what genq's own settings leave unset.
        let mut builder = AmazonS3Builder::from_env()
            .with_retry(retries())
            .with_bucket_name(bucket)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            // Self-hosted services (MinIO, s3s, Ceph) rarely have a DNS name
            // per bucket: address buckets in the path.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &settings.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let build = |builder: AmazonS3Builder| -> io::Result<Arc<dyn ObjectStore>> {
            let s3 = builder.build().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("object storage {name}: {e}"),
                )
            })?;
            Ok(Arc::new(PrefixStore::new(s3, prefix)))
        };
        let reads = builder.clone().with_client_options(
            ClientOptions::new()
                .with_allow_http(settings.allow_http)
                .with_timeout(STREAM_TIMEOUT),
        );
        Ok(Self {
            store: build(builder)?,
            reads: build(reads)?,
            name,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An object-store error as an I/O error that says what was being done
    /// to which object; a missing object stays `NotFound`.
    fn error(&self, doing: &str, key: &str, e: object_store::Error) -> io::Error {
        let kind = match e {
            object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(
            kind,
            format!("object storage: {doing} {}/{key}: {e}", self.name),
        )
    }

    async fn upload(&self, key: &str, src: &Path) -> io::Result<u64> {
        let file = tokio::fs::File::open(src).await?;
        let mut reader = tokio::io::BufReader::with_capacity(READ_CHUNK, file);
        let mut writer = BufWriter::with_capacity(self.store.clone(), key.into(), PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let failed = match tokio::io::copy_buf(&mut reader, &mut writer).await {
            Ok(size) => match writer.shutdown().await {
                // Completing the PUT (or the multipart upload) is what makes
                // the object durable and visible.
                Ok(()) => return Ok(size),
                // object_store aborts a multipart upload whose completion
                // fails itself, and a shut-down writer cannot be aborted.
                Err(e) => e,
            },
            Err(e) => {
                // Leaves no orphaned parts behind (they are billed).
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key, error = %abort, "aborting a failed upload failed");
                }
                e
            }
        };
        Err(io::Error::new(
            failed.kind(),
            format!("object storage: storing {}/{key}: {failed}", self.name),
        ))
    }

    async fn stream(&self, key: &str, range: Option<Range<u64>>) -> io::Result<ByteStream> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .reads
            .get_opts(&key.into(), options)
            .await
            .map_err(|e| self.error("reading", key, e))?;
        let (name, key) = (self.name.clone(), key.to_owned());
        Ok(result
            .into_stream()
            .map_err(move |e| {
                io::Error::other(format!("object storage: reading {name}/{key}: {e}"))
            })
            .boxed())
    }
}

#[async_trait]
impl FileStore for ObjectFiles {
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<u64> {
        let size = self.upload(key, src).await?;
        tokio::fs::remove_file(src).await?;
        Ok(size)
    }

    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }

    async fn fetch_to(&self, key: &str, dst: &Path) -> io::Result<()> {
        let mut body = self.stream(key, None).await?;
        let mut file = tokio::fs::File::create(dst).await?;
        let written = async {
            while let Some(chunk) = body.try_next().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await
        }
        .await;
        if written.is_err() {
            // No half-fetched file for a later attempt to mistake for a whole one.
            let _ = tokio::fs::remove_file(dst).await;
        }
        written
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        let prefix = prefix.trim_end_matches('/');
        // object_store lists by whole path segments: `inputs/j1` does not
        // take `inputs/j10` with it.
        let listed = self
            .store
            .list(Some(&prefix.into()))
            .map_ok(|meta| meta.location)
            .boxed();
        let mut deleted = self.store.delete_stream(listed);
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("deleting under", prefix, e)),
            }
        }
        Ok(())
    }

    async fn size(&self, key: &str) -> io::Result<u64> {
        let meta = self
            .store
            .head(&ObjectPath::from(key))
            .await
            .map_err(|e| self.error("looking up", key, e))?;
        Ok(meta.size)
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream> {
        if range.is_empty() {
            // An empty range is no valid HTTP Range; nothing to ask for.
            return Ok(futures::stream::empty().boxed());
        }
        self.stream(key, Some(range)).await
    }
}
