//! A model's input form, made from its JSON Schema: one control per
//! property (text, long text, number with its range, a select for an enum,
//! a checkbox, a URL), each carrying the constraints the page's script
//! checks before anything is sent, with messages taken from the schema.

use serde_json::{Map, Value};

/// How a property is entered.
#[derive(Debug, PartialEq)]
pub(crate) enum Control {
    Text,
    LongText,
    Url,
    Number {
        integer: bool,
    },
    Select(Vec<String>),
    Checkbox,
    /// Arrays and objects: typed as JSON.
    Json,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: String,
    pub label: String,
    pub description: String,
    pub control: Control,
    pub required: bool,
    /// The default, as the control shows it.
    pub default: String,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: String,
    /// The JSON type the value is sent as: `string`, `number`, `integer`,
    /// `boolean` or `json`.
    pub json_type: &'static str,
}

impl Field {
    pub fn is(&self, kind: &str) -> bool {
        matches!(
            (kind, &self.control),
            ("text", Control::Text)
                | ("longtext", Control::LongText)
                | ("url", Control::Url)
                | ("number", Control::Number { .. })
                | ("select", Control::Select(_))
                | ("checkbox", Control::Checkbox)
                | ("json", Control::Json)
        )
    }

    pub fn options(&self) -> &[String] {
        match &self.control {
            Control::Select(options) => options,
            _ => &[],
        }
    }

    pub fn step(&self) -> &'static str {
        match self.control {
            Control::Number { integer: true } => "1",
            _ => "any",
        }
    }

    pub fn min_text(&self) -> String {
        self.minimum.map(number_text).unwrap_or_default()
    }

    pub fn max_text(&self) -> String {
        self.maximum.map(number_text).unwrap_or_default()
    }

    pub fn min_length_text(&self) -> String {
        self.min_length.map(|n| n.to_string()).unwrap_or_default()
    }

    pub fn max_length_text(&self) -> String {
        self.max_length.map(|n| n.to_string()).unwrap_or_default()
    }
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

/// `#/$defs/X` (or `#/definitions/X`) within `root`.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let path = reference.trim_start_matches('#');
    root.pointer(path).unwrap_or(schema)
}

/// The schema of a value that may also be null: the non-null alternative.
fn not_null<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(root, schema);
    for key in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let mut rest = options
                .iter()
                .map(|o| resolve(root, o))
                .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"));
            if let (Some(only), None) = (rest.next(), rest.next()) {
                return only;
            }
        }
    }
    schema
}

/// The schema's type, without `null`.
fn type_of(schema: &Value) -> Option<&str> {
    match schema.get("type")? {
        Value::String(t) => Some(t),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null"),
        _ => None,
    }
}

fn default_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The fields of an object schema: the required ones first, each group in
/// the order of the properties' names (the order the schema's JSON object
/// reaches us in).
pub(crate) fn fields(root: &Value) -> Vec<Field> {
    let empty = Map::new();
    let properties = root
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut fields = properties
        .iter()
        .map(|(name, raw)| {
            let schema = not_null(root, raw);
            // The property's name is its label (it is what the API takes);
            // a title, which schemars makes of a doc comment's first
            // paragraph, goes before the description.
            let text = |key: &str| {
                raw.get(key)
                    .or_else(|| schema.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            };
            let description = [text("title"), text("description")]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let options: Option<Vec<String>> =
                schema.get("enum").and_then(Value::as_array).map(|values| {
                    values
                        .iter()
                        .filter(|v| !v.is_null())
                        .map(|v| default_text(Some(v)))
                        .collect()
                });
            let ty = type_of(schema);
            let max_length = schema.get("maxLength").and_then(Value::as_u64);
            let format = schema
                .get("format")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (control, json_type) = match (options, ty) {
                (Some(options), _) => (
                    Control::Select(options),
                    if ty == Some("string") || ty.is_none() {
                        "string"
                    } else {
                        "json"
                    },
                ),
                (None, Some("boolean")) => (Control::Checkbox, "boolean"),
                (None, Some("integer")) => (Control::Number { integer: true }, "integer"),
                (None, Some("number")) => (Control::Number { integer: false }, "number"),
                (None, Some("string")) if format == "uri" || format == "url" => {
                    (Control::Url, "string")
                }
                (None, Some("string")) if max_length.is_none_or(|m| m > 200) => {
                    (Control::LongText, "string")
                }
                (None, Some("string")) => (Control::Text, "string"),
                _ => (Control::Json, "json"),
            };
            Field {
                label: name.clone(),
                name: name.clone(),
                description,
                control,
                required: required.contains(&name.as_str()),
                default: default_text(raw.get("default").or_else(|| schema.get("default"))),
                minimum: schema.get("minimum").and_then(Value::as_f64),
                maximum: schema.get("maximum").and_then(Value::as_f64),
                min_length: schema.get("minLength").and_then(Value::as_u64),
                max_length,
                pattern: schema
                    .get("pattern")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                json_type,
            }
        })
        .collect::<Vec<_>>();
    // Stable: within each group the order stays.
    fields.sort_by_key(|field| !field.required);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_property_gets_the_control_its_schema_asks_for() {
        let schema = json!({
            "type": "object",
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": 80, "title": "Words", "description": "What to say"},
                "story": {"type": "string"},
                "duration": {"type": ["number", "null"], "minimum": 1, "maximum": 30, "default": 5},
                "steps": {"type": "integer", "minimum": 1, "maximum": 50},
                "resolution": {"anyOf": [{"$ref": "#/$defs/Resolution"}, {"type": "null"}]},
                "loud": {"type": "boolean"},
                "source": {"type": "string", "format": "uri"},
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "$defs": {"Resolution": {"type": "string", "enum": ["720p", "1080p"]}}
        });
        let fields = fields(&schema);
        let by_name = |n: &str| fields.iter().find(|f| f.name == n).unwrap();
        assert_eq!(fields[0].name, "prompt");
        assert!(by_name("prompt").required && by_name("prompt").is("text"));
        assert_eq!(by_name("prompt").max_length, Some(80));
        assert_eq!(by_name("prompt").label, "prompt");
        assert_eq!(by_name("prompt").description, "Words What to say");
        assert!(by_name("story").is("longtext") && !by_name("story").required);
        assert_eq!(
            by_name("duration").control,
            Control::Number { integer: false }
        );
        assert_eq!(
            (
                by_name("duration").min_text(),
                by_name("duration").max_text()
            ),
            ("1".into(), "30".into())
        );
        assert_eq!(by_name("duration").default, "5");
        assert_eq!(by_name("steps").step(), "1");
        assert_eq!(by_name("resolution").options(), ["720p", "1080p"]);
        assert!(by_name("loud").is("checkbox"));
        assert!(by_name("source").is("url"));
        assert_eq!(by_name("tags").json_type, "json");
    }
}
