//! Provider jobs end to end over TCP, as the vendor's docs tell a client to
//! work: discover a project, send `template_id`, `job_type`, `version`,
//! `session_id` and `values` (assets on a local HTTPS server), poll the job
//! record to SUCCESS, ask for a signed path and download the output — then
//! check the files themselves (ffprobe, an image decoder, pdftotext).

mod common;

use std::collections::HashSet;
use std::process::Command;

use common::studio::*;
use common::*;
use serde_json::{json, Value};

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
    let video = studio.dir.path().join("video.mp4");
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
    let png = studio.dir.path().join("frame.png");
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
    let pdf = studio.dir.path().join("page.pdf");
    download(&studio.signed_url(key).await, &pdf).await;
    let text = Command::new("pdftotext")
        .arg(&pdf)
        .arg("-")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("Tulips are back"));

    // Without a voiceover (and no music) the video lasts the template's
    // `duration`, with a silent soundtrack.
    let mut silent_request = json!({
        "template_id": studio.project,
        "job_type": "video",
        "values": studio.values(),
    });
    silent_request["values"]
        .as_object_mut()
        .unwrap()
        .remove("voiceover");
    let (code, created) = studio.submit(&silent_request).await;
    assert_eq!(code, 201, "{created}");
    let (record, _) = studio
        .until_final(created["job"]["uuid"].as_str().unwrap())
        .await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let silent = studio.dir.path().join("silent.mp4");
    download(
        &studio
            .signed_url(record["output"]["output"].as_str().unwrap())
            .await,
        &silent,
    )
    .await;
    let probe = ffprobe(&silent);
    let duration = seconds(&probe["format"]["duration"]);
    assert!(
        (duration - 4.0).abs() <= 0.05,
        "lasts the template's duration: {duration}"
    );
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");

    // 1,000 credits less two videos (10 each), an image (2) and a PDF (2).
    assert_eq!(studio.credits().await, 976.0);
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
            "is a video project; it cannot run a tts job",
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
            Box::new(|r| r["priority"] = json!(-11)),
            "priority must be an integer from -10 to 10",
        ),
        (
            Box::new(|r| r["priority"] = json!(1.5)),
            "priority must be an integer",
        ),
        (
            Box::new(|r| r["timeout_seconds"] = json!(0)),
            "timeout_seconds must be an integer from 1 to 604800",
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
    let file = studio.dir.path().join("template.json");
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
async fn an_idempotency_key_makes_one_job_however_many_retries_race() {
    let studio = Studio::start(&["--workers", "0", "--submit-rate-limit-per-minute", "0"]);
    let body =
        json!({"template_id": studio.project, "job_type": "image", "values": studio.values()});
    let send = |key: &'static str, body: Value| {
        let (url, api_key) = (
            studio.server.url("/jobs/v2"),
            studio.account.api_key.clone(),
        );
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .header("x-api-key", api_key)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            (code, replayed, response.bytes().await.unwrap().to_vec())
        }
    };
    let credits = studio.credits().await;
    let answers = futures::future::join_all((0..20).map(|_| send("render-1", body.clone()))).await;
    let made: HashSet<&Vec<u8>> = answers
        .iter()
        .filter(|(code, _, _)| *code == 201)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|(code, _, _)| *code == 201 || *code == 409));
    let (code, replayed, again) = send("render-1", body.clone()).await;
    assert_eq!((code, replayed), (201, true));
    assert!(made.contains(&again));
    let record: Value = serde_json::from_slice(&again).unwrap();
    let charged: f64 = record["job"]["credit_used"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(studio.credits().await, credits - charged);

    let mut changed = body.clone();
    changed["job_type"] = json!("pdf");
    let (code, _, refused) = send("render-1", changed).await;
    let refused: Value = serde_json::from_slice(&refused).unwrap();
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{refused}"
    );
    assert_eq!(studio.credits().await, credits - charged);
}
