//! The Image+Audio Video dialect (seed 004) end to end: a real `genq serve`
//! over TCP, real uploads, real renders checked with ffprobe.

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

struct Setup {
    _dir: tempfile::TempDir,
    fixtures: std::path::PathBuf,
    server: Server,
    account: Account,
    client: Client,
}

fn setup(args: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let server = Server::start(&data, args, &[]);
    // Accounts are created while the server runs, as an operator would.
    let account = create_account(&data, "test");
    let client = Client::new(&account.api_key);
    Setup {
        _dir: dir,
        fixtures,
        server,
        account,
        client,
    }
}

#[tokio::test]
async fn quick_start_renders_a_playable_video_as_long_as_the_audio() {
    let s = setup(&[]);
    let image = image(&s.fixtures, "portrait.jpg", 321, 241);
    let audio = audio(&s.fixtures, "voiceover.mp3", 2.0);
    let (code, created) = s
        .client
        .submit(
            &s.server,
            &image,
            &audio,
            Some("https://your.app/hooks/vidgen"),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["message"], "Job created");
    let job_id = created["jobId"].as_str().unwrap();

    let done = s.client.wait_terminal(&s.server, job_id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["errorMessage"], Value::Null);
    let keys: HashSet<&str> = done
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: HashSet<&str> = [
        "jobId",
        "status",
        "progress",
        "outputVideo",
        "outputShareLink",
        "errorMessage",
        "createdAt",
        "updatedAt",
    ]
    .into();
    assert_eq!(keys, expected);
    let created_at = done["createdAt"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "ISO 8601 with ms: {created_at}"
    );

    // The video downloads, and is what the seed promises.
    let video_url = done["outputVideo"].as_str().unwrap();
    assert!(video_url.starts_with(&s.server.base), "{video_url}");
    let response = reqwest::get(video_url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "video/mp4");
    let bytes = response.bytes().await.unwrap();
    let path = s.fixtures.join("out.mp4");
    std::fs::write(&path, &bytes).unwrap();
    let probe = ffprobe(&path);
    let video = stream(&probe, "video");
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(video["pix_fmt"], "yuv420p");
    assert_eq!(video["r_frame_rate"], "25/1");
    assert_eq!(
        (
            video["width"].as_u64().unwrap(),
            video["height"].as_u64().unwrap()
        ),
        (320, 240)
    );
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
    let audio_len = seconds(&ffprobe(&audio)["format"]["duration"]);
    let video_len = seconds(&video["duration"]);
    assert!(
        (video_len - audio_len).abs() <= 0.04,
        "video {video_len}s vs audio {audio_len}s"
    );

    // Browsers seek with Range requests.
    let partial = reqwest::Client::new()
        .get(video_url)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(partial.status(), 206);
    assert_eq!(partial.bytes().await.unwrap().len(), 100);

    // The share page plays it and previews well.
    let share = reqwest::get(done["outputShareLink"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(share.status(), 200);
    let html = share.text().await.unwrap();
    assert!(
        html.contains("<video") && html.contains(video_url),
        "{html}"
    );
    assert!(
        html.contains("og:video") && html.contains("og:image"),
        "{html}"
    );

    // The listing shows the job with the seed's fields, webhookUrl included.
    let (code, list) = json_of(
        s.client
            .get(s.server.url("/api/jobs"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let item = &list["jobs"][0];
    assert_eq!(item["id"], job_id);
    assert_eq!(item["webhookUrl"], "https://your.app/hooks/vidgen");
    assert_eq!(item["retries"], 0);
    assert_eq!(item["outputVideo"], video_url);
}

/// RFC 9110 §14.2: a Range header in another unit, or one that does not
/// parse, is ignored (200, the whole file); several ranges may be answered
/// with the whole file. Only a well-formed range past the end is a 416.
#[tokio::test]
async fn range_headers_are_read_as_rfc_9110_says() {
    let s = setup(&[]);
    let image = image(&s.fixtures, "a.png", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let (code, created) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let done = s
        .client
        .wait_terminal(&s.server, created["jobId"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let url = done["outputVideo"].as_str().unwrap();
    let whole = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let http = reqwest::Client::new();
    for range in [
        "items=0-10",
        "bytes=abc",
        "bytes=0-1,4-5",
        "bytes=5-2",
        "bytes 0-10",
    ] {
        let response = http.get(url).header("Range", range).send().await.unwrap();
        assert_eq!(response.status(), 200, "{range}");
        assert_eq!(response.bytes().await.unwrap(), whole, "{range}");
    }
    // A suffix longer than the file selects all of it (ServeFile's parser
    // alone says 416).
    let response = http
        .get(url)
        .header("Range", "bytes=-99999999")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.bytes().await.unwrap(), whole);
    let response = http
        .get(url)
        .header("Range", "bytes=2-5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 2-5/{}", whole.len()).as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), whole.slice(2..6));
    let past = format!("bytes={}-", whole.len());
    let response = http.get(url).header("Range", past).send().await.unwrap();
    assert_eq!(response.status(), 416);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes */{}", whole.len()).as_str()
    );
}

#[tokio::test]
async fn progress_rises_while_processing_and_updated_at_moves() {
    let s = setup(&[]);
    let image = image(&s.fixtures, "big.png", 1280, 720);
    // Long enough that the render (mostly the audio transcode) is caught mid-way.
    let audio = audio(&s.fixtures, "long.wav", 120.0);
    let (code, created) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let job_id = created["jobId"].as_str().unwrap();
    let seen = s
        .client
        .poll_until(&s.server, job_id, Duration::from_secs(120), |st| {
            st["status"] != "PENDING" && st["status"] != "PROCESSING"
        })
        .await;
    assert_eq!(seen.last().unwrap()["status"], "COMPLETED");
    let processing: Vec<&Value> = seen
        .iter()
        .filter(|st| st["status"] == "PROCESSING")
        .collect();
    let progress: Vec<u64> = processing
        .iter()
        .map(|st| st["progress"].as_u64().unwrap())
        .collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went backwards: {progress:?}"
    );
    let intermediate: HashSet<u64> = progress
        .iter()
        .copied()
        .filter(|p| *p > 5 && *p < 100)
        .collect();
    assert!(
        intermediate.len() >= 2,
        "expected real progress values, saw {progress:?}"
    );
    let updated: HashSet<&str> = processing
        .iter()
        .map(|st| st["updatedAt"].as_str().unwrap())
        .collect();
    assert!(updated.len() >= 2, "updatedAt should move with progress");
}

#[tokio::test]
async fn list_paginates_newest_first_with_cursors_and_filters() {
    let s = setup(&["--workers", "0"]);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (code, created) = s.client.submit(&s.server, &image, &audio, None).await;
        assert_eq!(code, 201, "{created}");
        let id = created["jobId"].as_str().unwrap().to_owned();
        // One active job per key: cancel it to submit the next.
        let (code, _) = json_of(
            s.client
                .post(s.server.url(&format!("/api/jobs/{id}/cancel")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200);
        ids.push(id);
    }
    let (code, last) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201);
    ids.push(last["jobId"].as_str().unwrap().to_owned());
    ids.reverse(); // newest first

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = s.server.url("/api/jobs?limit=4");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (code, page) = json_of(s.client.get(url).send().await.unwrap()).await;
        assert_eq!(code, 200, "{page}");
        pages += 1;
        assert_eq!(page["pagination"]["limit"], 4);
        for job in page["jobs"].as_array().unwrap() {
            let fields: HashSet<&str> = job
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            let expected: HashSet<&str> = [
                "id",
                "status",
                "outputVideo",
                "outputShareLink",
                "errorMessage",
                "retries",
                "createdAt",
                "updatedAt",
                "webhookUrl",
            ]
            .into();
            assert_eq!(fields, expected);
            listed.push(job["id"].as_str().unwrap().to_owned());
        }
        if page["pagination"]["hasNextPage"] == true {
            cursor = Some(
                page["pagination"]["nextCursor"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        } else {
            assert_eq!(page["pagination"]["nextCursor"], Value::Null);
            break;
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(listed, ids);

    let (_, pending) = json_of(
        s.client
            .get(s.server.url("/api/jobs?status=PENDING"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(pending["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(pending["jobs"][0]["id"], ids[0]);
    let (_, cancelled) = json_of(
        s.client
            .get(s.server.url("/api/jobs?status=CANCELLED&limit=100"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(cancelled["jobs"].as_array().unwrap().len(), 5);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "status=DONE",
        "status=pending",
        "cursor=nonsense",
    ] {
        let (code, body) = json_of(
            s.client
                .get(s.server.url(&format!("/api/jobs?{bad}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn cancel_rules_and_one_active_job_per_key() {
    let s = setup(&["--workers", "0"]);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let (_, first) = s.client.submit(&s.server, &image, &audio, None).await;
    let id = first["jobId"].as_str().unwrap();

    let (code, body) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 409, "second active job: {body}");
    assert!(body["error"].as_str().unwrap().contains("active job"));

    let (code, body) = json_of(
        s.client
            .post(s.server.url(&format!("/api/jobs/{id}/cancel")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        serde_json::json!({"success": true, "message": "Job cancelled successfully"})
    );
    assert_eq!(s.client.status(&s.server, id).await["status"], "CANCELLED");
    let (code, _) = json_of(
        s.client
            .http
            .delete(s.server.url(&format!("/api/jobs/{id}")))
            .header("X-API-Key", &s.account.api_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 409, "cancelling twice");

    // The slot is free again; DELETE cancels too.
    let (code, second) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201);
    let id2 = second["jobId"].as_str().unwrap();
    let (code, body) = json_of(
        s.client
            .http
            .delete(s.server.url(&format!("/api/jobs/{id2}")))
            .header("X-API-Key", &s.account.api_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn cancelling_a_completed_job_is_a_conflict() {
    let s = setup(&[]);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let (_, created) = s.client.submit(&s.server, &image, &audio, None).await;
    let id = created["jobId"].as_str().unwrap();
    assert_eq!(
        s.client.wait_terminal(&s.server, id).await["status"],
        "COMPLETED"
    );
    let (code, body) = json_of(
        s.client
            .post(s.server.url(&format!("/api/jobs/{id}/cancel")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("COMPLETED"));
}

#[tokio::test]
async fn keys_are_checked_and_jobs_are_private_to_their_account() {
    let s = setup(&["--workers", "0"]);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let (_, created) = s.client.submit(&s.server, &image, &audio, None).await;
    let id = created["jobId"].as_str().unwrap();
    let status_url = s.server.url(&format!("/api/status/{id}"));

    let (code, missing) = json_of(reqwest::get(&status_url).await.unwrap()).await;
    assert_eq!(code, 401);
    let (code, unknown) = json_of(
        Client::new("genq_not-a-real-key")
            .get(status_url.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 401);
    assert_ne!(
        missing["error"], unknown["error"],
        "the two 401s say different things"
    );

    // Bearer works as well as X-API-Key.
    let response = reqwest::Client::new()
        .get(&status_url)
        .bearer_auth(&s.account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Another account sees nothing of this one's jobs.
    let other = create_account(&s.server.data_dir, "other");
    let intruder = Client::new(&other.api_key);
    let (code, body) = json_of(intruder.get(status_url.clone()).send().await.unwrap()).await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = json_of(
        intruder
            .post(s.server.url(&format!("/api/jobs/{id}/cancel")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 404);
    let (_, list) = json_of(
        intruder
            .get(s.server.url("/api/jobs"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);

    // A second key of the same account works; once revoked it is refused.
    let key = cli_json(&[
        "keys",
        "create",
        "--account",
        &s.account.id,
        "--data-dir",
        s.server.data_dir.to_str().unwrap(),
    ]);
    let second = Client::new(key["apiKey"].as_str().unwrap());
    assert_eq!(
        second
            .get(status_url.clone())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    cli_json(&[
        "keys",
        "revoke",
        key["keyId"].as_str().unwrap(),
        "--data-dir",
        s.server.data_dir.to_str().unwrap(),
    ]);
    let (code, body) = json_of(second.get(status_url).send().await.unwrap()).await;
    assert_eq!(code, 401);
    assert_eq!(body["error"], unknown["error"]);
}

#[tokio::test]
async fn bad_submissions_get_the_seed_status_codes() {
    let s = setup(&["--workers", "0"]);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);

    let (code, body) = s
        .client
        .submit(&s.server, &image, &audio, Some("http://your.app/hook"))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("https://"));

    let text = s.fixtures.join("notes.jpg");
    std::fs::write(&text, "these are my notes, not a picture\n".repeat(10)).unwrap();
    let (code, body) = s.client.submit(&s.server, &text, &audio, None).await;
    assert_eq!(code, 415, "{body}");
    let (code, body) = s.client.submit(&s.server, &image, &text, None).await;
    assert_eq!(code, 415, "{body}");

    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(std::fs::read(&image).unwrap()).file_name("a.jpg"),
    );
    let (code, body) = json_of(
        s.client
            .post(s.server.url("/api/jobs"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("audio"), "{body}");

    let (code, _) = json_of(
        s.client
            .post(s.server.url("/api/jobs"))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 400);

    // genq's scheduling fields, checked like the seed's own.
    for (field, value, words) in [
        (
            "priority",
            "11",
            "Invalid field: priority must be an integer from -10 to 10",
        ),
        (
            "priority",
            "high",
            "Invalid priority: \"high\" is not an integer",
        ),
        (
            "timeoutSeconds",
            "0",
            "Invalid field: timeoutSeconds must be",
        ),
    ] {
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(std::fs::read(&image).unwrap()).file_name("a.jpg"),
            )
            .part(
                "audio",
                reqwest::multipart::Part::bytes(std::fs::read(&audio).unwrap()).file_name("a.mp3"),
            )
            .text(field, value);
        let request = s.client.post(s.server.url("/api/jobs")).multipart(form);
        let (code, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(code, 400, "{body}");
        assert!(body["error"].as_str().unwrap().starts_with(words), "{body}");
    }

    // 51 MB that sniffs as a JPEG: refused once 50 MB have arrived.
    let mut big = std::fs::read(&image).unwrap();
    big.resize(51_000_000, 0);
    let form = reqwest::multipart::Form::new()
        .part(
            "image",
            reqwest::multipart::Part::bytes(big).file_name("huge.jpg"),
        )
        .part(
            "audio",
            reqwest::multipart::Part::bytes(std::fs::read(&audio).unwrap()).file_name("a.mp3"),
        );
    let (code, body) = json_of(
        s.client
            .post(s.server.url("/api/jobs"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 413, "{body}");

    // Nothing of the refused uploads stays behind, and no job was created.
    let staged = std::fs::read_dir(s.server.data_dir.join("tmp/uploads"))
        .unwrap()
        .count();
    assert_eq!(staged, 0);
    let (_, list) = json_of(
        s.client
            .get(s.server.url("/api/jobs"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_image_that_sniffs_right_but_does_not_decode_fails_the_job_clearly() {
    let s = setup(&[]);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let corrupt = s.fixtures.join("corrupt.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&corrupt, bytes).unwrap();
    let (code, created) = s.client.submit(&s.server, &corrupt, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let done = s
        .client
        .wait_terminal(&s.server, created["jobId"].as_str().unwrap())
        .await;
    assert_eq!(done["status"], "FAILED");
    let message = done["errorMessage"].as_str().unwrap();
    assert!(message.contains("image could not be decoded"), "{message}");
    assert_eq!(done["outputVideo"], Value::Null);
}

#[tokio::test]
async fn health_and_openapi_need_no_key() {
    let s = setup(&["--workers", "0"]);
    let (code, body) = json_of(reqwest::get(s.server.url("/health")).await.unwrap()).await;
    assert_eq!((code, body), (200, serde_json::json!({"status": "ok"})));
    let (code, spec) = json_of(reqwest::get(s.server.url("/openapi.json")).await.unwrap()).await;
    assert_eq!(code, 200);
    for path in [
        "/api/jobs",
        "/api/status/{jobId}",
        "/api/jobs/{jobId}/cancel",
        "/api/jobs/{jobId}/events",
        "/v1/jobs/submit",
        "/v1/jobs/{jobId}/events",
        "/events",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let schemes = &spec["components"]["securitySchemes"];
    assert!(
        schemes["api_key"].is_object() && schemes["bearer"].is_object(),
        "{schemes}"
    );
}

#[tokio::test]
async fn an_idempotency_key_replays_an_upload_and_refuses_another() {
    let s = setup(&["--workers", "0"]);
    let other_image = image(&s.fixtures, "b.png", 64, 48);
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    // Each request is a new form with a boundary of its own, as a client's
    // retry would be.
    let send = |image: std::path::PathBuf, key: &'static str| {
        let (client, url, audio) = (&s.client, s.server.url("/api/jobs"), audio.clone());
        async move {
            let part = |path: &std::path::Path| {
                reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
                    .file_name(path.file_name().unwrap().to_string_lossy().into_owned())
            };
            let form = reqwest::multipart::Form::new()
                .part("image", part(&image))
                .part("audio", part(&audio))
                .text("priority", "3");
            let response = client
                .post(url)
                .header("Idempotency-Key", key)
                .multipart(form)
                .send()
                .await
                .unwrap();
            let code = response.status().as_u16();
            let replayed = response.headers().get("idempotent-replayed").cloned();
            (code, replayed, response.bytes().await.unwrap())
        }
    };
    let (code, replayed, first) = send(image.clone(), "upload-1").await;
    assert_eq!((code, replayed), (201, None), "{first:?}");
    let (code, replayed, again) = send(image.clone(), "upload-1").await;
    assert_eq!(code, 201);
    assert_eq!(replayed.unwrap(), "true");
    assert_eq!(again, first);
    // Another image under the same key.
    let (code, _, body) = send(other_image, "upload-1").await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("different request"),
        "{body}"
    );
    // One job, and the seed's one-active-job rule never saw a second.
    let (_, list) = json_of(
        s.client
            .get(s.server.url("/api/jobs"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
}

/// Retention of a few seconds, on local storage and on S3 (s3s-fs): the
/// inputs, then the outputs, leave storage; the output's URL and share page
/// answer 410; the status body says the outputs expired.
#[tokio::test]
async fn retention_deletes_inputs_then_outputs_on_local_and_s3_storage() {
    let retention = [
        "--input-retention-hours",
        "0.0003",
        "--output-retention-days",
        "0.00004",
        "--retention-sweep-seconds",
        "1",
    ];
    // Local files.
    let s = setup(&retention);
    let files = s.server.data_dir.join("files");
    let stored = move |key: &str| files.join(key).exists();
    expire_one_job(&s, &stored).await;

    // S3.
    let Some(s3) = common::s3::S3Server::start() else {
        return;
    };
    let env = s3.genq_env("retention");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    let server = Server::start(&data, &retention, &env);
    let account = create_account(&data, "s3");
    let on_s3 = Setup {
        _dir: dir,
        fixtures,
        client: Client::new(&account.api_key),
        server,
        account,
    };
    let stored = |key: &str| s3.object_file(&format!("retention/{key}")).exists();
    expire_one_job(&on_s3, &stored).await;
}

async fn expire_one_job(s: &Setup, stored: &dyn Fn(&str) -> bool) {
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let (code, created) = s.client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    let id = created["jobId"].as_str().unwrap().to_owned();
    let done = s.client.wait_terminal(&s.server, &id).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let video = done["outputVideo"].as_str().unwrap().to_owned();
    let share = done["outputShareLink"].as_str().unwrap().to_owned();
    let name = video.rsplit('/').next().unwrap().to_owned();
    assert!(stored(&format!("outputs/{id}/{name}")));

    // Inputs go first (about a second after the job finished), outputs later.
    let started = std::time::Instant::now();
    while stored(&format!("inputs/{id}/image")) {
        assert!(started.elapsed() < Duration::from_secs(20), "inputs kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stored(&format!("inputs/{id}/audio")));
    let expired = loop {
        let status = s.client.status(&s.server, &id).await;
        if status.get("outputsExpiredAt").is_some() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(expired["outputVideo"].is_null(), "{expired}");
    assert!(expired["outputShareLink"].is_null(), "{expired}");
    assert!(!stored(&format!("outputs/{id}/{name}")));
    assert_eq!(reqwest::get(&video).await.unwrap().status(), 410);
    assert_eq!(reqwest::get(&share).await.unwrap().status(), 410);
}

/// With a price set, a render is charged like any other job: reserved at
/// submission, refunded when cancelled, refused when the balance is short;
/// and an account limited to other models may not render.
#[tokio::test]
async fn priced_renders_use_the_ledger_and_model_limits_apply() {
    let s = setup(&["--workers", "0", "--video-price-micro-cents", "5000"]);
    let data = &s.server.data_dir;
    let image = image(&s.fixtures, "a.jpg", 64, 48);
    let audio = audio(&s.fixtures, "a.mp3", 1.0);
    let balance = |key: String| {
        let url = s.server.url("/v1/account");
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            json_of(response).await.1["balanceMicroCents"]
                .as_i64()
                .unwrap()
        }
    };

    let payer = create_account_with(data, "payer", &["--credits", "12000"]);
    let client = Client::new(&payer.api_key);
    let (code, created) = client.submit(&s.server, &image, &audio, None).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(balance(payer.api_key.clone()).await, 7_000);
    let id = created["jobId"].as_str().unwrap();
    let response = client
        .post(s.server.url(&format!("/api/jobs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(balance(payer.api_key.clone()).await, 12_000);

    let poor = create_account_with(data, "poor", &["--credits", "4999"]);
    let (code, body) = Client::new(&poor.api_key)
        .submit(&s.server, &image, &audio, None)
        .await;
    assert_eq!(code, 402, "{body}");
    assert!(body["error"].as_str().unwrap().contains("5000"), "{body}");
    assert_eq!(balance(poor.api_key.clone()).await, 4_999);

    let limited = create_account_with(
        data,
        "limited",
        &["--credits", "99999", "--models", "acme/*"],
    );
    let (code, body) = Client::new(&limited.api_key)
        .submit(&s.server, &image, &audio, None)
        .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(balance(limited.api_key.clone()).await, 99_999);
}
