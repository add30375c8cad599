//! Streams multipart file fields to disk: never held whole in memory, cut off
//! the moment a size limit is crossed, and typed by their magic bytes rather
//! than by what the client declared.

use axum::extract::multipart::{Field, MultipartError};
use axum::http::StatusCode;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// What a file field is supposed to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaClass {
    Image,
    Audio,
}

impl MediaClass {
    /// Maps sniffed bytes to an accepted MIME type, or None.
    fn accept(self, head: &[u8]) -> Option<&'static str> {
        let sniffed = infer::get(head).map(|t| t.mime_type());
        match self {
            MediaClass::Image => match sniffed? {
                mime @ ("image/jpeg" | "image/png" | "image/webp") => Some(mime),
                _ => None,
            },
            MediaClass::Audio => match sniffed {
                Some(mime @ ("audio/mpeg" | "audio/x-wav" | "audio/ogg" | "audio/opus")) => {
                    Some(mime)
                }
                // M4A is an MP4 container; many recorders label it with a
                // generic MP4 brand, which sniffs as video/mp4.
                Some("audio/m4a" | "video/mp4" | "audio/mp4") => Some("audio/mp4"),
                Some(_) => None,
                None => is_mpeg_audio_frame(head).then_some("audio/mpeg"),
            },
        }
    }
}

/// An MP3 without an ID3 tag starts straight with an MPEG audio frame header
/// (11 sync bits, then a layer III marker), which `infer` only partly knows.
fn is_mpeg_audio_frame(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && head[1] & 0x06 == 0x02
}

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

const SNIFF_BYTES: usize = 4096;

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
            found: infer::get(head).map(|t| t.mime_type()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content_not_name() {
        assert_eq!(
            MediaClass::Image.accept(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some("image/png")
        );
        assert_eq!(MediaClass::Image.accept(b"hello, I am text"), None);
        assert_eq!(
            MediaClass::Audio.accept(b"ID3\x04\0\0\0\0\0\0"),
            Some("audio/mpeg")
        );
        assert_eq!(
            MediaClass::Audio.accept(&[0xFF, 0xF3, 0x64, 0xC4, 0, 0]),
            Some("audio/mpeg")
        );
        assert_eq!(
            MediaClass::Audio.accept(b"RIFF\x24\0\0\0WAVEfmt "),
            Some("audio/x-wav")
        );
        assert_eq!(
            MediaClass::Audio.accept(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            None
        );
    }
}
