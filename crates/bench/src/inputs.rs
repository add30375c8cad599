//! The harness makes its own inputs with ffmpeg, so a run needs no fixtures
//! and every machine measures the same content.

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Runs `ffmpeg ARGS` quietly; an error carries ffmpeg's own message.
pub async fn ffmpeg(args: &[&str]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .context("running ffmpeg (is it installed? scripts/deps installs it)")?;
    let elapsed = started.elapsed();
    if !out.status.success() {
        bail!(
            "ffmpeg {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(elapsed)
}

/// "ffmpeg 5.1.9-0+deb12u1", for the report's header.
pub async fn ffmpeg_version() -> String {
    let out = tokio::process::Command::new("ffmpeg")
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let first = text.lines().next().unwrap_or_default();
            first
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
                .replace(" version", "")
        }
        _ => "ffmpeg missing".into(),
    }
}

/// A 1920×1080 JPEG with detail in it (a test card, not a flat colour that
/// would flatter the encoder).
pub async fn photo(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("photo-1920x1080.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1920x1080:rate=1",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        path_str(&path)?,
    ])
    .await?;
    Ok(path)
}

/// A 1280×720 JPEG test card: the smaller photo of the `scaling` renders,
/// where the figure is about the queue and the processes, not the decoder.
pub async fn small_photo(dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("photo-1280x720.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=1",
        "-frames:v",
        "1",
        "-q:v",
        "3",
        path_str(&path)?,
    ])
    .await?;
    Ok(path)
}

/// A stereo 44.1 kHz 192 kb/s MP3 of `secs` seconds: two tones under noise,
/// so the AAC encoder has real work on both channels.
pub async fn mp3(dir: &Path, secs: u32) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("audio-{secs}s.mp3"));
    let source = format!(
        "aevalsrc=0.3*sin(2*PI*220*t)+0.05*(random(0)-0.5)|0.3*sin(2*PI*330*t)+0.05*(random(1)-0.5):s=44100:d={secs}"
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        path_str(&path)?,
    ])
    .await?;
    Ok(path)
}

/// A real small JPEG followed by zeros up to `size` bytes: it sniffs as a
/// JPEG, so the server streams all of it to disk like a genuine photo.
pub async fn padded_jpeg(dir: &Path, size: u64) -> anyhow::Result<PathBuf> {
    let small = dir.join("small.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=1",
        "-frames:v",
        "1",
        path_str(&small)?,
    ])
    .await?;
    let path = dir.join("padded.jpg");
    tokio::fs::copy(&small, &path).await?;
    // Zeros written out (not a sparse hole) so reading it costs what a real
    // file of that size costs.
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .await?;
    let have = file.metadata().await?.len();
    if have > size {
        bail!("the small JPEG ({have} bytes) is larger than {size} bytes");
    }
    let mut file = tokio::io::BufWriter::new(file);
    let zeros = vec![0u8; 1 << 20];
    let mut left = size - have;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        tokio::io::AsyncWriteExt::write_all(&mut file, &zeros[..n]).await?;
        left -= n as u64;
    }
    tokio::io::AsyncWriteExt::flush(&mut file).await?;
    Ok(path)
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
