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

mod check;
pub use check::is_fetchable_url;

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
