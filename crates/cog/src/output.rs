//! Writing a prediction's output as files.
//!
//! Cog's output is one value or a list. Strings that are `data:` or HTTP(S)
//! URIs are files (that is how Cog encodes a `Path` output); other strings
//! are written as text, and anything else as JSON.

use std::path::Path;

use genq_outbound::fetch::{Fetched, Fetcher};
use serde_json::Value;

use crate::{CogError, CogFile};

const OCTET_STREAM: &str = "application/octet-stream";

pub(crate) async fn write_all(
    fetcher: &Fetcher,
    output: Value,
    out_dir: &Path,
) -> Result<Vec<CogFile>, CogError> {
    let items = match output {
        Value::Array(items) => items,
        one => vec![one],
    };
    tokio::fs::create_dir_all(out_dir)
        .await
        .map_err(|e| CogError::Output(format!("creating the output directory: {e}")))?;
    let mut files = Vec::new();
    for item in items.into_iter().filter(|item| !item.is_null()) {
        let index = files.len();
        files.push(write_one(fetcher, index, item, out_dir).await?);
    }
    Ok(files)
}

async fn write_one(
    fetcher: &Fetcher,
    index: usize,
    item: Value,
    out_dir: &Path,
) -> Result<CogFile, CogError> {
    let (bytes, ext, content_type) = match item {
        Value::String(s) if is_file_uri(&s) => return fetch(fetcher, index, &s, out_dir).await,
        Value::String(s) => (s.into_bytes(), "txt", "text/plain"),
        other => {
            let json =
                serde_json::to_vec_pretty(&other).map_err(|e| CogError::Output(e.to_string()))?;
            (json, "json", "application/json")
        }
    };
    let path = out_dir.join(format!("output-{index}.{ext}"));
    tokio::fs::write(&path, &bytes)
        .await
        .map_err(|e| CogError::Output(format!("writing output {index}: {e}")))?;
    Ok(CogFile {
        path,
        content_type: content_type.into(),
        size: bytes.len() as u64,
    })
}

async fn fetch(
    fetcher: &Fetcher,
    index: usize,
    uri: &str,
    out_dir: &Path,
) -> Result<CogFile, CogError> {
    // The name waits for the type, which is known only once fetched.
    let partial = out_dir.join(format!("output-{index}.part"));
    let fetched = fetcher
        .fetch_to(uri, &partial)
        .await
        .map_err(|e| CogError::Output(e.to_string()))?;
    let content_type = content_type(&fetched);
    let ext = extension(&content_type)
        .map(str::to_owned)
        .or_else(|| url_extension(uri))
        .unwrap_or_else(|| "bin".into());
    let path = out_dir.join(format!("output-{index}.{ext}"));
    if let Err(e) = tokio::fs::rename(&partial, &path).await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(CogError::Output(format!("naming output {index}: {e}")));
    }
    Ok(CogFile {
        path,
        content_type,
        size: fetched.size,
    })
}

fn is_file_uri(s: &str) -> bool {
    let lower = |n: usize| s.get(..n).map(str::to_ascii_lowercase);
    lower(5).as_deref() == Some("data:")
        || lower(7).as_deref() == Some("http://")
        || lower(8).as_deref() == Some("https://")
}

/// The declared type when it says something, else what the bytes look like.
fn content_type(fetched: &Fetched) -> String {
    let declared = fetched.declared.as_deref().map(|declared| {
        let essence = declared.split(';').next().unwrap_or_default();
        essence.trim().to_ascii_lowercase()
    });
    match declared {
        Some(d) if !d.is_empty() && d != OCTET_STREAM && d != "binary/octet-stream" => d,
        _ => fetched.sniffed.unwrap_or(OCTET_STREAM).to_owned(),
    }
}

fn extension(content_type: &str) -> Option<&'static str> {
    Some(match content_type {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "image/avif" => "avif",
        "image/svg+xml" => "svg",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => "wav",
        "audio/mpeg" => "mp3",
        "audio/ogg" => "ogg",
        "audio/flac" | "audio/x-flac" => "flac",
        "audio/aac" => "aac",
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" => "m4a",
        "text/plain" => "txt",
        "application/json" => "json",
        "model/gltf-binary" => "glb",
        "application/zip" => "zip",
        _ => return None,
    })
}

/// The extension of an HTTP URL's file name, if it is a plain one.
fn url_extension(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    if url.scheme() == "data" {
        return None;
    }
    let name = url.path_segments()?.next_back()?;
    let (_, ext) = name.rsplit_once('.')?;
    let plain = !ext.is_empty() && ext.len() <= 8 && ext.bytes().all(|b| b.is_ascii_alphanumeric());
    plain.then(|| ext.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_uris_are_recognised() {
        assert!(is_file_uri("data:image/png;base64,AAAA"));
        assert!(is_file_uri("HTTPS://cdn.example/x.png"));
        assert!(!is_file_uri("a cat on a mat"));
        assert!(!is_file_uri("dat"));
        assert!(!is_file_uri("é"));
    }

    #[test]
    fn declared_types_win_unless_they_say_nothing() {
        let fetched = |declared: Option<&str>, sniffed| Fetched {
            size: 1,
            sniffed,
            declared: declared.map(str::to_owned),
        };
        let png = Some("image/png");
        assert_eq!(
            content_type(&fetched(Some("Image/WebP; q=1"), png)),
            "image/webp"
        );
        assert_eq!(content_type(&fetched(Some(OCTET_STREAM), png)), "image/png");
        assert_eq!(content_type(&fetched(None, png)), "image/png");
        assert_eq!(content_type(&fetched(None, None)), OCTET_STREAM);
    }

    #[test]
    fn extensions_come_from_the_type_or_the_url() {
        assert_eq!(extension("image/jpeg"), Some("jpg"));
        assert_eq!(extension("application/x-unknown"), None);
        assert_eq!(
            url_extension("https://x/out/result.EXR?sig=1").as_deref(),
            Some("exr")
        );
        assert_eq!(url_extension("https://x/out/result"), None);
        assert_eq!(url_extension("https://x/a.b/c.../"), None);
        assert_eq!(url_extension("data:image/png;base64,AA.png"), None);
    }
}
