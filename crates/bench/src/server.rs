//! The real `genq serve` process, started the way an operator starts it, with
//! limits lifted so the harness measures the server rather than its throttles.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// `genq`, next to this binary (both are built into the same target dir).
pub fn genq_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating genq-bench")?;
    let genq = exe.with_file_name("genq");
    if !genq.is_file() {
        bail!(
            "{} not found: build it beside genq-bench (scripts/bench runs `cargo build --release -p genq -p genq-bench`)",
            genq.display()
        );
    }
    Ok(genq)
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    genq: PathBuf,
    data_dir: PathBuf,
    /// None: SQLite under the data dir.
    database_url: Option<String>,
    log: PathBuf,
}

impl Server {
    pub async fn start(genq: &Path, data_dir: &Path) -> anyhow::Result<Server> {
        Server::start_on(genq, data_dir, None).await
    }

    /// As [`Server::start`], with the job store at `database_url`
    /// (`postgres://…`) rather than SQLite in the data dir.
    pub async fn start_on(
        genq: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
    ) -> anyhow::Result<Server> {
        Server::launch(genq, data_dir, database_url, &[]).await
    }

    /// As [`Server::start`], with more `genq serve` arguments. The server
    /// runs no jobs (`--workers 0`) unless they name `--workers`: clap
    /// refuses an option given twice.
    pub async fn start_with(
        genq: &Path,
        data_dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        Server::launch(genq, data_dir, None, extra).await
    }

    async fn launch(
        genq: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> anyhow::Result<Server> {
        tokio::fs::create_dir_all(data_dir).await?;
        // The log goes to a file rather than a pipe: nothing in the harness
        // has to keep draining it, and it is there to show if startup fails.
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log)?;
        let mut command = genq_command(genq);
        command.args(["serve", "--listen", "127.0.0.1:0"]);
        if !extra.contains(&"--workers") {
            command.args(["--workers", "0"]);
        }
        command
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .args(
                database_url
                    .map(|url| ["--database-url", url])
                    .into_iter()
                    .flatten(),
            )
            .args(["--rate-limit-per-minute", "0"])
            .args(["--submit-rate-limit-per-minute", "0"])
            .args(["--max-concurrent-jobs", "100000000"])
            .stdout(Stdio::null())
            .stderr(log_file);
        let mut child = command.spawn().context("starting genq serve")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = tokio::fs::read_to_string(&log).await.unwrap_or_default();
            if let Some(addr) = listening_address(&text) {
                let addr = addr
                    .parse()
                    .with_context(|| format!("bad address {addr:?}"))?;
                return Ok(Server {
                    child,
                    addr,
                    genq: genq.to_owned(),
                    data_dir: data_dir.to_owned(),
                    database_url: database_url.map(str::to_owned),
                    log,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "genq serve exited ({status}) before listening:\n{}",
                    tail(&text)
                );
            }
            if Instant::now() > deadline {
                let _ = child.start_kill();
                bail!(
                    "genq serve did not start listening within 60 s:\n{}",
                    tail(&text)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.child.id().context("genq serve has exited")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A new account with room for any number of jobs; returns its API key.
    pub async fn create_account(&self, name: &str) -> anyhow::Result<String> {
        self.accounts().create(name).await
    }

    /// What creating accounts needs, apart from the process: several can be
    /// created at once from other tasks.
    pub fn accounts(&self) -> Accounts {
        Accounts {
            genq: self.genq.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
        }
    }

    /// Fails if the server died while it was being measured.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let log = tokio::fs::read_to_string(&self.log)
                .await
                .unwrap_or_default();
            bail!(
                "genq serve exited ({status}) during the run:\n{}",
                tail(&log)
            );
        }
        self.child.kill().await?;
        Ok(())
    }
}

/// `genq accounts create` against one server's store.
#[derive(Clone)]
pub struct Accounts {
    genq: PathBuf,
    data_dir: PathBuf,
    database_url: Option<String>,
}

impl Accounts {
    /// A new account with room for any number of jobs; returns its API key.
    pub async fn create(&self, name: &str) -> anyhow::Result<String> {
        let out = genq_command(&self.genq)
            .args(["accounts", "create", "--name", name])
            .args(["--credits", "1000000000000", "--data-dir"])
            .arg(&self.data_dir)
            .args(
                self.database_url
                    .iter()
                    .flat_map(|url| ["--database-url", url]),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .await
            .context("running genq accounts create")?;
        if !out.status.success() {
            bail!(
                "genq accounts create failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)
            .context("genq accounts create printed something other than JSON")?;
        json["apiKey"]
            .as_str()
            .map(str::to_owned)
            .context("genq accounts create printed no apiKey")
    }
}

pub fn genq_command(genq: &Path) -> Command {
    let mut command = Command::new(genq);
    // Settings from the caller's environment would change what is measured.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GENQ_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// The address in genq's `listening on http://ADDR` log line.
fn listening_address(log: &str) -> Option<&str> {
    let (_, rest) = log.split_once("listening on http://")?;
    let end = rest.find(|c: char| c.is_whitespace())?;
    Some(&rest[..end])
}

pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_bound_address() {
        let log = "2025 INFO genq::serve: listening on http://127.0.0.1:40123 public_url=http://127.0.0.1:40123\n";
        assert_eq!(listening_address(log), Some("127.0.0.1:40123"));
        assert_eq!(listening_address("starting\n"), None);
    }
}
