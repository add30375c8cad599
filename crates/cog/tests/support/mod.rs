//! Starts real Cog prediction servers (the `cog` package from PyPI, no
//! Docker) on free loopback ports, with small predictors written here.
//!
//! The Python comes from `GENQ_COG_PYTHON`, else the venv that
//! `scripts/deps --test` makes in `target/cog-venv`.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use url::Url;

const PREDICTORS: &str = r#"
import tempfile
import time

from cog import BasePredictor, Input, Path
from PIL import Image, ImageDraw


class Image_(BasePredictor):
    def setup(self):
        self.background = (20, 40, 200)

    def predict(
        self,
        prompt: str = Input(description="What to draw"),
        size: int = Input(default=64, ge=8, le=512),
    ) -> Path:
        image = Image.new("RGB", (size, size), self.background)
        ImageDraw.Draw(image).text((2, 2), prompt[:20], fill=(255, 255, 255))
        out = Path(tempfile.mkdtemp()) / "out.png"
        image.save(out)
        return out


class Failing(BasePredictor):
    def predict(self, prompt: str = "x") -> Path:
        raise RuntimeError(f"the model exploded on {prompt!r}")


class Slow(BasePredictor):
    def predict(self, seconds: float = 30.0) -> str:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.02)
        return f"slept {seconds}"


class Mixed(BasePredictor):
    def predict(self) -> list:
        return [{"seed": 42}, "a caption"]


class Speaker(BasePredictor):
    """A TTS model: a tone as long as the text (60 ms a character), higher
    for German, so a test hears which language it was asked for."""

    def predict(self, text: str, voice: str = "", language: str = "en", speed: float = 1.0) -> Path:
        import math, struct, wave
        rate = 16000
        frequency = 440.0 if language.lower().startswith("de") else 220.0
        samples = int(rate * 0.06 * len(text) / speed)
        out = Path(tempfile.mkdtemp()) / "speech.wav"
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(b"".join(
                struct.pack("<h", int(12000 * math.sin(2 * math.pi * frequency * i / rate)))
                for i in range(samples)))
        return out


class Painter(BasePredictor):
    """A text-to-image model: draws its prompt at the size asked, and keeps
    the prompts in the PNG's text chunks for the test to read."""

    def predict(self, prompt: str, width: int = 512, height: int = 512, negative_prompt: str = "") -> Path:
        from PIL.PngImagePlugin import PngInfo
        image = Image.new("RGB", (width, height), (0, 160, 60))
        ImageDraw.Draw(image).text((8, 8), prompt[:60], fill=(255, 255, 255))
        info = PngInfo()
        info.add_text("prompt", prompt)
        info.add_text("negative_prompt", negative_prompt)
        out = Path(tempfile.mkdtemp()) / "image.png"
        image.save(out, pnginfo=info)
        return out


class BrokenPainter(BasePredictor):
    def predict(self, prompt: str, width: int = 512, height: int = 512, negative_prompt: str = "") -> Path:
        raise RuntimeError(f"the model exploded on {prompt!r}")


class TalkingClip(BasePredictor):
    """A talking-head model: a one-second clip of a solid colour — magenta
    when asked to crop, else cyan — from the image and the audio it got."""

    def predict(self, image: Path, audio: Path, crop: bool = False, output_size: int = 256,
                expand_ratio: float = 0.5) -> Path:
        import subprocess
        Image.open(image).verify()
        assert Path(audio).stat().st_size > 1000, "no audio"
        colour = "magenta" if crop else "cyan"
        out = Path(tempfile.mkdtemp()) / "clip.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"color=c={colour}:size={output_size}x{output_size}:duration=1:rate=25",
             "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)],
            check=True)
        return out


class FaceFinder(BasePredictor):
    """A face-detection model: two fixed faces in whatever photo it gets."""

    def predict(self, image: Path) -> dict:
        Image.open(image).verify()
        return {"faces": [{"x": 300, "y": 40, "width": 50, "height": 60},
                          {"x": 10, "y": 20, "width": 100, "height": 120, "score": 0.97}]}


class SlowHead(BasePredictor):
    def predict(self, image: Path, audio: Path) -> Path:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            time.sleep(0.02)
        raise RuntimeError("not cancelled")
"#;

/// What `cog build` would have generated for `Image_` (the Go CLI that
/// writes it is not on PyPI). Without it the server validates nothing.
const IMAGE_SCHEMA: &str = r#"{
  "openapi": "3.0.2",
  "info": {"title": "Cog", "version": "0.1.0"},
  "paths": {},
  "components": {"schemas": {
    "Input": {
      "type": "object", "title": "Input", "required": ["prompt"],
      "properties": {
        "prompt": {"type": "string", "title": "Prompt", "description": "What to draw", "x-order": 0},
        "size": {"type": "integer", "title": "Size", "default": 64, "minimum": 8, "maximum": 512, "x-order": 1}
      }
    },
    "Output": {"type": "string", "format": "uri", "title": "Output"}
  }}
}"#;

// Each test binary that includes this module starts some of them.
#[allow(dead_code)]
pub enum Predictor {
    Image,
    Failing,
    Slow,
    Mixed,
    Speaker,
    Painter,
    BrokenPainter,
    TalkingClip,
    SlowHead,
    FaceFinder,
}

pub struct CogServer {
    pub url: Url,
    child: Child,
    dir: tempfile::TempDir,
}

pub fn python() -> PathBuf {
    std::env::var_os("GENQ_COG_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/cog-venv/bin/python")
        })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl CogServer {
    pub async fn start(predictor: Predictor) -> Self {
        let python = python();
        assert!(
            python.exists(),
            "{} is missing: run scripts/deps --test (or set GENQ_COG_PYTHON)",
            python.display()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("predict.py"), PREDICTORS).unwrap();
        let class = match predictor {
            Predictor::Image => {
                std::fs::create_dir(dir.path().join(".cog")).unwrap();
                std::fs::write(dir.path().join(".cog/openapi_schema.json"), IMAGE_SCHEMA).unwrap();
                "Image_"
            }
            Predictor::Failing => "Failing",
            Predictor::Slow => "Slow",
            Predictor::Mixed => "Mixed",
            Predictor::Speaker => "Speaker",
            Predictor::Painter => "Painter",
            Predictor::BrokenPainter => "BrokenPainter",
            Predictor::TalkingClip => "TalkingClip",
            Predictor::SlowHead => "SlowHead",
            Predictor::FaceFinder => "FaceFinder",
        };
        // The server runs the model in a child started as plain `python`
        // from PATH, so that name must be this interpreter.
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let shim = bin.join("python");
        std::fs::write(
            &shim,
            format!("#!/bin/sh\nexec '{}' \"$@\"\n", python.display()),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();

        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(&python)
            .args(["-m", "cog.server.http", "--host", "127.0.0.1"])
            .current_dir(dir.path())
            .env("PORT", port.to_string())
            .env("COG_PREDICT_TYPE_STUB", format!("predict.py:{class}"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group, so Drop can stop the server and its model child.
            .process_group(0)
            .spawn()
            .unwrap();
        let mut server = CogServer {
            url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
            child,
            dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the Cog server exited ({status}):\n{}", self.log());
            }
            if let Some(status) = self.health(&client).await {
                match status.as_str() {
                    "READY" => return,
                    "SETUP_FAILED" | "DEFUNCT" => panic!("Cog says {status}:\n{}", self.log()),
                    _ => {}
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                panic!("the Cog server was not ready within 60 s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The server's `/health-check` status (READY, BUSY, STARTING, …).
    pub async fn health(&self, client: &reqwest::Client) -> Option<String> {
        let response = client
            .get(self.url.join("health-check").unwrap())
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = response.json().await.ok()?;
        body["status"].as_str().map(str::to_owned)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for CogServer {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this server leads.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
