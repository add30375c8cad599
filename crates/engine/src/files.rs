//! The file store: where input and output files live. Keys are engine-made
//! paths such as `inputs/{job}/image` or `outputs/{job}/video.mp4`, never
//! user input. The `genq-files` crate adds object storage (S3).

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// An object's bytes, read in chunks so that no object is held in memory whole.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    /// Stores the file at `src` under `key` durably (it survives a crash once
    /// this returns) and returns its size. `src` is consumed.
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<u64>;
    /// A path on this machine where `key` can be read directly, if the
    /// backend keeps files locally.
    fn local_path(&self, key: &str) -> Option<PathBuf>;
    /// Copies `key` to `dst` on this machine.
    async fn fetch_to(&self, key: &str, dst: &Path) -> io::Result<()>;
    /// Removes every key under `prefix` (best effort cleanup).
    async fn delete_prefix(&self, prefix: &str) -> io::Result<()>;
    /// The size of `key` in bytes (`NotFound` if it does not exist). Downloads
    /// ask first, to answer a Range request or 416 before any byte is sent.
    async fn size(&self, key: &str) -> io::Result<u64>;
    /// Streams the bytes `range` of `key`; `range` lies within its size.
    async fn read_range(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream>;
}

/// Files under a directory. Uploads are staged on the same filesystem, so
/// storing one is a rename, not a copy.
#[derive(Clone, Debug)]
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path(&self, key: &str) -> PathBuf {
        debug_assert!(!key.split('/').any(|part| part == ".." || part.is_empty()));
        self.root.join(key)
    }
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn put_file(&self, key: &str, src: &Path) -> io::Result<u64> {
        let dst = self.path(key);
        let src = src.to_owned();
        tokio::task::spawn_blocking(move || {
            let dir = dst.parent().expect("keys have a directory");
            std::fs::create_dir_all(dir)?;
            let file = std::fs::File::open(&src)?;
            file.sync_all()?;
            let size = file.metadata()?.len();
            drop(file);
            if std::fs::rename(&src, &dst).is_err() {
                // Another filesystem: copy, then sync the copy.
                std::fs::copy(&src, &dst)?;
                std::fs::File::open(&dst)?.sync_all()?;
                std::fs::remove_file(&src)?;
            }
            // The rename is durable only once the directory entry is.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(size)
        })
        .await?
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        Some(self.path(key))
    }

    async fn fetch_to(&self, key: &str, dst: &Path) -> io::Result<()> {
        tokio::fs::copy(self.path(key), dst).await.map(|_| ())
    }

    async fn delete_prefix(&self, prefix: &str) -> io::Result<()> {
        match tokio::fs::remove_dir_all(self.path(prefix.trim_end_matches('/'))).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn size(&self, key: &str) -> io::Result<u64> {
        let meta = tokio::fs::metadata(self.path(key)).await?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "not a file"));
        }
        Ok(meta.len())
    }

    async fn read_range(&self, key: &str, range: Range<u64>) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.path(key)).await?;
        file.seek(io::SeekFrom::Start(range.start)).await?;
        let body = file.take(range.end.saturating_sub(range.start));
        Ok(Box::pin(tokio_util::io::ReaderStream::new(body)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    async fn read_all(stream: ByteStream) -> Vec<u8> {
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        chunks.concat()
    }

    #[tokio::test]
    async fn put_moves_the_file_and_delete_removes_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let files = LocalFiles::new(dir.path().join("files")).unwrap();
        let src = dir.path().join("upload.tmp");
        std::fs::write(&src, b"hello").unwrap();

        let size = files.put_file("inputs/j1/image", &src).await.unwrap();
        assert_eq!(size, 5);
        assert!(!src.exists());
        let stored = files.local_path("inputs/j1/image").unwrap();
        assert_eq!(std::fs::read(&stored).unwrap(), b"hello");

        let copy = dir.path().join("copy");
        files.fetch_to("inputs/j1/image", &copy).await.unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), b"hello");

        assert_eq!(files.size("inputs/j1/image").await.unwrap(), 5);
        let part = read_all(files.read_range("inputs/j1/image", 1..4).await.unwrap()).await;
        assert_eq!(part, b"ell");

        files.delete_prefix("inputs/j1").await.unwrap();
        assert!(!stored.exists());
        let missing = files.size("inputs/j1/image").await.unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        files.delete_prefix("inputs/j1").await.unwrap();
    }
}
