//! memory: the server's resident set when idle, and how much it grows while
//! a 50 MB upload streams through it (it should stream, not buffer).

use anyhow::{bail, Context};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::inputs;
use crate::server::{genq_binary, Server};
use crate::stats::Summary;
use crate::table::{proc_field, Row, Target};
use crate::Plan;

/// Just under genq's default 50 MB (10^6 bytes) per-file limit.
const UPLOAD_BYTES: u64 = 49_900_000;
const SAMPLE_EVERY: Duration = Duration::from_millis(5);
/// MB as genq counts its upload limit: 10^6 bytes.
const MB: f64 = 1e6;

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let work = dir.join("memory");
    tokio::fs::create_dir_all(&work).await?;
    let image = inputs::padded_jpeg(&work, UPLOAD_BYTES).await?;
    let audio = inputs::mp3(&work, 2).await?;
    let server = Server::start(&genq_binary()?, &work.join("data")).await?;
    let measured = measure(plan, &server, &image, &audio).await;
    let stopped = server.stop().await;
    let rows = measured?;
    stopped?;
    Ok(rows)
}

async fn measure(
    plan: &Plan,
    server: &Server,
    image: &Path,
    audio: &Path,
) -> anyhow::Result<Vec<Row>> {
    let key = server.create_account("bench").await?;
    let pid = server.pid()?;
    let client = reqwest::Client::new();
    // Idle means "has served", not "has just started": a few requests of
    // each kind first, so lazily built state is counted.
    for path in ["/health", "/v1/models", "/v1/account", "/api/jobs"] {
        client
            .get(server.url(path))
            .header("X-API-Key", &key)
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("GET {path}"))?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_bytes(pid)? as f64 / MB;
    eprintln!("  memory: idle RSS {idle:.1} MB");

    let mut growth = Vec::new();
    for i in 0..plan.upload_runs {
        let before = rss_bytes(pid)?;
        let sampler = Sampler::start(pid);
        let uploaded = upload(&client, server, &key, image, audio).await;
        let peak = sampler.stop()?;
        let job = uploaded?;
        let grew = peak.saturating_sub(before) as f64 / MB;
        eprintln!("  memory: upload {}: RSS grew {grew:.1} MB", i + 1);
        growth.push(grew);
        // One active job per key: cancelling it makes room for the next run.
        client
            .delete(server.url(&format!("/api/jobs/{job}")))
            .header("X-API-Key", &key)
            .send()
            .await?
            .error_for_status()
            .context("cancelling the uploaded job")?;
    }
    let idle = Summary::of(&[idle]).expect("one sample");
    let growth = Summary::of(&growth).context("no uploads were run")?;
    Ok(vec![
        Row::new("memory: idle RSS", idle, "MB")
            .decimals(1)
            .target(Target::below(idle.median, 30.0, "< 30 MB")),
        Row::new("memory: RSS growth, 50 MB upload", growth, "MB")
            .decimals(1)
            .target(Target::below(growth.median, 16.0, "< 16 MB"))
            .note("peak of VmRSS sampled every 5 ms"),
    ])
}

/// `POST /api/jobs` with the image streamed from disk; returns the job id.
pub async fn upload(
    client: &reqwest::Client,
    server: &Server,
    key: &str,
    image: &Path,
    audio: &Path,
) -> anyhow::Result<String> {
    use reqwest::multipart::{Form, Part};
    let file = tokio::fs::File::open(image).await?;
    let len = file.metadata().await?.len();
    let stream = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    let image = Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
        .file_name("photo.jpg")
        .mime_str("image/jpeg")?;
    let audio = Part::bytes(tokio::fs::read(audio).await?)
        .file_name("voice.mp3")
        .mime_str("audio/mpeg")?;
    let response = client
        .post(server.url("/api/jobs"))
        .header("X-API-Key", key)
        .multipart(Form::new().part("image", image).part("audio", audio))
        .send()
        .await?;
    let status = response.status();
    let body = response.text().await?;
    if status != reqwest::StatusCode::CREATED {
        bail!("the upload was refused: HTTP {status}: {body}");
    }
    let json: serde_json::Value = serde_json::from_str(&body)?;
    json["jobId"]
        .as_str()
        .map(str::to_owned)
        .context("the upload's answer had no jobId")
}

pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = proc_field(&status, "VmRSS")
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("no VmRSS in /proc/PID/status")?;
    Ok(kib * 1024)
}

/// Polls VmRSS on a thread of its own, so the async runtime's scheduling
/// never stretches the interval.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<anyhow::Result<u64>>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::SeqCst) {
                peak = peak.max(rss_bytes(pid)?);
                std::thread::sleep(SAMPLE_EVERY);
            }
            Ok(peak.max(rss_bytes(pid)?))
        });
        Sampler { stop, thread }
    }

    fn stop(self) -> anyhow::Result<u64> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?
    }
}
