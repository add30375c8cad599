//! A real S3-compatible server for tests: `s3s-fs` (crates.io's, built in
//! the workspace as `genq-s3-test-server`, which `scripts/test` builds
//! first) over a temporary directory, on a free port.
//! Also compiled into `genq-storage`'s tests (by `#[path]`), so it uses only
//! the standard library and `tempfile`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "genq-test-key";
pub const SECRET_KEY: &str = "genq-test-secret";

pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    /// A bucket that exists (a directory under the server's root).
    pub bucket: String,
    root: tempfile::TempDir,
    port: u16,
}

/// `s3s-fs` as the workspace builds it (beside the test binary's `deps/`),
/// else on PATH or in Cargo's bin directory (where `cargo install` puts it,
/// which not every shell has on PATH).
fn binary() -> Option<PathBuf> {
    let built = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_owned()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    built
        .into_iter()
        .chain(std::env::split_paths(&path))
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join("s3s-fs"))
        .find(|candidate| candidate.is_file())
}

impl S3Server {
    /// Starts a server, or returns `None` when `GENQ_TEST_S3=off`. Panics when
    /// s3s-fs is missing: a test that silently passed without its server
    /// would prove nothing.
    pub fn start() -> Option<S3Server> {
        if std::env::var("GENQ_TEST_S3").is_ok_and(|v| v == "off") {
            eprintln!("S3 tests are off (GENQ_TEST_S3=off)");
            return None;
        }
        let binary = binary().unwrap_or_else(|| {
            panic!(
                "s3s-fs is not built: run `cargo build -p genq-s3-test-server` \
                 (scripts/test does), or set GENQ_TEST_S3=off to skip the S3 tests"
            )
        });
        // The port is free when we look; another process could take it
        // before s3s-fs binds, so a failed start is tried again.
        for _ in 0..3 {
            if let Some(server) = Self::try_start(&binary) {
                return Some(server);
            }
        }
        panic!("s3s-fs did not start (see the log above)");
    }

    fn try_start(binary: &Path) -> Option<S3Server> {
        let root = tempfile::tempdir().unwrap();
        let bucket = "genq-test".to_owned();
        std::fs::create_dir(root.path().join(&bucket)).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = spawn_listening(binary, root.path(), port)?;
        Some(S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket,
            root,
            port,
        })
    }

    /// Kills the server (SIGKILL): requests in flight are cut off.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port over the same objects.
    pub fn restart(&mut self) {
        self.stop();
        let binary = binary().expect("s3s-fs was found at the first start");
        self.child = spawn_listening(&binary, self.root.path(), self.port)
            .expect("s3s-fs starts again on its port");
    }

    /// The directory the server keeps `key` of the bucket in.
    pub fn object_file(&self, key: &str) -> PathBuf {
        self.root.path().join(&self.bucket).join(key)
    }

    /// `s3://BUCKET/PREFIX`
    pub fn storage_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment that points `genq serve` / `genq worker` at this
    /// server, keys under `prefix`.
    pub fn genq_env(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            ("GENQ_STORAGE_URL".into(), self.storage_url(prefix)),
            ("GENQ_S3_ENDPOINT".into(), self.endpoint.clone()),
            ("GENQ_S3_ACCESS_KEY_ID".into(), ACCESS_KEY.into()),
            ("GENQ_S3_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()),
            ("GENQ_S3_ALLOW_HTTP".into(), "true".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs s3s-fs over `root` on `port` and waits until it listens; `None`
/// (with its log printed) when it exits or does not listen within 20 s.
fn spawn_listening(binary: &Path, root: &Path, port: u16) -> Option<Child> {
    let log = std::fs::File::create(root.join("s3s-fs.log")).unwrap();
    let mut child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn s3s-fs");
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(root.join("s3s-fs.log"));
            eprintln!("s3s-fs exited ({status}): {}", log.unwrap_or_default());
            return None;
        }
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    eprintln!("s3s-fs did not listen on {address} within 20 s");
    None
}
