//! The Provider dialect (seed 003) end to end over TCP: projects as the
//! vendor's client discovers them, genq's project routes and CLI, previews,
//! credits, and every refusal in the dialect's shape.

mod common;

use common::*;
use serde_json::{json, Value};

fn spring_campaign() -> Value {
    json!({
      "name": "Spring campaign",
      "type": "video",
      "startDate": "2026-04-01T00:00:00Z",
      "endDate": null,
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
         "font": "DejaVu Sans", "size": 72, "color": "#ffffff", "align": "center"},
        {"kind": "text", "text": "example.com", "x": 60, "y": 1800, "width": 960, "height": 60, "size": 32, "color": "#aaaaaa"}
      ],
      "audio": {"field": "voiceover"},
      "duration": 10
    })
}

struct Studio {
    _dir: tempfile::TempDir,
    server: Server,
    account: Account,
}

impl Studio {
    fn start() -> Studio {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let server = Server::start(&data, &["--workers", "0"], &[]);
        // 2.5 credits at the default credit of 10,000 micro-cents.
        let account = create_account_with(&data, "studio", &["--credits", "25000"]);
        Studio {
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
        key: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, self.server.url(path));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        json_of(request.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call(
            Some(&self.account.api_key),
            reqwest::Method::GET,
            path,
            None,
        )
        .await
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, Value) {
        let text = body.to_string();
        self.call(Some(&self.account.api_key), method, path, Some(&text))
            .await
    }
}

fn write_template(dir: &std::path::Path, template: &Value) -> String {
    let path = dir.join(format!("template-{}.json", rand_suffix()));
    std::fs::write(&path, template.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[tokio::test]
async fn a_client_discovers_projects_as_the_vendor_documents() {
    let studio = Studio::start();
    let file = write_template(studio.server.data_dir.parent().unwrap(), &spring_campaign());
    let created = cli_json(&[
        "projects",
        "create",
        "--account",
        &studio.account.id,
        "--file",
        &file,
        "--data-dir",
        studio.data(),
    ]);
    let project_id = created["projectId"].as_str().unwrap().to_owned();
    assert_eq!(created, json!({"projectId": project_id}));

    // Not yet started, and already ended: neither is active.
    let mut later = spring_campaign();
    later["name"] = json!("Next year");
    later["startDate"] = json!("2099-01-01T00:00:00Z");
    let mut over = spring_campaign();
    over["name"] = json!("Winter sale");
    over["startDate"] = json!(null);
    over["endDate"] = json!("2020-01-31T23:59:59.5Z");
    for template in [&later, &over] {
        let (code, _) = studio
            .send(reqwest::Method::POST, "/api/provider/projects", template)
            .await;
        assert_eq!(code, 201);
    }

    let (code, body) = studio.get("/api/provider/projects/active").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"message": "Success", "data": [{
            "projectId": project_id,
            "projectName": "Spring campaign",
            "projectType": "video",
            "startDate": "2026-04-01T00:00:00.000Z",
            "endDate": null
        }]})
    );

    let (code, body) = studio
        .get(&format!(
            "/api/provider/projects/{project_id}/mapping-fields"
        ))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "Success");
    let data = &body["data"];
    assert_eq!(data["projectId"], project_id.as_str());
    assert_eq!(data["projectName"], "Spring campaign");
    assert_eq!(data["projectType"], "video");
    assert!(data["fetchedAt"].as_str().unwrap().ends_with('Z'));
    let fields = data["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 3);
    assert_eq!(
        fields["headline"],
        json!({"label": "Headline", "instructionType": "text"})
    );
    assert_eq!(
        fields["avatar"],
        json!({"label": "Avatar", "instructionType": "image"})
    );
    assert_eq!(
        fields["voiceover"],
        json!({"label": "Voiceover", "instructionType": "audio"})
    );

    // Every project of the account, with its template; the CLI lists them too.
    let (_, all) = studio.get("/api/provider/projects").await;
    let names: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["projectName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Spring campaign", "Next year", "Winter sale"]);
    assert_eq!(all["data"][0]["active"], true);
    assert_eq!(all["data"][1]["active"], false);
    assert_eq!(all["data"][0]["template"]["layers"][2]["field"], "headline");
    let listed = cli_json(&[
        "projects",
        "list",
        "--account",
        &studio.account.id,
        "--data-dir",
        studio.data(),
    ]);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["projectId"], project_id.as_str());
}

#[tokio::test]
async fn projects_are_edited_and_deleted_and_stay_within_their_account() {
    let studio = Studio::start();
    let (code, body) = studio
        .send(
            reqwest::Method::POST,
            "/api/provider/projects",
            &spring_campaign(),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    let id = body["data"]["projectId"].as_str().unwrap().to_owned();
    let path = format!("/api/provider/projects/{id}");

    let mut edited = spring_campaign();
    edited["name"] = json!("Spring campaign v2");
    let (code, body) = studio.send(reqwest::Method::PUT, &path, &edited).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["projectName"], "Spring campaign v2");
    let (_, body) = studio.get(&path).await;
    assert_eq!(body["data"]["template"]["name"], "Spring campaign v2");

    // Another account sees none of it.
    let other = create_account(&studio.server.data_dir, "other");
    for (method, suffix) in [
        (reqwest::Method::GET, ""),
        (reqwest::Method::GET, "/mapping-fields"),
        (reqwest::Method::DELETE, ""),
    ] {
        let (code, body) = studio
            .call(
                Some(&other.api_key),
                method.clone(),
                &format!("{path}{suffix}"),
                None,
            )
            .await;
        assert_eq!(code, 404, "{method} {suffix}: {body}");
        assert_eq!(
            body,
            json!({"statusCode": 404, "message": "Project not found", "error": "Not Found"})
        );
    }
    let (code, _) = studio
        .call(
            Some(&other.api_key),
            reqwest::Method::PUT,
            &path,
            Some(&edited.to_string()),
        )
        .await;
    assert_eq!(code, 404);
    let (_, body) = studio
        .call(
            Some(&other.api_key),
            reqwest::Method::GET,
            "/api/provider/projects/active",
            None,
        )
        .await;
    assert_eq!(body["data"], json!([]));
    let (code, _) = studio.get("/api/provider/projects/not-a-uuid").await;
    assert_eq!(code, 404);

    let (code, body) = studio
        .send(reqwest::Method::DELETE, &path, &json!({}))
        .await;
    assert_eq!((code, body), (200, json!({"message": "Success"})));
    let (code, _) = studio.get(&path).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn an_invalid_template_is_a_400_naming_the_problem() {
    let studio = Studio::start();
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|t| t["layers"][2]["field"] = json!("subtitle")),
            "layers[2].field: names the unknown field \"subtitle\"",
        ),
        (
            Box::new(|t| t["fields"]["tagline"] = json!({"label": "Tagline", "type": "text"})),
            "fields.tagline: is used by no layer",
        ),
        (
            Box::new(|t| t["layers"][1]["height"] = json!(571)),
            "layers[1]: the box",
        ),
        (
            Box::new(|t| t["layers"][2]["font"] = json!("Papyrus Deluxe")),
            "layers[2].font: no installed font family is called \"Papyrus Deluxe\"",
        ),
        (
            Box::new(|t| t["layers"][1]["color"] = json!("#00000g")),
            "layers[1].color",
        ),
        (
            Box::new(|t| t["canvas"]["height"] = json!(5000)),
            "canvas.height: must be 1 to 4096 pixels",
        ),
        (
            Box::new(|t| t["type"] = json!("gif")),
            "type: unknown variant `gif`",
        ),
    ];
    for (edit, expected) in cases {
        let mut template = spring_campaign();
        edit(&mut template);
        let (code, body) = studio
            .send(reqwest::Method::POST, "/api/provider/projects", &template)
            .await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(body["statusCode"], 400);
        assert_eq!(body["error"], "Bad Request");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
    let (code, body) = studio
        .call(
            Some(&studio.account.api_key),
            reqwest::Method::POST,
            "/api/provider/projects",
            Some("{\"name\": "),
        )
        .await;
    assert_eq!(
        (code, &body["error"]),
        (400, &json!("Bad Request")),
        "{body}"
    );

    // The CLI refuses the same way, naming the file.
    let mut bad = spring_campaign();
    bad["layers"][2]["field"] = json!("subtitle");
    let file = write_template(studio.server.data_dir.parent().unwrap(), &bad);
    let out = genq_on(&studio.server.data_dir)
        .args([
            "projects",
            "create",
            "--account",
            &studio.account.id,
            "--file",
            &file,
            "--data-dir",
            studio.data(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("layers[2].field"), "{stderr}");
}

#[tokio::test]
async fn a_preview_draws_the_frame_with_placeholders_for_missing_values() {
    let studio = Studio::start();
    let (_, body) = studio
        .send(
            reqwest::Method::POST,
            "/api/provider/projects",
            &spring_campaign(),
        )
        .await;
    let id = body["data"]["projectId"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .post(
            studio
                .server
                .url(&format!("/api/provider/projects/{id}/preview")),
        )
        .header("x-api-key", &studio.account.api_key)
        .json(&json!({"values": {"headline": "Tulips are back"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let png = response.bytes().await.unwrap();
    let frame = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(frame.dimensions(), (1080, 1920));
    // The avatar's placeholder is grey; the canvas shows below the text box.
    assert_eq!(*frame.get_pixel(30, 30), image::Rgb([0xd1, 0xd5, 0xdb]));
    let text_box_ink = headline_ink(&frame);
    assert!(
        text_box_ink > 1000,
        "the headline is drawn in white: {text_box_ink} pixels"
    );

    let (code, body) = studio
        .send(
            reqwest::Method::POST,
            &format!("/api/provider/projects/{id}/preview"),
            &json!({"values": {"headline": "x".repeat(81)}}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("values.headline"),
        "{body}"
    );

    // A template not saved yet draws the same frame (the console's editor).
    let draft = reqwest::Client::new()
        .post(studio.server.url("/api/provider/preview"))
        .header("x-api-key", &studio.account.api_key)
        .json(&json!({"template": spring_campaign(), "values": {"headline": "Tulips are back"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(draft.status(), 200);
    assert_eq!(draft.bytes().await.unwrap(), png);
    let mut broken = spring_campaign();
    broken["layers"][2]["field"] = json!("nowhere");
    let (code, body) = studio
        .send(
            reqwest::Method::POST,
            "/api/provider/preview",
            &json!({"template": broken}),
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("layers[2].field"),
        "{body}"
    );
}

#[tokio::test]
async fn credits_and_refusals_come_in_the_dialects_shapes() {
    let studio = Studio::start();
    let (code, body) = studio.get("/auth/credits").await;
    assert_eq!((code, body), (200, json!({"credits": 2.5})));

    for key in [None, Some("gq_live_unknown")] {
        for (method, path) in [
            (reqwest::Method::GET, "/auth/credits"),
            (reqwest::Method::GET, "/api/provider/projects/active"),
            (reqwest::Method::POST, "/api/provider/projects"),
        ] {
            let (code, body) = studio.call(key, method, path, None).await;
            assert_eq!(
                (code, body),
                (401, json!({"message": "Unauthorized", "statusCode": 401})),
                "{path} with {key:?}"
            );
        }
    }
    // The header's name is case-insensitive.
    let response = reqwest::Client::new()
        .get(studio.server.url("/auth/credits"))
        .header("X-API-Key", &studio.account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A project's JSON must say it is JSON.
    let (code, body) = studio
        .call(
            Some(&studio.account.api_key),
            reqwest::Method::POST,
            "/api/provider/projects",
            None,
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["statusCode"], 400);
}

#[tokio::test]
async fn the_openapi_document_describes_the_provider_routes() {
    let studio = Studio::start();
    let (code, spec) = json_of(
        reqwest::get(studio.server.url("/openapi.json"))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200);
    for (path, method) in [
        ("/api/provider/projects", "post"),
        ("/api/provider/projects", "get"),
        ("/api/provider/projects/active", "get"),
        ("/api/provider/projects/{projectId}", "get"),
        ("/api/provider/projects/{projectId}", "put"),
        ("/api/provider/projects/{projectId}", "delete"),
        ("/api/provider/projects/{projectId}/mapping-fields", "get"),
        ("/api/provider/projects/{projectId}/preview", "post"),
        ("/api/provider/preview", "post"),
        ("/auth/credits", "get"),
        ("/jobs/v2", "post"),
        ("/jobs/trigger-job", "post"),
        ("/jobs/{id}", "get"),
        ("/storage/generate-signed-path", "get"),
        ("/storage/files/{key}", "get"),
    ] {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
}

/// The white pixels in the headline's box of the spring campaign's frame.
fn headline_ink(frame: &image::RgbImage) -> usize {
    (1400..1700)
        .flat_map(|y| (60..1020).map(move |x| (x, y)))
        .filter(|&(x, y)| frame.get_pixel(x, y).0.iter().all(|&c| c > 200))
        .count()
}

/// Bitstream Vera Sans, from reportlab's wheel (`scripts/deps --test`): a
/// real font that is not installed on the system.
fn brand_font_dir(root: &std::path::Path) -> std::path::PathBuf {
    let found = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, reportlab; print(os.path.join(os.path.dirname(reportlab.__file__), 'fonts', 'Vera.ttf'))",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        found.status.success(),
        "reportlab is installed (scripts/deps --test): {}",
        String::from_utf8_lossy(&found.stderr)
    );
    let font = String::from_utf8(found.stdout).unwrap();
    let dir = root.join("brand-fonts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(font.trim(), dir.join("Vera.ttf")).unwrap();
    dir
}

#[tokio::test]
async fn fonts_dir_adds_a_brand_font_that_templates_may_name() {
    let dir = tempfile::tempdir().unwrap();
    let fonts = brand_font_dir(dir.path());
    let mut template = spring_campaign();
    template["layers"][2]["font"] = json!("Bitstream Vera Sans");

    // Without it, the family is unknown.
    let plain = Studio::start();
    let (code, body) = plain
        .send(reqwest::Method::POST, "/api/provider/projects", &template)
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("\"Bitstream Vera Sans\""),
        "{body}"
    );

    let data = dir.path().join("data");
    let server = Server::start(
        &data,
        &["--workers", "0", "--fonts-dir", fonts.to_str().unwrap()],
        &[],
    );
    let account = create_account_with(&data, "brand", &[]);
    let response = reqwest::Client::new()
        .post(server.url("/api/provider/projects"))
        .header("x-api-key", &account.api_key)
        .json(&template)
        .send()
        .await
        .unwrap();
    let (code, body) = json_of(response).await;
    assert_eq!(code, 201, "{body}");
    let id = body["data"]["projectId"].as_str().unwrap().to_owned();
    let response = reqwest::Client::new()
        .post(server.url(&format!("/api/provider/projects/{id}/preview")))
        .header("x-api-key", &account.api_key)
        .json(&json!({"values": {"headline": "Tulips are back"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let frame = image::load_from_memory(&response.bytes().await.unwrap())
        .unwrap()
        .to_rgb8();
    let ink = headline_ink(&frame);
    assert!(
        ink > 1000,
        "the headline is drawn in the brand font: {ink} pixels"
    );
}
