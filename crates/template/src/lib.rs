//! Brand templates: the format a project is written in ([`Template`],
//! `docs/templates.md`), the checks of a job's values against it
//! ([`Values`]), and one vector [`Scene`] per frame, drawn to PNG, JPEG and
//! PDF from the same description.

mod colour;
mod fonts;
mod format;
mod picture;
mod render;
mod scene;
mod steps;
mod text;
mod values;

pub use colour::{Colour, COLOUR_NAMES};
pub use fonts::Fonts;
pub use format::{
    is_fetchable_url, Align, AudioTrack, Canvas, Field, FieldKind, Fit, Frame, ImageLayer, Layer,
    ProjectType, RectLayer, Template, TextLayer, VerticalAlign, DEFAULT_DURATION_SECS,
    DEFAULT_FONT, MAX_CANVAS_SIDE, MAX_DURATION_SECS,
};
pub use picture::{Picture, MAX_PICTURE_PIXELS};
pub use scene::{Fill, Scene};
pub use steps::{ProjectModels, QcThresholds, Talking, GENERATED_FIELD, MAX_PROMPT_CHARS};
pub use text::{fit, LaidText, Line};
pub use values::{AudioValue, Effect, Values};

/// What is wrong with a template or a job's values: where (a path such as
/// `layers[2].field` or `values.headline`) and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct TemplateError {
    pub at: String,
    pub problem: String,
}

impl TemplateError {
    pub fn new(at: impl Into<String>, problem: impl Into<String>) -> TemplateError {
        TemplateError {
            at: at.into(),
            problem: problem.into(),
        }
    }

    fn describe(&self) -> String {
        if self.at.is_empty() {
            self.problem.clone()
        } else {
            format!("{}: {}", self.at, self.problem)
        }
    }
}
