//! The template parser (`genq-template`): a project's JSON as
//! `POST /api/provider/projects` takes it (`Template::from_json`, then
//! `Template::check`), a job's `values` against it (`Values::check`, as a
//! job and, nothing required, as a preview checks them), the Provider
//! steps that read values (prompts, spoken text), and the frame composed
//! as a preview composes it (`Scene::compose`: text laid out, the SVG
//! written and parsed; not rasterised). The input is the template's JSON,
//! then optionally a NUL byte and the values' JSON.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use genq_template::{Fill, Fonts, Scene, Template, Values};
use libfuzzer_sys::fuzz_target;

fn fonts() -> &'static Fonts {
    static FONTS: OnceLock<Fonts> = OnceLock::new();
    FONTS.get_or_init(|| Fonts::load(&[]))
}

fuzz_target!(|data: &[u8]| {
    let (template_json, values_json) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let Ok(template) = Template::from_json(template_json) else {
        return;
    };
    if template.check(fonts()).is_err() {
        return;
    }
    let _ = template.talking_fields();
    let _ = template.generated_size();
    let values: Option<serde_json::Value> =
        values_json.and_then(|v| serde_json::from_slice(v).ok());
    if let Ok(values) = Values::check(&template, values.as_ref()) {
        let _ = template.prompts(&values);
        let _ = template.spoken_text(&values);
    }
    let mut lenient = template.clone();
    for field in lenient.fields.values_mut() {
        field.required = false;
    }
    let Ok(values) = Values::check(&lenient, values.as_ref()) else {
        return;
    };
    let fill = Fill {
        texts: values.texts.into_iter().collect(),
        pictures: HashMap::new(),
        placeholders: true,
    };
    if let Ok(scene) = Scene::compose(&lenient, &fill, fonts()) {
        let _ = scene.texts();
    }
});
