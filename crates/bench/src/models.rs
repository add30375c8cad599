//! models: the Provider job types that analyse or animate, through the real
//! `genq serve` with in-process workers, timed as a client sees them:
//! `POST /jobs/v2`, then `GET /jobs/{uuid}` every 5 ms until SUCCESS. The
//! assets are fetched by genq over HTTP from a file server inside the
//! harness, as a customer's would be from their storage.
//!
//! - a photo check of a 12-megapixel JPEG (face detection, sharpness, …);
//! - 1,000 characters spoken by the built-in espeak-ng;
//! - a 1080×1920 talking-head video against the `video` of the same layout.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde_json::{json, Value};
use tower_http::services::ServeDir;

use crate::inputs::{ffmpeg, path_str};
use crate::server::{genq_binary, Server};
use crate::stats::{ms, percentile, Summary};
use crate::table::{Row, Target};
use crate::Plan;

/// How often the client asks: far below any job's length, so the figure
/// is the job's and not the poll's.
const POLL: Duration = Duration::from_millis(5);
/// Longer than genq's own render timeout for the longest voice (120 s + 4×).
const JOB_DEADLINE: Duration = Duration::from_secs(900);
const SENTENCES: [&str; 6] = [
    "Tulips are back at the market this weekend, in every colour you can think of.",
    "Our growers picked them this morning, so they will last well over a week in a vase.",
    "Bring a friend, try the coffee stand by the gate, and ask us about the spring planters.",
    "Delivery is free across the city for orders placed before noon on Friday.",
    "Every bouquet is wrapped in recycled paper and tied by hand.",
    "We look forward to seeing you, rain or shine.",
];

pub async fn run(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<Row>> {
    let work = dir.join("models");
    let assets = work.join("assets");
    tokio::fs::create_dir_all(&assets).await?;
    let astronaut = astronaut();
    let photo_note = match &astronaut {
        Some(_) => "astronaut.png scaled",
        None => {
            eprintln!("  target/fixtures/photos/astronaut.png missing (scripts/deps --test): testsrc2 instead");
            "testsrc2 card: astronaut.png missing, run scripts/deps --test"
        }
    };
    big_photo(astronaut.as_deref(), &assets.join("photo-12mp.jpg")).await?;
    let secs = plan.models_talking_secs;
    voice(&assets.join("voice.wav"), secs).await?;
    if let Some(astronaut) = &astronaut {
        tokio::fs::copy(astronaut, assets.join("astronaut.png")).await?;
    }

    let files = FileServer::start(&assets).await?;
    let server = Server::start_with(
        &genq_binary()?,
        &work.join("data"),
        &["--workers", "2", "--input-allow-private", "true"],
    )
    .await?;
    let measured = async {
        let client = Client {
            http: reqwest::Client::new(),
            server: &server,
            key: server.create_account("bench").await?,
        };
        let asset = |name: &str| format!("http://{}/{name}", files.addr);
        let mut rows = photo_qc(plan, &client, &asset("photo-12mp.jpg"), photo_note).await?;
        rows.extend(tts(plan, &client).await?);
        match &astronaut {
            Some(_) => {
                let values = json!({
                    "presenter": {"image_url": asset("astronaut.png")},
                    "caption": "Tulips are back: see them at the market this weekend",
                    "voice": {"audio_url": asset("voice.wav")}
                });
                rows.extend(talking(plan, &client, &values).await?);
            }
            // testsrc2 has no face, and a talking head needs one.
            None => rows.push(Row::skipped(
                format!("talking video {secs} s builtin"),
                "needs a face: astronaut.png missing, run scripts/deps --test",
            )),
        }
        anyhow::Ok(rows)
    }
    .await;
    let stopped = server.stop().await;
    drop(files);
    let rows = measured?;
    stopped?;
    Ok(rows)
}

async fn photo_qc(
    plan: &Plan,
    client: &Client<'_>,
    url: &str,
    source: &str,
) -> anyhow::Result<Vec<Row>> {
    let project = client
        .project(&json!({"name": "QC", "type": "photo_qc"}))
        .await?;
    let request = json!({"job_type": "photo_qc", "template_id": project, "values": {"photo": url}});
    // The first job pays for what a server loads once (the face detector's
    // model): shown, but not one of the runs.
    let (cold, record) = client.run(&request).await?;
    let photo = &record["output"]["report"]["photos"][0];
    ensure!(
        photo["width"] == 4000 && photo["height"] == 3000,
        "the report is not of the 12 MP photo: {record}"
    );
    eprintln!("  photo_qc 12 MP, first job: {:.0} ms", ms(cold));
    let mut samples = Vec::new();
    for i in 0..plan.models_qc_runs {
        let (t, _) = client.run(&request).await?;
        eprintln!("  photo_qc 12 MP, run {}: {:.0} ms", i + 1, ms(t));
        samples.push(t);
    }
    samples.sort();
    let p50 = percentile(&samples, 50.0).map_or(f64::NAN, ms);
    let p99 = percentile(&samples, 99.0).map_or(f64::NAN, ms);
    let all: Vec<f64> = samples.iter().copied().map(ms).collect();
    Ok(vec![
        Row::new(
            "photo_qc 12 MP p50",
            Summary::of(&all).context("no photo_qc runs")?,
            "ms",
        )
        .decimals(0)
        .target(Target::at_most(p50, 300.0, "≤ 300 ms"))
        .note(format!(
            "submit→SUCCESS over HTTP, 4000×3000 JPEG q3 ({source}), fetched by genq"
        )),
        Row::new(
            "photo_qc 12 MP p99",
            Summary::of(&[p99]).expect("one"),
            "ms",
        )
        .decimals(0)
        .note(format!(
            "{} jobs one at a time; first job {:.0} ms, not counted",
            all.len(),
            ms(cold)
        )),
    ])
}

async fn tts(plan: &Plan, client: &Client<'_>) -> anyhow::Result<Vec<Row>> {
    let project = client
        .project(&json!({"name": "Voice", "type": "tts"}))
        .await?;
    let text = thousand_chars();
    let request = json!({"job_type": "tts", "template_id": project, "values": {"text": text}});
    let mut samples = Vec::new();
    let mut spoken = f64::NAN;
    for i in 0..plan.models_tts_runs {
        let (t, record) = client.run(&request).await?;
        spoken = record["output"]["duration_seconds"]
            .as_f64()
            .with_context(|| format!("no duration_seconds: {record}"))?;
        eprintln!(
            "  tts 1,000 chars, run {}: {:.0} ms ({spoken:.1} s of speech)",
            i + 1,
            ms(t)
        );
        samples.push(ms(t));
    }
    Ok(vec![Row::new(
        "tts 1,000 chars p50",
        Summary::of(&samples).context("no tts runs")?,
        "ms",
    )
    .decimals(0)
    .note(format!(
        "built-in espeak-ng, {spoken:.1} s of speech as MP3; submit→SUCCESS"
    ))])
}

async fn talking(plan: &Plan, client: &Client<'_>, values: &Value) -> anyhow::Result<Vec<Row>> {
    let secs = plan.models_talking_secs;
    let talking = client.project(&layout("ai_talking_video")).await?;
    let video = client.project(&layout("video")).await?;
    let mut talking_secs = Vec::new();
    let mut video_secs = Vec::new();
    // Alternated, so a burst of other load falls on both sides of the ratio.
    for i in 0..plan.models_talking_runs {
        let request =
            json!({"job_type": "ai_talking_video", "template_id": talking, "values": values});
        let (t, record) = client.run(&request).await?;
        ensure!(
            record["output"]["talking_head"] == "builtin",
            "the talking head was not the built-in one: {record}"
        );
        let length = record["output"]["duration_seconds"].as_f64();
        let near = |d: f64| (d - f64::from(secs)).abs() < 0.5;
        ensure!(
            length.is_some_and(near),
            "a {secs} s voice made a video of {length:?} s: {record}"
        );
        eprintln!(
            "  talking video {secs} s, run {}: {:.2} s",
            i + 1,
            t.as_secs_f64()
        );
        talking_secs.push(t.as_secs_f64());

        let request = json!({"job_type": "video", "template_id": video, "values": values});
        let (t, _) = client.run(&request).await?;
        eprintln!("  video {secs} s, run {}: {:.2} s", i + 1, t.as_secs_f64());
        video_secs.push(t.as_secs_f64());
    }
    let talking = Summary::of(&talking_secs).context("no talking video runs")?;
    let video = Summary::of(&video_secs).context("no video runs")?;
    Ok(vec![
        Row::new(format!("talking video {secs} s builtin"), talking, "s")
            .decimals(2)
            .ratio("talking/video", talking.median / video.median)
            .note("every frame encoded: the moving mouth region is piped to ffmpeg; the video uses the still-image fast path"),
        Row::new(format!("video {secs} s"), video, "s")
            .decimals(2)
            .note("1080×1920, the same layers, photo and voice; submit→SUCCESS"),
    ])
}

/// 1080×1920: the avatar in the square at the top, a panel and a caption
/// under it — one layout for both job types, so the only difference is
/// the talking head.
fn layout(kind: &str) -> Value {
    json!({
        "name": format!("Presenter ({kind})"), "type": kind,
        "canvas": {"width": 1080, "height": 1920, "background": "#204060"},
        "fields": {
            "presenter": {"type": "image", "required": true},
            "caption": {"type": "text"},
            "voice": {"type": "audio", "required": true}
        },
        "layers": [
            {"kind": "image", "field": "presenter", "x": 0, "y": 0, "width": 1080, "height": 1080, "fit": "cover"},
            {"kind": "rect", "x": 0, "y": 1080, "width": 1080, "height": 840, "color": "#000000cc"},
            {"kind": "text", "field": "caption", "x": 60, "y": 1160, "width": 960, "height": 400,
             "size": 72, "color": "#ffffff", "align": "center"}
        ],
        "audio": {"field": "voice"}
    })
}

/// A Provider client with one account's key.
struct Client<'a> {
    http: reqwest::Client,
    server: &'a Server,
    key: String,
}

impl Client<'_> {
    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .http
            .post(self.server.url(path))
            .header("x-api-key", &self.key)
            .json(body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let code = response.status().as_u16();
        Ok((code, response.json().await.unwrap_or(Value::Null)))
    }

    async fn project(&self, template: &Value) -> anyhow::Result<String> {
        let (code, body) = self.post("/api/provider/projects", template).await?;
        ensure!(code == 201, "creating a project: {code} {body}");
        body["data"]["projectId"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no projectId: {body}"))
    }

    /// Submits, polls until SUCCESS, and returns the time between and the
    /// record. A job that fails is the harness's fault, not a slow figure.
    async fn run(&self, request: &Value) -> anyhow::Result<(Duration, Value)> {
        let started = Instant::now();
        let (code, created) = self.post("/jobs/v2", request).await?;
        ensure!(code == 201, "submitting {request}: {code} {created}");
        let id = created["job"]["uuid"]
            .as_str()
            .with_context(|| format!("no job.uuid: {created}"))?;
        let url = self.server.url(&format!("/jobs/{id}"));
        loop {
            let response = self
                .http
                .get(&url)
                .header("x-api-key", &self.key)
                .send()
                .await?;
            let code = response.status().as_u16();
            let record: Value = response.json().await.unwrap_or(Value::Null);
            ensure!(code == 200, "GET /jobs/{id}: {code} {record}");
            match record["job_status"].as_str() {
                Some("SUCCESS") => return Ok((started.elapsed(), record)),
                Some("FAILED" | "CANCELLED") => bail!("job {id} did not succeed: {record}"),
                _ => {}
            }
            if started.elapsed() > JOB_DEADLINE {
                bail!("job {id} unfinished after {JOB_DEADLINE:?}: {record}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A directory served on a free loopback port until dropped, whichever
/// way the figure ends.
struct FileServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl FileServer {
    async fn start(dir: &Path) -> anyhow::Result<FileServer> {
        let app = axum::Router::new().fallback_service(ServeDir::new(dir));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FileServer { addr, task })
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// scikit-image's studio portrait, which `scripts/deps --test` puts under
/// the target dir: beside this binary's, or this checkout's.
fn astronaut() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()));
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target");
    [beside, Some(checkout)]
        .into_iter()
        .flatten()
        .map(|target| target.join("fixtures/photos/astronaut.png"))
        .find(|path| path.is_file())
}

/// A 4000×3000 JPEG at a camera's quality and chroma subsampling, from a
/// real photo (a face for the detector), else from a test card.
async fn big_photo(source: Option<&Path>, out: &Path) -> anyhow::Result<()> {
    let input = match source {
        Some(path) => vec!["-i", path_str(path)?],
        None => vec!["-f", "lavfi", "-i", "testsrc2=size=4000x3000:rate=1"],
    };
    let mut args = input;
    args.extend([
        "-vf",
        "scale=4000:3000",
        "-frames:v",
        "1",
        "-pix_fmt",
        "yuvj420p",
        "-q:v",
        "3",
        path_str(out)?,
    ]);
    ffmpeg(&args).await?;
    Ok(())
}

/// Speech-like: a voiced tone, its loudness wavering, in 0.3 s bursts
/// between 0.3 s of silence, so the mouth keeps opening and closing.
async fn voice(out: &Path, secs: u32) -> anyhow::Result<()> {
    let source = format!(
        "aevalsrc=0.5*sin(2*PI*180*t)*(0.6+0.4*sin(2*PI*7*t))*lt(mod(t\\,0.6)\\,0.3):s=48000:d={secs}"
    );
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &source,
        "-ac",
        "1",
        "-c:a",
        "pcm_s16le",
        path_str(out)?,
    ])
    .await?;
    Ok(())
}

/// Exactly 1,000 characters of plain English sentences.
fn thousand_chars() -> String {
    let mut text = String::new();
    for sentence in SENTENCES.iter().cycle() {
        if text.len() >= 1000 {
            break;
        }
        text.push_str(sentence);
        text.push(' ');
    }
    text.truncate(1000);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_a_thousand_characters() {
        let text = thousand_chars();
        assert_eq!(text.chars().count(), 1000);
        assert!(text.is_ascii());
    }
}
