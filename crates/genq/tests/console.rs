//! The web console (`/console`, docs/console.md) in a real browser: the
//! Playwright tests in `tests/console/*.test.mjs` (Node's own test runner,
//! playwright-core driving Debian's Chromium, axe-core for accessibility)
//! against a real `genq serve`.
//!
//! This test starts genq with one worker (so a second job waits in the
//! queue), webhooks and inputs to private addresses allowed (a webhook
//! nobody listens for on 127.0.0.1, retried only after an hour; an input URL
//! that never answers keeps the worker busy), rate limits out of the way,
//! and two accounts; then runs the files one at a time with
//! `GENQ_URL`, `GENQ_KEY`, `GENQ_OTHER_KEY`, `GENQ_FIXTURES` and
//! `GENQ_CONSOLE_SCREENSHOTS` (default `target/console`, where every page's
//! screenshot goes). Their output, figures included, streams as they run.
//!
//! Needs Node.js, `tests/console/node_modules` (`scripts/deps --test` runs
//! `npm ci` there) and `/usr/bin/chromium`. Skipped when
//! `GENQ_TEST_BROWSER=off`, on the PostgreSQL pass of the suite (the
//! console's SQL is the store's, tested on both; one browser pass is
//! enough), and when something is missing — unless
//! `GENQ_TEST_BROWSER=require`, which fails instead. `GENQ_CONSOLE_TESTS=
//! sign-in,models` runs only those files.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The whole run's limit; it takes about two to three minutes.
const LIMIT: Duration = Duration::from_secs(600);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn chromium() -> String {
    std::env::var("GENQ_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Why the browser tests cannot run here, or None when they can.
fn skip_reason(root: &Path) -> Option<String> {
    let setting = std::env::var("GENQ_TEST_BROWSER").unwrap_or_default();
    if setting == "off" {
        return Some("GENQ_TEST_BROWSER=off".into());
    }
    if backend() == Backend::Postgres {
        return Some("they run on the SQLite pass only".into());
    }
    let modules = root.join("tests/console/node_modules");
    let missing: Vec<&str> = ["playwright-core", "axe-core"]
        .into_iter()
        .filter(|m| !modules.join(m).is_dir())
        .collect();
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !node {
        "node is not installed".to_owned()
    } else if !missing.is_empty() {
        format!(
            "{} missing from {}",
            missing.join(" and "),
            modules.display()
        )
    } else if !Path::new(&chromium()).exists() {
        format!("{} is missing", chromium())
    } else {
        return None;
    };
    assert!(
        setting != "require",
        "GENQ_TEST_BROWSER=require, but {why}: run `scripts/deps --test`"
    );
    Some(format!("{why} (run `scripts/deps --test`)"))
}

/// The test files to run: every `*.test.mjs`, or those `GENQ_CONSOLE_TESTS`
/// names (comma-separated, without `.test.mjs`).
fn test_files(root: &Path) -> Vec<String> {
    let only: Option<Vec<String>> = std::env::var("GENQ_CONSOLE_TESTS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|n| n.trim().to_owned()).collect());
    let mut files: Vec<String> = std::fs::read_dir(root.join("tests/console"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".test.mjs"))
        .filter(|name| {
            only.as_ref()
                .is_none_or(|only| only.iter().any(|o| *o == name[..name.len() - 9]))
        })
        .map(|name| format!("tests/console/{name}"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no test files (GENQ_CONSOLE_TESTS={only:?})"
    );
    files
}

/// Kills node's whole process group (node, its test processes, Chromium)
/// however the test ends.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: killpg only sends a signal, to the group the child leads
        // (`process_group(0)` at spawn).
        unsafe { libc::killpg(self.0.id() as libc::pid_t, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

#[test]
fn the_console_in_chromium() {
    let root = repo_root();
    if let Some(why) = skip_reason(&root) {
        eprintln!("skipping the console's browser tests: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    image(&fixtures, "image.png", 640, 480);
    audio(&fixtures, "audio.mp3", 8.0);

    let server = Server::start(
        &data,
        &[
            "--workers",
            "1",
            "--webhook-allow-private",
            "true",
            "--webhook-retry-schedule",
            "0,3600",
            "--input-allow-private",
            "true",
            "--rate-limit-per-minute",
            "100000",
            "--submit-rate-limit-per-minute",
            "10000",
        ],
        &[],
    );
    // 100 dollars each; A may have the measuring test's 50 jobs in flight.
    let a = create_account_with(
        &data,
        "console-a",
        &["--credits", "100000000", "--max-concurrent-jobs", "200"],
    );
    let b = create_account_with(&data, "console-b", &["--credits", "100000000"]);

    let screenshots = std::env::var("GENQ_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target/console"));
    std::fs::create_dir_all(&screenshots).unwrap();
    let files = test_files(&root);
    eprintln!(
        "console: running {} against {}",
        files.join(" "),
        server.base
    );

    let started = Instant::now();
    let child = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(&files)
        .current_dir(&root)
        .env("GENQ_URL", &server.base)
        .env("GENQ_KEY", &a.api_key)
        .env("GENQ_OTHER_KEY", &b.api_key)
        .env("GENQ_FIXTURES", &fixtures)
        .env("GENQ_CONSOLE_SCREENSHOTS", &screenshots)
        .env("GENQ_CHROMIUM", chromium())
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run node");
    let mut node = Group(child);
    let status = loop {
        if let Some(status) = node.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(node);
    eprintln!(
        "console: browser tests took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );

    let ok = status.is_some_and(|s| s.success());
    if !ok {
        let log = server.log();
        let path = screenshots.join("genq.log");
        std::fs::write(&path, &log).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(200)..].join("\n");
        panic!(
            "the console's browser tests {} (whole genq log in {}); its last lines:\n{tail}",
            match status {
                Some(s) => format!("failed ({s})"),
                None => format!("did not finish within {LIMIT:?}"),
            },
            path.display()
        );
    }
}
