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

use schemars::JsonSchema;
use serde::Deserialize;
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

pub const MAX_PROMPT_CHARS: u64 = 300;
pub const MIN_DURATION_SECS: f64 = 1.0;
pub const MAX_DURATION_SECS: f64 = 60.0;
const DEFAULT_DURATION_SECS: f64 = 5.0;
const DEFAULT_BACKGROUND: &str = "#101828";

/// The sizes a card may have, as the `resolution` input spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[schemars(inline)]
pub enum Resolution {
    #[serde(rename = "1920x1080")]
    Landscape1080,
    #[serde(rename = "1280x720")]
    Landscape720,
    #[serde(rename = "1080x1920")]
    Portrait1080,
    #[serde(rename = "1080x1080")]
    Square1080,
    #[serde(rename = "720x1280")]
    Portrait720,
}

impl Resolution {
    pub const ALL: [Resolution; 5] = [
        Resolution::Landscape1080,
        Resolution::Landscape720,
        Resolution::Portrait1080,
        Resolution::Square1080,
        Resolution::Portrait720,
    ];

    /// Width and height in pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Resolution::Landscape1080 => (1920, 1080),
            Resolution::Landscape720 => (1280, 720),
            Resolution::Portrait1080 => (1080, 1920),
            Resolution::Square1080 => (1080, 1080),
            Resolution::Portrait720 => (720, 1280),
        }
    }

    /// As the input spells it (`1920x1080`).
    pub fn name(self) -> String {
        let (w, h) = self.size();
        format!("{w}x{h}")
    }
}

/// A `title_card` job's input. Its JSON Schema (what submissions are
/// checked against) and its limits come from these fields; missing optional
/// fields take their defaults.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema, validator::Validate)]
#[serde(deny_unknown_fields)]
pub struct TitleCardInput {
    /// The text on the card.
    #[validate(length(min = 1, max = MAX_PROMPT_CHARS))]
    pub prompt: String,
    /// Seconds (5 when absent).
    #[validate(range(min = MIN_DURATION_SECS, max = MAX_DURATION_SECS))]
    pub duration: Option<f64>,
    /// `#RRGGBB`, or a colour name: black, white, gray, grey, silver, navy,
    /// blue, teal, green, yellow, orange, red, maroon, purple
    #[validate(regex(
        path = *colour::BACKGROUND,
        message = "must be \"#RRGGBB\" or a colour name (black, white, gray, grey, silver, navy, blue, teal, green, yellow, orange, red, maroon, purple)"
    ))]
    pub background: Option<String>,
    /// 1280x720 when absent.
    pub resolution: Option<Resolution>,
}

impl From<TitleCardInput> for TitleCard {
    fn from(input: TitleCardInput) -> Self {
        let defaults = TitleCard::default();
        let (width, height) = input
            .resolution
            .map_or((defaults.width, defaults.height), Resolution::size);
        TitleCard {
            text: input.prompt,
            duration_secs: input.duration.unwrap_or(defaults.duration_secs),
            background: input.background.unwrap_or(defaults.background),
            width,
            height,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TitleCard {
    pub text: String,
    /// 1..=60 seconds.
    pub duration_secs: f64,
    /// `#RRGGBB` or one of [`COLOUR_NAMES`].
    pub background: String,
    /// One of the [`Resolution`]s.
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
        if chars as u64 > MAX_PROMPT_CHARS {
            return Err(invalid(format!(
                "\"prompt\" is too long ({chars} characters; at most {MAX_PROMPT_CHARS})"
            )));
        }
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&self.duration_secs) {
            return Err(invalid(format!(
                "\"duration\" must be between {MIN_DURATION_SECS} and {MAX_DURATION_SECS} \
                 seconds (got {})",
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
        if !Resolution::ALL
            .iter()
            .any(|r| r.size() == (self.width, self.height))
        {
            let names: Vec<String> = Resolution::ALL.iter().map(|r| r.name()).collect();
            return Err(invalid(format!(
                "\"resolution\" must be one of {} (got \"{}x{}\")",
                names.join(", "),
                self.width,
                self.height
            )));
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

    /// A job's input as the worker reads it: parsed, limits checked, then
    /// planned.
    fn card_from(input: serde_json::Value) -> Result<TitleCard, String> {
        let input: TitleCardInput =
            genq_engine::worker::parse_input(&input).map_err(|f| f.message)?;
        let card = TitleCard::from(input);
        card.plan().map_err(|e| e.to_string())?;
        Ok(card)
    }

    #[test]
    fn input_defaults() {
        let card = card_from(json!({"prompt": "Hello"})).unwrap();
        assert_eq!(
            card,
            TitleCard {
                text: "Hello".into(),
                ..TitleCard::default()
            }
        );
        let card = card_from(json!({
            "prompt": "Hi", "duration": 12.5, "background": "white",
            "resolution": "1080x1920"
        }))
        .unwrap();
        assert_eq!(card.duration_secs, 12.5);
        assert_eq!(card.background, "white");
        assert_eq!((card.width, card.height), (1080, 1920));
        let card = card_from(json!({"prompt": "Hi", "duration": null})).unwrap();
        assert_eq!(card.duration_secs, 5.0);
    }

    #[test]
    fn bad_input_names_the_field() {
        let cases = [
            (json!({}), "prompt"),
            (json!({"prompt": 5}), "input.prompt: invalid type"),
            (json!({"prompt": "  \n "}), "\"prompt\" is empty"),
            (json!({"prompt": "\u{7}\t\r\n"}), "\"prompt\" is empty"),
            (
                json!({"prompt": "x".repeat(301)}),
                "input.prompt: must be 1 to 300",
            ),
            (
                json!({"prompt": "a\n\nb\n\nc\n".repeat(30)}),
                "\"prompt\" has too many lines",
            ),
            (
                json!({"prompt": "x", "duration": 0.5}),
                "input.duration: must be from 1",
            ),
            (
                json!({"prompt": "x", "duration": 61}),
                "input.duration: must be from",
            ),
            (
                json!({"prompt": "x", "duration": "5"}),
                "input.duration: invalid type",
            ),
            (
                json!({"prompt": "x", "background": "#12"}),
                "input.background: must be \"#RRGGBB\" or a colour name",
            ),
            (
                json!({"prompt": "x", "background": 3}),
                "input.background: invalid type",
            ),
            (
                json!({"prompt": "x", "resolution": "800x600"}),
                "input.resolution: unknown variant",
            ),
            (
                json!({"prompt": "x", "resolution": 720}),
                "input.resolution: invalid type",
            ),
            (json!([1]), "input: must be a JSON object"),
        ];
        for (input, expected) in cases {
            let err = card_from(input.clone()).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn the_schema_lists_the_resolutions_and_limits() {
        let schema = serde_json::to_value(schemars::schema_for!(TitleCardInput)).unwrap();
        let text = serde_json::to_string(&schema).unwrap();
        for resolution in Resolution::ALL {
            assert!(
                text.contains(&format!("\"{}\"", resolution.name())),
                "{text}"
            );
        }
        assert_eq!(schema["properties"]["prompt"]["maxLength"], json!(300));
        assert_eq!(schema["required"], json!(["prompt"]));
        assert_eq!(schema["additionalProperties"], json!(false));
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
