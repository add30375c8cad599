//! The effects parser: a Provider job's audio value's `effects` list
//! (`Values::check` in `genq-template`'s `values.rs`, which parses and
//! bounds each effect), then the ffmpeg filter chain the renderer builds
//! from the checked list (`genq_media::effect_chain`). The input is the
//! JSON given as `effects`. Properties: the chain is one comma-separated
//! filter list that cannot break out of its place in the filter graph,
//! and checked effects, stored as JSON with the job, check again as they
//! are.
#![no_main]

use std::sync::OnceLock;

use genq_template::{Fonts, Template, Values};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let json = br#"{"type": "video", "canvas": {"width": 64, "height": 64},
            "fields": {"voice": {"label": "Voice", "type": "audio", "required": true}},
            "layers": [], "audio": {"field": "voice"}}"#;
        let template = Template::from_json(json).expect("the fixed template parses");
        template
            .check(&Fonts::load(&[]))
            .expect("the fixed template checks");
        template
    })
}

fn values(effects: Value) -> Value {
    json!({"voice": {"audio_url": "https://example.com/voice.mp3", "effects": effects}})
}

fuzz_target!(|data: &[u8]| {
    let Ok(effects) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(checked) = Values::check(template(), Some(&values(effects))) else {
        return;
    };
    let effects = &checked.audio["voice"].effects;
    let chain = genq_media::effect_chain(effects);
    for c in [';', '[', ']', '\'', '"', '\\', '\n', '\0'] {
        assert!(!chain.contains(c), "{c:?} in {chain}");
    }
    assert!(!chain.contains("NaN") && !chain.contains("inf"), "{chain}");
    // The job keeps its input as JSON; what was checked checks again.
    let stored = serde_json::to_value(effects).expect("effects serialise");
    let again = Values::check(template(), Some(&values(stored)))
        .unwrap_or_else(|e| panic!("checked effects no longer check: {e}"));
    assert_eq!(
        genq_media::effect_chain(&again.audio["voice"].effects),
        chain
    );
});
