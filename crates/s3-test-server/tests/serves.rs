//! The server genq's object-storage tests run (`crates/genq/tests/common/s3.rs`
//! drives it with signed requests). Having a test here also makes `cargo test
//! --workspace` build the `s3s-fs` binary with the workspace's features, so
//! `scripts/test` need not build it a second time with features of its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const BINARY: &str = env!("CARGO_BIN_EXE_s3s-fs");

#[test]
fn listens_where_it_says_and_refuses_unsigned_requests() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("bucket")).unwrap();
    std::fs::write(root.path().join("bucket/secret.txt"), b"not for anyone").unwrap();
    let mut server = Command::new(BINARY)
        .args(["--port", "0", "--access-key", "AK", "--secret-key", "SK"])
        .arg(root.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(server.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("s3s-fs listening on http://")
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let mut connection = TcpStream::connect(&addr).unwrap();
    write!(
        connection,
        "GET /bucket/secret.txt HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    connection.read_to_string(&mut answer).unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    let status = answer.lines().next().unwrap_or_default();
    assert!(status.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!answer.contains("not for anyone"), "{answer}");
}

#[test]
fn says_how_to_run_it_without_its_keys() {
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(BINARY)
        .args(["--port", "0"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--access-key is required"), "{stderr}");
    assert!(stderr.contains("usage: s3s-fs"), "{stderr}");
}
