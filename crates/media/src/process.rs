//! The single choke point for running external programs (ffmpeg, ffprobe,
//! later espeak-ng).
//!
//! Every subprocess goes through [`Tool`] so that all of them get the same
//! guarantees: argv is passed verbatim (never through a shell, so file names
//! can't inject anything), the child is killed and reaped on timeout, on
//! cancellation and when the future is dropped, and failures carry the tail
//! of stderr so a job's error is diagnosable without re-running it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How much of stderr survives: ffmpeg can log megabytes on a broken input,
/// and the interesting part (the final error) is at the end.
pub(crate) const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// Longer stdout "lines" are split here so a child that never prints a
/// newline can't make us buffer without bound.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// Cap for [`Tool::run_capture`]; ffprobe's JSON is a few KiB, so anything
/// near this is a hostile or broken input rather than a real answer.
const MAX_CAPTURE_BYTES: usize = 16 * 1024 * 1024;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("could not start {program}: {}", spawn_hint(program, source))]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} timed out after {}s and was killed", after.as_secs_f64().ceil())]
    Timeout { program: String, after: Duration },
    #[error("{program} was cancelled")]
    Cancelled { program: String },
    #[error("{program} failed ({status}): {}", last_line(stderr_tail))]
    Failed {
        program: String,
        status: ExitStatus,
        stderr_tail: String,
    },
    /// Reading the child's pipes failed; practically never happens, but it
    /// must not be mistaken for the program's own failure.
    #[error("i/o error talking to {program}: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The program ran fine but printed something we can't use.
    #[error("{program} produced unusable output: {reason}")]
    InvalidOutput { program: String, reason: String },
}

impl ToolError {
    /// True when the program itself is missing (not installed or a wrong
    /// configured path), which callers report differently from a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ToolError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

fn spawn_hint(program: &str, err: &std::io::Error) -> String {
    if err.kind() != std::io::ErrorKind::NotFound {
        return err.to_string();
    }
    let name = Path::new(program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.to_owned());
    match name.as_str() {
        "ffmpeg" | "ffprobe" => {
            "program not found; install ffmpeg (it provides ffmpeg and ffprobe) \
             or configure the path to it"
                .to_owned()
        }
        _ => format!("program not found; install {name} or configure the path to it"),
    }
}

/// ffmpeg's stderr tail often spans many lines; the last non-empty one is
/// almost always the actual error, and keeps Display to one line.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no error output)")
}

/// Writes a program's standard input; see [`Tool::run_with_stdin`].
pub type StdinFeed = Box<
    dyn FnOnce(
            tokio::process::ChildStdin,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>
        + Send,
>;

/// What a successful run leaves behind besides its side effects.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    /// Warnings are useful in logs even when the program succeeded.
    pub stderr_tail: String,
    pub elapsed: Duration,
}

/// A program invocation; build it, then `run` it once.
#[derive(Debug, Clone)]
pub struct Tool {
    program: PathBuf,
    args: Vec<OsString>,
    timeout: Duration,
}

impl Tool {
    /// A bare name is looked up on `PATH`; the default timeout is 5 minutes.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Tool {
            program: program.into(),
            args: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    fn display_name(&self) -> String {
        self.program.display().to_string()
    }

    /// Runs to completion, handing each stdout line (without the newline) to
    /// `on_stdout_line` as it arrives.
    pub async fn run(
        self,
        cancel: &CancellationToken,
        mut on_stdout_line: impl FnMut(&str) + Send,
    ) -> Result<ToolOutput, ToolError> {
        let name = self.display_name();
        let span = tracing::debug_span!("tool", program = %name);
        self.run_inner(cancel, &mut on_stdout_line, None)
            .instrument(span)
            .await
    }

    /// Runs to completion like [`Tool::run`], with `feed` writing the
    /// program's standard input (closed when `feed` ends). A feed that fails
    /// because the program stopped reading is not an error of its own: the
    /// program's exit status says what happened.
    pub async fn run_with_stdin(
        self,
        cancel: &CancellationToken,
        mut on_stdout_line: impl FnMut(&str) + Send,
        feed: StdinFeed,
    ) -> Result<ToolOutput, ToolError> {
        let name = self.display_name();
        let span = tracing::debug_span!("tool", program = %name);
        self.run_inner(cancel, &mut on_stdout_line, Some(feed))
            .instrument(span)
            .await
    }

    /// Runs to completion and returns stdout as text (lossily decoded).
    pub async fn run_capture(self, cancel: &CancellationToken) -> Result<String, ToolError> {
        let name = self.display_name();
        let mut out = String::new();
        let mut overflow = false;
        self.run(cancel, |line| {
            if out.len() + line.len() + 1 > MAX_CAPTURE_BYTES {
                overflow = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        })
        .await?;
        if overflow {
            return Err(ToolError::InvalidOutput {
                program: name,
                reason: format!("stdout exceeded {} MiB", MAX_CAPTURE_BYTES >> 20),
            });
        }
        Ok(out)
    }

    /// [`Tool::run_capture`] for a synchronous caller (a submission check),
    /// from inside an async runtime or not: the run gets a thread and a
    /// runtime of its own, and the caller's thread waits for it.
    pub fn run_capture_blocking(self) -> Result<String, ToolError> {
        let program = self.display_name();
        let run = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| ToolError::Io {
                    program: self.display_name(),
                    source,
                })?
                .block_on(self.run_capture(&CancellationToken::new()))
        });
        run.join().unwrap_or_else(|_| {
            Err(ToolError::InvalidOutput {
                program,
                reason: "the thread running it panicked".into(),
            })
        })
    }

    async fn run_inner(
        self,
        cancel: &CancellationToken,
        on_line: &mut (dyn FnMut(&str) + Send),
        feed: Option<StdinFeed>,
    ) -> Result<ToolOutput, ToolError> {
        let program = self.display_name();
        if cancel.is_cancelled() {
            return Err(ToolError::Cancelled { program });
        }
        tracing::debug!(command = %self, "starting");
        let started = Instant::now();

        let mut child = Command::new(&self.program)
            .args(&self.args)
            .stdin(if feed.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| {
                tracing::debug!(error = %source, "spawn failed");
                ToolError::Spawn {
                    program: program.clone(),
                    source,
                }
            })?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let stdin = child.stdin.take();
        let feeding = async {
            if let (Some(feed), Some(stdin)) = (feed, stdin) {
                if let Err(e) = feed(stdin).await {
                    tracing::debug!(error = %e, "stdin feed ended early");
                }
            }
        };

        enum Outcome {
            Exited(std::io::Result<ExitStatus>, std::io::Result<()>, String),
            TimedOut,
            Cancelled,
        }

        // Scoped so the borrow of `child` by `wait()` ends before we may
        // need it again to kill.
        let outcome = {
            let work = async {
                let (out_res, tail, status, ()) = tokio::join!(
                    read_lines(stdout, on_line),
                    read_tail(stderr),
                    child.wait(),
                    feeding
                );
                Outcome::Exited(status, out_res, tail)
            };
            tokio::select! {
                // Cancellation wins ties so a cancelled job never reports
                // success or a timeout.
                biased;
                _ = cancel.cancelled() => Outcome::Cancelled,
                o = work => o,
                _ = tokio::time::sleep(self.timeout) => Outcome::TimedOut,
            }
        };

        let elapsed = started.elapsed();
        match outcome {
            Outcome::Exited(status, out_res, stderr_tail) => {
                let status = status.map_err(|source| ToolError::Io {
                    program: program.clone(),
                    source,
                })?;
                tracing::debug!(
                    elapsed_ms = elapsed.as_millis() as u64,
                    %status,
                    "tool exited"
                );
                if !status.success() {
                    return Err(ToolError::Failed {
                        program,
                        status,
                        stderr_tail,
                    });
                }
                out_res.map_err(|source| ToolError::Io { program, source })?;
                Ok(ToolOutput {
                    stderr_tail,
                    elapsed,
                })
            }
            Outcome::TimedOut => {
                kill_and_reap(&mut child).await;
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "tool timed out");
                Err(ToolError::Timeout {
                    program,
                    after: self.timeout,
                })
            }
            Outcome::Cancelled => {
                kill_and_reap(&mut child).await;
                tracing::debug!(elapsed_ms = elapsed.as_millis() as u64, "tool cancelled");
                Err(ToolError::Cancelled { program })
            }
        }
    }
}

/// SIGKILL rather than a polite signal: ffmpeg may take seconds to flush on
/// SIGTERM, and a half-written output is discarded anyway. Reaping here means
/// no zombie outlives the call.
async fn kill_and_reap(child: &mut Child) {
    if let Err(e) = child.start_kill() {
        // Already exited between the select and now; wait() still reaps it.
        tracing::debug!(error = %e, "kill failed");
    }
    if let Err(e) = child.wait().await {
        tracing::warn!(error = %e, "could not reap killed child");
    }
}

async fn read_lines(
    mut pipe: impl AsyncRead + Unpin,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> std::io::Result<()> {
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 8192];
    loop {
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            splitter.finish(on_line);
            return Ok(());
        }
        splitter.push(&buf[..n], on_line);
    }
}

/// Stderr is drained even though we only keep its tail: a child blocked on a
/// full stderr pipe would otherwise hang until the timeout.
async fn read_tail(mut pipe: impl AsyncRead + Unpin) -> String {
    let mut tail = TailBuffer::new(STDERR_TAIL_BYTES);
    let mut buf = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => tail.push(&buf[..n]),
            Err(e) => {
                tracing::debug!(error = %e, "stderr read failed");
                break;
            }
        }
    }
    tail.into_string()
}

#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut data: &[u8], on_line: &mut (dyn FnMut(&str) + Send)) {
        while let Some(pos) = data.iter().position(|&b| b == b'\n') {
            self.pending.extend_from_slice(&data[..pos]);
            self.emit(on_line);
            data = &data[pos + 1..];
        }
        while !data.is_empty() {
            let room = MAX_LINE_BYTES - self.pending.len();
            let take = room.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == MAX_LINE_BYTES {
                self.emit(on_line);
            }
        }
    }

    fn finish(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        if !self.pending.is_empty() {
            self.emit(on_line);
        }
    }

    fn emit(&mut self, on_line: &mut (dyn FnMut(&str) + Send)) {
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        on_line(&String::from_utf8_lossy(&self.pending));
        self.pending.clear();
    }
}

struct TailBuffer {
    cap: usize,
    buf: Vec<u8>,
    truncated: bool,
}

impl TailBuffer {
    fn new(cap: usize) -> Self {
        TailBuffer {
            cap,
            buf: Vec::new(),
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        // Compact only once we hold 2× the cap so the copy is amortised.
        if self.buf.len() > 2 * self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }

    fn into_string(mut self) -> String {
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
        let mut start = 0;
        if self.truncated {
            // Start at a line boundary so the tail doesn't begin mid-message
            // (or mid UTF-8 sequence).
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                start = pos + 1;
            }
        }
        String::from_utf8_lossy(&self.buf[start..]).into_owned()
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.program.display())?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut s = LineSplitter::default();
        let mut cb = |l: &str| lines.push(l.to_owned());
        for c in chunks {
            s.push(c, &mut cb);
        }
        s.finish(&mut cb);
        lines
    }

    #[test]
    fn lines_are_reassembled_across_chunks() {
        assert_eq!(
            split(&[b"out_ti", b"me_us=5\r\nprog", b"ress=end\n", b"tail"]),
            ["out_time_us=5", "progress=end", "tail"]
        );
    }

    #[test]
    fn endless_line_is_split_not_buffered() {
        let big = vec![b'x'; MAX_LINE_BYTES * 3];
        let lines = split(&[&big]);
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE_BYTES));
    }

    #[test]
    fn tail_keeps_the_end_from_a_line_boundary() {
        let mut t = TailBuffer::new(100);
        for i in 0..1000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        let s = t.into_string();
        assert!(s.len() <= 100);
        assert!(s.ends_with("line 999\n"));
        assert!(s.starts_with("line "));
    }
}
