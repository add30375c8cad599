//! What the templates are given: the page frame and jobs as the console
//! shows them (state in the job's dialect's words, times readable).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use genq_dialects::AppState;
use genq_engine::time::Millis;
use genq_engine::{Job, JobState, OutputKind, OutputRole};

use crate::assets;

/// The navigation, in order: (name, path).
pub(crate) const NAV: [(&str, &str); 5] = [
    ("Jobs", "/console/jobs"),
    ("New video", "/console/new-video"),
    ("Models", "/console/models"),
    ("Projects", "/console/projects"),
    ("Account", "/console/account"),
];

/// The frame every page shares.
pub(crate) struct Layout {
    pub title: String,
    /// The navigation entry to mark as current; empty when signed out.
    pub current: &'static str,
    /// The session's CSRF token; empty when signed out (no navigation).
    pub csrf: String,
    pub script: String,
    pub style: String,
}

impl Layout {
    pub fn new(title: String, current: &'static str, csrf: String) -> Self {
        Self {
            title,
            current,
            csrf,
            script: assets::url("console.js"),
            style: assets::url("console.css"),
        }
    }

    pub fn signed_out(title: &str) -> Self {
        Self::new(title.to_owned(), "", String::new())
    }

    pub fn signed_in(&self) -> bool {
        !self.csrf.is_empty()
    }

    pub fn nav(&self) -> &'static [(&'static str, &'static str)] {
        &NAV
    }

    pub fn is_current(&self, name: &str) -> bool {
        self.current == name
    }
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// A time as the pages show it (UTC, to the second).
pub(crate) fn when(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A time as a `<time datetime>` attribute.
pub(crate) fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Micro-cents (1/1,000,000 of a cent) as dollars, to the last micro-cent
/// that is not zero: prices per second are fractions of a cent.
pub(crate) fn dollars(micro_cents: i64) -> String {
    let sign = if micro_cents < 0 { "-" } else { "" };
    let micro = micro_cents.unsigned_abs();
    let whole = micro / 100_000_000;
    let fraction = format!("{:08}", micro % 100_000_000);
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.len() < 2 {
        format!("{fraction:0<2}")
    } else {
        fraction.to_owned()
    };
    format!("{sign}${whole}.{fraction}")
}

/// A job as a row of the Jobs list (and the head of its page).
pub(crate) struct JobRow {
    pub id: String,
    pub dialect: String,
    /// The model's slug, or the kind of work.
    pub what: String,
    /// The state in the dialect's words.
    pub status: &'static str,
    /// The engine's state (for styling and the script).
    pub state: &'static str,
    pub progress: u8,
    pub created: String,
    pub created_iso: String,
    pub session: String,
    pub cancellable: bool,
    pub terminal: bool,
    /// The accessible name of its progress bar.
    pub progress_label: String,
}

impl JobRow {
    pub fn of(app: &AppState, job: &Job) -> Self {
        let shape = app.shape_of(job);
        let status = shape.map_or(job.state.as_str(), |s| s.status_of(job));
        let cancellable = match job.state {
            JobState::Pending => true,
            JobState::Processing => {
                shape.is_some_and(|s| s.cancel_mode() == genq_engine::db::CancelMode::EvenIfRunning)
            }
            _ => false,
        };
        let what = match &job.model {
            Some(model) => model.slug.clone(),
            None => job.kind.replace('_', " "),
        };
        Self {
            id: job.id.to_string(),
            dialect: job.dialect.clone(),
            what,
            status,
            state: job.state.as_str(),
            progress: if job.state == JobState::Completed {
                100
            } else {
                job.progress
            },
            created: when(job.created_at),
            created_iso: iso(job.created_at),
            session: job.correlation_id.clone().unwrap_or_default(),
            cancellable,
            terminal: job.state.is_terminal(),
            progress_label: format!("Progress of job {}", job.id),
        }
    }
}

/// An output as its player shows it.
pub(crate) struct OutputView {
    pub name: String,
    pub url: String,
    /// `video`, `image`, `audio`, `pdf` or `file`.
    pub show_as: &'static str,
    pub main: bool,
    pub size: String,
}

impl OutputView {
    pub fn all(job: &Job) -> Vec<OutputView> {
        if job.state != JobState::Completed || job.outputs_deleted_at.is_some() {
            return Vec::new();
        }
        let mut outputs: Vec<OutputView> = job
            .outputs
            .iter()
            .map(|output| OutputView {
                name: output.name.clone(),
                // Relative: the page's own origin, whatever the public URL says.
                url: format!("/media/{}/{}", job.media_token, output.name),
                show_as: match output.kind {
                    OutputKind::Video => "video",
                    OutputKind::Image => "image",
                    OutputKind::Audio => "audio",
                    OutputKind::Document => "pdf",
                    OutputKind::Text => "file",
                },
                main: output.role == OutputRole::Main,
                size: bytes(output.size),
            })
            .collect();
        outputs.sort_by_key(|o| !o.main);
        outputs
    }
}

pub(crate) fn bytes(size: u64) -> String {
    match size {
        s if s >= 1 << 20 => format!("{:.1} MB", s as f64 / (1u64 << 20) as f64),
        s if s >= 1 << 10 => format!("{:.1} KB", s as f64 / 1024.0),
        s => format!("{s} bytes"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_keep_fractions_of_a_cent() {
        use super::dollars;
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(100_000_000), "$1.00");
        assert_eq!(dollars(2_000), "$0.00002");
        assert_eq!(dollars(-150_000_000), "-$1.50");
        assert_eq!(dollars(123_456_789), "$1.23456789");
    }
}
