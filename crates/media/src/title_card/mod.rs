//! A title card: a prompt's text centred on a solid colour, as an MP4 with a
//! silent track, plus poster and thumbnail JPEGs.
//!
//! ffmpeg draws the text once into a PPM frame, and that frame is encoded
//! exactly like the still renderer's image, so both kinds of video behave the
//! same in players and cost the same to encode.

mod colour;
mod draw;
mod layout;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::diagnostics::{summarize_stderr, tool_error};
use crate::error::MediaError;
use crate::frame;
use crate::probe::file_url;
use crate::process::{Tool, ToolError};
use crate::still::{
    ffmpeg_args, parse_out_time_us, remove_quietly, AudioInput, Progress, RenderSettings,
    StillVideo, MAX_PCT, POSTER_FILE, POSTER_QUALITY, PREPARED_PCT, THUMBNAIL_FILE,
    THUMBNAIL_QUALITY, VIDEO_FILE,
};

pub use colour::COLOUR_NAMES;
use colour::{hex, parse_colour, text_colour_for};
use draw::{filter_graph, FONT_FILE};
use layout::{layout, Layout};

const FRAME_SCRATCH: &str = ".title-frame.ppm";
const LINE_SCRATCH_PREFIX: &str = ".title-line-";

pub const MAX_PROMPT_CHARS: usize = 300;
const DURATION_RANGE: std::ops::RangeInclusive<f64> = 1.0..=60.0;
const DEFAULT_DURATION_SECS: f64 = 5.0;
const DEFAULT_BACKGROUND: &str = "#101828";

/// The sizes a card may have, as the `resolution` input spells them.
pub const RESOLUTIONS: [(&str, u32, u32); 5] = [
    ("1920x1080", 1920, 1080),
    ("1280x720", 1280, 720),
    ("1080x1920", 1080, 1920),
    ("1080x1080", 1080, 1080),
    ("720x1280", 720, 1280),
];

#[derive(Debug, Clone, PartialEq)]
pub struct TitleCard {
    pub text: String,
    /// 1..=60 seconds.
    pub duration_secs: f64,
    /// `#RRGGBB` or one of [`COLOUR_NAMES`].
    pub background: String,
    /// One of [`RESOLUTIONS`].
    pub width: u32,
    pub height: u32,
}

impl Default for TitleCard {
    fn default() -> Self {
        TitleCard {
            text: String::new(),
            duration_secs: DEFAULT_DURATION_SECS,
            background: DEFAULT_BACKGROUND.to_owned(),
            width: 1280,
            height: 720,
        }
    }
}

impl TitleCard {
    /// Reads a `title_card` job's input, `{prompt, duration?, background?,
    /// resolution?}`, and checks every value (a missing or null optional
    /// field takes its default).
    pub fn from_input(input: &Value) -> Result<TitleCard, MediaError> {
        let obj = input
            .as_object()
            .ok_or_else(|| invalid("the input must be a JSON object"))?;
        let field = |name| obj.get(name).filter(|v| !v.is_null());
        let mut card = TitleCard {
            text: match field("prompt") {
                Some(Value::String(s)) => s.clone(),
                Some(_) => return Err(invalid("\"prompt\" must be a string")),
                None => return Err(invalid("\"prompt\" is required")),
            },
            ..TitleCard::default()
        };
        if let Some(v) = field("duration") {
            card.duration_secs = v
                .as_f64()
                .ok_or_else(|| invalid("\"duration\" must be a number of seconds"))?;
        }
        if let Some(v) = field("background") {
            card.background = v
                .as_str()
                .ok_or_else(|| invalid("\"background\" must be a string"))?
                .to_owned();
        }
        if let Some(v) = field("resolution") {
            let given = v.as_str().unwrap_or_default();
            let (_, w, h) = RESOLUTIONS
                .iter()
                .find(|(name, _, _)| *name == given)
                .ok_or_else(|| bad_resolution(v))?;
            (card.width, card.height) = (*w, *h);
        }
        card.plan()?;
        Ok(card)
    }

    /// Everything about the card that can be wrong, checked before any work.
    fn plan(&self) -> Result<Plan, MediaError> {
        // Control characters would be drawn as boxes; treated as spaces they
        // also can't make a prompt look non-empty.
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
            .collect();
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("\"prompt\" is empty"));
        }
        let chars = text.chars().count();
        if chars > MAX_PROMPT_CHARS {
            return Err(invalid(format!(
                "\"prompt\" is too long ({chars} characters; at most {MAX_PROMPT_CHARS})"
            )));
        }
        if !DURATION_RANGE.contains(&self.duration_secs) {
            return Err(invalid(format!(
                "\"duration\" must be between {} and {} seconds (got {})",
                DURATION_RANGE.start(),
                DURATION_RANGE.end(),
                self.duration_secs
            )));
        }
        let background = parse_colour(&self.background).ok_or_else(|| {
            invalid(format!(
                "\"background\" must be \"#RRGGBB\" or one of {} (got {})",
                COLOUR_NAMES.map(|(n, _)| n).join(", "),
                quoted(&self.background)
            ))
        })?;
        if !RESOLUTIONS
            .iter()
            .any(|&(_, w, h)| (w, h) == (self.width, self.height))
        {
            return Err(bad_resolution(&Value::String(format!(
                "{}x{}",
                self.width, self.height
            ))));
        }
        let layout = layout(text, self.width, self.height).ok_or_else(|| {
            invalid("\"prompt\" has too many lines to fit on the card".to_owned())
        })?;
        Ok(Plan {
            background,
            text_colour: text_colour_for(background),
            layout,
        })
    }
}

struct Plan {
    background: [u8; 3],
    text_colour: [u8; 3],
    layout: Layout,
}

fn invalid(msg: impl Into<String>) -> MediaError {
    MediaError::InvalidInput(msg.into())
}

fn bad_resolution(given: &Value) -> MediaError {
    let names: Vec<&str> = RESOLUTIONS.iter().map(|(n, _, _)| *n).collect();
    let given = match given {
        Value::String(s) => quoted(s),
        other => quoted(&other.to_string()),
    };
    invalid(format!(
        "\"resolution\" must be one of {} (got {given})",
        names.join(", ")
    ))
}

/// Echoes a user's value back, short enough for an error message.
fn quoted(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    format!("{out:?}")
}

/// Renders `card` into `out_dir` (`video.mp4`, `poster.jpg`,
/// `thumbnail.jpg`). Of `settings`, the tool paths, fps, audio bitrate,
/// thumbnail size and timeout apply.
///
/// `progress` receives strictly rising values in 0..=99. On error no output
/// files are left behind.
pub async fn render_title_card(
    card: &TitleCard,
    out_dir: &Path,
    settings: &RenderSettings,
    progress: &(dyn Fn(u8) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<StillVideo, MediaError> {
    let plan = card.plan()?;
    if !tokio::fs::try_exists(FONT_FILE).await.unwrap_or(false) {
        return Err(MediaError::ToolMissing("the DejaVu Sans font".into()));
    }
    let mut scratch = vec![out_dir.join(FRAME_SCRATCH)];
    let result = render(
        card,
        &plan,
        out_dir,
        &mut scratch,
        settings,
        progress,
        cancel,
    )
    .await;
    for path in &scratch {
        remove_quietly(path).await;
    }
    if result.is_err() {
        for name in [VIDEO_FILE, POSTER_FILE, THUMBNAIL_FILE] {
            remove_quietly(&out_dir.join(name)).await;
        }
    }
    result
}

async fn render(
    card: &TitleCard,
    plan: &Plan,
    out_dir: &Path,
    scratch: &mut Vec<PathBuf>,
    settings: &RenderSettings,
    progress: &(dyn Fn(u8) + Send + Sync),
    cancel: &CancellationToken,
) -> Result<StillVideo, MediaError> {
    let mut progress = Progress::new(progress);
    let frame_file = scratch[0].clone();

    // One file per line: drawtext's textfile needs no escaping of the user's
    // text, and one drawtext per line is how lines get centred individually.
    let mut lines = Vec::new();
    for (i, line) in plan.layout.lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let path = out_dir.join(format!("{LINE_SCRATCH_PREFIX}{i}.txt"));
        scratch.push(path.clone());
        tokio::fs::write(&path, line).await?;
        lines.push((i, path));
    }

    let graph = filter_graph(&plan.layout, plan.text_colour, &lines, card.height);
    let draw = Tool::new(&settings.ffmpeg)
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "color=c={}:s={}x{}",
            hex(plan.background),
            card.width,
            card.height
        ))
        .args(["-vf", &graph, "-frames:v", "1"])
        .args(["-c:v", "ppm", "-pix_fmt", "rgb24", "-f", "image2pipe"])
        .arg(file_url(&frame_file))
        .timeout(settings.timeout);
    let mut paths: Vec<(&Path, &str)> = lines.iter().map(|(_, p)| (p.as_path(), "text")).collect();
    paths.push((&frame_file, "frame"));
    run_ffmpeg(draw, settings, &paths, cancel, |_| {}).await?;

    let video = out_dir.join(VIDEO_FILE);
    let poster = out_dir.join(POSTER_FILE);
    let thumbnail = out_dir.join(THUMBNAIL_FILE);
    {
        let (frame_file, poster, thumbnail) =
            (frame_file.clone(), poster.clone(), thumbnail.clone());
        let thumb_long = settings.thumbnail_long_side;
        tokio::task::spawn_blocking(move || -> Result<(), MediaError> {
            let img = image::ImageReader::open(&frame_file)?
                .with_guessed_format()?
                .decode()
                .map_err(|e| MediaError::Render(format!("the drawn frame is unreadable: {e}")))?
                .into_rgb8();
            frame::write_jpeg(&img, &poster, POSTER_QUALITY)?;
            frame::write_jpeg(
                &frame::shrink(&img, thumb_long),
                &thumbnail,
                THUMBNAIL_QUALITY,
            )?;
            Ok(())
        })
        .await
        .map_err(|e| MediaError::Render(format!("internal error while drawing the card: {e}")))??;
    }
    if cancel.is_cancelled() {
        return Err(MediaError::Cancelled);
    }
    progress.report(PREPARED_PCT);

    let fps = settings.fps.max(1);
    let timeout = settings
        .timeout
        .saturating_add(Duration::from_secs_f64(4.0 * card.duration_secs));
    let total_us = card.duration_secs * 1e6;
    let encode = Tool::new(&settings.ffmpeg)
        .args(ffmpeg_args(
            &frame_file,
            AudioInput::Silence,
            &video,
            card.duration_secs,
            fps,
            settings,
        ))
        .timeout(timeout);
    let paths = [(frame_file.as_path(), "frame"), (video.as_path(), "output")];
    run_ffmpeg(encode, settings, &paths, cancel, |line| {
        if let Some(us) = parse_out_time_us(line) {
            let frac = (us / total_us).clamp(0.0, 1.0);
            let span = f64::from(MAX_PCT - PREPARED_PCT);
            progress.report(PREPARED_PCT + (frac * span).floor() as u8);
        }
    })
    .await?;

    Ok(StillVideo {
        video,
        thumbnail,
        poster,
        duration_secs: card.duration_secs,
        width: card.width,
        height: card.height,
    })
}

async fn run_ffmpeg(
    tool: Tool,
    settings: &RenderSettings,
    paths: &[(&Path, &str)],
    cancel: &CancellationToken,
    on_line: impl FnMut(&str) + Send,
) -> Result<(), MediaError> {
    match tool.run(cancel, on_line).await {
        Ok(_) => Ok(()),
        Err(ToolError::Failed {
            stderr_tail,
            status,
            ..
        }) => {
            tracing::warn!(%status, stderr = %stderr_tail, "ffmpeg failed");
            Err(MediaError::Render(summarize_stderr(&stderr_tail, paths)))
        }
        Err(e) => Err(tool_error(e, &settings.ffmpeg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn input_defaults() {
        let card = TitleCard::from_input(&json!({"prompt": "Hello"})).unwrap();
        assert_eq!(
            card,
            TitleCard {
                text: "Hello".into(),
                ..TitleCard::default()
            }
        );
        let card = TitleCard::from_input(&json!({
            "prompt": "Hi", "duration": 12.5, "background": "white",
            "resolution": "1080x1920"
        }))
        .unwrap();
        assert_eq!(card.duration_secs, 12.5);
        assert_eq!(card.background, "white");
        assert_eq!((card.width, card.height), (1080, 1920));
        let card = TitleCard::from_input(&json!({"prompt": "Hi", "duration": null})).unwrap();
        assert_eq!(card.duration_secs, 5.0);
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({}), "\"prompt\" is required"),
            (json!({"prompt": 5}), "\"prompt\" must be a string"),
            (json!({"prompt": "  \n "}), "\"prompt\" is empty"),
            (json!({"prompt": "\u{7}\t\r\n"}), "\"prompt\" is empty"),
            (json!({"prompt": "x".repeat(301)}), "\"prompt\" is too long"),
            (
                json!({"prompt": "a\n\nb\n\nc\n".repeat(30)}),
                "\"prompt\" has too many lines",
            ),
            (
                json!({"prompt": "x", "duration": 0.5}),
                "\"duration\" must be between 1 and 60",
            ),
            (
                json!({"prompt": "x", "duration": 61}),
                "\"duration\" must be between",
            ),
            (
                json!({"prompt": "x", "duration": "5"}),
                "\"duration\" must be a number",
            ),
            (
                json!({"prompt": "x", "background": "#12"}),
                "\"background\" must be",
            ),
            (
                json!({"prompt": "x", "background": 3}),
                "\"background\" must be a string",
            ),
            (
                json!({"prompt": "x", "resolution": "800x600"}),
                "\"resolution\" must be one of",
            ),
            (
                json!({"prompt": "x", "resolution": 720}),
                "\"resolution\" must be one of",
            ),
            (json!([1]), "JSON object"),
        ];
        for (input, expected) in cases {
            let err = TitleCard::from_input(&input).unwrap_err();
            assert_eq!(err.code(), "INVALID_INPUT", "{input}");
            assert!(err.to_string().contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn out_of_list_dimensions_are_refused() {
        let card = TitleCard {
            text: "x".into(),
            width: 1000,
            height: 1000,
            ..TitleCard::default()
        };
        let err = card.plan().err().unwrap();
        assert!(err.to_string().contains("\"1000x1000\""), "{err}");
    }
}
