//! The model catalog: what can be run, on which backend, at what price, and
//! when it should be done. Built-in models (declared by the renderers that
//! run them, `genq_media::builtin_models`) run on this machine; an optional
//! TOML file adds or overrides models (for instance ones served by a Cog
//! prediction server). Every dialect that runs models reads the same catalog.

mod estimate;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use genq_engine::{OutputKind, Principal};

/// The job kinds of genq's own handlers: what the catalog's backends name
/// and the renderers register as.
pub mod kinds {
    /// A still image and an audio track rendered to an MP4.
    pub const IMAGE_AUDIO_VIDEO: &str = "image_audio_video";
    pub const TEXT_TO_SPEECH: &str = "text_to_speech";
    pub const TITLE_CARD: &str = "title_card";
    /// A brand template filled with values, to an image, a PDF or a video.
    pub const TEMPLATE: &str = "template";
    /// A model served by a Cog prediction server.
    pub const COG: &str = "cog";
}

/// Where a model runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// One of genq's own renderers, by job kind.
    Builtin(String),
    /// A Cog prediction server's base URL.
    Cog(String),
}

impl Backend {
    /// The job kind whose handler runs this backend.
    pub fn job_kind(&self) -> &str {
        match self {
            Backend::Builtin(kind) => kind,
            Backend::Cog(_) => kinds::COG,
        }
    }
}

/// What a job of a model costs, in micro-cents (1/1,000,000 of a dollar).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Price {
    Flat(i64),
    PerSecond {
        micro_cents: i64,
        /// An input field holding a length in seconds, or `text` for the
        /// estimated length of the `text` field spoken aloud.
        seconds_from: String,
        /// When the field is absent.
        #[serde(default = "one")]
        default_seconds: f64,
    },
}

fn one() -> f64 {
    1.0
}

/// Words per second of ordinary speech, for pricing text-to-speech up front.
const SPOKEN_WORDS_PER_SECOND: f64 = 2.5;

impl Price {
    pub fn cost(&self, input: &Value) -> i64 {
        match self {
            Price::Flat(cost) => *cost,
            Price::PerSecond {
                micro_cents,
                seconds_from,
                default_seconds,
            } => {
                let seconds = if seconds_from == "text" {
                    let words = input["text"]
                        .as_str()
                        .map_or(0, |t| t.split_whitespace().count());
                    let speed = input["speed"].as_f64().filter(|s| *s > 0.0).unwrap_or(1.0);
                    (words as f64 / SPOKEN_WORDS_PER_SECOND / speed).max(1.0)
                } else {
                    input[seconds_from.as_str()]
                        .as_f64()
                        .unwrap_or(*default_seconds)
                };
                (seconds * *micro_cents as f64).ceil() as i64
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub id: String,
    #[serde(default)]
    pub stable: bool,
    /// Overrides the model's backend for this version.
    #[serde(default)]
    pub backend: Option<Backend>,
}

/// A model as the catalog file (or a built-in renderer) describes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub slug: String,
    #[serde(default)]
    pub description: String,
    pub output: OutputKind,
    pub price: Price,
    pub backend: Backend,
    pub input_schema: Value,
    #[serde(default)]
    pub versions: Vec<ModelVersion>,
    /// Run time used for completion estimates until real runs are measured.
    #[serde(default = "typical_seconds")]
    pub typical_seconds: f64,
}

fn typical_seconds() -> f64 {
    30.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    models: Vec<ModelSpec>,
}

pub struct Model {
    pub slug: String,
    pub description: String,
    pub output: OutputKind,
    pub price: Price,
    pub backend: Backend,
    pub input_schema: Value,
    pub versions: Vec<ModelVersion>,
    pub typical_seconds: f64,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("slug", &self.slug)
            .field("backend", &self.backend)
            .finish()
    }
}

impl Model {
    fn from_spec(spec: ModelSpec) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&spec.input_schema)
            .map_err(|e| format!("model {}: invalid input_schema: {e}", spec.slug))?;
        let mut versions = spec.versions;
        if versions.is_empty() {
            versions.push(ModelVersion {
                id: "1".into(),
                stable: true,
                backend: None,
            });
        }
        if !versions.iter().any(|v| v.stable) {
            return Err(format!("model {}: no version is marked stable", spec.slug));
        }
        Ok(Self {
            slug: spec.slug,
            description: spec.description,
            output: spec.output,
            price: spec.price,
            backend: spec.backend,
            input_schema: spec.input_schema,
            versions,
            typical_seconds: spec.typical_seconds,
            validator,
        })
    }

    /// The version a request names, or the latest stable one.
    pub fn version(&self, requested: Option<&str>) -> Option<&ModelVersion> {
        match requested {
            Some(id) => self.versions.iter().find(|v| v.id == id),
            None => self.versions.iter().rev().find(|v| v.stable),
        }
    }

    pub fn latest_stable(&self) -> &ModelVersion {
        self.version(None).expect("checked when loaded")
    }

    pub fn backend_for<'a>(&'a self, version: &'a ModelVersion) -> &'a Backend {
        version.backend.as_ref().unwrap_or(&self.backend)
    }

    /// Checks an input against the model's schema; the error says which field
    /// and why (`input.size: 1 is less than the minimum of 8`).
    pub fn validate(&self, input: &Value) -> Result<(), String> {
        match self.validator.iter_errors(input).next() {
            None => Ok(()),
            Some(error) => {
                let path = error.instance_path().to_string();
                let field = if path.is_empty() {
                    "input".to_owned()
                } else {
                    format!("input{}", path.replace('/', "."))
                };
                Err(format!("{field}: {error}"))
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("model catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct Catalog {
    models: Vec<Arc<Model>>,
    by_slug: HashMap<String, usize>,
}

impl Catalog {
    /// The given (built-in) models only.
    pub fn of(builtins: Vec<ModelSpec>) -> Self {
        let mut catalog = Catalog::default();
        for spec in builtins {
            catalog.insert(Model::from_spec(spec).expect("built-in models are valid"));
        }
        catalog
    }

    /// The built-ins plus the models of a TOML file, if it exists (a file model
    /// with a built-in's slug replaces it).
    pub fn load(builtins: Vec<ModelSpec>, path: &Path) -> Result<Self, CatalogError> {
        let mut catalog = Self::of(builtins);
        let error = |message: String| CatalogError {
            path: path.display().to_string(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(catalog),
            Err(e) => return Err(error(e.to_string())),
        };
        let file: CatalogFile = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
        for spec in file.models {
            catalog.insert(Model::from_spec(spec).map_err(error)?);
        }
        Ok(catalog)
    }

    fn insert(&mut self, model: Model) {
        let model = Arc::new(model);
        match self.by_slug.get(&model.slug) {
            Some(&i) => self.models[i] = model,
            None => {
                self.by_slug.insert(model.slug.clone(), self.models.len());
                self.models.push(model);
            }
        }
    }

    pub fn get(&self, slug: &str) -> Option<&Arc<Model>> {
        self.by_slug.get(slug).map(|&i| &self.models[i])
    }

    pub fn models(&self) -> impl Iterator<Item = &Arc<Model>> {
        self.models.iter()
    }
}

/// Whether both the account and the key of `principal` may use this model.
pub fn may_use(principal: &Principal, slug: &str) -> bool {
    let allows = |patterns: &Option<Vec<String>>| {
        patterns
            .as_ref()
            .is_none_or(|p| p.iter().any(|pattern| slug_matches(pattern, slug)))
    };
    allows(&principal.account_models) && allows(&principal.key_models)
}

/// `*` matches any run of characters; everything else matches itself.
pub fn slug_matches(pattern: &str, slug: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = slug.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn slug_patterns() {
        assert!(slug_matches("genq/*", "genq/text-to-speech"));
        assert!(slug_matches("*", "anything"));
        assert!(slug_matches("*/text-to-video", "google/veo/text-to-video"));
        assert!(slug_matches(
            "google/*/text-to-video",
            "google/veo-3.1-fast/text-to-video"
        ));
        assert!(!slug_matches(
            "google/*/text-to-video",
            "google/veo/image-to-video"
        ));
        assert!(slug_matches("genq/text-to-speech", "genq/text-to-speech"));
        assert!(!slug_matches("genq/text", "genq/text-to-speech"));
    }

    /// A built-in-like model: speech priced by its text, and a schema.
    fn speech() -> ModelSpec {
        ModelSpec {
            slug: "genq/text-to-speech".into(),
            description: String::new(),
            output: OutputKind::Audio,
            price: Price::PerSecond {
                micro_cents: 1_000,
                seconds_from: "text".into(),
                default_seconds: 1.0,
            },
            backend: Backend::Builtin(kinds::TEXT_TO_SPEECH.into()),
            input_schema: json!({
                "type": "object",
                "required": ["text"],
                "properties": {
                    "text": { "type": "string" },
                    "speed": { "type": "number", "minimum": 0.5, "maximum": 2 },
                    "duration": { "type": "number" }
                },
                "additionalProperties": false
            }),
            versions: vec![],
            typical_seconds: 3.0,
        }
    }

    #[test]
    fn prices_follow_the_input() {
        let catalog = Catalog::of(vec![speech()]);
        let tts = catalog.get("genq/text-to-speech").unwrap();
        assert_eq!(
            tts.price.cost(&json!({"text": "one two three four five"})),
            2_000
        );
        assert_eq!(
            tts.price
                .cost(&json!({"text": "one two three four five", "speed": 2})),
            1_000
        );
        assert_eq!(tts.price.cost(&json!({"text": "hi"})), 1_000);
        let per_second = Price::PerSecond {
            micro_cents: 2_000,
            seconds_from: "duration".into(),
            default_seconds: 5.0,
        };
        assert_eq!(per_second.cost(&json!({})), 10_000);
        assert_eq!(per_second.cost(&json!({"duration": 2.5})), 5_000);
        assert_eq!(Price::Flat(100_000).cost(&json!({})), 100_000);
    }

    #[test]
    fn validation_names_the_field() {
        let catalog = Catalog::of(vec![speech()]);
        let tts = catalog.get("genq/text-to-speech").unwrap();
        assert!(tts.validate(&json!({"text": "hello"})).is_ok());
        let error = tts
            .validate(&json!({"text": "hello", "speed": 9}))
            .unwrap_err();
        assert!(error.starts_with("input.speed:"), "{error}");
        let error = tts.validate(&json!({})).unwrap_err();
        assert!(error.contains("text"), "{error}");
        assert!(tts
            .validate(&json!({"text": "x", "colour": "red"}))
            .is_err());
    }

    #[test]
    fn principals_use_the_models_both_their_account_and_key_allow() {
        let principal = |account: Option<&[&str]>, key: Option<&[&str]>| Principal {
            account_id: Default::default(),
            key_id: Default::default(),
            scopes: vec![],
            account_models: account.map(|p| p.iter().map(|s| s.to_string()).collect()),
            key_models: key.map(|p| p.iter().map(|s| s.to_string()).collect()),
        };
        assert!(may_use(&principal(None, None), "any/model"));
        let genq_only = principal(Some(&["genq/*"]), None);
        assert!(may_use(&genq_only, "genq/text-to-speech"));
        assert!(!may_use(&genq_only, "google/veo"));
        let narrower = principal(Some(&["genq/*"]), Some(&["*/title-card/*"]));
        assert!(may_use(&narrower, "genq/title-card/text-to-video"));
        assert!(!may_use(&narrower, "genq/text-to-speech"));
    }

    #[test]
    fn a_file_adds_models_with_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.toml");
        std::fs::write(
            &path,
            r#"
[[models]]
slug = "google/veo-3.1-fast/text-to-video"
output = "image"
price = { flat = 500000 }
backend = { cog = "http://127.0.0.1:5000" }
input_schema = { type = "object", required = ["prompt"], properties = { prompt = { type = "string" } } }
versions = [
  { id = "1.0", stable = true },
  { id = "2.0-beta", backend = { cog = "http://127.0.0.1:5001" } },
]
"#,
        )
        .unwrap();
        let catalog = Catalog::load(vec![speech()], &path).unwrap();
        assert!(catalog.get("genq/text-to-speech").is_some());
        let veo = catalog.get("google/veo-3.1-fast/text-to-video").unwrap();
        assert_eq!(veo.latest_stable().id, "1.0");
        let beta = veo.version(Some("2.0-beta")).unwrap();
        assert_eq!(
            veo.backend_for(beta),
            &Backend::Cog("http://127.0.0.1:5001".into())
        );
        assert_eq!(veo.backend_for(veo.latest_stable()).job_kind(), kinds::COG);
        assert!(veo.version(Some("3")).is_none());

        std::fs::write(&path, "[[models]]\nslug = 1\n").unwrap();
        assert!(Catalog::load(vec![], &path).is_err());
        assert!(Catalog::load(vec![], &dir.path().join("absent.toml")).is_ok());
    }
}
