//! `--out PATH`: a finished job's outputs, downloaded. A file path gets the
//! main output; an existing directory gets every output under its own name
//! (the last segment of its URL or storage key).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures::StreamExt;
use reqwest::Method;
use serde_json::Value;

use super::api::{unreachable, Api};
use super::dialect::{Dialect, Source};
use super::report::Report;
use super::{Exit, FAILED, USAGE};

/// Checks before submitting that `--out` can be written: a directory, or a
/// file in one.
pub fn check(out: &Path) -> anyhow::Result<()> {
    if out.is_dir() {
        return Ok(());
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Exit::error(
            USAGE,
            format!(
                "--out {}: no such directory {}",
                out.display(),
                parent.display()
            ),
        ));
    }
    Ok(())
}

/// Writes the job's outputs as `out` asks; returns the paths written.
pub async fn save(
    api: &Api,
    dialect: Dialect,
    body: &Value,
    out: &Path,
    report: &mut Report,
) -> anyhow::Result<Vec<PathBuf>> {
    let outputs = dialect.outputs(body);
    let into_dir = out.is_dir();
    let wanted: Vec<_> = if into_dir {
        outputs
    } else {
        outputs.into_iter().filter(|o| o.main).take(1).collect()
    };
    if wanted.is_empty() {
        eprintln!("genq: the job has no output to write to {}", out.display());
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    for output in wanted {
        let (url, name) = match &output.source {
            Source::Url(url) => (url.clone(), file_name(url)),
            Source::StorageKey(key) => (signed_url(api, key).await?, file_name(key)),
        };
        let path = if into_dir {
            out.join(&name)
        } else {
            out.to_owned()
        };
        let size = download(api, &url, &path, &name, report).await?;
        report.wrote(&path, &url, size);
        written.push(path);
    }
    Ok(written)
}

/// A Provider output's download URL, from its storage key.
async fn signed_url(api: &Api, key: &str) -> anyhow::Result<String> {
    let request = api
        .request(Method::GET, "/storage/generate-signed-path")
        .query(&[("path", key)]);
    let body = api.ok(request, "signing the output's path").await?;
    body.get("signedUrl")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Exit::error(FAILED, format!("no signedUrl for {key} in {body}")))
}

/// The last segment of a URL's path (or of a storage key), if it is a
/// plain file name; `output` otherwise.
fn file_name(url_or_key: &str) -> String {
    let path = url_or_key.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    let plain = !last.is_empty()
        && last != "."
        && last != ".."
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if plain {
        last.to_owned()
    } else {
        "output".to_owned()
    }
}

/// Streams `url` into `path` (through a temporary file beside it, renamed
/// once complete). Download links need no key, and none is sent.
async fn download(
    api: &Api,
    url: &str,
    path: &Path,
    name: &str,
    report: &Report,
) -> anyhow::Result<u64> {
    let response = api.http.get(url).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(Exit::error(
            FAILED,
            format!("downloading {url}: {}", response.status()),
        ));
    }
    let bar = report.download_bar(name, response.content_length());
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".genq-download-")
        .tempfile_in(dir)
        .with_context(|| format!("writing into {}", dir.display()))?;
    let mut size = 0u64;
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(unreachable)?;
        file.write_all(&chunk)
            .with_context(|| format!("writing {}", path.display()))?;
        size += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.set_position(size);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    // As a file the user made would be (a temporary file is private).
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o644);
    file.as_file().set_permissions(mode)?;
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn outputs_are_named_by_their_last_segment() {
        assert_eq!(file_name("http://h/media/tok/video.mp4"), "video.mp4");
        assert_eq!(
            file_name("video/0193/outputs/0193-ab.thumbnail.jpg"),
            "0193-ab.thumbnail.jpg"
        );
        assert_eq!(file_name("http://h/x/a.png?sig=1"), "a.png");
        assert_eq!(file_name("http://h/x/.."), "output");
        assert_eq!(file_name("http://h/x/"), "output");
    }
}
