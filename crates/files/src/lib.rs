//! Where genq keeps input and output files: the local directory (the default)
//! or an S3-compatible object store, chosen by the storage URL. With an object
//! store, nodes share nothing through their filesystems: an API node stores an
//! upload, a worker on another machine fetches it, and any API node serves the
//! outputs, even after the node that rendered them is gone.

mod object;

pub use object::ObjectFiles;

use genq_engine::{FileStore, LocalFiles};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How to reach an S3-compatible service. Unset values fall back to the
/// standard `AWS_*` environment variables (and instance credentials).
#[derive(Clone, Debug, Default)]
pub struct S3Settings {
    /// e.g. `http://127.0.0.1:9000` for MinIO or s3s-fs; none means AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Plain-HTTP endpoints are refused unless this is set.
    pub allow_http: bool,
}

/// What a storage URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `None` → `DATA_DIR/files`; `file:///dir` → that directory;
    /// `s3://bucket[/prefix]` → that bucket, keys under the prefix.
    pub fn parse(storage_url: Option<&str>, data_dir: &Path) -> io::Result<Location> {
        let Some(text) = storage_url.map(str::trim).filter(|t| !t.is_empty()) else {
            return Ok(Location::Local(data_dir.join("files")));
        };
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("storage URL {text:?}: {why}"),
            )
        };
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        match url.scheme() {
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| invalid("expected file:///absolute/path"))?;
                Ok(Location::Local(path))
            }
            "s3" => {
                let bucket = url.host_str().filter(|b| !b.is_empty());
                let bucket = bucket.ok_or_else(|| invalid("expected s3://bucket/prefix"))?;
                // The URL parser has already resolved any `.` and `..`.
                let prefix = url.path().trim_matches('/').to_owned();
                Ok(Location::S3 {
                    bucket: bucket.to_owned(),
                    prefix,
                })
            }
            other => Err(invalid(&format!(
                "unsupported scheme {other:?} (use s3:// or file://)"
            ))),
        }
    }
}

/// Opens the storage a URL names (see [`Location::parse`]).
pub fn open(
    storage_url: Option<&str>,
    s3: &S3Settings,
    data_dir: &Path,
) -> io::Result<Arc<dyn FileStore>> {
    Ok(match Location::parse(storage_url, data_dir)? {
        Location::Local(root) => Arc::new(LocalFiles::new(root)?),
        Location::S3 { bucket, prefix } => {
            let storage = ObjectFiles::s3(&bucket, &prefix, s3)?;
            tracing::info!(storage = %storage.name(), "files are kept in object storage");
            Arc::new(storage)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        let data = Path::new("/var/genq");
        assert_eq!(
            Location::parse(None, data).unwrap(),
            Location::Local(data.join("files"))
        );
        assert_eq!(
            Location::parse(Some(" "), data).unwrap(),
            Location::Local(data.join("files"))
        );
        assert_eq!(
            Location::parse(Some("file:///srv/files"), data).unwrap(),
            Location::Local("/srv/files".into())
        );
        assert_eq!(
            Location::parse(Some("s3://media/genq/prod/"), data).unwrap(),
            Location::S3 {
                bucket: "media".into(),
                prefix: "genq/prod".into()
            }
        );
        assert_eq!(
            Location::parse(Some("s3://media"), data).unwrap(),
            Location::S3 {
                bucket: "media".into(),
                prefix: String::new()
            }
        );
        for bad in ["s3:///prefix", "gs://bucket", "not a url"] {
            let e = Location::parse(Some(bad), data).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("storage URL"), "{e}");
        }
    }
}
