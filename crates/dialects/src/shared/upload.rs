//! Streams multipart file fields to disk: never held whole in memory, cut off
//! the moment a size limit is crossed, and typed by their magic bytes rather
//! than by what the client declared.

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
pub use genq_sniff::MediaClass;
use genq_sniff::{sniffed_type, SNIFF_BYTES};
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{field} exceeds the {limit_mb} MB limit")]
    TooLarge { field: String, limit_mb: u64 },
    #[error("{field} has an unsupported type{}", found.map(|f| format!(" ({f})")).unwrap_or_default())]
    UnsupportedType {
        field: String,
        found: Option<&'static str>,
    },
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    #[error("could not store the upload: {0}")]
    Io(#[from] io::Error),
}

impl From<MultipartError> for UploadError {
    fn from(e: MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            UploadError::TooLarge {
                field: "request body".into(),
                limit_mb: 0,
            }
        } else {
            UploadError::Malformed(e.body_text())
        }
    }
}

impl From<UploadError> for super::Refusal {
    fn from(error: UploadError) -> Self {
        use super::Refusal;
        match error {
            UploadError::TooLarge { .. } => Refusal::TooLarge(error.to_string()),
            UploadError::UnsupportedType { .. } => Refusal::UnsupportedType(error.to_string()),
            UploadError::Malformed(_) => Refusal::BadRequest(error.to_string()),
            // The staging disk is full or failing: no fault of the request.
            UploadError::Io(e) => {
                tracing::error!(error = %e, "staging an upload failed");
                Refusal::Unavailable
            }
        }
    }
}

/// A file streamed to the staging directory. Removed on drop unless the
/// engine has already moved it into storage.
#[derive(Debug)]
pub struct Upload {
    pub path: PathBuf,
    pub mime: &'static str,
    pub size: u64,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub async fn stream_file(
    field: &mut Field<'_>,
    field_name: &str,
    class: MediaClass,
    staging_dir: &Path,
    limit: u64,
) -> Result<Upload, UploadError> {
    let path = staging_dir.join(format!("{}.upload", uuid::Uuid::new_v4()));
    let mut file = tokio::fs::File::create(&path).await?;
    // From here the guard owns the file: every early return removes it.
    let mut upload = Upload {
        path,
        mime: "",
        size: 0,
    };
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let too_large = || UploadError::TooLarge {
        field: field_name.to_owned(),
        limit_mb: limit / 1_000_000,
    };
    while let Some(chunk) = field.chunk().await? {
        upload.size += chunk.len() as u64;
        if upload.size > limit {
            return Err(too_large());
        }
        if upload.mime.is_empty() {
            let take = (SNIFF_BYTES - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
            if head.len() == SNIFF_BYTES {
                upload.mime = sniff(class, field_name, &head)?;
            }
        }
        file.write_all(&chunk).await?;
    }
    if upload.mime.is_empty() {
        upload.mime = sniff(class, field_name, &head)?;
    }
    file.flush().await?;
    Ok(upload)
}

fn sniff(class: MediaClass, field: &str, head: &[u8]) -> Result<&'static str, UploadError> {
    class
        .accept(head)
        .ok_or_else(|| UploadError::UnsupportedType {
            field: field.to_owned(),
            found: sniffed_type(head),
        })
}

/// Reads a small text field, refusing anything longer than `limit` bytes.
pub async fn read_text(
    field: &mut Field<'_>,
    field_name: &str,
    limit: usize,
) -> Result<String, UploadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.chunk().await? {
        if bytes.len() + chunk.len() > limit {
            return Err(UploadError::Malformed(format!(
                "{field_name} is longer than {limit} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| UploadError::Malformed(format!("{field_name} is not UTF-8 text")))
}
