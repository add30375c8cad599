//! What a followed job shows: on a terminal (stderr), a progress bar with
//! the state, the percentage and the elapsed time; for scripts (stdout not
//! a terminal, or stderr not one), one JSON line per event on stdout and
//! the final job on the last line.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};

use super::dialect::{Dialect, State};

const BAR_TEMPLATE: &str = "{spinner} {elapsed:>4} [{bar:30}] {pos:>3}% {msg}";
const DOWNLOAD_TEMPLATE: &str = "  {msg} [{bar:30}] {bytes}/{total_bytes}";

pub struct Report {
    /// A person watches stderr: draw a progress bar there.
    human: bool,
    /// Write JSON lines on stdout.
    lines: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    position: u64,
    message: String,
}

impl Report {
    pub fn new() -> Report {
        let human = std::io::stderr().is_terminal();
        Report {
            human,
            lines: !(human && std::io::stdout().is_terminal()),
            bar: None,
            started: Instant::now(),
            position: 0,
            message: String::new(),
        }
    }

    /// The submission's answer, before the job is followed.
    pub fn submitted(&mut self, id: &str, response: &Value) {
        self.line(&json!({"event": "submitted", "data": response}));
        self.message = format!("submitted  {id}");
        self.resume();
    }

    /// One event of the job (or its status as read).
    pub fn event(&mut self, dialect: Dialect, name: &str, event_id: Option<&str>, body: &Value) {
        let name = if name.is_empty() {
            dialect.status(body)
        } else {
            name
        };
        self.line(&json!({"event": name, "id": event_id, "data": body}));
        // A failed or cancelled job's bar stays where it stopped.
        if !matches!(dialect.state(body), Some(State::Failed | State::Cancelled)) {
            self.position = u64::from(dialect.progress(body));
        }
        self.message = format!("{name}  {}", dialect.id(body).unwrap_or_default());
        if self.bar.is_none() {
            self.resume();
        }
        if let Some(bar) = &self.bar {
            bar.set_position(self.position);
            bar.set_message(self.message.clone());
        }
    }

    /// Takes the bar off the terminal (to ask something, or at the end).
    pub fn pause(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Draws the bar again where it was.
    pub fn resume(&mut self) {
        if !self.human || self.bar.is_some() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(100), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template(BAR_TEMPLATE)
                    .expect("a valid template")
                    .progress_chars("=> "),
            )
            .with_elapsed(self.started.elapsed())
            .with_position(self.position)
            .with_message(self.message.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    /// The job reached its final state: the bar stays, showing it.
    pub fn finished(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    /// A bar for a download of `len` bytes, on a terminal.
    pub fn download_bar(&self, name: &str, len: Option<u64>) -> Option<ProgressBar> {
        if !self.human {
            return None;
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(DOWNLOAD_TEMPLATE)
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.set_message(name.to_owned());
        Some(bar)
    }

    /// An output written to `path`.
    pub fn wrote(&mut self, path: &Path, url: &str, size: u64) {
        self.line(&json!({"event": "output", "path": path, "url": url, "size": size}));
        if self.human {
            eprintln!("output: {}", path.display());
        }
    }

    /// The job as it ended: the last line for scripts.
    pub fn final_job(&mut self, body: &Value) {
        if self.lines {
            print_line(body);
        }
    }

    fn line(&self, value: &Value) {
        if self.lines {
            print_line(value);
        }
    }
}

/// One JSON value on its own line of stdout (a closed pipe is not an error
/// worth a panic).
pub fn print_line(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}
