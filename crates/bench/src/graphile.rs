//! graphile-worker, the Node.js PostgreSQL queue genq's queue is held
//! against: the small project in `bench/graphile/` (a pinned version, its
//! lock file and `bench.mjs`), installed on first use.

use anyhow::{bail, Context};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Longer than any run of `bench.mjs` should take, even on a busy machine.
const PATIENCE: Duration = Duration::from_secs(300);

/// `bench/graphile/` in this checkout.
pub fn project_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/graphile")
}

/// Runs `npm ci` unless `node_modules` already matches the lock file (npm
/// writes `node_modules/.package-lock.json` when it installs, so a lock file
/// newer than that means the pinned versions changed).
pub async fn install(dir: &Path) -> anyhow::Result<()> {
    let modified = |p: PathBuf| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(dir.join("package-lock.json"))
        .with_context(|| format!("no package-lock.json in {}", dir.display()))?;
    if modified(dir.join("node_modules/.package-lock.json")).is_some_and(|m| m >= lock) {
        return Ok(());
    }
    eprintln!(
        "  installing graphile-worker (npm ci in {})…",
        dir.display()
    );
    let out = Command::new("npm")
        .args(["ci", "--silent", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PATIENCE, out)
        .await
        .context("npm ci took too long")?
        .context("running npm (is Node.js installed?)")?;
    if !out.status.success() {
        bail!(
            "npm ci failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What one run of `bench.mjs` measured, in seconds.
#[derive(Debug)]
pub struct Timings {
    /// N jobs through `addJobs`: one `add_jobs` SQL call.
    pub enqueue_bulk: f64,
    /// N jobs through `addJobs` in calls of `batch` jobs, one after another.
    pub enqueue_batched: f64,
    /// N jobs through `addJob`, one call each from C concurrent callers.
    pub enqueue_each: f64,
    /// The bulk-enqueued jobs, from `run()` to the last completion written.
    pub drain: f64,
}

/// Enqueues and drains `jobs` no-op jobs at `concurrency` in a database of
/// its own (`url`, empty: `bench.mjs` runs graphile-worker's migrations);
/// `batch` is the size of the bulk calls of the like-for-like batch figure.
pub async fn run(
    dir: &Path,
    url: &str,
    jobs: usize,
    concurrency: usize,
    batch: usize,
) -> anyhow::Result<Timings> {
    let out = Command::new("node")
        .arg("bench.mjs")
        .args(["--url", url, "--jobs", &jobs.to_string()])
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--batch", &batch.to_string(), "--each"])
        // From its own folder, so graphile-worker's config search and its
        // default task and crontab paths find nothing of the caller's.
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("GRAPHILE_WORKER_SCHEMA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PATIENCE, out)
        .await
        .context("bench.mjs took too long")?
        .context("running node")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("bench.mjs failed ({}): {}", out.status, stderr.trim());
    }
    for line in stderr.lines() {
        eprintln!("  {line}");
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(stdout: &str) -> anyhow::Result<Timings> {
    let line = stdout.lines().last().unwrap_or_default();
    let json: Value = serde_json::from_str(line)
        .with_context(|| format!("bench.mjs printed {stdout:?}, not a JSON line"))?;
    let secs = |key: &str| {
        json[key]
            .as_f64()
            .filter(|s| *s > 0.0)
            .with_context(|| format!("bench.mjs printed no {key}: {line}"))
    };
    Ok(Timings {
        enqueue_bulk: secs("enqueueBulkSecs")?,
        enqueue_batched: secs("enqueueBatchedSecs")?,
        enqueue_each: secs("enqueueEachSecs")?,
        drain: secs("drainSecs")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_timings_line() {
        let out = "{\"jobs\":10,\"enqueueBulkSecs\":0.1,\"drainSecs\":2,\
                   \"enqueueBatchedSecs\":0.2,\"enqueueEachSecs\":0.5}\n";
        let t = parse(out).unwrap();
        assert_eq!(
            (t.enqueue_bulk, t.enqueue_batched, t.drain, t.enqueue_each),
            (0.1, 0.2, 2.0, 0.5)
        );
        assert!(parse("oops\n").is_err());
        assert!(parse("{\"drainSecs\":1}\n").is_err());
    }
}
