//! A job's `values`, checked against its template: each entry a plain string
//! (a text field) or an asset object (`{"image_url"}`, `{"audio_url",
//! "effects"}`), every required field present, every limit kept.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::format::{is_fetchable_url, FieldKind, Template};
use crate::TemplateError;

/// Longest effect time, and the loudest `volume`.
const MAX_EFFECT_SECS: f64 = 3600.0;
const MAX_VOLUME: f64 = 4.0;

/// The values a render uses, by field key, each of its field's kind. Keys
/// the template does not have are left out (the job's input keeps them).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Values {
    #[serde(default)]
    pub texts: IndexMap<String, String>,
    /// Image URLs (http(s) or `data:`).
    #[serde(default)]
    pub images: IndexMap<String, String>,
    #[serde(default)]
    pub audio: IndexMap<String, AudioValue>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct AudioValue {
    pub url: String,
    #[serde(default)]
    pub effects: Vec<Effect>,
}

/// What is done to an audio value, in the order given.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Effect {
    /// Keeps `start`..`end` seconds (to the end without `end`).
    Trim {
        #[serde(default)]
        start: f64,
        #[serde(default)]
        end: Option<f64>,
    },
    FadeIn {
        duration: f64,
    },
    FadeOut {
        duration: f64,
    },
    /// Linear gain, 0 to 4.
    Volume {
        level: f64,
    },
    /// EBU R128 loudness normalisation to −16 LUFS.
    Normalize,
}

impl Values {
    /// Checks `values` (the request's object) against `template`.
    pub fn check(template: &Template, values: Option<&Value>) -> Result<Values, TemplateError> {
        let empty = serde_json::Map::new();
        let entries = match values {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(entries)) => entries,
            Some(_) => return Err(TemplateError::new("values", "must be an object")),
        };
        let mut checked = Values::default();
        for (key, field) in &template.fields {
            let at = format!("values.{key}");
            let value = entries.get(key).filter(|v| !is_blank(v));
            let Some(value) = value else {
                if field.required {
                    return Err(TemplateError::new(at, "is required"));
                }
                continue;
            };
            match field.kind {
                FieldKind::Text => {
                    let Value::String(text) = value else {
                        return Err(TemplateError::new(at, "must be text (a string)"));
                    };
                    if let Some(max) = field.max_length {
                        let chars = text.chars().count();
                        if chars > max as usize {
                            return Err(TemplateError::new(
                                at,
                                format!("is {chars} characters long; at most {max} are allowed"),
                            ));
                        }
                    }
                    checked.texts.insert(key.clone(), text.clone());
                }
                FieldKind::Image => {
                    let url = asset_url(&at, value, "image_url", &["image_url"])?;
                    checked.images.insert(key.clone(), url);
                }
                FieldKind::Audio => {
                    let url = asset_url(&at, value, "audio_url", &["audio_url", "effects"])?;
                    let effects = match value.get("effects") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(effects) => check_effects(&at, effects)?,
                    };
                    checked
                        .audio
                        .insert(key.clone(), AudioValue { url, effects });
                }
            }
        }
        Ok(checked)
    }
}

fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn asset_url(
    at: &str,
    value: &Value,
    key: &str,
    allowed: &[&str],
) -> Result<String, TemplateError> {
    let Value::Object(asset) = value else {
        return Err(TemplateError::new(
            at,
            format!("must be an asset object {{\"{key}\": \"https://…\"}}"),
        ));
    };
    if let Some(other) = asset.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(TemplateError::new(
            format!("{at}.{other}"),
            format!(
                "is not a field of this asset (expected {})",
                allowed.join(", ")
            ),
        ));
    }
    match asset.get(key) {
        Some(Value::String(url)) if is_fetchable_url(url) => Ok(url.clone()),
        Some(Value::String(_)) => Err(TemplateError::new(
            format!("{at}.{key}"),
            "must be an http(s) or data: URL",
        )),
        _ => Err(TemplateError::new(
            format!("{at}.{key}"),
            "is required (a URL)",
        )),
    }
}

fn check_effects(at: &str, effects: &Value) -> Result<Vec<Effect>, TemplateError> {
    let Value::Array(list) = effects else {
        return Err(TemplateError::new(
            format!("{at}.effects"),
            "must be a list",
        ));
    };
    let mut checked = Vec::with_capacity(list.len());
    for (i, raw) in list.iter().enumerate() {
        let here = format!("{at}.effects[{i}]");
        let effect: Effect = serde_json::from_value(raw.clone()).map_err(|e| {
            let kind = raw.get("type").and_then(Value::as_str).unwrap_or("");
            let known = ["trim", "fade_in", "fade_out", "volume", "normalize"];
            if known.contains(&kind) {
                TemplateError::new(&here, e.to_string())
            } else {
                TemplateError::new(
                    format!("{here}.type"),
                    format!(
                        "\"{kind}\" is not an effect (trim, fade_in, fade_out, volume, normalize)"
                    ),
                )
            }
        })?;
        let seconds = |name: &str, v: f64| {
            if (0.0..=MAX_EFFECT_SECS).contains(&v) {
                Ok(())
            } else {
                Err(TemplateError::new(
                    format!("{here}.{name}"),
                    format!("must be 0 to {MAX_EFFECT_SECS} seconds"),
                ))
            }
        };
        match &effect {
            Effect::Trim { start, end } => {
                seconds("start", *start)?;
                if let Some(end) = end {
                    seconds("end", *end)?;
                    if end <= start {
                        return Err(TemplateError::new(
                            format!("{here}.end"),
                            "must be after start",
                        ));
                    }
                }
            }
            Effect::FadeIn { duration } | Effect::FadeOut { duration } => {
                seconds("duration", *duration)?;
            }
            Effect::Volume { level } => {
                if !(0.0..=MAX_VOLUME).contains(level) {
                    return Err(TemplateError::new(
                        format!("{here}.level"),
                        format!("must be 0 to {MAX_VOLUME}"),
                    ));
                }
            }
            Effect::Normalize => {}
        }
        checked.push(effect);
    }
    Ok(checked)
}
