//! The Provider job types that need a model or an analysis — `tts`,
//! `photo_qc`, `ai_talking_video`, `ai_image_generation` — end to end over
//! TCP: projects made through the API, assets on a local HTTPS server, model
//! steps on real Cog prediction servers, outputs downloaded through signed
//! URLs and checked with ffprobe, ffmpeg and an image decoder.

#[allow(dead_code)]
#[path = "../../cog/tests/support/mod.rs"]
mod cog_support;
mod common;

use std::path::{Path, PathBuf};

use cog_support::{CogServer, Predictor};
use common::studio::*;
use common::*;
use serde_json::{json, Value};

/// A real photograph scikit-image ships (`scripts/deps --test` puts them
/// under target/fixtures/photos).
fn photo(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/fixtures/photos")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/deps --test",
        path.display()
    );
    path
}

/// The Cog models of these tests, in a catalog file genq is started with.
struct Models {
    _servers: Vec<CogServer>,
    _dir: tempfile::TempDir,
    catalog: PathBuf,
}

async fn models(predictors: Vec<(&str, &str, Predictor)>) -> Models {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    let mut toml = String::new();
    for (slug, output, predictor) in predictors {
        let url = match predictor {
            // Nothing listens there: the model server is unreachable.
            Predictor::Failing => format!("http://127.0.0.1:{}/", cog_support::free_port()),
            predictor => {
                let server = CogServer::start(predictor).await;
                let url = server.url.to_string();
                servers.push(server);
                url
            }
        };
        toml.push_str(&format!(
            "[[models]]\nslug = \"{slug}\"\noutput = \"{output}\"\nprice = {{ flat = 1000 }}\n\
             backend = {{ cog = \"{url}\" }}\ninput_schema = {{ type = \"object\" }}\n\n"
        ));
    }
    let catalog = dir.path().join("models.toml");
    std::fs::write(&catalog, toml).unwrap();
    Models {
        _servers: servers,
        _dir: dir,
        catalog,
    }
}

fn studio_with(models: &Models, extra: &[&str]) -> Studio {
    let mut args = vec!["--models", models.catalog.to_str().unwrap()];
    args.extend_from_slice(extra);
    Studio::start(&args)
}

impl Studio {
    async fn project(&self, template: &Value) -> String {
        let (code, body) = self
            .call(
                &self.account.api_key,
                reqwest::Method::POST,
                "/api/provider/projects",
                Some(template),
            )
            .await;
        assert_eq!(code, 201, "{body}");
        body["data"]["projectId"].as_str().unwrap().to_owned()
    }

    /// Submits, waits, and returns the final record.
    async fn run(&self, request: Value) -> Value {
        let (code, created) = self.submit(&request).await;
        assert_eq!(code, 201, "{created}");
        let id = created["job"]["uuid"].as_str().unwrap().to_owned();
        self.until_final(&id).await.0
    }

    /// `POST /jobs/{id}/cancel`.
    async fn cancel(&self, id: &str) -> (u16, Value) {
        let path = format!("/jobs/{id}/cancel");
        self.call(&self.account.api_key, reqwest::Method::POST, &path, None)
            .await
    }

    /// The job's main output, downloaded through a signed URL.
    async fn fetch_output(&self, record: &Value, name: &str) -> PathBuf {
        let key = record["output"]["output"].as_str().unwrap();
        let to = self.dir.path().join(name);
        download(&self.signed_url(key).await, &to).await;
        to
    }

    fn copy_asset(&self, from: &Path, name: &str) -> String {
        std::fs::copy(from, self.assets.dir.join(name)).unwrap();
        self.assets.url(name)
    }
}

fn duration_of(path: &Path) -> f64 {
    seconds(&ffprobe(path)["format"]["duration"])
}

#[tokio::test]
async fn tts_speaks_with_espeak_or_a_model_and_refuses_too_much_text() {
    let models = models(vec![("acme/speaker", "audio", Predictor::Speaker)]).await;
    let studio = studio_with(&models, &[]);
    let plain = studio
        .project(&json!({"name": "Voice", "type": "tts"}))
        .await;

    let text = "Tulips are back. Come and see them at the market this weekend.";
    let english = studio
        .run(json!({"job_type": "tts", "template_id": plain, "values": {"text": text}}))
        .await;
    assert_eq!(english["job_status"], "SUCCESS", "{english}");
    let key = english["output"]["output"].as_str().unwrap();
    assert!(key.starts_with("tts/") && key.ends_with(".mp3"), "{key}");
    let mp3 = studio.fetch_output(&english, "english.mp3").await;
    let probe = ffprobe(&mp3);
    assert_eq!(stream(&probe, "audio")["codec_name"], "mp3");
    let seconds_en = duration_of(&mp3);
    assert!(seconds_en > 1.0, "{seconds_en}");
    let reported = english["output"]["duration_seconds"].as_f64().unwrap();
    assert!(
        (reported - seconds_en).abs() < 0.15,
        "{reported} vs {seconds_en}"
    );

    // German pronounces the same words differently: another voice, another length.
    let german = studio
        .run(json!({"job_type": "tts", "template_id": plain, "values": {"text": text}, "language": "de"}))
        .await;
    assert_eq!(german["job_status"], "SUCCESS", "{german}");
    assert_eq!(german["output"]["voice"], "de");
    let seconds_de = duration_of(&studio.fetch_output(&german, "german.mp3").await);
    assert!(
        (seconds_de - seconds_en).abs() > 0.05,
        "{seconds_de} vs {seconds_en}"
    );

    // 5,000 characters, in sentences, is the most a job speaks.
    let sentence = "The quick brown fox jumps over the lazy dog. ";
    let mut long: String = sentence.repeat(5000 / sentence.len() + 1);
    long.truncate(5000);
    let spoken = studio
        .run(json!({"job_type": "tts", "template_id": plain, "values": {"text": long}, "speed": 2}))
        .await;
    assert_eq!(spoken["job_status"], "SUCCESS", "{spoken}");
    assert!(duration_of(&studio.fetch_output(&spoken, "long.mp3").await) > 60.0);
    long.push('x');
    let (code, body) = studio
        .submit(&json!({"job_type": "tts", "template_id": plain, "values": {"text": long}}))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("5000"), "{body}");
    for bad in [
        json!({"speed": 3}),
        json!({"language": "not a tag"}),
        json!({"voice": "--stdout"}),
        // Well-formed, but espeak-ng has no such voice or variant here.
        json!({"voice": "nosuchvoice"}),
        json!({"voice": "nosuchvariant", "language": "de"}),
    ] {
        let mut request =
            json!({"job_type": "tts", "template_id": plain, "values": {"text": "Hi."}});
        request
            .as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (code, body) = studio.submit(&request).await;
        assert_eq!(code, 400, "{request} → {body}");
    }

    // A project whose voice is a model: the model speaks, the text in
    // template order, and 60 ms a character proves it was the model.
    let voiced = studio
        .project(&json!({
            "name": "Model voice", "type": "tts",
            "fields": {"greeting": {"type": "text"}, "offer": {"type": "text"}},
            "models": {"tts": "acme/speaker"}
        }))
        .await;
    let record = studio
        .run(json!({"job_type": "tts", "template_id": voiced,
                    "values": {"greeting": "Hello there.", "offer": "Tulips, half price."}}))
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(record["output"]["voice"], "acme/speaker");
    let seconds = duration_of(&studio.fetch_output(&record, "model.mp3").await);
    let expected = 0.06 * "Hello there.\nTulips, half price.".len() as f64;
    assert!((seconds - expected).abs() < 0.15, "{seconds} vs {expected}");
}

#[tokio::test]
async fn photo_qc_reports_on_real_photographs() {
    let studio = Studio::start(&[]);
    let project = studio
        .project(&json!({"name": "Headshots", "type": "photo_qc"}))
        .await;
    let astronaut = photo("astronaut.png");
    let derived = |name: &str, filter: &str| {
        let out = studio.assets.dir.join(name);
        ffmpeg(&[
            "-i",
            astronaut.to_str().unwrap(),
            "-vf",
            filter,
            out.to_str().unwrap(),
        ]);
        studio.assets.url(name)
    };
    let cases = [
        ("portrait", studio.copy_asset(&astronaut, "astronaut.png")),
        ("cup", studio.copy_asset(&photo("coffee.png"), "coffee.png")),
        ("blurred", derived("blurred.png", "gblur=sigma=6")),
        ("dark", derived("dark.png", "eq=brightness=-0.45")),
        ("small", derived("small.png", "scale=320:240")),
    ];
    let mut reports = std::collections::HashMap::new();
    let credits_before = studio.credits().await;
    for (case, url) in &cases {
        let record = studio
            .run(json!({"job_type": "photo_qc", "template_id": project, "values": {"photo": url}}))
            .await;
        assert_eq!(record["job_status"], "SUCCESS", "{case}: {record}");
        let report = record["output"]["report"].clone();
        // The stored .json output is the same report.
        let stored = studio.fetch_output(&record, &format!("{case}.json")).await;
        let stored: Value = serde_json::from_slice(&std::fs::read(stored).unwrap()).unwrap();
        assert_eq!(stored, report, "{case}");
        reports.insert(*case, report["photos"][0].clone());
    }
    // One credit each (the default price).
    assert!((credits_before - studio.credits().await - 5.0).abs() < 1e-9);

    let check = |case: &str, name: &str| reports[case]["checks"][name].clone();
    let portrait = &reports["portrait"];
    assert_eq!(
        (portrait["width"].as_u64(), portrait["height"].as_u64()),
        (Some(512), Some(512))
    );
    assert_eq!(portrait["passed"], true, "{portrait}");
    assert_eq!(check("portrait", "faces")["count"], 1);
    let face = &check("portrait", "faces")["boxes"][0];
    let centre_y = face["y"].as_f64().unwrap() + face["height"].as_f64().unwrap() / 2.0;
    assert!(
        centre_y < 256.0,
        "the astronaut's face is in the upper half: {face}"
    );
    assert!(
        check("portrait", "faces")["largest_share"]
            .as_f64()
            .unwrap()
            > 0.02
    );

    assert_eq!(check("cup", "faces")["count"], 0);
    assert_eq!(check("cup", "faces")["passed"], false);
    assert!(check("cup", "faces")["reason"]
        .as_str()
        .unwrap()
        .contains("no face"));
    for name in ["sharpness", "brightness", "contrast", "resolution"] {
        assert_eq!(check("cup", name)["passed"], true, "cup {name}");
    }

    let blurred = check("blurred", "sharpness");
    assert_eq!(blurred["passed"], false, "{blurred}");
    assert!(
        blurred["value"].as_f64().unwrap()
            < check("portrait", "sharpness")["value"].as_f64().unwrap() / 4.0
    );
    assert!(
        blurred["reason"].as_str().unwrap().contains("blurry"),
        "{blurred}"
    );
    assert_eq!(reports["blurred"]["passed"], false);
    assert_eq!(check("dark", "brightness")["passed"], false);
    assert_eq!(check("dark", "sharpness")["passed"], true);
    assert_eq!(check("small", "resolution")["passed"], false);
    assert!(check("small", "resolution")["reason"]
        .as_str()
        .unwrap()
        .contains("320"));

    // A project's thresholds replace the defaults; bad ones are refused.
    let lenient = studio
        .project(&json!({"name": "Products", "type": "photo_qc",
                         "fields": {"shot": {"type": "image"}}, "qc": {"minFaces": 0, "minWidth": 300}}))
        .await;
    let record = studio
        .run(json!({"job_type": "photo_qc", "template_id": lenient,
                    "values": {"shot": {"image_url": cases[1].1}}}))
        .await;
    assert_eq!(record["output"]["report"]["passed"], true, "{record}");
    assert_eq!(record["output"]["report"]["photos"][0]["field"], "shot");
    let (code, body) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::POST,
            "/api/provider/projects",
            Some(&json!({"type": "photo_qc", "qc": {"minBrightness": 2}})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("minBrightness"),
        "{body}"
    );
    // A photo that is not a picture fails the job, naming the value.
    std::fs::write(studio.assets.dir.join("not.png"), b"not a picture").unwrap();
    let record = studio
        .run(json!({"job_type": "photo_qc", "template_id": project,
                    "values": {"photo": studio.assets.url("not.png")}}))
        .await;
    assert_eq!(record["job_status"], "FAILED");
    assert!(
        record["output"]["error"]
            .as_str()
            .unwrap()
            .contains("values.photo"),
        "{record}"
    );
}

#[tokio::test]
async fn photo_qc_faces_from_a_face_detection_model() {
    let models = models(vec![("acme/faces", "text", Predictor::FaceFinder)]).await;
    let studio = studio_with(&models, &[]);
    let project = studio
        .project(&json!({"name": "Crowds", "type": "photo_qc",
                         "models": {"faces": "acme/faces"}, "qc": {"maxFaces": 3}}))
        .await;
    let url = studio.copy_asset(&photo("coffee.png"), "coffee.png");
    let record = studio
        .run(json!({"job_type": "photo_qc", "template_id": project, "values": {"photo": url}}))
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let report = &record["output"]["report"];
    assert_eq!(report["face_detector"], "acme/faces");
    // The model's two faces, not the built-in detector's none; largest first.
    let faces = &report["photos"][0]["checks"]["faces"];
    assert_eq!(faces["count"], 2, "{faces}");
    assert_eq!(
        faces["boxes"][0],
        json!({"x": 10, "y": 20, "width": 100, "height": 120, "score": 0.97})
    );
    assert_eq!(faces["boxes"][1]["score"], 1.0);
    assert_eq!(faces["passed"], true);
    let share = faces["largest_share"].as_f64().unwrap();
    assert!((share - 12000.0 / 240000.0).abs() < 0.001, "{share}");
}

/// A portrait layout: the avatar in the top square, a caption under it.
fn talking_template(models: Value) -> Value {
    json!({
        "name": "Presenter", "type": "ai_talking_video",
        "canvas": {"width": 512, "height": 768, "background": "#204060"},
        "fields": {
            "presenter": {"type": "image", "required": true},
            "caption": {"type": "text"},
            "voice": {"type": "audio", "required": true}
        },
        "layers": [
            {"kind": "image", "field": "presenter", "x": 0, "y": 0, "width": 512, "height": 512, "fit": "cover"},
            {"kind": "text", "field": "caption", "x": 20, "y": 560, "width": 472, "height": 160,
             "size": 40, "color": "#ffffff"}
        ],
        "audio": {"field": "voice"},
        "models": models
    })
}

/// One RGB frame of `video` at `t` seconds.
fn frame_at(video: &Path, t: f64, width: usize, height: usize) -> Vec<u8> {
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-ss",
            &format!("{t}"),
            "-i",
        ])
        .arg(video)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), width * height * 3);
    out.stdout
}

/// The largest mean difference of any 16×16 cell of the rows `rows`.
fn largest_cell_change(a: &[u8], b: &[u8], width: usize, rows: std::ops::Range<usize>) -> f64 {
    let mut largest: f64 = 0.0;
    for cy in (rows.start..rows.end).step_by(16) {
        for cx in (0..width).step_by(16) {
            let mut sum = 0u64;
            let mut n = 0u64;
            for y in cy..(cy + 16).min(rows.end) {
                for x in cx..(cx + 16).min(width) {
                    for c in 0..3 {
                        let i = (y * width + x) * 3 + c;
                        sum += u64::from(a[i].abs_diff(b[i]));
                        n += 1;
                    }
                }
            }
            largest = largest.max(sum as f64 / n as f64);
        }
    }
    largest
}

#[tokio::test]
async fn talking_video_builtin_moves_the_mouth_with_the_voice() {
    let studio = Studio::start(&[]);
    let project = studio.project(&talking_template(json!({}))).await;
    let avatar = studio.copy_asset(&photo("astronaut.png"), "astronaut.png");
    // Silent, then a loud tone, then silent again.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=48000:cl=mono:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=220:duration=1:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=48000:cl=mono:d=1",
        "-filter_complex",
        "[0][1][2]concat=n=3:v=0:a=1",
        studio.assets.dir.join("speech.wav").to_str().unwrap(),
    ]);
    let record = studio
        .run(
            json!({"job_type": "ai_talking_video", "template_id": project, "values": {
                "presenter": {"image_url": avatar},
                "caption": "Hello from orbit",
                "voice": {"audio_url": studio.assets.url("speech.wav")}
            }}),
        )
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(record["output"]["talking_head"], "builtin");
    assert!(record["output"]["poster"].is_string() && record["output"]["thumbnail"].is_string());
    let video = studio.fetch_output(&record, "talking.mp4").await;
    let probe = ffprobe(&video);
    let v = stream(&probe, "video");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(512), Some(768))
    );
    assert!((duration_of(&video) - 3.0).abs() < 0.2);

    // The head sways slowly all along, so frames are compared across equal
    // gaps of time: silence to voice, against silence to silence.
    let (w, h) = (512, 768);
    let silent = frame_at(&video, 0.8, w, h);
    let loud = frame_at(&video, 1.2, w, h);
    let spoken = largest_cell_change(&silent, &loud, w, 0..512);
    let quiet = largest_cell_change(&frame_at(&video, 0.2, w, h), &silent, w, 0..512);
    assert!(
        spoken > 12.0 && spoken > 3.0 * quiet,
        "mouth: loud {spoken} vs silent {quiet}"
    );
    let later = largest_cell_change(
        &frame_at(&video, 2.4, w, h),
        &frame_at(&video, 2.8, w, h),
        w,
        0..512,
    );
    assert!(
        spoken > 3.0 * later,
        "the mouth closes again: {spoken} vs {later}"
    );
    // Below the avatar nothing moves.
    let caption = largest_cell_change(&silent, &loud, w, 512..768);
    assert!(caption < 3.0, "the caption area changed by {caption}");

    // A picture without a face cannot speak.
    let cup = studio.copy_asset(&photo("coffee.png"), "coffee.png");
    let before = studio.credits().await;
    let record = studio
        .run(
            json!({"job_type": "ai_talking_video", "template_id": project, "values": {
                "presenter": {"image_url": cup},
                "voice": {"audio_url": studio.assets.url("speech.wav")}
            }}),
        )
        .await;
    assert_eq!(record["job_status"], "FAILED");
    assert!(
        record["output"]["error"]
            .as_str()
            .unwrap()
            .contains("no face"),
        "{record}"
    );
    assert!((studio.credits().await - before).abs() < 1e-9, "refunded");
}

#[tokio::test]
async fn talking_video_from_a_cog_model_in_the_older_request_shape() {
    let models = models(vec![
        ("acme/talking-head", "video", Predictor::TalkingClip),
        ("acme/slow-head", "video", Predictor::SlowHead),
    ])
    .await;
    let studio = studio_with(&models, &["--talking-head-model", "acme/talking-head"]);
    let project = studio.project(&talking_template(json!({}))).await;
    let avatar = studio.copy_asset(&photo("astronaut.png"), "astronaut.png");
    let voice = studio.assets.url("voice.wav");
    // The vendor's older shape: top-level image_url and audio_url, and the
    // model's own options (crop: true makes the test model's clip magenta).
    let record = studio
        .run(
            json!({"job_type": "ai_talking_video", "project_id": project,
                    "image_url": avatar, "audio_url": voice,
                    "crop": true, "output_size": 128, "expand_ratio": 0.3}),
        )
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(record["output"]["talking_head"], "acme/talking-head");
    let video = studio.fetch_output(&record, "model.mp4").await;
    assert!((duration_of(&video) - VOICE_SECS).abs() < 0.2);
    let frame = frame_at(&video, 1.5, 512, 768);
    let pixel = |x: usize, y: usize| {
        let i = (y * 512 + x) * 3;
        (frame[i], frame[i + 1], frame[i + 2])
    };
    let (r, g, b) = pixel(256, 256);
    assert!(
        r > 200 && g < 70 && b > 200,
        "the model's magenta clip fills the avatar's box: {r},{g},{b}"
    );
    let (r, g, b) = pixel(256, 740);
    assert!(
        r < 60 && g < 90 && b > 70,
        "the background stays: {r},{g},{b}"
    );

    // Cancelling mid-prediction stops the model and refunds the job.
    let slow = studio
        .project(&talking_template(json!({"talkingHead": "acme/slow-head"})))
        .await;
    let before = studio.credits().await;
    let (code, created) = studio
        .submit(&json!({"job_type": "ai_talking_video", "template_id": slow,
                        "image_url": avatar, "audio_url": voice}))
        .await;
    assert_eq!(code, 201, "{created}");
    let id = created["job"]["uuid"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while studio.job(&id).await["progress"].as_u64().unwrap() < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "never reached the model"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, cancelled) = studio.cancel(&id).await;
    assert_eq!(code, 200, "{cancelled}");
    let (record, _) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "CANCELLED", "{record}");
    assert_eq!(record["credit_used"], "0");
    assert!((studio.credits().await - before).abs() < 1e-9, "refunded");
    let (code, _) = studio.cancel(&id).await;
    assert_eq!(code, 409, "a finished job cannot be cancelled");
}

#[tokio::test]
async fn image_generation_fills_the_prompt_and_the_layout() {
    let models = models(vec![
        ("acme/painter", "image", Predictor::Painter),
        ("acme/broken-painter", "image", Predictor::BrokenPainter),
        ("acme/offline-voice", "audio", Predictor::Failing),
    ])
    .await;
    let studio = studio_with(&models, &[]);
    let prompt_project = |models: Value, layers: Value| {
        json!({
            "name": "Product shots", "type": "ai_image_generation",
            "canvas": {"width": 600, "height": 400, "background": "#ffffff"},
            "prompt": "A {product} on a {surface}, studio light",
            "negativePrompt": "blurry {product}",
            "width": 320, "height": 240,
            "fields": {"product": {"type": "text", "required": true}, "surface": {"type": "text"},
                       "title": {"type": "text"}},
            "layers": layers,
            "models": models
        })
    };
    let values = json!({"product": "teapot", "surface": "marble table", "title": "Spring"});
    let title_layer =
        json!([{"kind": "text", "field": "title", "x": 0, "y": 0, "width": 600, "height": 100}]);

    // No image model anywhere: refused at submission, nothing charged.
    let unmodelled = studio
        .project(&prompt_project(json!({}), title_layer.clone()))
        .await;
    let before = studio.credits().await;
    let (code, body) = studio
        .submit(&json!({"job_type": "ai_image_generation", "template_id": unmodelled, "values": values}))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("image model"),
        "{body}"
    );
    assert_eq!(studio.credits().await, before);

    // The model's picture as it came: the prompts filled from the values.
    let layered = studio
        .project(&prompt_project(
            json!({"image": "acme/painter"}),
            json!([
                {"kind": "image", "field": "generated", "x": 0, "y": 0, "width": 400, "height": 400, "fit": "cover"},
                {"kind": "text", "field": "title", "x": 420, "y": 20, "width": 160, "height": 100, "size": 30, "color": "#000000"}
            ]),
        ))
        .await;
    let record = studio
        .run(json!({"job_type": "ai_image_generation", "template_id": layered, "values": values}))
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(
        record["output"]["prompt"],
        "A teapot on a marble table, studio light"
    );
    let png = studio.fetch_output(&record, "layered.png").await;
    let image = image::open(&png).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (600, 400));
    let inside = image.get_pixel(300, 300).0;
    assert!(
        inside[0] < 30 && (140..180).contains(&inside[1]) && inside[2] < 80,
        "{inside:?}"
    );
    assert_eq!(
        image.get_pixel(590, 390).0,
        [255, 255, 255],
        "the canvas shows beside it"
    );

    let bare = studio
        .project(&json!({
            "name": "Bare", "type": "ai_image_generation",
            "prompt": "A {product} on a {surface}, studio light", "negativePrompt": "blurry {product}",
            "width": 320, "height": 240,
            "fields": {"product": {"type": "text"}, "surface": {"type": "text"}},
            "models": {"image": "acme/painter"}
        }))
        .await;
    let record = studio
        .run(json!({"job_type": "ai_image_generation", "template_id": bare, "values": values}))
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let png = std::fs::read(studio.fetch_output(&record, "bare.png").await).unwrap();
    assert_eq!(
        image::load_from_memory(&png)
            .unwrap()
            .to_rgb8()
            .dimensions(),
        (320, 240)
    );
    let has = |needle: &[u8]| png.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"prompt\0A teapot on a marble table, studio light"));
    assert!(has(b"negative_prompt\0blurry teapot"));

    // A model that raises: FAILED with its own words, refunded.
    let broken = studio
        .project(&prompt_project(
            json!({"image": "acme/broken-painter"}),
            title_layer.clone(),
        ))
        .await;
    let before = studio.credits().await;
    let record = studio
        .run(json!({"job_type": "ai_image_generation", "template_id": broken, "values": values}))
        .await;
    assert_eq!(record["job_status"], "FAILED");
    let error = record["output"]["error"].as_str().unwrap();
    assert!(error.contains("the model exploded on"), "{error}");
    assert_eq!(studio.credits().await, before);

    // A model server nobody answers: FAILED, saying so, refunded.
    let offline = studio
        .project(
            &json!({"name": "Offline", "type": "tts", "models": {"tts": "acme/offline-voice"}}),
        )
        .await;
    let record = studio
        .run(json!({"job_type": "tts", "template_id": offline, "values": {"text": "Hello."}}))
        .await;
    assert_eq!(record["job_status"], "FAILED");
    assert!(
        record["output"]["error"]
            .as_str()
            .unwrap()
            .contains("unavailable"),
        "{record}"
    );
    assert_eq!(studio.credits().await, before);

    // A project naming a model the catalog lacks is refused at submission.
    let unknown = studio
        .project(&prompt_project(
            json!({"image": "acme/nobody"}),
            title_layer.clone(),
        ))
        .await;
    let (code, body) = studio
        .submit(
            &json!({"job_type": "ai_image_generation", "template_id": unknown, "values": values}),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("acme/nobody"),
        "{body}"
    );
}
