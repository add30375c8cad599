//! The multipart upload path as the server runs it, in process: a
//! `POST /api/jobs` body (boundary `genqfuzzboundary`) handed over in
//! chunks to axum's `Multipart` extractor, then the Video API's form
//! reader (`video_api::fuzz_read_form`, the `fuzzing` feature, which is
//! `read_form` without the engine: field dispatch and duplicates,
//! `shared/upload.rs`'s `stream_file` — size limit, sniffing of the head,
//! staging file removed when dropped — and `read_text`, the integer
//! fields, `Scheduling::check`, `validate_webhook_url`), draining the body
//! after a refusal as the handler does. Driving `create_job` itself would
//! need an engine and a database for nothing the body's parsing reaches.
//! The same body goes through the `Idempotency-Key` fingerprint
//! (`shared::idempotency::fuzz_fingerprint`), which must not depend on how
//! the body was chunked nor on the boundary's name.
//!
//! The input's first byte is the chunk size (0: one chunk); the rest is
//! the body.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{header, Request};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

use genq_dialects::shared::idempotency::fuzz_fingerprint;
use genq_dialects::video_api::fuzz_read_form;

const BOUNDARY: &str = "genqfuzzboundary";
const OTHER: &str = "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ";
/// The per-file limit (`--max-upload-mb`), small so inputs reach it.
const LIMIT: u64 = 2048;

struct Server {
    runtime: tokio::runtime::Runtime,
    staging: PathBuf,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let staging = std::env::temp_dir().join(format!("genq-fuzz-upload-{}", std::process::id()));
        std::fs::create_dir_all(&staging).unwrap();
        Server {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            staging,
        }
    })
}

fn multipart(boundary: &str) -> String {
    format!("multipart/form-data; boundary={boundary}")
}

/// `body` with every `--BOUNDARY` written `--OTHER` instead.
fn with_other_boundary(body: &[u8]) -> Vec<u8> {
    let (from, to) = (format!("--{BOUNDARY}"), format!("--{OTHER}"));
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from.as_bytes()) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to.as_bytes());
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunking, body)) = data.split_first() else {
        return;
    };
    let chunks: Vec<&[u8]> = match chunking {
        0 => vec![body],
        n => body.chunks(usize::from(n)).collect(),
    };

    let whole = fuzz_fingerprint(&multipart(BOUNDARY), &[body]);
    assert_eq!(
        fuzz_fingerprint(&multipart(BOUNDARY), &chunks),
        whole,
        "chunked"
    );
    if !body.contains(&b'Z') {
        // No Z in the body: `--ZZZ…` occurs exactly where `--BOUNDARY` did.
        let other = with_other_boundary(body);
        assert_eq!(
            fuzz_fingerprint(&multipart(OTHER), &[&other]),
            whole,
            "boundary renamed"
        );
    }

    let server = server();
    let owned: Vec<Result<Bytes, std::io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let request = Request::post("/api/jobs")
        .header(header::CONTENT_TYPE, multipart(BOUNDARY))
        .body(Body::from_stream(futures::stream::iter(owned)))
        .unwrap();
    server.runtime.block_on(async {
        let mut form = Multipart::from_request(request, &())
            .await
            .expect("a multipart request");
        let _ = fuzz_read_form(&mut form, &server.staging, LIMIT).await;
    });
    // Accepted or refused, every staged upload is gone once dropped.
    let left: Vec<_> = std::fs::read_dir(&server.staging).unwrap().collect();
    assert!(left.is_empty(), "staged files left behind: {left:?}");
});
