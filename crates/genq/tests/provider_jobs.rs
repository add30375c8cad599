//! Provider jobs end to end over TCP, as the vendor's docs tell a client to
//! work: discover a project, send `template_id`, `job_type`, `version`,
//! `session_id` and `values` (assets on a local HTTPS server), poll the job
//! record to SUCCESS, ask for a signed path and download the output — then
//! check the files themselves (ffprobe, an image decoder, pdftotext).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::s3::S3Server;
use common::tls::certificates;
use common::*;
use serde_json::{json, Value};

/// Serves a directory over HTTPS with a certificate of a private CA.
struct Assets {
    child: Child,
    port: u16,
    dir: PathBuf,
    ca: PathBuf,
}

impl Assets {
    fn start(root: &Path) -> Assets {
        let dir = root.join("assets");
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, cert, key) = certificates(root);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/asset_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ])
            .args(["--dir", dir.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .expect("the asset server prints its port");
        Assets {
            child,
            port,
            dir,
            ca,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("https://localhost:{}/{name}", self.port)
    }
}

impl Drop for Assets {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Studio {
    _dir: tempfile::TempDir,
    assets: Assets,
    server: Server,
    account: Account,
    project: String,
}

const VOICE_SECS: f64 = 3.2;

fn template() -> Value {
    json!({
      "name": "Spring campaign",
      "type": "video",
      "canvas": {"width": 1080, "height": 1920, "background": "#101820"},
      "fields": {
        "headline":  {"label": "Headline",  "type": "text", "required": true, "maxLength": 80},
        "avatar":    {"label": "Avatar",    "type": "image"},
        "voiceover": {"label": "Voiceover", "type": "audio"}
      },
      "layers": [
        {"kind": "image", "field": "avatar", "x": 0, "y": 0, "width": 1080, "height": 1350, "fit": "cover"},
        {"kind": "rect", "x": 0, "y": 1350, "width": 1080, "height": 570, "color": "#000000cc"},
        {"kind": "text", "field": "headline", "x": 60, "y": 1400, "width": 960, "height": 300,
         "size": 72, "color": "#ffffff", "align": "center"}
      ],
      "audio": {"field": "voiceover"},
      "duration": 4
    })
}

impl Studio {
    fn start(extra: &[&str]) -> Studio {
        Studio::start_with(extra, &[])
    }

    fn start_with(extra: &[&str], env: &[(&str, &str)]) -> Studio {
        let dir = tempfile::tempdir().unwrap();
        let assets = Assets::start(dir.path());
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=800x800",
            "-frames:v",
            "1",
            assets.dir.join("avatar.jpg").to_str().unwrap(),
        ]);
        let voice = format!("sine=frequency=300:duration={VOICE_SECS}:sample_rate=48000");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &voice,
            assets.dir.join("voice.wav").to_str().unwrap(),
        ]);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=2000:duration=10",
            "-c:a",
            "libmp3lame",
            assets.dir.join("music.mp3").to_str().unwrap(),
        ]);
        let data = dir.path().join("data");
        let ca = assets.ca.to_str().unwrap().to_owned();
        let mut args = vec!["--input-allow-private", "true", "--input-ca-file", &ca];
        if !extra.contains(&"--workers") {
            args.extend(["--workers", "1"]);
        }
        args.extend_from_slice(extra);
        let server = Server::start(&data, &args, env);
        // 1,000 credits at one cent each.
        let account = create_account_with(&data, "studio", &["--credits", "10000000"]);
        let file = dir.path().join("template.json");
        std::fs::write(&file, template().to_string()).unwrap();
        let created = cli_json(&[
            "projects",
            "create",
            "--account",
            &account.id,
            "--file",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        let project = created["projectId"].as_str().unwrap().to_owned();
        Studio {
            _dir: dir,
            assets,
            server,
            account,
            project,
        }
    }

    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.server.url(path))
            .header("x-api-key", key);
        if let Some(body) = body {
            request = request.json(body);
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn submit(&self, body: &Value) -> (u16, Value) {
        self.call(
            &self.account.api_key,
            reqwest::Method::POST,
            "/jobs/v2",
            Some(body),
        )
        .await
    }

    async fn job(&self, id: &str) -> Value {
        let (code, body) = self
            .call(
                &self.account.api_key,
                reqwest::Method::GET,
                &format!("/jobs/{id}"),
                None,
            )
            .await;
        assert_eq!(code, 200);
        body
    }

    /// Polls the job record until it is final; the statuses seen, in order
    /// (after the QUEUED of its submission).
    async fn until_final(&self, id: &str) -> (Value, Vec<String>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen: Vec<String> = vec!["QUEUED".into()];
        loop {
            let record = self.job(id).await;
            let status = record["job_status"].as_str().unwrap().to_owned();
            if seen.last() != Some(&status) {
                seen.push(status.clone());
            }
            if ["SUCCESS", "FAILED", "CANCELLED"].contains(&status.as_str()) {
                return (record, seen);
            }
            assert!(Instant::now() < deadline, "job {id} stuck at {status}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn credits(&self) -> f64 {
        let (_, body) = self
            .call(
                &self.account.api_key,
                reqwest::Method::GET,
                "/auth/credits",
                None,
            )
            .await;
        body["credits"].as_f64().unwrap()
    }

    async fn signed_url(&self, key: &str) -> String {
        let (code, body) = self
            .call(
                &self.account.api_key,
                reqwest::Method::GET,
                &format!("/storage/generate-signed-path?path={}", urlencode(key)),
                None,
            )
            .await;
        assert_eq!(code, 200, "{body}");
        body["signedUrl"].as_str().unwrap().to_owned()
    }

    fn values(&self) -> Value {
        json!({
            "headline": "Tulips are back",
            "avatar": {"image_url": self.assets.url("avatar.jpg")},
            "voiceover": {"audio_url": self.assets.url("voice.wav"), "effects": [{"type": "fade_in", "duration": 0.5}]},
        })
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn download(url: &str, to: &Path) {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    std::fs::write(to, response.bytes().await.unwrap()).unwrap();
}

#[tokio::test]
async fn the_vendors_flow_renders_a_video_an_image_and_a_pdf() {
    let studio = Studio::start(&[]);
    let (code, active) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::GET,
            "/api/provider/projects/active",
            None,
        )
        .await;
    assert_eq!(
        (code, active["data"][0]["projectId"].as_str()),
        (200, Some(studio.project.as_str()))
    );

    let request = json!({
        "template_id": studio.project,
        "job_type": "video",
        "version": 2,
        "session_id": "studio-session-1",
        "values": studio.values(),
        "background_music": studio.assets.url("music.mp3"),
        "background_volume": 0.4,
        "background_start": 1,
        "campaign": {"kept": "verbatim"}
    });
    let (code, created) = studio.submit(&request).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["message"], "Job update accepted and processing.");
    let job = &created["job"];
    assert_eq!(job["job_status"], "QUEUED");
    assert_eq!(job["job_type"], "video");
    assert_eq!(job["template_id"], studio.project.as_str());
    let id = job["uuid"].as_str().unwrap().to_owned();

    let (record, seen) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert!(
        seen.iter().any(|s| s == "STARTED" || s == "IN_PROGRESS"),
        "the record passes through STARTED or IN_PROGRESS: {seen:?}"
    );
    let order = ["QUEUED", "STARTED", "IN_PROGRESS", "SUCCESS"];
    let ranks: Vec<usize> = seen
        .iter()
        .map(|s| order.iter().position(|o| o == s).unwrap())
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] < w[1]),
        "statuses move forward: {seen:?}"
    );

    // The record as stored: the request as sent, the values, the price.
    assert_eq!(record["input"], request);
    assert_eq!(record["values"], request["values"]);
    assert_eq!(record["user_id"], studio.account.id.as_str());
    assert_eq!(record["credit_used"], "10");
    assert_eq!(record["progress"], 100);
    for time in ["created_at", "updated_at"] {
        let text = record[time].as_str().unwrap();
        assert!(text.len() == 24 && text.ends_with('Z'), "{time}: {text}");
    }
    let key = record["output"]["output"].as_str().unwrap();
    assert_eq!(key, format!("video/{}/outputs/{id}.mp4", studio.project));
    assert_eq!(
        record["output"]["thumbnail"],
        format!("video/{}/outputs/{id}.thumbnail.jpg", studio.project)
    );
    assert_eq!(
        record["output"]["poster"],
        format!("video/{}/outputs/{id}.poster.jpg", studio.project)
    );

    let url = studio.signed_url(key).await;
    assert!(url.starts_with(&studio.server.url("/storage/")), "{url}");
    let video = studio._dir.path().join("video.mp4");
    download(&url, &video).await;
    let probe = ffprobe(&video);
    let duration = seconds(&probe["format"]["duration"]);
    assert!(
        (duration - VOICE_SECS).abs() <= 0.05,
        "lasts as long as the voiceover: {duration}"
    );
    let picture = stream(&probe, "video");
    assert_eq!(
        (picture["width"].as_u64(), picture["height"].as_u64()),
        (Some(1080), Some(1920))
    );
    assert_eq!(picture["codec_name"], "h264");
    assert_eq!(picture["pix_fmt"], "yuv420p");
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
    // The URL answers ranges, as players ask.
    let part = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 100);

    // The same template as a PNG and as a PDF.
    let mut image_request = request.clone();
    image_request["job_type"] = json!("image");
    let (code, created) = studio.submit(&image_request).await;
    assert_eq!(code, 201, "{created}");
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(record["credit_used"], "2");
    let png = studio._dir.path().join("frame.png");
    download(
        &studio
            .signed_url(record["output"]["output"].as_str().unwrap())
            .await,
        &png,
    )
    .await;
    let frame = image::open(&png).unwrap().to_rgb8();
    assert_eq!(frame.dimensions(), (1080, 1920));

    let mut pdf_request = request.clone();
    pdf_request["job_type"] = json!("pdf");
    let (_, created) = studio.submit(&pdf_request).await;
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let key = record["output"]["output"].as_str().unwrap();
    assert!(key.ends_with(".pdf"), "{key}");
    let pdf = studio._dir.path().join("page.pdf");
    download(&studio.signed_url(key).await, &pdf).await;
    let text = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Tulips are back"));

    // 1,000 credits less a video (10), an image (2) and a PDF (2).
    assert_eq!(studio.credits().await, 986.0);
}

#[tokio::test]
async fn bad_submissions_are_refused_naming_the_field() {
    let studio = Studio::start(&["--workers", "0"]);
    let valid =
        json!({"template_id": studio.project, "job_type": "image", "values": studio.values()});
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|r| r["job_type"] = json!("gif")),
            "job_type must be one of",
        ),
        (
            Box::new(|r| r["job_type"] = json!("tts")),
            "job_type tts is not available on this server",
        ),
        (
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("job_type");
            }),
            "job_type is required",
        ),
        (
            Box::new(|r| {
                r.as_object_mut().unwrap().remove("template_id");
            }),
            "template_id (or project_id) is required",
        ),
        (
            Box::new(|r| r["template_id"] = json!("0193a1b2-0000-7000-8000-000000000000")),
            "could not be resolved",
        ),
        (
            Box::new(|r| r["template_id"] = json!("not-a-uuid")),
            "could not be resolved",
        ),
        (
            Box::new(|r| {
                r["values"].as_object_mut().unwrap().remove("headline");
            }),
            "values.headline: is required",
        ),
        (
            Box::new(|r| r["values"]["avatar"] = json!("https://example.com/a.jpg")),
            "values.avatar",
        ),
        (
            Box::new(|r| {
                r["values"]["headline"] = json!({"image_url": "https://example.com/a.jpg"})
            }),
            "values.headline: must be text",
        ),
        (
            Box::new(|r| r["values"]["headline"] = json!("x".repeat(81))),
            "values.headline: is 81 characters long",
        ),
        (
            Box::new(|r| r["values"]["voiceover"]["effects"] = json!([{"type": "echo"}])),
            "values.voiceover.effects[0].type",
        ),
        (
            Box::new(|r| r["values"]["avatar"]["image_url"] = json!("ftp://example.com/a.jpg")),
            "values.avatar.image_url",
        ),
        (
            Box::new(|r| r["background_volume"] = json!(1.5)),
            "background_volume must be from 0 to 1",
        ),
        (
            Box::new(|r| r["background_start"] = json!(-1)),
            "background_start must be at least 0",
        ),
        (
            Box::new(|r| r["background_music"] = json!("file:///etc/passwd")),
            "background_music must be an http(s) or data: URL",
        ),
        (
            Box::new(|r| r["version"] = json!("two")),
            "version must be a number",
        ),
        (
            Box::new(|r| r["session_id"] = json!(7)),
            "session_id must be a string",
        ),
    ];
    for (edit, expected) in cases {
        let mut request = valid.clone();
        edit(&mut request);
        let (code, body) = studio.submit(&request).await;
        assert_eq!(code, 400, "{request}: {body}");
        assert_eq!(
            (body["statusCode"].as_u64(), body["error"].as_str()),
            (Some(400), Some("Bad Request"))
        );
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
    // project_id is the alternative to template_id.
    let mut by_project = valid.clone();
    by_project.as_object_mut().unwrap().remove("template_id");
    by_project["project_id"] = json!(studio.project);
    assert_eq!(studio.submit(&by_project).await.0, 201);

    // Another account's project cannot be resolved; its jobs are not found.
    let other = create_account_with(&studio.server.data_dir, "other", &["--credits", "1000000"]);
    let (code, body) = studio
        .call(
            &other.api_key,
            reqwest::Method::POST,
            "/jobs/v2",
            Some(&valid),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let (_, mine) = studio.submit(&valid).await;
    let id = mine["job"]["uuid"].as_str().unwrap();
    for (key, path) in [
        (&other.api_key, format!("/jobs/{id}")),
        (
            &studio.account.api_key,
            "/jobs/0193a1b2-0000-7000-8000-000000000000".to_owned(),
        ),
        (&studio.account.api_key, "/jobs/nonsense".to_owned()),
    ] {
        let (code, body) = studio.call(key, reqwest::Method::GET, &path, None).await;
        assert_eq!(
            (code, body),
            (200, json!({"message": "Job not found"})),
            "{path}"
        );
    }

    // Credits that do not cover the job: 402, and nothing queued.
    let poor = create_account_with(&studio.server.data_dir, "poor", &["--credits", "10000"]);
    let file = studio._dir.path().join("template.json");
    let project = cli_json(&[
        "projects",
        "create",
        "--account",
        &poor.id,
        "--file",
        file.to_str().unwrap(),
        "--data-dir",
        studio.server.data_dir.to_str().unwrap(),
    ]);
    let mut request = valid.clone();
    request["template_id"] = project["projectId"].clone();
    let (code, body) = studio
        .call(
            &poor.api_key,
            reqwest::Method::POST,
            "/jobs/v2",
            Some(&request),
        )
        .await;
    assert_eq!(code, 402, "{body}");
    assert_eq!(body["statusCode"], 402);

    let (code, body) = studio
        .call("nope", reqwest::Method::POST, "/jobs/v2", Some(&valid))
        .await;
    assert_eq!(
        (code, body),
        (401, json!({"message": "Unauthorized", "statusCode": 401}))
    );
}

#[tokio::test]
async fn a_job_that_fails_is_refunded_and_says_why() {
    let studio = Studio::start(&[]);
    let before = studio.credits().await;
    let mut values = studio.values();
    values["avatar"]["image_url"] = json!(studio.assets.url("missing.jpg"));
    let request = json!({"template_id": studio.project, "job_type": "image", "values": values});
    let (code, created) = studio.submit(&request).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["job"]["credit_used"], "2");
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "FAILED", "{record}");
    let error = record["output"]["error"].as_str().unwrap();
    assert!(error.contains("values.avatar"), "{error}");
    assert_eq!(record["credit_used"], "0");
    assert_eq!(studio.credits().await, before);

    // A value that fetches but is not a picture fails naming the field too.
    std::fs::write(
        studio.assets.dir.join("fake.jpg"),
        b"<html>not a picture</html>",
    )
    .unwrap();
    values["avatar"]["image_url"] = json!(studio.assets.url("fake.jpg"));
    let (_, created) = studio
        .submit(&json!({"template_id": studio.project, "job_type": "image", "values": values}))
        .await;
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "FAILED");
    let error = record["output"]["error"].as_str().unwrap();
    assert!(
        error.contains("values.avatar") && error.contains("image"),
        "{error}"
    );
}

#[tokio::test]
async fn signed_paths_expire_and_refuse_tampering() {
    let studio = Studio::start(&["--signed-url-seconds", "2"]);
    let (_, created) = studio
        .submit(
            &json!({"template_id": studio.project, "job_type": "image", "values": studio.values()}),
        )
        .await;
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    let key = record["output"]["output"].as_str().unwrap().to_owned();
    let thumbnail = record["output"]["thumbnail"].as_str().unwrap().to_owned();

    let (code, body) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::GET,
            "/storage/generate-signed-path",
            None,
        )
        .await;
    assert_eq!(
        (code, body),
        (400, json!({"error": "Path query parameter is required"}))
    );
    let other = create_account(&studio.server.data_dir, "other");
    let path = format!("/storage/generate-signed-path?path={}", urlencode(&key));
    let (code, _) = studio
        .call(&other.api_key, reqwest::Method::GET, &path, None)
        .await;
    assert_eq!(code, 404, "another account's output");
    let (code, _) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::GET,
            &format!(
                "/storage/generate-signed-path?path={}",
                urlencode("image/x/outputs/../../etc/passwd")
            ),
            None,
        )
        .await;
    assert_eq!(code, 404);

    let url = studio.signed_url(&key).await;
    let status = |url: String| async move { reqwest::get(url).await.unwrap().status().as_u16() };
    assert_eq!(status(url.clone()).await, 200);
    let thumbnail_url = studio.signed_url(&thumbnail).await;
    assert_eq!(status(thumbnail_url).await, 200);
    // Another key with this signature, or a later expiry: refused.
    assert_eq!(status(url.replace(&key, &thumbnail)).await, 403);
    let (base, query) = url.split_once("?expires=").unwrap();
    let (expires, signature) = query.split_once('&').unwrap();
    let later: i64 = expires.parse::<i64>().unwrap() + 3600;
    assert_eq!(
        status(format!("{base}?expires={later}&{signature}")).await,
        403
    );
    let mut flipped = url.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    assert_eq!(status(flipped).await, 403);
    // And once it has expired.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "The link has expired");
}

#[tokio::test]
async fn outputs_in_object_storage_download_by_signed_path() {
    let Some(s3) = S3Server::start() else { return };
    let env = s3.genq_env("provider");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let studio = Studio::start_with(&[], &env);
    let request = json!({"template_id": studio.project, "job_type": "image", "format": "jpg",
        "values": studio.values()});
    let (code, created) = studio.submit(&request).await;
    assert_eq!(code, 201, "{created}");
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let key = record["output"]["output"].as_str().unwrap();
    assert!(key.ends_with(".jpg"), "{key}");
    let url = studio.signed_url(key).await;
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/jpeg");
    let picture = image::load_from_memory(&response.bytes().await.unwrap()).unwrap();
    assert_eq!((picture.width(), picture.height()), (1080, 1920));
    let part = reqwest::Client::new()
        .get(&url)
        .header("range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().len(), 10);
}
