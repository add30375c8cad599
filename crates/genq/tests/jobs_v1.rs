//! The Jobs v1 model gateway (seeds 000–002) end to end over TCP.

mod common;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

struct Gateway {
    _dir: tempfile::TempDir,
    server: Server,
    account: Account,
}

impl Gateway {
    fn start(args: &[&str], credits: i64) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(&data, args, &[]);
        let account = create_account_with(&data, "gateway", &["--credits", &credits.to_string()]);
        Gateway {
            _dir: dir,
            server,
            account,
        }
    }

    fn data(&self) -> &str {
        self.server.data_dir.to_str().unwrap()
    }

    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value, String) {
        let mut request = reqwest::Client::new()
            .request(method, self.server.url(path))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let request_id = response
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let (code, body) = json_of(response).await;
        (code, body, request_id)
    }

    async fn submit(&self, body: Value) -> (u16, Value) {
        let (code, body, request_id) = self
            .call(
                &self.account.api_key,
                reqwest::Method::POST,
                "/v1/jobs/submit",
                Some(body),
            )
            .await;
        assert!(
            request_id.starts_with("req_"),
            "X-Request-Id on every response"
        );
        if code == 200 {
            assert_eq!(body["requestId"], request_id);
        } else {
            assert_eq!(body["requestId"], request_id, "{body}");
        }
        (code, body)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let (code, body, _) = self
            .call(&self.account.api_key, reqwest::Method::GET, path, None)
            .await;
        (code, body)
    }

    async fn wait(&self, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (code, body) = self.get(&format!("/v1/jobs/{job}")).await;
            assert_eq!(code, 200, "{body}");
            if ["completed", "failed", "cancelled"].contains(&body["status"].as_str().unwrap()) {
                return body;
            }
            assert!(Instant::now() < deadline, "{body}\n{}", self.server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn balance(&self) -> i64 {
        self.get("/v1/account").await.1["balanceMicroCents"]
            .as_i64()
            .unwrap()
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"))
}

#[tokio::test]
async fn title_card_job_as_the_seed_describes() {
    let g = Gateway::start(&[], 1_000_000);
    let (code, submitted) = g
        .submit(json!({
            "model": "genq/title-card/text-to-video",
            "input": { "prompt": "A cinematic drone shot of a mountain landscape at sunset", "duration": 2 }
        }))
        .await;
    assert_eq!(code, 200, "{submitted}");
    assert_eq!(submitted["status"], "pending");
    assert_eq!(submitted["costMicroCents"], 4_000);
    let keys: HashSet<&str> = submitted
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "jobId",
            "requestId",
            "status",
            "estimatedCompletionTime",
            "costMicroCents"
        ]
        .into()
    );
    let eta = submitted["estimatedCompletionTime"].as_str().unwrap();
    assert!(eta.ends_with('Z') && eta.len() == 20, "{eta}");

    let job = submitted["jobId"].as_str().unwrap();
    let done = g.wait(job).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["progress"], 100);
    assert_eq!(done["error"], Value::Null);
    let item = &done["outputs"][0];
    assert_eq!(item["type"], "video");
    assert_eq!(done["output"], item["url"]);
    assert!(item["thumbnail"].as_str().unwrap().ends_with(".jpg"));
    assert!(item["posterImage"].as_str().unwrap().ends_with(".jpg"));
    assert!(done["completedAt"].is_string());

    let bytes = reqwest::get(item["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let path = g.server.data_dir.join("card.mp4");
    std::fs::write(&path, bytes).unwrap();
    let probe = ffprobe(&path);
    assert_eq!(stream(&probe, "video")["codec_name"], "h264");
    let length = seconds(&stream(&probe, "video")["duration"]);
    assert!((length - 2.0).abs() <= 0.04, "{length}");
    assert_eq!(g.balance().await, 1_000_000 - 4_000);
}

#[tokio::test]
async fn text_to_speech_returns_audio() {
    let g = Gateway::start(&[], 1_000_000);
    let (code, submitted) = g
        .submit(json!({ "model": "genq/text-to-speech", "input": { "text": "Hello from genq, the job server.", "voice": "en" } }))
        .await;
    assert_eq!(code, 200, "{submitted}");
    let done = g.wait(submitted["jobId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["outputs"][0]["type"], "audio");
    let bytes = reqwest::get(done["output"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let path = g.server.data_dir.join("speech.mp3");
    std::fs::write(&path, bytes).unwrap();
    let probe = ffprobe(&path);
    assert_eq!(stream(&probe, "audio")["codec_name"], "mp3");
    assert!(seconds(&probe["format"]["duration"]) > 1.0);
}

#[tokio::test]
async fn every_error_code_comes_from_its_situation() {
    let g = Gateway::start(&["--workers", "0", "--max-concurrent-jobs", "2"], 10_000);
    let card = |prompt: &str| json!({ "model": "genq/title-card/text-to-video", "input": { "prompt": prompt } });

    let (code, body) = g
        .submit(json!({ "model": "google/veo-3.1-fast/text-to-video", "input": { "prompt": "x" } }))
        .await;
    assert_eq!((code, error_code(&body)), (404, "MODEL_NOT_FOUND"));
    let (code, body) = g
        .submit(json!({ "model": "genq/text-to-speech", "version": "9", "input": { "text": "x" } }))
        .await;
    assert_eq!((code, error_code(&body)), (404, "MODEL_NOT_FOUND"));

    let (code, body) = g
        .submit(json!({ "model": "genq/text-to-speech", "input": { "text": "x", "speed": 7 } }))
        .await;
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input.speed"),
        "{body}"
    );
    // Well-formed, but espeak-ng has no such voice: refused before it runs.
    let (code, body) = g
        .submit(
            json!({ "model": "genq/text-to-speech", "input": { "text": "x", "voice": "nosuchvoice" } }),
        )
        .await;
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input.voice: "),
        "{body}"
    );
    let (code, body) = g.submit(json!({ "model": "genq/text-to-speech" })).await;
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"));
    let (code, body) = g.submit(json!({ "model": "genq/text-to-speech", "input": { "text": "x" }, "webhookUrl": "http://example.com/hook" })).await;
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"));

    // A 5-second title card costs 2,000/s × 5 s = 10,000 micro-cents: the balance buys one.
    let (code, _) = g.submit(card("first")).await;
    assert_eq!(code, 200);
    let (code, body) = g.submit(card("second")).await;
    assert_eq!((code, error_code(&body)), (402, "INSUFFICIENT_BALANCE"));
    cli_json(&[
        "accounts",
        "credit",
        &g.account.id,
        "100000",
        "--data-dir",
        g.data(),
    ]);
    let (code, _) = g.submit(card("second")).await;
    assert_eq!(code, 200);
    let (code, body) = g.submit(card("third")).await;
    assert_eq!((code, error_code(&body)), (429, "CONCURRENT_JOBS_EXCEEDED"));

    let restricted = cli_json(&[
        "keys",
        "create",
        "--account",
        &g.account.id,
        "--models",
        "genq/text-*",
        "--data-dir",
        g.data(),
    ]);
    let (code, body, _) = g
        .call(
            restricted["apiKey"].as_str().unwrap(),
            reqwest::Method::POST,
            "/v1/jobs/submit",
            Some(card("x")),
        )
        .await;
    assert_eq!((code, error_code(&body)), (403, "MODEL_ACCESS_DENIED"));

    let (code, body, _) = g
        .call("genq_nope", reqwest::Method::GET, "/v1/jobs", None)
        .await;
    assert_eq!((code, error_code(&body)), (401, "INVALID_API_KEY"));
    let response = reqwest::get(g.server.url("/v1/jobs")).await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn scopes_guard_each_endpoint() {
    let g = Gateway::start(&["--workers", "0"], 1_000_000);
    let submit_only = cli_json(&[
        "keys",
        "create",
        "--account",
        &g.account.id,
        "--scopes",
        "submit_job",
        "--data-dir",
        g.data(),
    ]);
    let status_only = cli_json(&[
        "keys",
        "create",
        "--account",
        &g.account.id,
        "--scopes",
        "check_status",
        "--data-dir",
        g.data(),
    ]);
    let (s, c) = (
        submit_only["apiKey"].as_str().unwrap(),
        status_only["apiKey"].as_str().unwrap(),
    );
    let body = json!({ "model": "genq/text-to-speech", "input": { "text": "hi" } });

    let (code, submitted, _) = g
        .call(
            s,
            reqwest::Method::POST,
            "/v1/jobs/submit",
            Some(body.clone()),
        )
        .await;
    assert_eq!(code, 200, "{submitted}");
    let job = submitted["jobId"].as_str().unwrap();
    let (code, denied, _) = g
        .call(s, reqwest::Method::GET, &format!("/v1/jobs/{job}"), None)
        .await;
    assert_eq!((code, error_code(&denied)), (403, "INSUFFICIENT_SCOPE"));
    let (code, _, _) = g.call(s, reqwest::Method::GET, "/v1/jobs", None).await;
    assert_eq!(code, 403);

    let (code, _, _) = g
        .call(c, reqwest::Method::GET, &format!("/v1/jobs/{job}"), None)
        .await;
    assert_eq!(code, 200);
    let (code, denied, _) = g
        .call(c, reqwest::Method::POST, "/v1/jobs/submit", Some(body))
        .await;
    assert_eq!((code, error_code(&denied)), (403, "INSUFFICIENT_SCOPE"));
    let (code, _, _) = g
        .call(
            c,
            reqwest::Method::POST,
            &format!("/v1/jobs/{job}/cancel"),
            None,
        )
        .await;
    assert_eq!(code, 403);

    // Another account's job does not exist for this one.
    let other = create_account_with(&g.server.data_dir, "other", &[]);
    let (code, body, _) = g
        .call(
            &other.api_key,
            reqwest::Method::GET,
            &format!("/v1/jobs/{job}"),
            None,
        )
        .await;
    assert_eq!((code, error_code(&body)), (404, "JOB_NOT_FOUND"));
}

#[tokio::test]
async fn cancelling_refunds_once_and_failures_are_refunded() {
    let g = Gateway::start(&[], 250_000);
    // A data: URL that sniffs as PNG but does not decode: the job fails.
    let corrupt = format!(
        "data:image/png;base64,{}",
        base64_of(b"\x89PNG\r\n\x1a\nthis is not really a png")
    );
    let silence = format!("data:audio/wav;base64,{}", base64_of(&wav_silence()));
    let (code, submitted) = g
        .submit(json!({ "model": "genq/image-audio-to-video", "input": { "image_url": corrupt, "audio_url": silence } }))
        .await;
    assert_eq!(code, 200, "{submitted}");
    assert_eq!(submitted["costMicroCents"], 100_000);
    let failed = g.wait(submitted["jobId"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["progress"], 0);
    assert_eq!(failed["error"]["code"], "INVALID_IMAGE");
    // The refund is a sentence of its own after the failure's.
    let message = failed["error"]["message"].as_str().unwrap();
    let (before, _) = message
        .split_once(" Credits have been refunded.")
        .unwrap_or_else(|| panic!("{failed}"));
    assert!(before.ends_with('.'), "{message}");
    assert_eq!(g.balance().await, 250_000);
    assert_ledger_matches(&g).await;
}

#[tokio::test]
async fn cancelling_a_pending_job_refunds_it() {
    let g = Gateway::start(&["--workers", "0"], 250_000);
    let (_, submitted) = g
        .submit(json!({ "model": "genq/image-audio-to-video", "input": { "image_url": "https://example.com/a.jpg", "audio_url": "https://example.com/a.mp3" } }))
        .await;
    let job = submitted["jobId"].as_str().unwrap();
    assert_eq!(g.balance().await, 150_000);
    let (code, cancelled, _) = g
        .call(
            &g.account.api_key,
            reqwest::Method::POST,
            &format!("/v1/jobs/{job}/cancel"),
            None,
        )
        .await;
    assert_eq!(code, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["error"], Value::Null);
    assert_eq!(g.balance().await, 250_000);
    let (code, again, _) = g
        .call(
            &g.account.api_key,
            reqwest::Method::POST,
            &format!("/v1/jobs/{job}/cancel"),
            None,
        )
        .await;
    assert_eq!((code, error_code(&again)), (409, "JOB_NOT_CANCELLABLE"));
    assert_eq!(g.balance().await, 250_000, "refunded once");
    assert_ledger_matches(&g).await;
}

/// The ledger, read straight from the store, sums to the balance.
async fn assert_ledger_matches(g: &Gateway) {
    let drift = db_query(
        &g.server.data_dir,
        &format!(
            "SELECT (SELECT balance_micro_cents FROM accounts WHERE id = '{0}') - \
             (SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE account_id = '{0}');",
            g.account.id
        ),
    );
    assert_eq!(drift, "0");
}

fn base64_of(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

/// One second of 8 kHz mono silence as a WAV file.
fn wav_silence() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = audio(dir.path(), "s.wav", 1.0);
    std::fs::read(path).unwrap()
}

#[tokio::test]
async fn list_pages_never_miss_or_repeat_while_jobs_arrive() {
    let g = Gateway::start(
        &["--workers", "0", "--max-concurrent-jobs", "1000"],
        100_000_000,
    );
    let card = json!({ "model": "genq/title-card/text-to-video", "input": { "prompt": "x" } });
    let mut before = Vec::new();
    for _ in 0..25 {
        before.push(
            g.submit(card.clone()).await.1["jobId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    before.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        // New jobs arrive between pages; they are newer than the cursor.
        g.submit(card.clone()).await;
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=10&cursor={c}"),
            None => "/v1/jobs?limit=10".to_owned(),
        };
        let (code, page) = g.get(&path).await;
        assert_eq!(code, 200, "{page}");
        for item in page["jobs"].as_array().unwrap() {
            let keys: HashSet<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "jobId",
                    "status",
                    "progress",
                    "model",
                    "createdAt",
                    "completedAt"
                ]
                .into()
            );
            assert_eq!(item["model"], "genq/title-card/text-to-video");
            seen.push(item["jobId"].as_str().unwrap().to_owned());
        }
        if page["hasMore"] == false {
            assert_eq!(page["nextCursor"], Value::Null);
            break;
        }
        cursor = Some(page["nextCursor"].as_str().unwrap().to_owned());
    }
    // The first page saw one newcomer; every older job appears exactly once, in order.
    let older: Vec<&String> = seen.iter().filter(|id| before.contains(id)).collect();
    assert_eq!(older.len(), before.len());
    assert!(older.iter().zip(&before).all(|(a, b)| *a == b));
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        seen.len(),
        "no repeats"
    );

    let (_, filtered) = g
        .get("/v1/jobs?status=pending&modelId=genq/text-to-speech")
        .await;
    assert_eq!(filtered["jobs"].as_array().unwrap().len(), 0);
    let (_, filtered) = g
        .get("/v1/jobs?status=pending&modelId=genq/title-card/text-to-video&limit=100")
        .await;
    assert!(filtered["jobs"].as_array().unwrap().len() >= 25);
    for bad in ["limit=0", "limit=101", "status=PENDING", "cursor=%%%"] {
        let (code, body) = g.get(&format!("/v1/jobs?{bad}")).await;
        assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"), "{bad}");
    }
}

#[tokio::test]
async fn models_and_account_describe_themselves() {
    let g = Gateway::start(&["--workers", "0"], 12_345);
    let (code, models) = g.get("/v1/models").await;
    assert_eq!(code, 200);
    let slugs: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["slug"].as_str().unwrap())
        .collect();
    for slug in [
        "genq/image-audio-to-video",
        "genq/text-to-speech",
        "genq/title-card/text-to-video",
    ] {
        assert!(slugs.contains(&slug), "{slugs:?}");
    }
    let tts = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["slug"] == "genq/text-to-speech")
        .unwrap();
    assert_eq!(tts["inputSchema"]["required"], json!(["text"]));
    assert_eq!(tts["outputType"], "audio");
    assert_eq!(tts["price"]["type"], "per_second");

    let (code, account) = g.get("/v1/account").await;
    assert_eq!(code, 200);
    assert_eq!(account["balanceMicroCents"], 12_345);
    assert_eq!(account["concurrencyLimit"], 10);
    assert_eq!(account["activeJobs"], 0);
}

/// Pids of live processes whose command line mentions `needle`.
fn pids_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn a_deadline_stops_a_long_render_and_priority_orders_what_waits() {
    // One worker, busy with a render far longer than its 3 s timeout: the
    // audio transcode of 20 minutes of sound.
    let root = tempfile::tempdir().unwrap();
    let assets = common::studio::Assets::start(root.path());
    image(&assets.dir, "still.jpg", 320, 240);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=1200:sample_rate=8000",
        "-ac",
        "1",
        assets.dir.join("long.wav").to_str().unwrap(),
    ]);
    let ca = assets.ca.to_str().unwrap().to_owned();
    let g = Gateway::start(
        &[
            "--rate-limit-per-minute",
            "0",
            "--workers",
            "1",
            "--input-allow-private",
            "true",
            "--input-ca-file",
            &ca,
        ],
        10_000_000,
    );
    let other = create_account_with(&g.server.data_dir, "other", &["--credits", "10000000"]);
    let before = g.balance().await;
    let (code, long) = g
        .submit(json!({
            "model": "genq/image-audio-to-video",
            "input": {"image_url": assets.url("still.jpg"), "audio_url": assets.url("long.wav")},
            "timeoutSeconds": 3,
        }))
        .await;
    assert_eq!(code, 200, "{long}");
    let long = long["jobId"].as_str().unwrap().to_owned();
    let submitted = Instant::now();

    // While it runs: this account's two ordinary jobs, another account's
    // one, then this account's urgent one.
    // Each long enough (some tenths of a second) that polling sees them
    // start one by one.
    let text = "A sentence of speech for the queue to take its time over. ".repeat(8);
    let speech = |priority: i64| json!({"model": "genq/text-to-speech", "input": {"text": text}, "priority": priority});
    let mut waiting = Vec::new();
    let mut paid = 0;
    for (key, priority) in [
        (&g.account.api_key, 0),
        (&g.account.api_key, 0),
        (&other.api_key, 0),
        (&g.account.api_key, 5),
    ] {
        let (code, body, _) = g
            .call(
                key,
                reqwest::Method::POST,
                "/v1/jobs/submit",
                Some(speech(priority)),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        if *key == g.account.api_key {
            paid += body["costMicroCents"].as_i64().unwrap();
        }
        waiting.push((key.clone(), body["jobId"].as_str().unwrap().to_owned()));
    }
    let (code, body) = g.submit(speech(11)).await;
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"), "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("priority"));

    // The render's ffmpeg runs, then the deadline stops it; then the
    // waiting jobs run one at a time, watched from the start.
    let needle = format!("{long}-");
    let mut saw_ffmpeg = false;
    let mut failed = None;
    let mut started: Vec<String> = Vec::new();
    while failed.is_none() || started.len() < waiting.len() {
        saw_ffmpeg |= !pids_mentioning(&needle).is_empty();
        if failed.is_none() {
            let (_, body) = g.get(&format!("/v1/jobs/{long}")).await;
            if body["status"] != "pending" && body["status"] != "processing" {
                assert!(
                    submitted.elapsed() < Duration::from_secs(15),
                    "stopped {:?} after submission, not at its deadline",
                    submitted.elapsed()
                );
                failed = Some(body);
            }
        }
        for (key, id) in &waiting {
            if started.contains(id) {
                continue;
            }
            let (_, body, _) = g
                .call(key, reqwest::Method::GET, &format!("/v1/jobs/{id}"), None)
                .await;
            if body["status"] != "pending" {
                assert_ne!(body["status"], "failed", "{body}");
                started.push(id.clone());
            }
        }
        assert!(
            submitted.elapsed() < Duration::from_secs(90),
            "{failed:?} {started:?}\n{}",
            g.server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let failed = failed.unwrap();
    assert!(saw_ffmpeg, "the render never started: {}", g.server.log());
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(error_code(&failed), "DEADLINE_EXCEEDED", "{failed}");
    assert!(
        pids_mentioning(&needle).is_empty(),
        "ffmpeg outlived its job"
    );

    // The urgent job ran in this account's first turn, the other account's
    // in its own turn, then the rest, a0 in the place in line the urgent
    // job had.
    let [a0, a1, b0, urgent] = [0, 1, 2, 3].map(|i| waiting[i].1.clone());
    assert_eq!(started, [urgent, b0, a1, a0]);
    // The failed render was refunded: only this account's speech jobs cost.
    for (key, id) in &waiting {
        if *key == g.account.api_key {
            g.wait(id).await;
        }
    }
    assert_eq!(g.balance().await, before - paid);
}

/// POST /v1/jobs/submit with an Idempotency-Key: status, raw body, replayed?
async fn submit_keyed(url: &str, api_key: &str, key: &str, body: &Value) -> (u16, Vec<u8>, bool) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(api_key)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let code = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (code, response.bytes().await.unwrap().to_vec(), replayed)
}

#[tokio::test]
async fn an_idempotency_key_makes_one_job_and_one_charge() {
    let g = Gateway::start(
        &[
            "--workers",
            "0",
            "--rate-limit-per-minute",
            "0",
            "--submit-rate-limit-per-minute",
            "0",
        ],
        1_000_000,
    );
    let url = g.server.url("/v1/jobs/submit");
    let key = &g.account.api_key;
    let job = json!({"model": "genq/text-to-speech", "input": {"text": "Once only."}});
    let before = g.balance().await;

    let (code, first, replayed) = submit_keyed(&url, key, "order-1", &job).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&first));
    assert!(!replayed);
    let cost = serde_json::from_slice::<Value>(&first).unwrap()["costMicroCents"]
        .as_i64()
        .unwrap();
    // The same request again: the first answer, byte for byte.
    let (code, again, replayed) = submit_keyed(&url, key, "order-1", &job).await;
    assert_eq!((code, replayed), (200, true));
    assert_eq!(again, first);
    // The same key with another request: refused, nothing made.
    let other = json!({"model": "genq/text-to-speech", "input": {"text": "Twice?"}});
    let (code, body, _) = submit_keyed(&url, key, "order-1", &other).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, error_code(&body)),
        (422, "IDEMPOTENCY_KEY_REUSED"),
        "{body}"
    );
    // A key that is not 1-255 visible characters.
    let (code, body, _) = submit_keyed(&url, key, &"k".repeat(256), &job).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"), "{body}");
    // A refused request frees its key for the corrected one.
    let bad = json!({"model": "genq/text-to-speech", "input": {}});
    let (code, _, _) = submit_keyed(&url, key, "order-2", &bad).await;
    assert_eq!(code, 400);
    let (code, _, replayed) = submit_keyed(&url, key, "order-2", &job).await;
    assert_eq!((code, replayed), (200, false));

    // 20 identical requests at once: one job; every answer is that job's,
    // or says the first is still in progress.
    let racers = (0..20).map(|_| submit_keyed(&url, key, "order-3", &job));
    let answers = futures::future::join_all(racers).await;
    let made: HashSet<Vec<u8>> = answers
        .iter()
        .filter(|(code, _, _)| *code == 200)
        .map(|(_, body, _)| body.clone())
        .collect();
    assert_eq!(made.len(), 1, "{answers:?}");
    for (code, body, _) in &answers {
        if *code != 200 {
            let body: Value = serde_json::from_slice(body).unwrap();
            assert_eq!(
                (*code, error_code(&body)),
                (409, "IDEMPOTENCY_KEY_IN_USE"),
                "{body}"
            );
        }
    }
    let (code, late, replayed) = submit_keyed(&url, key, "order-3", &job).await;
    assert_eq!((code, replayed), (200, true));
    assert!(made.contains(&late));

    // Another account's key of the same name is its own.
    let other_account = create_account_with(&g.server.data_dir, "other", &["--credits", "100000"]);
    let (code, theirs, replayed) =
        submit_keyed(&url, &other_account.api_key, "order-1", &job).await;
    assert_eq!((code, replayed), (200, false));
    assert_ne!(theirs, first);

    // Three jobs, each charged once.
    let (_, list) = g.get("/v1/jobs?limit=100").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3, "{list}");
    assert_eq!(g.balance().await, before - 3 * cost);
}

/// A request still sending its body after the key's 15 s claim would have
/// run out keeps the key: the claim is renewed while the request runs, so
/// the same key meanwhile is a 409, and afterwards a replay of its answer.
#[tokio::test]
async fn a_slow_keyed_request_keeps_its_key_past_the_claims_lease() {
    let g = Gateway::start(&["--workers", "0"], 1_000_000);
    let url = g.server.url("/v1/jobs/submit");
    let key = g.account.api_key.clone();
    let job = json!({"model": "genq/text-to-speech", "input": {"text": "Slowly."}});
    let text = job.to_string();
    // The JSON, with a space every second for 18 s after its opening brace
    // (well within the 30 s a body may idle).
    let (head, tail) = text.split_at(1);
    let (head, tail) = (head.to_owned(), tail.to_owned());
    let chunks = std::iter::once(head.clone())
        .chain(std::iter::repeat_n(" ".to_owned(), 18))
        .chain(std::iter::once(tail.clone()));
    let body = futures::stream::iter(chunks).then(|chunk| async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        Ok::<_, std::io::Error>(chunk)
    });
    let slow = tokio::spawn({
        let (url, key) = (url.clone(), key.clone());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", "slow")
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(body))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.bytes().await.unwrap().to_vec(),
            )
        }
    });
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert!(!slow.is_finished(), "the slow request ended early");
    let (code, body, _) = submit_keyed(&url, &key, "slow", &job).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, error_code(&body)),
        (409, "IDEMPOTENCY_KEY_IN_USE"),
        "{body}"
    );
    let (code, first) = slow.await.unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&first));
    // The same bytes at once: the answer the slow request got.
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&key)
        .header("Idempotency-Key", "slow")
        .header("content-type", "application/json")
        .body(format!("{head}{}{tail}", " ".repeat(18)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    assert_eq!(response.bytes().await.unwrap().to_vec(), first);
    let (_, list) = g.get("/v1/jobs?limit=10").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn a_batch_is_submitted_all_or_nothing() {
    let g = Gateway::start(
        &[
            "--workers",
            "0",
            "--max-concurrent-jobs",
            "5000",
            "--submit-rate-limit-per-minute",
            "0",
        ],
        1_000_000_000,
    );
    let url = g.server.url("/v1/jobs/batch");
    let speech = |text: &str| json!({"model": "genq/text-to-speech", "input": {"text": text}});
    let batch = |n: usize| json!({"jobs": (0..n).map(|i| speech(&format!("Job {i}."))).collect::<Vec<_>>()});
    let before = g.balance().await;

    let (code, first, _) = submit_keyed(&url, &g.account.api_key, "batch-1", &batch(1000)).await;
    let body: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(body["requestId"].as_str().unwrap().starts_with("req_"));
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1000);
    let ids: HashSet<&str> = jobs.iter().map(|j| j["jobId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1000);
    assert!(jobs.iter().all(|j| j["status"] == "pending"));
    let cost = jobs[0]["costMicroCents"].as_i64().unwrap();
    assert!(cost > 0);
    let total: i64 = jobs
        .iter()
        .map(|j| j["costMicroCents"].as_i64().unwrap())
        .sum();
    assert_eq!(g.balance().await, before - total);
    // In order: each id is the job of that item.
    let (_, last) = g
        .get(&format!(
            "/v1/jobs/{}",
            jobs[999]["jobId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(last["status"], "pending", "{last}");
    // Replayed under its key: no second batch.
    let (code, again, replayed) =
        submit_keyed(&url, &g.account.api_key, "batch-1", &batch(1000)).await;
    assert_eq!((code, replayed, again == first), (200, true, true));
    assert_eq!(g.balance().await, before - total);

    // One invalid item: nothing submitted, the item and field named.
    let mut bad = batch(5);
    bad["jobs"][3]["input"] = json!({"text": 42});
    let (code, body, _) = submit_keyed(&url, &g.account.api_key, "batch-2", &bad).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, error_code(&body)), (400, "INVALID_INPUT"), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[3].input"),
        "{body}"
    );
    let mut unknown = batch(3);
    unknown["jobs"][1]["model"] = json!("genq/no-such-model");
    let (code, body, _) = submit_keyed(&url, &g.account.api_key, "batch-3", &unknown).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("jobs[1].model"),
        "{body}"
    );
    for n in [0, 1001] {
        let (code, _, _) =
            submit_keyed(&url, &g.account.api_key, &format!("size-{n}"), &batch(n)).await;
        assert_eq!(code, 400, "{n} jobs");
    }
    assert_eq!(g.balance().await, before - total);

    // A balance for 999 of them: 402, and nothing submitted.
    let poor = create_account_with(
        &g.server.data_dir,
        "poor",
        &[
            "--credits",
            &(999 * cost).to_string(),
            "--max-concurrent-jobs",
            "5000",
        ],
    );
    let (code, body, _) = submit_keyed(&url, &poor.api_key, "batch-4", &batch(1000)).await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, error_code(&body)),
        (402, "INSUFFICIENT_BALANCE"),
        "{body}"
    );
    let (_, list, _) = g
        .call(&poor.api_key, reqwest::Method::GET, "/v1/jobs", None)
        .await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
    let (_, account, _) = g
        .call(&poor.api_key, reqwest::Method::GET, "/v1/account", None)
        .await;
    assert_eq!(account["balanceMicroCents"], 999 * cost);
    let (code, _, _) = submit_keyed(&url, &poor.api_key, "batch-5", &batch(999)).await;
    assert_eq!(code, 200);
}

/// A value quoted in an error is cut to a short prefix: a 1 MB prompt or
/// model slug does not come back as a 1 MB error.
#[tokio::test]
async fn errors_quote_at_most_a_short_prefix_of_a_value() {
    let g = Gateway::start(&["--workers", "0"], 1_000_000);
    let long = "a".repeat(1_000_000);
    for body in [
        json!({ "model": "genq/title-card/text-to-video", "input": { "prompt": long } }),
        json!({ "model": long, "input": {} }),
        json!({ "model": "genq/text-to-speech", "input": { "text": "x", "speed": long } }),
        json!({ "model": "genq/text-to-speech", "input": { "text": "x" }, "webhookUrl": long }),
        json!({ "model": "genq/text-to-speech", "version": long, "input": { "text": "x" } }),
    ] {
        let (code, answer) = g.submit(body).await;
        assert!(code == 400 || code == 404, "{code}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.len() < 1_200, "{code}: {} bytes", message.len());
        assert!(!message.contains(&"a".repeat(101)), "{message}");
    }
    let (code, answer) = g.submit(json!({ "model": long, "input": {} })).await;
    assert_eq!((code, error_code(&answer)), (404, "MODEL_NOT_FOUND"));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("\"{}…\"", "a".repeat(100))),
        "{message}"
    );
}

/// A lone UTF-16 surrogate in a `\u` escape is named as what it is.
#[tokio::test]
async fn a_lone_surrogate_is_named_in_the_error() {
    let g = Gateway::start(&["--workers", "0"], 1_000_000);
    let response = reqwest::Client::new()
        .post(g.server.url("/v1/jobs/submit"))
        .bearer_auth(&g.account.api_key)
        .header("content-type", "application/json")
        .body(r#"{"model": "genq/text-to-speech", "input": {"text": "\ud800"}}"#)
        .send()
        .await
        .unwrap();
    let (code, answer) = json_of(response).await;
    assert_eq!((code, error_code(&answer)), (400, "INVALID_INPUT"));
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("lone surrogate"), "{message}");
    assert!(!message.contains("end of hex escape"), "{message}");
}

/// What can be checked without running the job is checked at submission,
/// against the published schema: a 400 `INVALID_INPUT` naming the field,
/// not a job that fails later.
#[tokio::test]
async fn inputs_the_published_schema_refuses_are_refused_at_submission() {
    let g = Gateway::start(&["--workers", "0"], 10_000_000);
    let card = |background: &str| json!({ "model": "genq/title-card/text-to-video", "input": { "prompt": "hi", "background": background } });
    let video = |image: &str, audio: &str| json!({ "model": "genq/image-audio-to-video", "input": { "image_url": image, "audio_url": audio } });
    let ok_image = "https://example.com/a.png";
    let ok_audio = "data:audio/wav;base64,UklGRg==";
    let refused = [
        (card("#GGGGGG"), "input.background"),
        (card("#fff"), "input.background"),
        (card("navyblue"), "input.background"),
        (video("file:///etc/passwd", ok_audio), "input.image_url"),
        (video("/relative/a.png", ok_audio), "input.image_url"),
        (video("javascript:alert(1)", ok_audio), "input.image_url"),
        (
            video(ok_image, "ftp://example.com/a.mp3"),
            "input.audio_url",
        ),
        (video(ok_image, "https:///no-host"), "input.audio_url"),
        (
            json!({ "model": "genq/text-to-speech", "input": { "text": "hi", "voice": "--stdout" } }),
            "input.voice",
        ),
    ];
    for (body, field) in refused {
        let (code, answer) = g.submit(body.clone()).await;
        assert_eq!(
            (code, error_code(&answer)),
            (400, "INVALID_INPUT"),
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{body}: {message}");
    }
    for body in [
        card("#1a2B3c"),
        card("Navy"),
        video(ok_image, ok_audio),
        video("HTTP://example.com/a.png", "http://example.com/a.mp3"),
    ] {
        let (code, answer) = g.submit(body.clone()).await;
        assert_eq!(code, 200, "{body}: {answer}");
    }
    // The published schema says so.
    let (_, models) = g.get("/v1/models").await;
    let schema_of = |slug: &str| {
        models["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["slug"] == slug)
            .unwrap()["inputSchema"]
            .clone()
    };
    let card_schema = schema_of("genq/title-card/text-to-video");
    assert!(
        card_schema["properties"]["background"]["pattern"].is_string(),
        "{card_schema}"
    );
    let video_schema = schema_of("genq/image-audio-to-video");
    for field in ["image_url", "audio_url"] {
        assert!(
            video_schema["properties"][field]["pattern"].is_string(),
            "{video_schema}"
        );
    }
}
