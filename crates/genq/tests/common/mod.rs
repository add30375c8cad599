//! Test harness: the real `genq` binary on 127.0.0.1:0 with a temporary data
//! directory, real ffmpeg fixtures, and a real HTTP client.
#![allow(dead_code)]

pub mod backend;
pub mod postgres;
pub mod s3;
pub mod studio;
pub mod tls;

#[allow(unused_imports)]
pub use backend::{backend, db_query, Backend};

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const GENQ: &str = env!("CARGO_BIN_EXE_genq");

pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `genq serve` on a free port and waits until it listens.
    pub fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_with(data_dir, args, env, None)
    }

    /// [`Server::start`] with the process's open-file limit (soft and
    /// hard) set to `files`, as `ulimit -n` would.
    pub fn start_with_file_limit(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        files: u64,
    ) -> Server {
        Self::start_with(data_dir, args, env, Some(files))
    }

    fn start_with(
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        files: Option<u64>,
    ) -> Server {
        let mut command = Command::new(GENQ);
        if let Some(files) = files {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: files as libc::rlim_t,
                        rlim_max: files as libc::rlim_t,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("GENQ_LOG", "info,genq_engine=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !args.contains(&"--database-url") {
            backend::use_database(&mut command, data_dir);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn genq serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    if let Some(tx) = tx.take() {
                        let url = rest
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        let _ = tx.send(url);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => base,
            Err(_) => {
                let _ = child.kill();
                panic!("genq serve did not start:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            base,
            data_dir: data_dir.to_owned(),
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait for the process to exit.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "genq did not exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `genq worker` on `database_url` with `data_dir`, its stderr kept (for
/// counting renders by their log lines).
pub struct Worker {
    pub child: Child,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// `args` follow `genq worker` (`--concurrency`, `--lease-seconds`…).
    pub fn start(
        data_dir: &Path,
        database_url: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Worker {
        let mut command = Command::new(GENQ);
        command
            .arg("worker")
            .args(args)
            .args(["--database-url", database_url, "--data-dir"])
            .arg(data_dir)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Self::spawn(command)
    }

    /// A worker on the SQLite database in `data_dir`, beside a `genq serve`
    /// on the same directory.
    pub fn start_sqlite(data_dir: &Path, args: &[&str]) -> Worker {
        let mut command = Command::new(GENQ);
        command
            .arg("worker")
            .args(args)
            .arg("--data-dir")
            .arg(data_dir);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Worker {
        let mut child = command
            .env("GENQ_LOG", "info,genq_engine=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn genq worker");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Worker {
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to end and its log to be read to the end.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `genq` on the store of `data_dir`, whichever the backend: add the
/// subcommand and `--data-dir` yourself.
pub fn genq_on(data_dir: &Path) -> Command {
    let mut command = Command::new(GENQ);
    backend::use_database(&mut command, data_dir);
    command
}

/// Runs the CLI and parses the one JSON object it prints. A `--data-dir`
/// among the arguments also selects that directory's database.
pub fn cli_json(args: &[&str]) -> Value {
    let mut command = Command::new(GENQ);
    if let Some(data_dir) = backend::data_dir_arg(args) {
        if !args.contains(&"--database-url") {
            backend::use_database(&mut command, data_dir);
        }
    }
    let out = command.args(args).output().expect("run genq");
    assert!(
        out.status.success(),
        "genq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "expected one line of JSON, got {stdout:?}"
    );
    serde_json::from_str(stdout.trim()).expect("stdout is JSON")
}

pub struct Account {
    pub id: String,
    pub api_key: String,
    pub webhook_secret: String,
}

pub fn create_account(data_dir: &Path, name: &str) -> Account {
    create_account_with(data_dir, name, &[])
}

pub fn create_account_with(data_dir: &Path, name: &str, extra: &[&str]) -> Account {
    let mut args = vec![
        "accounts",
        "create",
        "--name",
        name,
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let v = cli_json(&args);
    Account {
        id: v["accountId"].as_str().unwrap().to_owned(),
        api_key: v["apiKey"].as_str().unwrap().to_owned(),
        webhook_secret: v["webhookSecret"].as_str().unwrap().to_owned(),
    }
}

pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test-pattern image of the given size (format from the extension).
pub fn image(dir: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("testsrc=size={width}x{height}"),
        "-frames:v",
        "1",
        path.to_str().unwrap(),
    ]);
    path
}

/// A sine tone of the given length (format from the extension).
pub fn audio(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("sine=frequency=440:duration={seconds}"),
        path.to_str().unwrap(),
    ]);
    path
}

pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn stream<'a>(probe: &'a Value, kind: &str) -> &'a Value {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} stream in {probe}"))
}

pub fn seconds(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

pub struct Client {
    pub http: reqwest::Client,
    pub key: String,
}

impl Client {
    pub fn new(key: &str) -> Client {
        Client {
            http: reqwest::Client::new(),
            key: key.to_owned(),
        }
    }

    pub fn get(&self, url: String) -> reqwest::RequestBuilder {
        self.http.get(url).header("X-API-Key", &self.key)
    }

    pub fn post(&self, url: String) -> reqwest::RequestBuilder {
        self.http.post(url).header("X-API-Key", &self.key)
    }

    /// `POST /api/jobs` with the given files; returns status and JSON body.
    pub async fn submit(
        &self,
        server: &Server,
        image: &Path,
        audio: &Path,
        webhook: Option<&str>,
    ) -> (u16, Value) {
        let part = |path: &Path| {
            reqwest::multipart::Part::bytes(std::fs::read(path).unwrap())
                .file_name(path.file_name().unwrap().to_string_lossy().into_owned())
        };
        let mut form = reqwest::multipart::Form::new()
            .part("image", part(image))
            .part("audio", part(audio));
        if let Some(url) = webhook {
            form = form.text("webhookUrl", url.to_owned());
        }
        let response = self
            .post(server.url("/api/jobs"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    pub async fn status(&self, server: &Server, job_id: &str) -> Value {
        let (code, body) = json_of(
            self.get(server.url(&format!("/api/status/{job_id}")))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Polls the job's status until `done` holds, returning every status seen.
    pub async fn poll_until(
        &self,
        server: &Server,
        job_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let status = self.status(server, job_id).await;
            let finished = done(&status);
            seen.push(status);
            if finished {
                return seen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out; last status {}\nlog:\n{}",
                seen.last().unwrap(),
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    pub async fn wait_terminal(&self, server: &Server, job_id: &str) -> Value {
        let seen = self
            .poll_until(server, job_id, Duration::from_secs(120), |s| {
                ["COMPLETED", "FAILED", "CANCELLED"].contains(&s["status"].as_str().unwrap())
            })
            .await;
        seen.last().unwrap().clone()
    }
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
    (status, body)
}
