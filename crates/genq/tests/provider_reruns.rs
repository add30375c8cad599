//! Provider jobs after they are done: trigger-job runs them again, signed
//! paths expire and refuse tampering, and outputs in object storage download
//! by signed path.

mod common;

use std::time::Duration;

use common::s3::S3Server;
use common::studio::*;
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn trigger_job_runs_a_failed_job_again_and_refuses_a_foreign_id() {
    let studio = Studio::start(&[]);
    let mut values = studio.values();
    values["avatar"]["image_url"] = json!(studio.assets.url("late.jpg"));
    let request = json!({"template_id": studio.project, "job_type": "image", "values": values});
    let (_, created) = studio.submit(&request).await;
    let id = created["job"]["uuid"].as_str().unwrap().to_owned();
    let (record, _) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "FAILED");
    let before = studio.credits().await;

    // Another account's id among ours: nothing is queued again.
    let other = create_account_with(&studio.server.data_dir, "other", &["--credits", "1000000"]);
    let file = studio.dir.path().join("template.json");
    let theirs_project = cli_json(&[
        "projects",
        "create",
        "--account",
        &other.id,
        "--file",
        file.to_str().unwrap(),
        "--data-dir",
        studio.server.data_dir.to_str().unwrap(),
    ]);
    let mut theirs = request.clone();
    theirs["template_id"] = theirs_project["projectId"].clone();
    let (code, body) = studio
        .call(
            &other.api_key,
            reqwest::Method::POST,
            "/jobs/v2",
            Some(&theirs),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let foreign = body["job"]["uuid"].as_str().unwrap();
    for ids in [json!([id, foreign]), json!(["not-a-uuid"])] {
        let (code, body) = studio
            .call(
                &studio.account.api_key,
                reqwest::Method::POST,
                "/jobs/trigger-job",
                Some(&json!({"ids": ids})),
            )
            .await;
        assert_eq!((code, body), (404, json!({"message": "No job found"})));
    }
    assert_eq!(studio.job(&id).await["job_status"], "FAILED");
    assert_eq!(studio.credits().await, before);

    // The missing picture appears; the job runs again, charged again.
    std::fs::copy(
        studio.assets.dir.join("avatar.jpg"),
        studio.assets.dir.join("late.jpg"),
    )
    .unwrap();
    let (code, body) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::POST,
            "/jobs/trigger-job",
            Some(&json!({"ids": [id]})),
        )
        .await;
    assert_eq!((code, body), (201, json!({"message": "Job triggered"})));
    let (record, _) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    assert_eq!(record["credit_used"], "2");
    assert_eq!(studio.credits().await, before - 2.0);
    assert!(record["output"]["output"]
        .as_str()
        .unwrap()
        .ends_with(".png"));

    // A SUCCESS job runs again too (a queued or running one is left alone:
    // the store's suite checks that without racing a worker).
    let (code, _) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::POST,
            "/jobs/trigger-job",
            Some(&json!({"ids": [id]})),
        )
        .await;
    assert_eq!(code, 201);
    let (record, _) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "SUCCESS");
    assert_eq!(
        studio.credits().await,
        before - 4.0,
        "two runs of 2 credits"
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

#[tokio::test]
async fn a_studio_session_streams_its_jobs_as_job_records() {
    use eventsource_stream::Eventsource;
    use futures::StreamExt;
    let studio = Studio::start(&[]);
    let response = reqwest::Client::new()
        .get(studio.server.url("/events?session_id=studio-7"))
        .header("x-api-key", &studio.account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream().eventsource();
    let request = |session: &str| {
        json!({"template_id": studio.project, "job_type": "image", "session_id": session,
            "values": studio.values()})
    };
    let (_, _elsewhere) = studio.submit(&request("another-session")).await;
    let (_, mine) = studio.submit(&request("studio-7")).await;
    let id = mine["job"]["uuid"].as_str().unwrap().to_owned();
    let mut names = Vec::new();
    let last = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("an event within a minute")
            .unwrap()
            .unwrap();
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["uuid"], id.as_str(), "only the session's job: {data}");
        assert_eq!(event.event, data["job_status"].as_str().unwrap());
        names.push(event.event.clone());
        if event.event == "SUCCESS" {
            break data;
        }
    };
    assert_eq!(
        names.first().map(String::as_str),
        Some("QUEUED"),
        "{names:?}"
    );
    assert_eq!(
        last,
        studio.job(&id).await,
        "the data is GET /jobs/{{id}}'s body"
    );
}

/// Once the retention sweep deleted a job's inputs (the uploads its request
/// carried as data: URLs among them), it cannot run again, and says why.
#[tokio::test]
async fn a_job_whose_inputs_were_deleted_cannot_be_triggered_again() {
    let studio = Studio::start(&[
        "--input-retention-hours",
        "0.0003",
        "--retention-sweep-seconds",
        "1",
    ]);
    let mut values = studio.values();
    values["headline"] = json!("Kept for a second");
    let request = json!({"template_id": studio.project, "job_type": "image", "values": values});
    let (code, created) = studio.submit(&request).await;
    assert_eq!(code, 201, "{created}");
    let id = created["job"]["uuid"].as_str().unwrap().to_owned();
    let (record, _) = studio.until_final(&id).await;
    assert_eq!(record["job_status"], "SUCCESS", "{record}");
    let started = std::time::Instant::now();
    let record = loop {
        let record = studio.job(&id).await;
        if record.get("input_deleted_at").is_some() {
            break record;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{record}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(record["job_status"], "SUCCESS");
    let (code, body) = studio
        .call(
            &studio.account.api_key,
            reqwest::Method::POST,
            "/jobs/trigger-job",
            Some(&json!({"ids": [id]})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("inputs were deleted"), "{message}");
    assert_eq!(studio.job(&id).await["job_status"], "SUCCESS");
}
