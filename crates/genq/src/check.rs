//! `genq check`: what `GET /ready` checks, from the command line, and more
//! that an operator wants to know before starting a node: the versions of
//! the tools and the database, free disk space, and whether the public URL
//! answers. One line per check; the exit status is 1 when one failed.

use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgMatches, Args};
use genq_dialects::shared::health::on_path;

use crate::config::Settings;

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Skip the ffmpeg and espeak-ng checks (an API node that runs no workers)
    #[arg(long)]
    pub no_workers: bool,
    #[command(flatten)]
    pub settings: Settings,
}

/// Below this much free space under the data directory, the check fails.
const MIN_FREE_BYTES: u64 = 1 << 30;

struct Line {
    name: &'static str,
    result: Result<String, String>,
}

pub async fn run(args: CheckArgs, matches: &ArgMatches) -> anyhow::Result<()> {
    let settings: Settings = crate::config::load(matches)?;
    let mut lines = Vec::new();
    match crate::open::engine(&settings).await {
        Ok(engine) => {
            for (name, result) in engine.readiness().await {
                lines.push(Line {
                    name,
                    result: result.map(|()| "ok".to_owned()),
                });
            }
            let version = engine
                .db()
                .server_version()
                .await
                .map_err(|e| e.to_string());
            lines.push(Line {
                name: "database version",
                result: version,
            });
        }
        Err(e) => lines.push(Line {
            name: "database",
            result: Err(format!("{e:#}")),
        }),
    }
    if !args.no_workers {
        for (name, program, flag) in [
            ("ffmpeg", "ffmpeg", "-version"),
            ("ffprobe", "ffprobe", "-version"),
            ("espeak-ng", "espeak-ng", "--version"),
        ] {
            lines.push(Line {
                name,
                result: tool_version(program, flag).await,
            });
        }
    }
    lines.push(Line {
        name: "free disk",
        result: free_space(&settings.data.data_dir),
    });
    let public_url = settings
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", settings.server.listen));
    lines.push(Line {
        name: "public URL",
        result: answers(&public_url).await,
    });

    let mut failed = 0;
    for line in &lines {
        match &line.result {
            Ok(detail) => println!("ok    {:<17} {detail}", line.name),
            Err(why) => {
                failed += 1;
                println!("FAIL  {:<17} {why}", line.name);
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} check(s) failed");
    Ok(())
}

/// The first line a tool prints of its version.
async fn tool_version(program: &str, flag: &str) -> Result<String, String> {
    if !on_path(program) {
        return Err(format!(
            "{program} is not on PATH (scripts/deps installs it)"
        ));
    }
    let run = tokio::process::Command::new(program)
        .arg(flag)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| format!("{program} {flag} did not answer within 10 s"))?
        .map_err(|e| format!("running {program}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or_default().trim().to_owned();
    if out.status.success() && !first.is_empty() {
        Ok(first)
    } else {
        Err(format!("{program} {flag} failed ({})", out.status))
    }
}

fn free_space(dir: &std::path::Path) -> Result<String, String> {
    let stat = available_bytes(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let gib = stat as f64 / f64::from(1u32 << 30);
    let text = format!("{gib:.1} GiB free under {}", dir.display());
    if stat < MIN_FREE_BYTES {
        Err(format!("only {text}"))
    } else {
        Ok(text)
    }
}

/// Bytes available to this user on the file system holding `dir` (or its
/// nearest existing parent).
fn available_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let mut path = dir.to_path_buf();
    while !path.exists() {
        if !path.pop() {
            path = ".".into();
            break;
        }
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stat a writable
    // statvfs; statvfs fills it on success and we read it only then.
    let done = unsafe { libc::statvfs(c_path.as_ptr(), stat.as_mut_ptr()) };
    if done != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded, so the struct is initialised.
    let stat = unsafe { stat.assume_init() };
    Ok(stat.f_bavail * stat.f_frsize)
}

async fn answers(public_url: &str) -> Result<String, String> {
    let url = format!("{}/health", public_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("an HTTP client")
        .map_err(|e| e.to_string())?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(format!("{url} answers")),
        Ok(response) => Err(format!("{url} answered {}", response.status())),
        Err(e) => Err(format!("{url} does not answer: {e}")),
    }
}
