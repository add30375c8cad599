//! A Provider studio for the tests: genq with a project made by the CLI,
//! and the job's assets on a real HTTPS server (a private CA genq is told
//! to trust).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::tls::certificates;
use super::*;

/// Serves a directory over HTTPS with a certificate of a private CA.
pub struct Assets {
    child: Child,
    port: u16,
    pub dir: PathBuf,
    pub ca: PathBuf,
}

impl Assets {
    pub fn start(root: &Path) -> Assets {
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

    pub fn url(&self, name: &str) -> String {
        format!("https://localhost:{}/{name}", self.port)
    }
}

impl Drop for Assets {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Studio {
    pub dir: tempfile::TempDir,
    pub assets: Assets,
    pub server: Server,
    pub account: Account,
    pub project: String,
}

pub const VOICE_SECS: f64 = 3.2;

pub fn template() -> Value {
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
    pub fn start(extra: &[&str]) -> Studio {
        Studio::start_with(extra, &[])
    }

    pub fn start_with(extra: &[&str], env: &[(&str, &str)]) -> Studio {
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
            dir,
            assets,
            server,
            account,
            project,
        }
    }

    pub async fn call(
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

    pub async fn submit(&self, body: &Value) -> (u16, Value) {
        self.call(
            &self.account.api_key,
            reqwest::Method::POST,
            "/jobs/v2",
            Some(body),
        )
        .await
    }

    pub async fn job(&self, id: &str) -> Value {
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
    pub async fn until_final(&self, id: &str) -> (Value, Vec<String>) {
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

    pub async fn credits(&self) -> f64 {
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

    pub async fn signed_url(&self, key: &str) -> String {
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

    pub fn values(&self) -> Value {
        json!({
            "headline": "Tulips are back",
            "avatar": {"image_url": self.assets.url("avatar.jpg")},
            "voiceover": {"audio_url": self.assets.url("voice.wav"), "effects": [{"type": "fade_in", "duration": 0.5}]},
        })
    }
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub async fn download(url: &str, to: &Path) {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    std::fs::write(to, response.bytes().await.unwrap()).unwrap();
}
