//! The web console's security at the HTTP level, over TCP against the real
//! binary (the browser tests in `console.rs` drive the pages themselves):
//! the session cookie, CSRF on every state change made with it, the
//! headers every page carries, and one account's ids being another's
//! "not found".

mod common;

use common::*;
use genq_dialects::shared::openapi::path_shape;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `key`; the session cookie's value.
async fn sign_in(server: &Server, key: &str) -> String {
    let response = browser()
        .post(server.url("/console/sign-in"))
        .form(&[("api_key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/console/jobs");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("genq_session=")
        .unwrap()
        .to_owned()
}

/// The CSRF token a signed-in page carries.
async fn csrf_of(server: &Server, session: &str) -> String {
    let page = browser()
        .get(server.url("/console/new-video"))
        .header(COOKIE, format!("genq_session={session}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let marker = r#"name="csrf-token" content=""#;
    let start = page.find(marker).unwrap() + marker.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

#[tokio::test]
async fn the_session_cookie_stands_for_the_key_and_state_changes_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let account = create_account_with(dir.path(), "console", &["--credits", "100000000"]);
    let server = Server::start(dir.path(), &["--workers", "0"], &[]);

    // A wrong key: 401, the form again, and no cookie.
    let wrong = browser()
        .post(server.url("/console/sign-in"))
        .form(&[("api_key", "genq_wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());
    assert!(wrong.text().await.unwrap().contains(r#"role="alert""#));

    // Another site's page cannot sign a browser in.
    let forged = browser()
        .post(server.url("/console/sign-in"))
        .header("origin", "https://evil.example")
        .form(&[("api_key", account.api_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.headers().get(SET_COOKIE).is_none());

    let session = sign_in(&server, &account.api_key).await;
    let cookie = format!("genq_session={session}");
    let page = browser()
        .get(server.url("/console/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()[CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let html = page.text().await.unwrap();
    assert!(
        !html.contains(&account.api_key),
        "the key never reaches a page"
    );
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style"
    );
    assert!(!server.log().contains(&account.api_key), "nor a log line");

    // Reads with the cookie alone work; a submission needs the CSRF token.
    let list = browser()
        .get(server.url("/v1/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let body = json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "Hi"}});
    let without = browser()
        .post(server.url("/v1/jobs/submit"))
        .header(COOKIE, &cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
    let token = csrf_of(&server, &session).await;
    let with = browser()
        .post(server.url("/v1/jobs/submit"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200, "{:?}", with.text().await);

    // A console form without the token is refused; with it, sign-out works
    // and the cookie is dead everywhere.
    let refused = browser()
        .post(server.url("/console/sign-out"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let out = browser()
        .post(server.url("/console/sign-out"))
        .header(COOKIE, &cookie)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert!(out.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let after = browser()
        .get(server.url("/console/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);
    assert_eq!(after.headers()[LOCATION], "/console/sign-in");
    let api = browser()
        .get(server.url("/v1/jobs"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
}

#[tokio::test]
async fn another_accounts_job_is_not_found_and_a_new_key_is_no_stronger_than_its_maker() {
    let dir = tempfile::tempdir().unwrap();
    let mine = create_account_with(dir.path(), "mine", &["--credits", "100000000"]);
    let theirs = create_account_with(dir.path(), "theirs", &["--credits", "100000000"]);
    let server = Server::start(dir.path(), &["--workers", "0"], &[]);
    let (code, submitted) = json_of(
        Client::new(&theirs.api_key)
            .post(server.url("/v1/jobs/submit"))
            .json(&json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "their secret words"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    let their_job = submitted["jobId"].as_str().unwrap();

    let session = sign_in(&server, &mine.api_key).await;
    let cookie = format!("genq_session={session}");
    for path in [
        format!("/console/jobs/{their_job}"),
        format!("/console/jobs/{their_job}/inputs/image"),
        "/console/jobs/not-a-job".to_owned(),
        "/console/projects/01a22f71-0000-7000-8000-000000000000".to_owned(),
        "/console/models/no/such-model".to_owned(),
    ] {
        let response = browser()
            .get(server.url(&path))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert!(!response
            .text()
            .await
            .unwrap()
            .contains("their secret words"));
    }
    let token = csrf_of(&server, &session).await;
    for path in [
        format!("/console/jobs/{their_job}/cancel"),
        format!("/console/jobs/{their_job}/redeliver"),
    ] {
        let response = browser()
            .post(server.url(&path))
            .header(COOKIE, &cookie)
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }
    // Their job is still pending: nothing was cancelled.
    let (_, status) = json_of(
        Client::new(&theirs.api_key)
            .get(server.url(&format!("/v1/jobs/{their_job}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["status"], "pending");

    // A read-only key signs in but cannot mint a key that submits.
    let readonly = cli_json(&[
        "keys",
        "create",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--account",
        &mine.id,
        "--scopes",
        "check_status",
    ]);
    let ro_session = sign_in(&server, readonly["apiKey"].as_str().unwrap()).await;
    let ro_token = csrf_of(&server, &ro_session).await;
    let escalate = browser()
        .post(server.url("/console/account/keys"))
        .header(COOKIE, format!("genq_session={ro_session}"))
        .form(&[("csrf", ro_token.as_str()), ("scope", "submit_job")])
        .send()
        .await
        .unwrap();
    assert_eq!(escalate.status(), 400);
    let allowed = browser()
        .post(server.url("/console/account/keys"))
        .header(COOKIE, format!("genq_session={ro_session}"))
        .form(&[("csrf", ro_token.as_str()), ("scope", "check_status")])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let page = allowed.text().await.unwrap();
    let marker = r#"<code id="new-key" tabindex="0">"#;
    let start = page.find(marker).unwrap() + marker.len();
    let new_key = &page[start..start + page[start..].find('<').unwrap()];
    let check = Client::new(new_key)
        .get(server.url("/v1/jobs"))
        .send()
        .await
        .unwrap();
    assert_eq!(check.status(), 200);
    let submit = Client::new(new_key)
        .post(server.url("/v1/jobs/submit"))
        .json(&json!({"model": "genq/title-card/text-to-video", "input": {"prompt": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(submit.status(), 403);
}

/// The console's routes against `/openapi.json`, as the live server
/// answers: each route of `genq_console::ROUTES` is documented with
/// exactly the methods the list names (those the route takes: an OPTIONS,
/// which none takes, is a 405 whose `Allow` lists them), a method left out
/// is a page's GET, and the document has no console route the list lacks.
/// (The router refuses to start with a route the list lacks; the
/// dialects' routes are walked in `crates/dialects/tests/events.rs`.)
#[tokio::test]
async fn the_openapi_document_describes_the_consoles_api_and_no_page() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--workers", "0"], &[]);
    let (code, doc) = json_of(reqwest::get(server.url("/openapi.json")).await.unwrap()).await;
    assert_eq!(code, 200);
    let documented: std::collections::BTreeMap<String, Vec<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let mut methods: Vec<String> = item.as_object().unwrap().keys().cloned().collect();
            methods.sort();
            (path_shape(path), methods)
        })
        .collect();
    for (path, listed) in genq_console::ROUTES {
        let concrete = path_shape(path).replace("{}", "0193a6d2-5c1e-7bb4-9d3e-0a1b2c3d4e5f");
        let response = browser()
            .request(reqwest::Method::OPTIONS, server.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "OPTIONS {concrete}");
        let mut takes: Vec<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_lowercase())
            .filter(|m| m != "head")
            .collect();
        takes.sort();
        let mut listed: Vec<String> = listed.iter().map(|m| m.to_string()).collect();
        listed.sort();
        for method in &takes {
            assert!(
                listed.contains(method) || method == "get",
                "{method} {path} is not documented, and is no page"
            );
        }
        for method in &listed {
            assert!(takes.contains(method), "{path} does not take {method}");
        }
        let described = documented
            .get(&path_shape(path))
            .cloned()
            .unwrap_or_default();
        assert_eq!(described, listed, "{path}: documented methods");
    }
    for path in documented.keys() {
        if path.starts_with("/console") || path.starts_with("/share") || path == "/" {
            assert!(
                genq_console::ROUTES
                    .iter()
                    .any(|(listed, methods)| !methods.is_empty() && path_shape(listed) == *path),
                "{path} is documented but is no console route"
            );
        }
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["console_session"]["in"], "cookie", "{schemes}");
    assert_eq!(schemes["console_session"]["name"], "genq_session");
}
