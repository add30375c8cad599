//! The fetcher against a real HTTP server on loopback, and data: URIs.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use genq_outbound::fetch::{FetchError, Fetcher};
use genq_outbound::OutboundPolicy;

/// The PNG signature and the start of an IHDR chunk: enough for sniffing.
const PNG_HEAD: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";
const LIMIT: u64 = 64 * 1024;

fn png_body() -> Vec<u8> {
    let mut body = PNG_HEAD.to_vec();
    body.resize(1000, 7);
    body
}

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route(
            "/image.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], png_body()) }),
        )
        .route("/big", get(|| async { vec![0u8; LIMIT as usize + 1] }))
        .route(
            "/big-chunked",
            get(|| async {
                // No Content-Length: the limit must be enforced while reading.
                let chunks =
                    (0..100).map(|_| Ok::<_, Infallible>(bytes::Bytes::from(vec![1u8; 4096])));
                Body::from_stream(futures::stream::iter(chunks))
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/moved",
            get(|| async { Redirect::temporary("/image.png") }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                "late".into_response()
            }),
        )
        .route(
            "/slow-body",
            get(|| async {
                let chunks = futures::stream::unfold(0, |n| async move {
                    if n > 0 {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                    }
                    (n < 2).then(|| (Ok::<_, Infallible>(bytes::Bytes::from_static(b"x")), n + 1))
                });
                Response::new(Body::from_stream(chunks))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn open_fetcher(timeout: Duration) -> Fetcher {
    let policy = OutboundPolicy {
        allow_private: true,
        ..Default::default()
    };
    Fetcher::new(&policy, LIMIT, timeout).unwrap()
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fetched");
    (dir, path)
}

#[tokio::test]
async fn fetches_over_http_and_sniffs() {
    let addr = serve().await;
    let (_dir, dst) = scratch();
    let fetched = open_fetcher(Duration::from_secs(5))
        .fetch_to(&format!("http://{addr}/image.png"), &dst)
        .await
        .unwrap();
    assert_eq!(fetched.size, 1000);
    assert_eq!(fetched.sniffed, Some("image/png"));
    assert_eq!(fetched.declared.as_deref(), Some("image/png"));
    assert_eq!(std::fs::read(&dst).unwrap(), png_body());
}

#[tokio::test]
async fn too_large_by_content_length_and_by_streaming() {
    let addr = serve().await;
    let fetcher = open_fetcher(Duration::from_secs(5));
    for path in ["big", "big-chunked"] {
        let (_dir, dst) = scratch();
        let error = fetcher
            .fetch_to(&format!("http://{addr}/{path}"), &dst)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FetchError::TooLarge { limit: LIMIT, .. }),
            "{path}: {error:?}"
        );
        assert!(error.to_string().contains(&format!("/{path}")), "{error}");
        assert!(!dst.exists(), "{path}: the partial file is removed");
    }
}

#[tokio::test]
async fn http_errors_and_redirects() {
    let addr = serve().await;
    let fetcher = open_fetcher(Duration::from_secs(5));
    let (_dir, dst) = scratch();
    let error = fetcher
        .fetch_to(&format!("http://{addr}/missing"), &dst)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::Http { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("404"), "{error}");
    assert!(!dst.exists());

    let error = fetcher
        .fetch_to(&format!("http://{addr}/moved"), &dst)
        .await
        .unwrap_err();
    assert!(
        matches!(error, FetchError::Http { status: 307, .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("redirects are not followed"),
        "{error}"
    );
}

#[tokio::test]
async fn times_out_waiting_for_headers_or_body() {
    let addr = serve().await;
    let fetcher = open_fetcher(Duration::from_millis(500));
    for path in ["slow", "slow-body"] {
        let (_dir, dst) = scratch();
        let started = Instant::now();
        let error = fetcher
            .fetch_to(&format!("http://{addr}/{path}"), &dst)
            .await
            .unwrap_err();
        assert!(
            matches!(error, FetchError::Timeout { .. }),
            "{path}: {error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(!dst.exists());
    }
}

#[tokio::test]
async fn the_default_policy_refuses_loopback() {
    let addr = serve().await;
    let fetcher = Fetcher::new(&OutboundPolicy::default(), LIMIT, Duration::from_secs(5)).unwrap();
    let port = addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/image.png"),
        format!("http://localhost:{port}/image.png"),
        format!("http://[::ffff:127.0.0.1]:{port}/image.png"),
    ] {
        let (_dir, dst) = scratch();
        let error = fetcher.fetch_to(&url, &dst).await.unwrap_err();
        assert!(
            matches!(error, FetchError::Refused { .. }),
            "{url}: {error:?}"
        );
        assert!(error.to_string().contains("loopback"), "{error}");
        assert!(!dst.exists());
    }
}

#[tokio::test]
async fn data_uris() {
    let fetcher = open_fetcher(Duration::from_secs(5));
    let (_dir, dst) = scratch();

    let encoded = base64::engine::general_purpose::STANDARD.encode(png_body());
    let fetched = fetcher
        .fetch_to(&format!("data:image/png;base64,{encoded}"), &dst)
        .await
        .unwrap();
    assert_eq!(fetched.size, 1000);
    assert_eq!(fetched.sniffed, Some("image/png"));
    assert_eq!(fetched.declared.as_deref(), Some("image/png"));
    assert_eq!(std::fs::read(&dst).unwrap(), png_body());

    // Line breaks, escaped `+`/`/`, and missing padding are all tolerated.
    let wrapped = encoded
        .as_bytes()
        .chunks(76)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
        .replace('+', "%2B")
        .replace('/', "%2F")
        .trim_end_matches('=')
        .to_owned();
    let fetched = fetcher
        .fetch_to(&format!("DATA:image/png;BASE64,{wrapped}"), &dst)
        .await
        .unwrap();
    assert_eq!(fetched.size, 1000);
    assert_eq!(std::fs::read(&dst).unwrap(), png_body());

    let fetched = fetcher
        .fetch_to(
            "data:text/plain;charset=utf-8,caf%C3%A9%20au%20lait,%",
            &dst,
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&dst).unwrap(), "café au lait,%");
    assert_eq!(
        fetched.declared.as_deref(),
        Some("text/plain;charset=utf-8")
    );
    assert_eq!(fetched.sniffed, None);

    let fetched = fetcher.fetch_to("data:,", &dst).await.unwrap();
    assert_eq!((fetched.size, fetched.declared), (0, None));

    for bad in [
        "data:image/png;base64,iVBOR*w0K",
        "data:image/png;base64,QQ==QUFB",
        "data:image/png;base64,QUFBQ",
        "data:image/png;base64",
    ] {
        let error = fetcher.fetch_to(bad, &dst).await.unwrap_err();
        assert!(
            matches!(error, FetchError::InvalidUrl { .. }),
            "{bad}: {error:?}"
        );
        assert!(!dst.exists(), "{bad}");
    }
}

#[tokio::test]
async fn huge_data_uris_are_cut_off() {
    let fetcher = open_fetcher(Duration::from_secs(5));
    let (_dir, dst) = scratch();
    for url in [
        format!(
            "data:application/octet-stream;base64,{}",
            "AAAA".repeat(LIMIT as usize)
        ),
        format!("data:text/plain,{}", "a".repeat(LIMIT as usize + 1)),
    ] {
        let error = fetcher.fetch_to(&url, &dst).await.unwrap_err();
        assert!(matches!(error, FetchError::TooLarge { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.len() < 200, "the URL is shortened: {message}");
        assert!(!dst.exists());
    }
    // Exactly at the limit is fine.
    let url = format!("data:,{}", "a".repeat(LIMIT as usize));
    assert_eq!(fetcher.fetch_to(&url, &dst).await.unwrap().size, LIMIT);
}

#[tokio::test]
async fn other_schemes_and_garbage_are_invalid() {
    let fetcher = open_fetcher(Duration::from_secs(5));
    let (_dir, dst) = scratch();
    for url in [
        "ftp://example.com/a.png",
        "file:///etc/passwd",
        "not a url",
        "",
    ] {
        let error = fetcher.fetch_to(url, &dst).await.unwrap_err();
        assert!(
            matches!(error, FetchError::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
        assert!(!dst.exists());
    }
    let error = fetcher
        .fetch_to("ftp://example.com/a.png", &dst)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("ftp"), "{error}");
}
