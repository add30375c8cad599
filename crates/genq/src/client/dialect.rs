//! The three dialects as a client sees them: their routes, and how to read
//! a job's status body (the same body their events and webhooks carry).

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The Image+Audio Video API (`/api/…`).
    Video,
    /// The Jobs v1 model gateway (`/v1/…`).
    Gateway,
    /// The Provider template API (`/jobs/…`).
    Provider,
}

/// A job's state, whatever its dialect calls it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl State {
    /// A status in any dialect's words, case aside: `PENDING`, `pending`,
    /// `QUEUED`, `IN_PROGRESS`, `SUCCESS`, …
    pub fn parse(word: &str) -> Option<State> {
        Some(match word.to_ascii_uppercase().as_str() {
            "PENDING" | "QUEUED" => State::Pending,
            "PROCESSING" | "STARTED" | "IN_PROGRESS" => State::Processing,
            "COMPLETED" | "SUCCESS" => State::Completed,
            "FAILED" => State::Failed,
            "CANCELLED" | "CANCELED" => State::Cancelled,
            _ => return None,
        })
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Completed | State::Failed | State::Cancelled)
    }
}

/// One output of a finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Output {
    pub source: Source,
    /// The job's main output (the video, audio, image or PDF) rather than
    /// a poster or thumbnail.
    pub main: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A download link (`/media/{token}/{name}`), no key needed.
    Url(String),
    /// A Provider storage key, to be signed first.
    StorageKey(String),
}

impl Dialect {
    /// In the order a job id is looked up.
    pub const ALL: [Dialect; 3] = [Dialect::Gateway, Dialect::Video, Dialect::Provider];

    /// The name the server gives the dialect (the console's Dialect filter).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Video => "video",
            Dialect::Gateway => "v1",
            Dialect::Provider => "provider",
        }
    }

    pub fn status_path(self, id: &str) -> String {
        match self {
            Dialect::Video => format!("/api/status/{id}"),
            Dialect::Gateway => format!("/v1/jobs/{id}"),
            Dialect::Provider => format!("/jobs/{id}"),
        }
    }

    /// The job's own event stream; the Provider has none (its jobs are
    /// followed on the account's `GET /events`).
    pub fn events_path(self, id: &str) -> Option<String> {
        match self {
            Dialect::Video => Some(format!("/api/jobs/{id}/events")),
            Dialect::Gateway => Some(format!("/v1/jobs/{id}/events")),
            Dialect::Provider => None,
        }
    }

    pub fn cancel_path(self, id: &str) -> String {
        match self {
            Dialect::Video => format!("/api/jobs/{id}/cancel"),
            Dialect::Gateway => format!("/v1/jobs/{id}/cancel"),
            Dialect::Provider => format!("/jobs/{id}/cancel"),
        }
    }

    /// The list route, for the dialects that have one.
    pub fn list_path(self) -> Option<&'static str> {
        match self {
            Dialect::Video => Some("/api/jobs"),
            Dialect::Gateway => Some("/v1/jobs"),
            Dialect::Provider => None,
        }
    }

    /// The dialect's word for a state, as its list filter takes it.
    pub fn word(self, state: State) -> &'static str {
        match (self, state) {
            (Dialect::Provider, State::Pending) => "QUEUED",
            (Dialect::Provider, State::Processing) => "IN_PROGRESS",
            (Dialect::Provider, State::Completed) => "SUCCESS",
            (Dialect::Gateway, State::Pending) => "pending",
            (Dialect::Gateway, State::Processing) => "processing",
            (Dialect::Gateway, State::Completed) => "completed",
            (Dialect::Gateway, State::Failed) => "failed",
            (Dialect::Gateway, State::Cancelled) => "cancelled",
            (_, State::Pending) => "PENDING",
            (_, State::Processing) => "PROCESSING",
            (_, State::Completed) => "COMPLETED",
            (_, State::Failed) => "FAILED",
            (_, State::Cancelled) => "CANCELLED",
        }
    }

    /// The job's id in a status body (or a list item).
    pub fn id(self, body: &Value) -> Option<&str> {
        let field = match self {
            Dialect::Provider => "uuid",
            _ => "jobId",
        };
        body.get(field)
            .or_else(|| body.get("id"))
            .and_then(Value::as_str)
    }

    /// The status in the dialect's own words.
    pub fn status(self, body: &Value) -> &str {
        let field = match self {
            Dialect::Provider => "job_status",
            _ => "status",
        };
        body.get(field).and_then(Value::as_str).unwrap_or("")
    }

    pub fn state(self, body: &Value) -> Option<State> {
        State::parse(self.status(body))
    }

    /// 0–100.
    pub fn progress(self, body: &Value) -> u8 {
        match body.get("progress").and_then(Value::as_u64) {
            Some(p) => p.min(100) as u8,
            None if self.state(body) == Some(State::Completed) => 100,
            None => 0,
        }
    }

    /// Why a failed (or cancelled) job ended, as the dialect says it.
    pub fn error(self, body: &Value) -> Option<String> {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        match self {
            Dialect::Video => text(body.get("errorMessage")),
            Dialect::Gateway => {
                let error = body.get("error")?;
                let message = text(error.get("message"))?;
                Some(match text(error.get("code")) {
                    Some(code) => format!("{code}: {message}"),
                    None => message,
                })
            }
            Dialect::Provider => text(body.get("output").and_then(|o| o.get("error"))),
        }
    }

    /// A finished job's outputs, the main one(s) first.
    pub fn outputs(self, body: &Value) -> Vec<Output> {
        let url = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| Source::Url(s.into()));
        let mut outputs = Vec::new();
        let mut add = |source: Option<Source>, main: bool| {
            if let Some(source) = source {
                if !outputs.iter().any(|o: &Output| o.source == source) {
                    outputs.push(Output { source, main });
                }
            }
        };
        match self {
            Dialect::Video => add(url(body.get("outputVideo")), true),
            Dialect::Gateway => {
                let items = body.get("outputs").and_then(Value::as_array);
                let items = items.map(Vec::as_slice).unwrap_or_default();
                for item in items {
                    add(url(item.get("url")), true);
                }
                if items.is_empty() {
                    add(url(body.get("output")), true);
                }
                for item in items {
                    add(url(item.get("thumbnail")), false);
                    add(url(item.get("posterImage")), false);
                }
            }
            Dialect::Provider => {
                let output = body.get("output");
                let key = |name: &str| {
                    output
                        .and_then(|o| o.get(name))
                        .and_then(Value::as_str)
                        .map(|k| Source::StorageKey(k.into()))
                };
                add(key("output"), true);
                add(key("thumbnail"), false);
                add(key("poster"), false);
            }
        }
        outputs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_dialects_words_are_states() {
        for dialect in Dialect::ALL {
            for state in [
                State::Pending,
                State::Processing,
                State::Completed,
                State::Failed,
                State::Cancelled,
            ] {
                assert_eq!(State::parse(dialect.word(state)), Some(state));
            }
        }
        assert_eq!(State::parse("STARTED"), Some(State::Processing));
        assert_eq!(State::parse("done"), None);
    }

    #[test]
    fn outputs_are_read_from_each_dialects_body() {
        let video = json!({"jobId": "a", "status": "COMPLETED", "outputVideo": "http://h/media/t/video.mp4"});
        assert_eq!(
            Dialect::Video.outputs(&video),
            vec![Output {
                source: Source::Url("http://h/media/t/video.mp4".into()),
                main: true
            }]
        );
        let v1 = json!({"status": "completed", "output": "u", "outputs": [
            {"url": "u", "type": "video", "thumbnail": "t", "posterImage": "p"}]});
        let sources: Vec<_> = Dialect::Gateway
            .outputs(&v1)
            .into_iter()
            .map(|o| (o.source, o.main))
            .collect();
        assert_eq!(
            sources,
            vec![
                (Source::Url("u".into()), true),
                (Source::Url("t".into()), false),
                (Source::Url("p".into()), false)
            ]
        );
        let provider = json!({"job_status": "FAILED", "output": {"output": null, "error": "boom"}});
        assert!(Dialect::Provider.outputs(&provider).is_empty());
        assert_eq!(Dialect::Provider.error(&provider).as_deref(), Some("boom"));
        assert_eq!(Dialect::Provider.state(&provider), Some(State::Failed));
    }
}
