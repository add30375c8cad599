//! The job types beyond drawing — `tts`, `photo_qc`, `ai_talking_video` and
//! `ai_image_generation` — as the renderer's input: which model backend a
//! step runs on (the project's, else the server's), what is spoken or
//! checked, and the request's options. Everything that can be refused
//! without running the job is refused here, with a 400.

use std::sync::LazyLock;

use genq_catalog::{Backend, Catalog};
use genq_template::{ProjectType, Template, Values};
use regex::Regex;
use serde_json::{json, Map, Value};

use super::error::ProviderError;
use super::ProviderState;

/// The server's default model backends (catalog slugs) for the steps that
/// need a model; a project's `models` replaces them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DefaultModels {
    pub tts: Option<String>,
    pub talking_head: Option<String>,
    pub image: Option<String>,
}

/// The longest text a `tts` job speaks, unless set.
pub const DEFAULT_TTS_MAX_CHARS: usize = 5000;

/// Top-level fields of `POST /jobs/v2` that are not model options.
const REQUEST_FIELDS: [&str; 17] = [
    "job_type",
    "template_id",
    "project_id",
    "values",
    "version",
    "session_id",
    "webhook_url",
    "format",
    "background_music",
    "background_volume",
    "background_start",
    "background_ducking",
    "image_url",
    "audio_url",
    "voice",
    "language",
    "speed",
];
/// The most model options an older-shape talking video passes on.
const MAX_MODEL_OPTIONS: usize = 32;

static LANGUAGE_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$").expect("a valid pattern")
});
/// espeak-ng's voice names (as the gateway's text-to-speech takes them).
static ESPEAK_VOICE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9][A-Za-z0-9_+-]{0,39}$").expect("a valid pattern"));

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(message)
}

/// The older `ai_talking_video` request names the avatar and the voice at
/// the top level (`image_url`, `audio_url`): they become the talking
/// fields' values.
pub(super) fn merge_talking_urls(
    template: &Template,
    fields: &Map<String, Value>,
) -> Result<Option<Value>, ProviderError> {
    let url = |name: &str| match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) => Ok(Some(url.clone())),
        Some(_) => Err(bad(format!("{name} must be a URL"))),
    };
    let (image_url, audio_url) = (url("image_url")?, url("audio_url")?);
    if image_url.is_none() && audio_url.is_none() {
        return Ok(None);
    }
    let Some((image, audio)) = template.talking_fields() else {
        return Ok(None);
    };
    let mut values = match fields.get("values") {
        Some(Value::Object(values)) => values.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(bad("values must be an object")),
    };
    if let Some(url) = image_url {
        values.insert(image, json!({ "image_url": url }));
    }
    if let Some(url) = audio_url {
        values.insert(audio, json!({ "audio_url": url }));
    }
    Ok(Some(Value::Object(values)))
}

/// What a job type beyond drawing adds to the renderer's input.
pub(super) fn step_input(
    job_type: ProjectType,
    template: &Template,
    values: &mut Values,
    fields: &Map<String, Value>,
    own: &ProviderState,
) -> Result<Map<String, Value>, ProviderError> {
    let mut input = Map::new();
    match job_type {
        ProjectType::Tts => {
            let model = model_for(own, "tts", &template.models.tts, &own.models.tts)?;
            let text = spoken_text(template, values, fields, own.tts_max_chars)?;
            let voice = string_option(fields, "voice", 100)?;
            if model.is_none() {
                if let Some(voice) = &voice {
                    if !ESPEAK_VOICE.is_match(voice) {
                        return Err(bad(
                            "voice must be an espeak-ng voice or variant such as \"en\", \"de\" or \"f3\" (letters, digits, '_', '+', '-'; at most 40 characters)",
                        ));
                    }
                }
            }
            let language = string_option(fields, "language", 35)?;
            if let Some(language) = &language {
                if !LANGUAGE_TAG.is_match(language) {
                    return Err(bad(format!(
                        "language must be a BCP 47 tag such as \"en\", \"de\" or \"pt-BR\", not {:?}",
                        cut(language)
                    )));
                }
            }
            let speed = super::jobs::number_field(fields, "speed", Some((0.5, 2.0)))?;
            input.insert(
                "speech".into(),
                json!({"text": text, "voice": voice, "language": language, "speed": speed}),
            );
            input.insert("model".into(), json!(model));
        }
        ProjectType::PhotoQc => {
            let model = model_for(own, "faces", &template.models.faces, &None)?;
            photos(template, values, fields)?;
            input.insert("model".into(), json!(model));
            input.insert(
                "qc".into(),
                serde_json::to_value(template.qc.clone().unwrap_or_default())
                    .expect("thresholds serialize"),
            );
        }
        ProjectType::AiTalkingVideo => {
            let model = model_for(
                own,
                "talkingHead",
                &template.models.talking_head,
                &own.models.talking_head,
            )?;
            let options: Map<String, Value> = fields
                .iter()
                .filter(|(k, _)| !REQUEST_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if options.len() > MAX_MODEL_OPTIONS {
                return Err(bad(format!(
                    "at most {MAX_MODEL_OPTIONS} model options (crop, output_size, expand_ratio, …)"
                )));
            }
            input.insert("model".into(), json!(model));
            input.insert("model_options".into(), Value::Object(options));
        }
        ProjectType::AiImageGeneration => {
            let model = model_for(own, "image", &template.models.image, &own.models.image)?
                .ok_or_else(|| {
                    bad("ai_image_generation needs an image model, and none is configured: set the project's models.image or the server's image_model (GENQ_IMAGE_MODEL) to a catalog slug")
                })?;
            let (prompt, _) = template.prompts(values).unwrap_or_default();
            if prompt.is_empty() {
                return Err(bad(
                    "the prompt is empty once filled with these values; send the fields it names",
                ));
            }
            input.insert("model".into(), json!(model));
        }
        ProjectType::Video | ProjectType::Image | ProjectType::Pdf => {}
    }
    Ok(input)
}

/// The model a step runs on: the project's, else the server's; it must be a
/// catalog model served by a model backend.
fn model_for(
    own: &ProviderState,
    key: &str,
    project: &Option<String>,
    server: &Option<String>,
) -> Result<Option<String>, ProviderError> {
    let Some(slug) = project.as_ref().or(server.as_ref()) else {
        return Ok(None);
    };
    let whose = if project.is_some() {
        format!("the project's models.{key}")
    } else {
        "the server's default model".to_owned()
    };
    check_model(&own.catalog, slug).map_err(|why| bad(format!("{whose} {:?} {why}", cut(slug))))?;
    Ok(Some(slug.clone()))
}

fn check_model(catalog: &Catalog, slug: &str) -> Result<(), &'static str> {
    let model = catalog.get(slug).ok_or("is not in the model catalog")?;
    match model.backend_for(model.latest_stable()) {
        Backend::Cog(_) => Ok(()),
        Backend::Builtin(_) => Err("is not served by a model backend (Cog)"),
    }
}

/// The text fields' values in template order, or `values.text` when the
/// project has no text fields.
fn spoken_text(
    template: &Template,
    values: &mut Values,
    fields: &Map<String, Value>,
    max_chars: usize,
) -> Result<String, ProviderError> {
    let text = if values.texts.is_empty() && template.fields.is_empty() {
        match fields.get("values").and_then(|v| v.get("text")) {
            Some(Value::String(text)) => {
                values.texts.insert("text".into(), text.clone());
                text.trim().to_owned()
            }
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(bad("values.text must be text (a string)")),
        }
    } else {
        template.spoken_text(values)
    };
    if text.is_empty() {
        return Err(bad(
            "there is nothing to speak: send values.text, or the project's text fields",
        ));
    }
    let chars = text.chars().count();
    if chars > max_chars {
        return Err(bad(format!(
            "the text is {chars} characters long; a tts job speaks at most {max_chars}"
        )));
    }
    Ok(text)
}

/// The photos a `photo_qc` job checks: its image values, or `values.photo`
/// (a URL or `{"image_url"}`) when the project has no image fields.
fn photos(
    template: &Template,
    values: &mut Values,
    fields: &Map<String, Value>,
) -> Result<(), ProviderError> {
    if template.fields.is_empty() {
        let url = match fields.get("values").and_then(|v| v.get("photo")) {
            Some(Value::String(url)) => Some(url.clone()),
            Some(Value::Object(asset)) => asset
                .get("image_url")
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        }
        .ok_or_else(|| bad("values.photo is required: the URL of the photo to check"))?;
        if !genq_template::is_fetchable_url(&url) {
            return Err(bad("values.photo must be an http(s) or data: URL"));
        }
        values.images.insert("photo".into(), url);
    }
    if values.images.is_empty() {
        return Err(bad(
            "there is no photo to check: send the project's image fields",
        ));
    }
    Ok(())
}

fn string_option(
    fields: &Map<String, Value>,
    name: &str,
    max_chars: usize,
) -> Result<Option<String>, ProviderError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max_chars => {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(bad(format!(
            "{name} must be a string of 1 to {max_chars} characters"
        ))),
    }
}

/// A value quoted in an error, cut short.
fn cut(text: &str) -> String {
    const SHOWN: usize = 60;
    match text.char_indices().nth(SHOWN) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
