//! The template format (`docs/templates.md`): a canvas, named fields and the
//! layers that show them. Deserialising checks the shape; [`Template::check`]
//! checks what the shape cannot say (fields that exist, boxes inside the
//! canvas, fonts that are installed, colours that parse).

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::colour::Colour;
use crate::fonts::Fonts;
use crate::steps::{ProjectModels, QcThresholds, Talking, GENERATED_FIELD};
use crate::TemplateError;

/// Largest canvas side, in pixels.
pub const MAX_CANVAS_SIDE: u32 = 4096;
/// Most fields, and most layers, one template may have.
pub const MAX_FIELDS: usize = 64;
pub const MAX_LAYERS: usize = 64;
pub const MAX_FIELD_KEY_CHARS: usize = 64;
/// A video without an audio value lasts this long unless `duration` says.
pub const DEFAULT_DURATION_SECS: f64 = 10.0;
pub const MAX_DURATION_SECS: f64 = 600.0;
pub const DEFAULT_FONT: &str = "DejaVu Sans";
const MAX_FONT_SIZE: f64 = 1000.0;

/// A project's template, as `POST /api/provider/projects` takes it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    /// Shown in project lists; may be empty.
    #[serde(default)]
    pub name: String,
    /// The job type this project is made for (reported as `projectType`).
    #[serde(rename = "type")]
    pub project_type: ProjectType,
    /// The project is active from this instant (ISO 8601), or always.
    #[serde(default)]
    pub start_date: Option<DateTime<Utc>>,
    /// The project is active until this instant, or always.
    #[serde(default)]
    pub end_date: Option<DateTime<Utc>>,
    /// The frame's size and background (1080×1080 white when absent: a
    /// `tts` or `photo_qc` project draws nothing).
    #[serde(default)]
    pub canvas: Canvas,
    /// The values a job sends, by key, in the order a form shows them.
    #[serde(default)]
    pub fields: IndexMap<String, Field>,
    /// Drawn in order: later layers cover earlier ones.
    #[serde(default)]
    pub layers: Vec<Layer>,
    /// Which audio field is the video's soundtrack.
    #[serde(default)]
    pub audio: Option<AudioTrack>,
    /// Seconds; the video's length when it has no audio value.
    #[serde(default)]
    pub duration: Option<f64>,
    /// The model backends (catalog slugs) this project's steps run on
    /// instead of the server's defaults.
    #[serde(default)]
    pub models: ProjectModels,
    /// `ai_talking_video`: which image field is the avatar and which audio
    /// field its voice.
    #[serde(default)]
    pub talking: Option<Talking>,
    /// `photo_qc`: the thresholds the photos are checked against.
    #[serde(default)]
    pub qc: Option<QcThresholds>,
    /// `ai_image_generation`: what the image model is asked for, with
    /// `{field}` placeholders filled from text values.
    #[serde(default)]
    pub prompt: Option<String>,
    /// `ai_image_generation`: what the picture must not show (placeholders
    /// as in `prompt`).
    #[serde(default)]
    pub negative_prompt: Option<String>,
    /// `ai_image_generation`: the size asked of the model, in pixels (the
    /// canvas's when absent).
    #[serde(default)]
    pub width: Option<u32>,
    #[serde(default)]
    pub height: Option<u32>,
}

/// The seven job types of the Provider API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectType {
    AiTalkingVideo,
    Video,
    Tts,
    Image,
    PhotoQc,
    Pdf,
    AiImageGeneration,
}

impl ProjectType {
    pub const ALL: [ProjectType; 7] = [
        ProjectType::AiTalkingVideo,
        ProjectType::Video,
        ProjectType::Tts,
        ProjectType::Image,
        ProjectType::PhotoQc,
        ProjectType::Pdf,
        ProjectType::AiImageGeneration,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectType::AiTalkingVideo => "ai_talking_video",
            ProjectType::Video => "video",
            ProjectType::Tts => "tts",
            ProjectType::Image => "image",
            ProjectType::PhotoQc => "photo_qc",
            ProjectType::Pdf => "pdf",
            ProjectType::AiImageGeneration => "ai_image_generation",
        }
    }

    pub fn parse(name: &str) -> Option<ProjectType> {
        ProjectType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
    /// A colour (`#RRGGBB`, `#RRGGBBAA`, a CSS name); white when absent.
    #[serde(default = "white")]
    pub background: String,
}

fn white() -> String {
    "#ffffff".into()
}

impl Default for Canvas {
    fn default() -> Self {
        Canvas {
            width: 1080,
            height: 1080,
            background: white(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Field {
    /// What a form shows next to the input.
    #[serde(default)]
    pub label: String,
    /// `text`, `image` or `audio` (mapping-fields' `instructionType`).
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    /// Longest text value, in characters.
    #[serde(default)]
    pub max_length: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    Text,
    Image,
    Audio,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Image => "image",
            FieldKind::Audio => "audio",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudioTrack {
    pub field: String,
}

/// A layer's box on the canvas, in pixels. (Each layer spells it out:
/// serde's `flatten` would lose `deny_unknown_fields`.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Frame {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

impl Frame {
    const fn of(x: f64, y: f64, width: f64, height: f64) -> Frame {
        Frame {
            x,
            y,
            width,
            height,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Layer {
    Image(ImageLayer),
    Rect(RectLayer),
    Text(TextLayer),
}

impl Layer {
    pub fn frame(&self) -> Frame {
        match self {
            Layer::Image(l) => Frame::of(l.x, l.y, l.width, l.height),
            Layer::Rect(l) => Frame::of(l.x, l.y, l.width, l.height),
            Layer::Text(l) => Frame::of(l.x, l.y, l.width, l.height),
        }
    }

    /// The field whose value this layer shows, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Layer::Image(l) => l.field.as_deref(),
            Layer::Rect(_) => None,
            Layer::Text(l) => l.field.as_deref(),
        }
    }
}

/// A picture: a field's image value or a fixed `src` URL.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageLayer {
    #[serde(default)]
    pub field: Option<String>,
    /// A fixed picture (http(s) or `data:` URL), fetched at render time.
    #[serde(default)]
    pub src: Option<String>,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    #[serde(default)]
    pub fit: Fit,
}

/// How a picture fills its box.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Fills the box, cropping what overflows (centred).
    #[default]
    Cover,
    /// Fits inside the box, whole, centred.
    Contain,
    /// Stretched to the box.
    Fill,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RectLayer {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    pub color: String,
    /// Corner radius in pixels.
    #[serde(default)]
    pub radius: f64,
}

/// Text in a box: wrapped at word boundaries and shrunk (down to `minSize`)
/// until it fits; what still does not fit is cut at a line, with an ellipsis.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TextLayer {
    #[serde(default)]
    pub field: Option<String>,
    /// Fixed text.
    #[serde(default)]
    pub text: Option<String>,
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// An installed font family (DejaVu Sans unless given).
    #[serde(default = "default_font")]
    pub font: String,
    /// The size in pixels the text starts at.
    #[serde(default = "default_size")]
    pub size: f64,
    /// The smallest size shrinking may reach (a quarter of `size`, at least
    /// 8 px, unless given).
    #[serde(default)]
    pub min_size: Option<f64>,
    /// 100–900; 400 is regular, 700 bold.
    #[serde(default = "default_weight")]
    pub weight: u16,
    #[serde(default = "default_text_colour")]
    pub color: String,
    /// `left`, `center` or `right`; unset, a line starts on its script's
    /// side (right for Arabic or Hebrew).
    #[serde(default)]
    pub align: Option<Align>,
    #[serde(default)]
    pub vertical_align: VerticalAlign,
    /// Line height as a multiple of the size.
    #[serde(default = "default_line_height")]
    pub line_height: f64,
}

fn default_font() -> String {
    DEFAULT_FONT.into()
}
fn default_size() -> f64 {
    48.0
}
fn default_weight() -> u16 {
    400
}
fn default_text_colour() -> String {
    "#000000".into()
}
fn default_line_height() -> f64 {
    1.2
}

impl TextLayer {
    pub fn min_size(&self) -> f64 {
        self.min_size
            .unwrap_or((self.size / 4.0).max(8.0))
            .min(self.size)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Align {
    Left,
    Center,
    Right,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerticalAlign {
    #[default]
    Top,
    Middle,
    Bottom,
}

impl Template {
    /// Parses a template from JSON text (text, not a `serde_json::Value`,
    /// whose map would lose the fields' order), naming the place of a shape
    /// error.
    pub fn from_json(json: &[u8]) -> Result<Template, TemplateError> {
        let mut reader = serde_json::Deserializer::from_slice(json);
        serde_path_to_error::deserialize(&mut reader).map_err(|e| {
            let at = e.path().to_string();
            let problem = e.into_inner().to_string();
            layer_error(json, &at)
                .unwrap_or_else(|| TemplateError::new(if at == "." { "" } else { &at }, problem))
        })
    }

    /// Whether the project is active at `now` by its start and end dates.
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.start_date.is_none_or(|start| start <= now)
            && self.end_date.is_none_or(|end| now <= end)
    }

    /// The video's length when no audio value sets it.
    pub fn duration_secs(&self) -> f64 {
        self.duration.unwrap_or(DEFAULT_DURATION_SECS)
    }

    /// Everything the format's shape cannot say; the error names the place.
    pub fn check(&self, fonts: &Fonts) -> Result<(), TemplateError> {
        let canvas = &self.canvas;
        for (name, side) in [
            ("canvas.width", canvas.width),
            ("canvas.height", canvas.height),
        ] {
            if side == 0 || side > MAX_CANVAS_SIDE {
                return Err(TemplateError::new(
                    name,
                    format!("must be 1 to {MAX_CANVAS_SIDE} pixels, not {side}"),
                ));
            }
        }
        colour("canvas.background", &canvas.background)?;
        if let (Some(start), Some(end)) = (self.start_date, self.end_date) {
            if end < start {
                return Err(TemplateError::new("endDate", "is before startDate"));
            }
        }
        if let Some(duration) = self.duration {
            if !(duration > 0.0 && duration <= MAX_DURATION_SECS) {
                return Err(TemplateError::new(
                    "duration",
                    format!("must be more than 0 and at most {MAX_DURATION_SECS} seconds"),
                ));
            }
        }
        if self.fields.len() > MAX_FIELDS {
            return Err(TemplateError::new(
                "fields",
                format!("at most {MAX_FIELDS} fields"),
            ));
        }
        if self.layers.len() > MAX_LAYERS {
            return Err(TemplateError::new(
                "layers",
                format!("at most {MAX_LAYERS} layers"),
            ));
        }
        for (key, field) in &self.fields {
            let valid_key = !key.is_empty()
                && key.chars().count() <= MAX_FIELD_KEY_CHARS
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_key {
                return Err(TemplateError::new(
                    format!("fields.{key}"),
                    format!(
                        "a field key is 1 to {MAX_FIELD_KEY_CHARS} letters, digits, '_' or '-'"
                    ),
                ));
            }
            if field.max_length.is_some() && field.kind != FieldKind::Text {
                return Err(TemplateError::new(
                    format!("fields.{key}.maxLength"),
                    "applies to text fields only",
                ));
            }
        }
        for (i, layer) in self.layers.iter().enumerate() {
            self.check_layer(&format!("layers[{i}]"), layer, fonts)?;
        }
        if let Some(audio) = &self.audio {
            self.field_of_kind("audio.field", &audio.field, FieldKind::Audio)?;
        }
        self.check_steps()?;
        for key in self.fields.keys() {
            let shown = self.layers.iter().any(|l| l.field() == Some(key.as_str()))
                || self.audio.as_ref().is_some_and(|a| &a.field == key)
                || self.used_by_steps(key);
            if !shown {
                return Err(TemplateError::new(
                    format!("fields.{key}"),
                    "is used by no layer and is not the audio field",
                ));
            }
        }
        Ok(())
    }

    fn check_layer(&self, at: &str, layer: &Layer, fonts: &Fonts) -> Result<(), TemplateError> {
        let frame = layer.frame();
        let inside = frame.x >= 0.0
            && frame.y >= 0.0
            && frame.width > 0.0
            && frame.height > 0.0
            && frame.x + frame.width <= f64::from(self.canvas.width)
            && frame.y + frame.height <= f64::from(self.canvas.height);
        if !inside {
            return Err(TemplateError::new(
                at,
                format!(
                    "the box x={} y={} width={} height={} is not inside the {}x{} canvas",
                    frame.x,
                    frame.y,
                    frame.width,
                    frame.height,
                    self.canvas.width,
                    self.canvas.height
                ),
            ));
        }
        match layer {
            Layer::Image(image) => {
                self.content(
                    at,
                    image.field.as_deref(),
                    image.src.as_deref(),
                    "src",
                    FieldKind::Image,
                )?;
                if let Some(src) = &image.src {
                    if !is_fetchable_url(src) {
                        return Err(TemplateError::new(
                            format!("{at}.src"),
                            "must be an http(s) or data: URL",
                        ));
                    }
                }
            }
            Layer::Rect(rect) => {
                colour(&format!("{at}.color"), &rect.color)?;
                if rect.radius.is_nan() || rect.radius < 0.0 {
                    return Err(TemplateError::new(
                        format!("{at}.radius"),
                        "must be 0 or more",
                    ));
                }
            }
            Layer::Text(text) => {
                self.content(
                    at,
                    text.field.as_deref(),
                    text.text.as_deref(),
                    "text",
                    FieldKind::Text,
                )?;
                colour(&format!("{at}.color"), &text.color)?;
                if !fonts.has_family(&text.font) {
                    return Err(TemplateError::new(
                        format!("{at}.font"),
                        format!("no installed font family is called \"{}\"", text.font),
                    ));
                }
                if !(text.size >= 1.0 && text.size <= MAX_FONT_SIZE) {
                    return Err(TemplateError::new(
                        format!("{at}.size"),
                        format!("must be 1 to {MAX_FONT_SIZE} pixels"),
                    ));
                }
                if let Some(min) = text.min_size {
                    if !(min >= 1.0 && min <= text.size) {
                        return Err(TemplateError::new(
                            format!("{at}.minSize"),
                            "must be at least 1 and at most size",
                        ));
                    }
                }
                if !(100..=900).contains(&text.weight) {
                    return Err(TemplateError::new(
                        format!("{at}.weight"),
                        "must be 100 to 900",
                    ));
                }
                if !(text.line_height >= 0.5 && text.line_height <= 4.0) {
                    return Err(TemplateError::new(
                        format!("{at}.lineHeight"),
                        "must be 0.5 to 4",
                    ));
                }
            }
        }
        Ok(())
    }

    /// A layer shows either a field of `kind` or fixed content, not both.
    fn content(
        &self,
        at: &str,
        field: Option<&str>,
        fixed: Option<&str>,
        fixed_name: &str,
        kind: FieldKind,
    ) -> Result<(), TemplateError> {
        match (field, fixed) {
            (Some(field), None) => self.field_of_kind(&format!("{at}.field"), field, kind),
            (None, Some(_)) => Ok(()),
            _ => Err(TemplateError::new(
                at,
                format!("needs exactly one of \"field\" and \"{fixed_name}\""),
            )),
        }
    }

    pub(crate) fn field_of_kind(
        &self,
        at: &str,
        key: &str,
        kind: FieldKind,
    ) -> Result<(), TemplateError> {
        if kind == FieldKind::Image && key == GENERATED_FIELD && self.generates_picture() {
            return Ok(());
        }
        match self.fields.get(key) {
            None => Err(TemplateError::new(
                at,
                format!("names the unknown field \"{key}\""),
            )),
            Some(field) if field.kind != kind => Err(TemplateError::new(
                at,
                format!(
                    "names \"{key}\", a {} field, where a field of type {} belongs",
                    field.kind.as_str(),
                    kind.as_str()
                ),
            )),
            Some(_) => Ok(()),
        }
    }
}

fn colour(at: &str, text: &str) -> Result<Colour, TemplateError> {
    Colour::parse(text).ok_or_else(|| {
        TemplateError::new(
            at,
            format!("\"{text}\" is not a colour (#RGB, #RRGGBB, #RRGGBBAA or a CSS name)"),
        )
    })
}

/// What genq's outbound fetcher takes.
pub fn is_fetchable_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("data:") {
        return true;
    }
    // An http(s) URL must name a host, as the gateway's input URLs must.
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    rest.and_then(|rest| rest.chars().next())
        .is_some_and(|first| !matches!(first, '/' | '?' | '#') && !first.is_whitespace())
}

/// A layer's shape error, at the key inside the layer: serde reads a tagged
/// layer whole before its fields, so its own error stops at `layers[i]`.
fn layer_error(json: &[u8], at: &str) -> Option<TemplateError> {
    let index: usize = at
        .strip_prefix("layers[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let document: serde_json::Value = serde_json::from_slice(json).ok()?;
    let mut layer = document.get("layers")?.get(index)?.as_object()?.clone();
    let kind = layer.remove("kind");
    let inner = |e: serde_path_to_error::Error<serde_json::Error>| {
        let path = e.path().to_string();
        let place = if path == "." {
            at.to_owned()
        } else {
            format!("{at}.{path}")
        };
        TemplateError::new(place, e.into_inner().to_string())
    };
    let layer = serde_json::Value::Object(layer);
    let error = match kind.as_ref().and_then(serde_json::Value::as_str) {
        Some("image") => serde_path_to_error::deserialize::<_, ImageLayer>(layer)
            .err()
            .map(inner),
        Some("rect") => serde_path_to_error::deserialize::<_, RectLayer>(layer)
            .err()
            .map(inner),
        Some("text") => serde_path_to_error::deserialize::<_, TextLayer>(layer)
            .err()
            .map(inner),
        Some(other) => Some(TemplateError::new(
            format!("{at}.kind"),
            format!("\"{other}\" is not a layer kind (image, rect, text)"),
        )),
        None => Some(TemplateError::new(
            format!("{at}.kind"),
            "is required (image, rect or text)",
        )),
    };
    error
}
