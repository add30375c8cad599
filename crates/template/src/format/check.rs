//! Reading a template ([`Template::from_json`]) and checking what its
//! shape cannot say ([`Template::check`]).

use super::*;

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
