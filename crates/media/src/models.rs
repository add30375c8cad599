//! The built-in models: the catalog entries of genq's own renderers. Their
//! input schemas are derived from the renderers' input types.

use genq_catalog::{Backend, ModelSpec, Price};
use genq_engine::worker::{check_input, input_schema, InputCheck};
use genq_engine::{OutputKind, Renderer};
use serde_json::Value;

use crate::{ImageAudioVideo, TemplateRenderer, TextToSpeech, TitleCardVideo};

/// A built-in model of renderer `R`.
fn builtin<R: Renderer>(
    slug: &str,
    description: &str,
    output: OutputKind,
    price: Price,
    typical_seconds: f64,
) -> ModelSpec {
    ModelSpec {
        slug: slug.into(),
        description: description.into(),
        output,
        price,
        backend: Backend::Builtin(R::KIND.into()),
        input_schema: input_schema::<R>(),
        versions: vec![],
        typical_seconds,
    }
}

/// Every built-in model, for [`genq_catalog::Catalog::load`].
pub fn builtin_models() -> Vec<ModelSpec> {
    vec![
        builtin::<ImageAudioVideo>(
            "genq/image-audio-to-video",
            "A still image held for the length of an audio track: MP4 with thumbnail and poster.",
            OutputKind::Video,
            Price::Flat(100_000),
            10.0,
        ),
        builtin::<TextToSpeech>(
            "genq/text-to-speech",
            "Speech from text with espeak-ng: MP3.",
            OutputKind::Audio,
            Price::PerSecond {
                micro_cents: 1_000,
                seconds_from: "text".into(),
                default_seconds: 1.0,
            },
            3.0,
        ),
        builtin::<TitleCardVideo>(
            "genq/title-card/text-to-video",
            "The prompt's text set over a solid background, for intros and outros: MP4.",
            OutputKind::Video,
            Price::PerSecond {
                micro_cents: 2_000,
                seconds_from: "duration".into(),
                default_seconds: 5.0,
            },
            3.0,
        ),
    ]
}

/// What the renderers check of an input beyond its JSON Schema, run at
/// submission ([`genq_engine::Engine::set_input_checks`]): speech's voice
/// against the voices espeak-ng has here, the title card's limits. The
/// image+audio video's inputs are files, checked as they arrive.
pub fn submission_checks() -> Vec<(&'static str, InputCheck)> {
    vec![
        (TextToSpeech::KIND, check_input::<TextToSpeech>),
        (TitleCardVideo::KIND, check_input::<TitleCardVideo>),
        (TemplateRenderer::KIND, template_voice),
    ]
}

/// A template job spoken by espeak-ng (no model of its own) names a voice
/// or variant espeak-ng has; its other values were checked by the dialect.
fn template_voice(input: &Value) -> Result<(), String> {
    if input.get("model").is_some_and(|model| !model.is_null()) {
        return Ok(());
    }
    let Some(speech) = input.get("speech").filter(|speech| !speech.is_null()) else {
        return Ok(());
    };
    let field = |name: &str| speech.get(name).and_then(Value::as_str);
    let voice = crate::template_render::speak::espeak_voice(field("voice"), field("language"));
    crate::voices::check_installed_voice(&voice).map_err(|why| format!("voice: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use genq_catalog::Catalog;
    use serde_json::json;

    #[test]
    fn builtin_prices_follow_the_input() {
        let catalog = Catalog::of(builtin_models());
        let card = catalog.get("genq/title-card/text-to-video").unwrap();
        assert_eq!(card.price.cost(&json!({"prompt": "hi"})), 10_000);
        assert_eq!(
            card.price.cost(&json!({"prompt": "hi", "duration": 2.5})),
            5_000
        );
        let tts = catalog.get("genq/text-to-speech").unwrap();
        assert_eq!(
            tts.price.cost(&json!({"text": "one two three four five"})),
            2_000
        );
        let video = catalog.get("genq/image-audio-to-video").unwrap();
        assert_eq!(video.price.cost(&json!({})), 100_000);
    }

    #[test]
    fn submissions_are_checked_against_the_renderers_own_limits() {
        let catalog = Catalog::of(builtin_models());
        let tts = catalog.get("genq/text-to-speech").unwrap();
        assert!(tts.validate(&json!({"text": "hello", "speed": 2})).is_ok());
        let error = tts
            .validate(&json!({"text": "hello", "speed": 9}))
            .unwrap_err();
        assert!(error.starts_with("input.speed:"), "{error}");
        let error = tts
            .validate(&json!({"text": "x".repeat(5001)}))
            .unwrap_err();
        assert!(error.starts_with("input.text:"), "{error}");
        let error = tts
            .validate(&json!({"text": "hi", "voice": "-w"}))
            .unwrap_err();
        assert!(error.starts_with("input.voice:"), "{error}");
        assert!(tts
            .validate(&json!({"text": "x", "colour": "red"}))
            .is_err());
        let card = catalog.get("genq/title-card/text-to-video").unwrap();
        assert!(card
            .validate(&json!({"prompt": "hi", "resolution": "1080x1920"}))
            .is_ok());
        let error = card
            .validate(&json!({"prompt": "hi", "resolution": "800x600"}))
            .unwrap_err();
        assert!(error.starts_with("input.resolution:"), "{error}");
        let video = catalog.get("genq/image-audio-to-video").unwrap();
        let error = video.validate(&json!({"image_url": "x"})).unwrap_err();
        assert!(error.contains("audio_url"), "{error}");
        assert!(video
            .validate(&json!({"image_url": "x", "audio_url": "y", "image": {}}))
            .is_err());
    }
}
