//! What the job types beyond drawing read from a template: the model
//! backends a project names, the talking head's fields, the photo checks'
//! thresholds and an image prompt; and the checks that keep each job type's
//! template meaningful (a `tts` project's fields are spoken, so they are
//! text; a prompt's placeholders name text fields).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use genq_vision::QcThresholds;

use crate::format::{FieldKind, Layer, ProjectType, Template, MAX_CANVAS_SIDE};
use crate::{TemplateError, Values};

/// The image layer field an `ai_image_generation` project fills with the
/// model's picture.
pub const GENERATED_FIELD: &str = "generated";
/// The longest prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;
const MIN_GENERATED_SIDE: u32 = 64;
const MAX_SLUG_CHARS: usize = 200;

/// Catalog slugs of the models a project's steps run on; each replaces the
/// server's default for this project.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProjectModels {
    /// Speaks `tts` jobs (else the server's `tts_model`, else espeak-ng).
    #[serde(default)]
    pub tts: Option<String>,
    /// Animates `ai_talking_video` jobs (else the server's
    /// `talking_head_model`, else genq's built-in animation).
    #[serde(default)]
    pub talking_head: Option<String>,
    /// Draws `ai_image_generation` jobs (else the server's `image_model`).
    #[serde(default)]
    pub image: Option<String>,
    /// Finds the faces of `photo_qc` jobs (else genq's built-in detector).
    #[serde(default)]
    pub faces: Option<String>,
}

/// Which fields an `ai_talking_video` animates.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Talking {
    /// The avatar: an image field shown by an image layer (default: the
    /// first image field).
    #[serde(default)]
    pub image: Option<String>,
    /// The voice: an audio field (default: the template's `audio.field`).
    #[serde(default)]
    pub audio: Option<String>,
}

impl Template {
    /// The avatar's image field and the voice's audio field of an
    /// `ai_talking_video` project.
    pub fn talking_fields(&self) -> Option<(String, String)> {
        let talking = self.talking.clone().unwrap_or_default();
        let image = talking.image.or_else(|| {
            self.fields
                .iter()
                .find(|(_, f)| f.kind == FieldKind::Image)
                .map(|(k, _)| k.clone())
        })?;
        let audio = talking
            .audio
            .or_else(|| self.audio.as_ref().map(|a| a.field.clone()))?;
        Some((image, audio))
    }

    /// The index of the image layer that shows the avatar.
    pub fn talking_layer(&self) -> Option<usize> {
        let (image, _) = self.talking_fields()?;
        self.layers
            .iter()
            .position(|l| matches!(l, Layer::Image(i) if i.field.as_deref() == Some(&image)))
    }

    /// The prompt and negative prompt with the values' texts in their
    /// placeholders (an absent optional value leaves nothing).
    pub fn prompts(&self, values: &Values) -> Option<(String, Option<String>)> {
        let fill = |text: &str| {
            let mut out = String::with_capacity(text.len());
            for piece in pieces(text) {
                match piece {
                    Piece::Text(t) => out.push_str(t),
                    Piece::Field(key) => {
                        out.push_str(values.texts.get(key).map_or("", String::as_str))
                    }
                }
            }
            out.trim().to_owned()
        };
        let prompt = fill(self.prompt.as_deref()?);
        Some((prompt, self.negative_prompt.as_deref().map(fill)))
    }

    /// The text a `tts` job speaks: its text values in template order, one
    /// paragraph each.
    pub fn spoken_text(&self, values: &Values) -> String {
        self.fields
            .keys()
            .filter_map(|key| values.texts.get(key))
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The size asked of the image model.
    pub fn generated_size(&self) -> (u32, u32) {
        (
            self.width.unwrap_or(self.canvas.width),
            self.height.unwrap_or(self.canvas.height),
        )
    }

    pub(crate) fn generates_picture(&self) -> bool {
        self.project_type == ProjectType::AiImageGeneration
    }

    /// Whether a job type other than drawing reads field `key`.
    pub(crate) fn used_by_steps(&self, key: &str) -> bool {
        match self.project_type {
            ProjectType::Tts | ProjectType::PhotoQc => true,
            ProjectType::AiImageGeneration => [&self.prompt, &self.negative_prompt]
                .into_iter()
                .flatten()
                .any(|text| pieces(text).any(|p| p == Piece::Field(key))),
            ProjectType::AiTalkingVideo => self
                .talking_fields()
                .is_some_and(|(image, audio)| image == key || audio == key),
            _ => false,
        }
    }

    /// The checks of the parts only some job types read.
    pub(crate) fn check_steps(&self) -> Result<(), TemplateError> {
        let kind = self.project_type;
        for (name, slug) in [
            ("models.tts", &self.models.tts),
            ("models.talkingHead", &self.models.talking_head),
            ("models.image", &self.models.image),
            ("models.faces", &self.models.faces),
        ] {
            if let Some(slug) = slug {
                if slug.trim().is_empty() || slug.chars().count() > MAX_SLUG_CHARS {
                    return Err(TemplateError::new(
                        name,
                        format!(
                            "must be a model's catalog slug (1 to {MAX_SLUG_CHARS} characters)"
                        ),
                    ));
                }
            }
        }
        let only_for = |present: bool, at: &str, wanted: ProjectType| {
            if present && kind != wanted {
                Err(TemplateError::new(
                    at,
                    format!(
                        "applies to {} projects only (this one is {})",
                        wanted.as_str(),
                        kind.as_str()
                    ),
                ))
            } else {
                Ok(())
            }
        };
        only_for(
            self.talking.is_some(),
            "talking",
            ProjectType::AiTalkingVideo,
        )?;
        only_for(self.qc.is_some(), "qc", ProjectType::PhotoQc)?;
        for (present, at) in [
            (self.prompt.is_some(), "prompt"),
            (self.negative_prompt.is_some(), "negativePrompt"),
            (self.width.is_some(), "width"),
            (self.height.is_some(), "height"),
        ] {
            only_for(present, at, ProjectType::AiImageGeneration)?;
        }
        match kind {
            ProjectType::Tts => self.fields_all(FieldKind::Text, "their values are spoken"),
            ProjectType::PhotoQc => {
                if let Some(qc) = &self.qc {
                    qc.check().map_err(|why| match why.split_once(": ") {
                        Some((at, problem)) => TemplateError::new(at, problem),
                        None => TemplateError::new("qc", why),
                    })?;
                }
                self.fields_all(FieldKind::Image, "their pictures are checked")
            }
            ProjectType::AiImageGeneration => self.check_prompt(),
            ProjectType::AiTalkingVideo => self.check_talking(),
            _ => Ok(()),
        }
    }

    fn fields_all(&self, kind: FieldKind, why: &str) -> Result<(), TemplateError> {
        match self.fields.iter().find(|(_, f)| f.kind != kind) {
            Some((key, _)) => Err(TemplateError::new(
                format!("fields.{key}"),
                format!(
                    "a {} project's fields are {} fields ({why})",
                    self.project_type.as_str(),
                    kind.as_str()
                ),
            )),
            None => Ok(()),
        }
    }

    fn check_prompt(&self) -> Result<(), TemplateError> {
        if self.fields.contains_key(GENERATED_FIELD) {
            return Err(TemplateError::new(
                format!("fields.{GENERATED_FIELD}"),
                "is the model's picture in an ai_image_generation project; name the field otherwise",
            ));
        }
        let Some(prompt) = &self.prompt else {
            return Err(TemplateError::new(
                "prompt",
                "is required: an ai_image_generation project asks its model for a picture",
            ));
        };
        for (at, text) in [
            ("prompt", Some(prompt)),
            ("negativePrompt", self.negative_prompt.as_ref()),
        ] {
            let Some(text) = text else { continue };
            let chars = text.chars().count();
            if (at == "prompt" && text.trim().is_empty()) || chars > MAX_PROMPT_CHARS {
                return Err(TemplateError::new(
                    at,
                    format!("must be 1 to {MAX_PROMPT_CHARS} characters"),
                ));
            }
            for piece in pieces(text) {
                if let Piece::Field(key) = piece {
                    self.field_of_kind(at, key, FieldKind::Text)?;
                }
            }
        }
        for (at, side) in [("width", self.width), ("height", self.height)] {
            if let Some(side) = side {
                if !(MIN_GENERATED_SIDE..=MAX_CANVAS_SIDE).contains(&side) {
                    return Err(TemplateError::new(
                        at,
                        format!("must be {MIN_GENERATED_SIDE} to {MAX_CANVAS_SIDE} pixels"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_talking(&self) -> Result<(), TemplateError> {
        let Some((image, audio)) = self.talking_fields() else {
            return Err(TemplateError::new(
                "talking",
                "an ai_talking_video project needs an image field (the avatar) and an audio field (its voice)",
            ));
        };
        self.field_of_kind("talking.image", &image, FieldKind::Image)?;
        self.field_of_kind("talking.audio", &audio, FieldKind::Audio)?;
        if self.talking_layer().is_none() {
            return Err(TemplateError::new(
                "talking.image",
                format!("\"{image}\" is shown by no image layer: the talking head needs its place in the layout"),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// A prompt's text and `{field}` placeholders. A brace that does not
/// enclose a field key is text.
fn pieces(text: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut search = 0;
        while let Some(open) = rest[search..].find('{').map(|i| i + search) {
            let after = &rest[open + 1..];
            let key_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(after.len());
            if key_len > 0 && after[key_len..].starts_with('}') {
                if open > 0 {
                    let text = &rest[..open];
                    rest = &rest[open..];
                    return Some(Piece::Text(text));
                }
                let key = &after[..key_len];
                rest = &after[key_len + 1..];
                return Some(Piece::Field(key));
            }
            search = open + 1;
        }
        let text = rest;
        rest = "";
        Some(Piece::Text(text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_field_keys_in_braces() {
        let got: Vec<_> = pieces("A {product} on a {surface}, {not a key} {x}{y}").collect();
        assert_eq!(
            got,
            [
                Piece::Text("A "),
                Piece::Field("product"),
                Piece::Text(" on a "),
                Piece::Field("surface"),
                Piece::Text(", {not a key} "),
                Piece::Field("x"),
                Piece::Field("y"),
            ]
        );
        assert_eq!(pieces("").count(), 0);
        assert_eq!(pieces("{").collect::<Vec<_>>(), [Piece::Text("{")]);
    }
}
