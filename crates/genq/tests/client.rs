//! `genq submit …` and `genq jobs …`, the command-line client, against a
//! real `genq serve`: submissions of every dialect followed to their end,
//! outputs written, exit statuses, Ctrl-C, a dropped event stream, and the
//! progress bar in a pseudo-terminal.

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    account: Account,
}

fn setup(args: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, args, &[]);
    let account = create_account_with(&data, "cli", &["--credits", "10000000"]);
    Setup {
        dir,
        server,
        account,
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `genq` as a client of this server, with the key in the environment.
    fn genq(&self, args: &[&str]) -> Command {
        self.genq_at(&self.server.base, args)
    }

    fn genq_at(&self, url: &str, args: &[&str]) -> Command {
        let mut command = Command::new(GENQ);
        command
            .args(args)
            .env("GENQ_URL", url)
            .env("GENQ_API_KEY", &self.account.api_key)
            .stdin(Stdio::null());
        command
    }

    /// A Provider project drawing one text field, for image and PDF jobs.
    fn project(&self) -> String {
        let file = self.path("card.json");
        let template = json!({
            "name": "Card", "type": "image",
            "canvas": {"width": 320, "height": 240, "background": "#101820"},
            "fields": {"headline": {"label": "Headline", "type": "text", "required": true}},
            "layers": [{"kind": "text", "field": "headline", "x": 10, "y": 10,
                        "width": 300, "height": 100, "size": 32, "color": "#ffffff"}]
        });
        std::fs::write(&file, template.to_string()).unwrap();
        let data = self.path("data");
        let created = cli_json(&[
            "projects",
            "create",
            "--account",
            &self.account.id,
            "--file",
            file.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        created["projectId"].as_str().unwrap().to_owned()
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l:?}")))
            .collect()
    }

    fn last(&self) -> Value {
        self.lines().pop().expect("a line on stdout")
    }
}

fn run(command: &mut Command) -> Ran {
    let out = command.output().expect("genq runs");
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn ok(command: &mut Command) -> Ran {
    let ran = run(command);
    assert_eq!(
        ran.code, 0,
        "stdout: {}\nstderr: {}",
        ran.stdout, ran.stderr
    );
    ran
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn submit_video_waits_and_writes_a_playable_mp4() {
    let s = setup(&["--workers", "1"]);
    let image = image(s.dir.path(), "in.png", 320, 240);
    let audio = audio(s.dir.path(), "in.wav", 1.5);
    let out = s.path("out.mp4");
    let ran = ok(&mut s.genq(&[
        "submit",
        "video",
        "--image",
        self::s(&image),
        "--audio",
        self::s(&audio),
        "--wait",
        "--out",
        self::s(&out),
    ]));
    // Not on a terminal: one JSON line per event, the job last.
    let lines = ran.lines();
    assert_eq!(lines[0]["event"], "submitted", "{}", ran.stdout);
    let id = lines[0]["data"]["jobId"].as_str().unwrap();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert!(events.contains(&"COMPLETED"), "{events:?}");
    let written = lines.iter().find(|l| l["event"] == "output").unwrap();
    assert_eq!(written["path"], self::s(&out));
    let done = ran.last();
    assert_eq!(
        (done["jobId"].as_str(), done["status"].as_str()),
        (Some(id), Some("COMPLETED"))
    );
    assert_eq!(done["progress"], 100);
    let probe = ffprobe(&out);
    let video = stream(&probe, "video");
    assert!((seconds(&video["duration"]) - 1.5).abs() <= 0.3, "{probe}");
    assert_eq!(stream(&probe, "audio")["codec_name"], "aac");
}

#[test]
fn submit_model_waits_and_writes_every_output_into_a_directory() {
    let s = setup(&["--workers", "1"]);
    let input = r#"{"prompt":"hi","duration":2}"#;
    let card = "genq/title-card/text-to-video";
    let ran = ok(&mut s.genq(&["submit", "model", card, "--input", input, "--wait"]));
    let done = ran.last();
    assert_eq!(done["status"], "completed", "{}", ran.stdout);
    assert!(done["output"].as_str().unwrap().ends_with(".mp4"));

    // --out DIR (implying --wait), the input from a file.
    let dir = s.path("outputs");
    std::fs::create_dir(&dir).unwrap();
    let file = s.path("input.json");
    std::fs::write(&file, input).unwrap();
    let at_file = format!("@{}", self::s(&file));
    let ran = ok(&mut s.genq(&[
        "submit",
        "model",
        card,
        "--input",
        &at_file,
        "--out",
        self::s(&dir),
    ]));
    assert_eq!(ran.last()["status"], "completed");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let main = done["output"].as_str().unwrap().rsplit('/').next().unwrap();
    assert!(names.contains(&main.to_owned()), "{names:?}");
    assert_eq!(
        names.len(),
        3,
        "the video, its poster and its thumbnail: {names:?}"
    );
    let probe = ffprobe(&dir.join(main));
    assert!((seconds(&stream(&probe, "video")["duration"]) - 2.0).abs() <= 0.3);
    for name in names.iter().filter(|n| n.ends_with(".jpg")) {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&bytes[..2], b"\xff\xd8", "{name} is a JPEG");
    }
}

#[test]
fn submit_provider_follows_the_account_stream_and_writes_the_image() {
    let s = setup(&["--workers", "1"]);
    let project = s.project();
    let out = s.path("card.png");
    let ran = ok(&mut s.genq(&[
        "submit",
        "provider",
        "--project",
        &project,
        "--job-type",
        "image",
        "--values",
        r#"{"headline":"Hello"}"#,
        "--session-id",
        "cli-1",
        "--out",
        self::s(&out),
    ]));
    let lines = ran.lines();
    let id = lines[0]["data"]["job"]["uuid"].as_str().unwrap().to_owned();
    let done = ran.last();
    assert_eq!(
        (done["uuid"].as_str(), done["job_status"].as_str()),
        (Some(id.as_str()), Some("SUCCESS"))
    );
    assert_eq!(done["session_id"], "cli-1");
    let png = std::fs::read(&out).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // States go forward only, each once.
    let statuses: Vec<&str> = lines[1..lines.len() - 1]
        .iter()
        .filter(|l| l["event"] != "output")
        .map(|l| l["data"]["job_status"].as_str().unwrap())
        .collect();
    let order = ["QUEUED", "STARTED", "IN_PROGRESS", "SUCCESS"];
    let ranks: Vec<usize> = statuses
        .iter()
        .map(|st| order.iter().position(|o| o == st).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{statuses:?}");

    // A PDF into a directory: the PDF and its thumbnail, named by their keys.
    let dir = s.path("pdf");
    std::fs::create_dir(&dir).unwrap();
    ok(&mut s.genq(&[
        "submit",
        "provider",
        "--project",
        &project,
        "--job-type",
        "pdf",
        "--values",
        r#"{"headline":"Hello"}"#,
        "--out",
        self::s(&dir),
    ]));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let pdf = names.iter().find(|n| n.ends_with(".pdf")).expect("a PDF");
    assert!(std::fs::read(dir.join(pdf)).unwrap().starts_with(b"%PDF"));
}

#[test]
fn a_failing_job_exits_1_with_its_error_on_stderr() {
    let s = setup(&["--workers", "1"]);
    let audio = audio(s.dir.path(), "a.wav", 1.0);
    // Sniffs as PNG, does not decode: accepted, then fails at render time.
    let corrupt = s.path("corrupt.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
    std::fs::write(&corrupt, bytes).unwrap();
    let out = s.path("never.mp4");
    let ran = run(&mut s.genq(&[
        "submit",
        "video",
        "--image",
        self::s(&corrupt),
        "--audio",
        self::s(&audio),
        "--out",
        self::s(&out),
    ]));
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stderr.contains("FAILED"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("image could not be decoded"),
        "{}",
        ran.stderr
    );
    assert_eq!(ran.last()["status"], "FAILED");
    assert!(!out.exists());
}

#[test]
fn refused_keys_and_unreachable_servers_exit_3_and_usage_errors_2() {
    let s = setup(&["--workers", "0"]);
    let wrong = run(s
        .genq(&["jobs", "list"])
        .env("GENQ_API_KEY", "genq_not-a-key"));
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("401"), "{}", wrong.stderr);
    assert!(
        !wrong.stderr.contains("genq_not-a-key"),
        "the key is never printed"
    );

    // A port nobody listens on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let image = image(s.dir.path(), "in.png", 64, 48);
    let audio = audio(s.dir.path(), "in.wav", 1.0);
    let unreachable = run(&mut s.genq_at(
        &closed,
        &[
            "submit",
            "video",
            "--image",
            self::s(&image),
            "--audio",
            self::s(&audio),
            "--wait",
        ],
    ));
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);
    assert!(
        unreachable.stderr.contains("cannot reach"),
        "{}",
        unreachable.stderr
    );
    let unreachable = run(&mut s.genq_at(
        &closed,
        &["jobs", "get", "01a22f97-ace8-71ed-a1af-2e27ae679e61"],
    ));
    assert_eq!(unreachable.code, 3, "{}", unreachable.stderr);

    // The key as a flag works, and is not echoed either.
    let flag = run(s
        .genq(&["jobs", "list", "--api-key", "genq_flag-key"])
        .env_remove("GENQ_API_KEY"));
    assert_eq!(flag.code, 3);
    assert!(!flag.stderr.contains("genq_flag-key"), "{}", flag.stderr);

    for args in [
        &["submit", "video", "--image", self::s(&image)][..],
        &[
            "submit",
            "model",
            "genq/title-card/text-to-video",
            "--input",
            "{not json",
        ],
        &[
            "submit",
            "video",
            "--image",
            "/nonexistent.png",
            "--audio",
            self::s(&audio),
        ],
        &["jobs", "get", "not-a-job-id"],
        &["jobs", "list", "--status", "sleeping"],
        &["jobs", "frobnicate"],
    ] {
        let usage = run(&mut s.genq(args));
        assert_eq!(usage.code, 2, "{args:?}: {}", usage.stderr);
    }
    let no_key = run(s.genq(&["jobs", "list"]).env_remove("GENQ_API_KEY"));
    assert_eq!(no_key.code, 2, "{}", no_key.stderr);
    assert!(no_key.stderr.contains("GENQ_API_KEY"), "{}", no_key.stderr);
}

#[test]
fn jobs_list_get_and_cancel_across_dialects() {
    // No workers: jobs stay pending.
    let s = setup(&["--workers", "0"]);
    let image = image(s.dir.path(), "in.png", 64, 48);
    let audio = audio(s.dir.path(), "in.wav", 1.0);
    let video = ok(&mut s.genq(&[
        "submit",
        "video",
        "--image",
        self::s(&image),
        "--audio",
        self::s(&audio),
    ]));
    let video = video.last()["jobId"].as_str().unwrap().to_owned();
    let input = r#"{"prompt":"hi"}"#;
    let model = ok(&mut s.genq(&[
        "submit",
        "model",
        "genq/title-card/text-to-video",
        "--input",
        input,
    ]));
    let model = model.last()["jobId"].as_str().unwrap().to_owned();
    let project = s.project();
    let values = r#"{"headline":"Hi"}"#;
    let provider = ok(&mut s.genq(&[
        "submit",
        "provider",
        "--project",
        &project,
        "--job-type",
        "image",
        "--values",
        values,
    ]));
    let provider = provider.last()["job"]["uuid"].as_str().unwrap().to_owned();

    let listed = ok(&mut s.genq(&["jobs", "list"])).last();
    let rows: Vec<(&str, &str, &str)> = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["id"].as_str().unwrap(),
                j["dialect"].as_str().unwrap(),
                j["status"].as_str().unwrap(),
            )
        })
        .collect();
    // Newest first, each in its dialect's words.
    assert_eq!(
        rows,
        vec![
            (model.as_str(), "v1", "pending"),
            (video.as_str(), "video", "PENDING")
        ]
    );
    let one = ok(&mut s.genq(&["jobs", "list", "--limit", "1", "--status", "PENDING"])).last();
    assert_eq!(one["jobs"].as_array().unwrap().len(), 1);
    let none = ok(&mut s.genq(&["jobs", "list", "--status", "completed"])).last();
    assert_eq!(none["jobs"], json!([]));

    // A job id alone finds its dialect.
    let got = ok(&mut s.genq(&["jobs", "get", &video])).last();
    assert_eq!(
        (got["jobId"].as_str(), got["status"].as_str()),
        (Some(video.as_str()), Some("PENDING"))
    );
    let got = ok(&mut s.genq(&["jobs", "get", &model])).last();
    assert_eq!(got["status"], "pending");
    let got = ok(&mut s.genq(&["jobs", "get", &provider])).last();
    assert_eq!(got["job_status"], "QUEUED");
    let missing = run(&mut s.genq(&["jobs", "get", "01a22f97-ace8-71ed-a1af-2e27ae679e61"]));
    assert_eq!(missing.code, 1, "{}", missing.stderr);

    for (id, status) in [
        (&video, "CANCELLED"),
        (&model, "cancelled"),
        (&provider, "CANCELLED"),
    ] {
        ok(&mut s.genq(&["jobs", "cancel", id]));
        let got = ok(&mut s.genq(&["jobs", "get", id])).last();
        let field = if got.get("job_status").is_some() {
            "job_status"
        } else {
            "status"
        };
        assert_eq!(got[field], status, "{got}");
        // Watching a finished job shows it and tells how it ended.
        let watched = run(&mut s.genq(&["jobs", "watch", id]));
        assert_eq!(watched.code, 1, "{}", watched.stderr);
        assert_eq!(watched.last()[field], status);
    }
    let again = run(&mut s.genq(&["jobs", "cancel", &model]));
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("409"), "{}", again.stderr);
}

/// Reads the child's stdout lines until one satisfies `want`.
fn read_until(lines: &mut impl Iterator<Item = String>, want: impl Fn(&Value) -> bool) -> Value {
    for line in lines {
        let value: Value = serde_json::from_str(&line).unwrap();
        if want(&value) {
            return value;
        }
    }
    panic!("stdout ended first");
}

fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        assert!(Instant::now() < deadline, "genq did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ctrl_c_cancels_when_told_to_and_otherwise_leaves_the_job() {
    let s = setup(&["--workers", "0"]);
    let image = image(s.dir.path(), "in.png", 64, 48);
    let audio = audio(s.dir.path(), "in.wav", 1.0);
    let submit = [
        "submit",
        "video",
        "--image",
        self::s(&image),
        "--audio",
        self::s(&audio),
        "--wait",
    ];
    for (flag, code, left) in [(true, 1, "CANCELLED"), (false, 130, "PENDING")] {
        let mut args = submit.to_vec();
        if flag {
            args.push("--cancel-on-interrupt");
        }
        let mut child = s
            .genq(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map(Result::unwrap);
        let pending = read_until(&mut lines, |l| l["event"] == "PENDING");
        let id = pending["data"]["jobId"].as_str().unwrap().to_owned();
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let rest: Vec<String> = lines.collect();
        assert_eq!(
            wait_exit(&mut child, Duration::from_secs(20)),
            code,
            "{rest:?}"
        );
        let got = ok(&mut s.genq(&["jobs", "get", &id])).last();
        assert_eq!(got["status"], left);
        if flag {
            let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
            assert_eq!(last["status"], "CANCELLED");
        } else {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            assert!(
                stderr.contains(&format!("genq jobs watch {id}")),
                "{stderr}"
            );
        }
    }
}

/// A TCP proxy that cuts the first event stream after its first event, and
/// keeps what clients sent.
struct Proxy {
    url: String,
    sent: Arc<Mutex<String>>,
}

impl Proxy {
    fn start(upstream: &str) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(Mutex::new(String::new()));
        let cut = Arc::new(AtomicBool::new(false));
        let log = sent.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(&upstream).unwrap();
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = c_read.read(&mut buf) {
                        if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        log.lock()
                            .unwrap()
                            .push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                    let _ = s_write.shutdown(Shutdown::Write);
                });
                let cut = cut.clone();
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16384];
                    while let Ok(n) = s_read.read(&mut buf) {
                        if n == 0 || c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        let chunk = String::from_utf8_lossy(&buf[..n]);
                        if chunk.contains("\ndata: ") && !cut.swap(true, Ordering::SeqCst) {
                            break;
                        }
                    }
                    let _ = c_write.shutdown(Shutdown::Both);
                    let _ = s_read.shutdown(Shutdown::Both);
                });
            }
        });
        Proxy { url, sent }
    }

    fn event_requests(&self) -> usize {
        self.sent
            .lock()
            .unwrap()
            .matches("/events HTTP/1.1")
            .count()
    }
}

#[test]
fn a_dropped_event_stream_reconnects_with_last_event_id() {
    let s = setup(&["--workers", "0"]);
    let input = r#"{"prompt":"hi"}"#;
    let model = ok(&mut s.genq(&[
        "submit",
        "model",
        "genq/title-card/text-to-video",
        "--input",
        input,
    ]));
    let id = model.last()["jobId"].as_str().unwrap().to_owned();
    let proxy = Proxy::start(&s.server.base);
    let mut child = s
        .genq_at(&proxy.url, &["jobs", "watch", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.event_requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second event stream: {}",
            proxy.sent.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = proxy.sent.lock().unwrap().to_ascii_lowercase();
    let second = &sent[sent.rfind(&format!("get /v1/jobs/{id}/events")).unwrap()..];
    let head = &second[..second.find("\r\n\r\n").unwrap()];
    assert!(head.contains("\r\nlast-event-id: 1"), "{head}");
    ok(&mut s.genq(&["jobs", "cancel", &id]));
    assert_eq!(wait_exit(&mut child, Duration::from_secs(20)), 1);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["status"], "cancelled", "{stdout}");
    // The pending state was shown once, though the stream sent it twice.
    let pending = lines.iter().filter(|l| l["event"] == "pending").count();
    assert_eq!(pending, 1, "{stdout}");
}

/// The command with every standard stream on the pseudo-terminal
/// expectrl opens (the helper's stdin is /dev/null otherwise).
fn pty(mut command: Command) -> Command {
    command.stdin(Stdio::inherit());
    command
}

#[test]
fn a_terminal_shows_a_rising_percentage_and_the_output_path() {
    use expectrl::process::unix::WaitStatus;
    use expectrl::{Eof, Expect};

    let s = setup(&["--workers", "1"]);
    let image = image(s.dir.path(), "in.png", 1920, 1080);
    let audio = audio(s.dir.path(), "in.wav", 4.0);
    let out = s.path("tty.mp4");
    let command = s.genq(&[
        "submit",
        "video",
        "--image",
        self::s(&image),
        "--audio",
        self::s(&audio),
        "--wait",
        "--out",
        self::s(&out),
    ]);
    let mut session = expectrl::Session::spawn(pty(command)).unwrap();
    session.get_process_mut().set_window_size(160, 40).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(120)));
    let screen = session.expect(Eof).unwrap();
    let screen = String::from_utf8_lossy(screen.get(0).unwrap()).into_owned();
    let status = session.get_process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}\n{screen}"
    );
    // Every "NN%" drawn.
    let mut percentages: Vec<u32> = Vec::new();
    for (at, _) in screen.match_indices('%') {
        let digits: String = screen[..at]
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if let Ok(p) = digits.parse() {
            percentages.push(p);
        }
    }
    percentages.dedup();
    assert!(percentages.len() >= 2, "{percentages:?}\n{screen}");
    assert!(
        percentages.windows(2).all(|w| w[0] <= w[1]),
        "{percentages:?}"
    );
    assert_eq!(percentages.last(), Some(&100));
    assert!(screen.contains("COMPLETED"), "{screen}");
    let last_line = screen.trim_end().lines().last().unwrap();
    assert!(last_line.ends_with(self::s(&out)), "{last_line:?}");
    assert!(out.exists());
    // Nothing but the bar: no JSON lines on a terminal.
    assert!(!screen.contains("\"event\""), "{screen}");
}

#[test]
fn ctrl_c_on_a_terminal_asks_whether_to_cancel() {
    use expectrl::process::unix::WaitStatus;
    use expectrl::{ControlCode, Eof, Expect};

    let s = setup(&["--workers", "0"]);
    let input = r#"{"prompt":"hi"}"#;
    let command = s.genq(&[
        "submit",
        "model",
        "genq/title-card/text-to-video",
        "--input",
        input,
        "--wait",
    ]);
    let mut session = expectrl::Session::spawn(pty(command)).unwrap();
    session.get_process_mut().set_window_size(160, 40).unwrap();
    session.set_expect_timeout(Some(Duration::from_secs(60)));
    session.expect("pending").unwrap();
    session.send(ControlCode::EndOfText).unwrap();
    let asked = session.expect("? [y/N]").unwrap();
    let asked = String::from_utf8_lossy(asked.before()).into_owned();
    let id = asked
        .rsplit("Cancel job ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    session.send_line("y").unwrap();
    let rest = session.expect(Eof).unwrap();
    let rest = String::from_utf8_lossy(rest.get(0).unwrap()).into_owned();
    let status = session.get_process().wait().unwrap();
    assert!(
        matches!(status, WaitStatus::Exited(_, 1)),
        "{status:?}\n{rest}"
    );
    assert!(rest.contains("cancelled"), "{rest}");
    let got = ok(&mut s.genq(&["jobs", "get", &id])).last();
    assert_eq!(got["status"], "cancelled");
}
