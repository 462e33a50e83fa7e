//! Typed reads from a `serde_json::Value` that fail with the JSON path of the bad field, so a
//! client learns *where* its body is wrong. The path is a linked list on the stack and is only
//! rendered when an error is built: no allocation while a body is well formed.

use serde_json::{Map, Value};

use super::ir::TranslateError;

/// A position in a JSON document: the root, or a field / index below a parent position.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    Root,
    Field(&'a Loc<'a>, &'a str),
    Index(&'a Loc<'a>, usize),
}

impl<'a> Loc<'a> {
    pub(crate) fn field(&'a self, name: &'a str) -> Loc<'a> {
        Loc::Field(self, name)
    }

    pub(crate) fn index(&'a self, i: usize) -> Loc<'a> {
        Loc::Index(self, i)
    }

    pub(crate) fn render(&self) -> String {
        match self {
            Loc::Root => String::new(),
            Loc::Field(parent, name) => {
                let base = parent.render();
                if base.is_empty() {
                    (*name).to_string()
                } else {
                    format!("{base}.{name}")
                }
            }
            Loc::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }

    pub(crate) fn error(&self, message: impl Into<String>) -> TranslateError {
        let path = self.render();
        TranslateError {
            path: if path.is_empty() {
                "body".to_string()
            } else {
                path
            },
            message: message.into(),
        }
    }
}

/// A JSON type name for error messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn as_object<'v>(
    value: &'v Value,
    at: &Loc,
) -> Result<&'v Map<String, Value>, TranslateError> {
    value
        .as_object()
        .ok_or_else(|| at.error(format!("expected an object, got {}", kind(value))))
}

pub(crate) fn as_array<'v>(value: &'v Value, at: &Loc) -> Result<&'v Vec<Value>, TranslateError> {
    value
        .as_array()
        .ok_or_else(|| at.error(format!("expected an array, got {}", kind(value))))
}

pub(crate) fn as_str<'v>(value: &'v Value, at: &Loc) -> Result<&'v str, TranslateError> {
    value
        .as_str()
        .ok_or_else(|| at.error(format!("expected a string, got {}", kind(value))))
}

/// A field that must be present (and not null).
pub(crate) fn required<'v>(
    obj: &'v Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<&'v Value, TranslateError> {
    match obj.get(name) {
        Some(Value::Null) | None => Err(at.error(format!("missing required field `{name}`"))),
        Some(value) => Ok(value),
    }
}

/// A field that may be absent; `null` counts as absent, as both APIs accept it.
pub(crate) fn optional<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name).filter(|v| !v.is_null())
}

pub(crate) fn required_str<'v>(
    obj: &'v Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<&'v str, TranslateError> {
    as_str(required(obj, name, at)?, &at.field(name))
}

pub(crate) fn optional_str<'v>(
    obj: &'v Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<Option<&'v str>, TranslateError> {
    optional(obj, name)
        .map(|v| as_str(v, &at.field(name)))
        .transpose()
}

pub(crate) fn optional_u64(
    obj: &Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<Option<u64>, TranslateError> {
    optional(obj, name)
        .map(|v| {
            v.as_u64().ok_or_else(|| {
                at.field(name)
                    .error(format!("expected a non-negative integer, got {v}"))
            })
        })
        .transpose()
}

pub(crate) fn optional_f64(
    obj: &Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<Option<f64>, TranslateError> {
    optional(obj, name)
        .map(|v| {
            v.as_f64().ok_or_else(|| {
                at.field(name)
                    .error(format!("expected a number, got {}", kind(v)))
            })
        })
        .transpose()
}

pub(crate) fn optional_bool(
    obj: &Map<String, Value>,
    name: &str,
    at: &Loc,
) -> Result<Option<bool>, TranslateError> {
    optional(obj, name)
        .map(|v| {
            v.as_bool().ok_or_else(|| {
                at.field(name)
                    .error(format!("expected a boolean, got {}", kind(v)))
            })
        })
        .transpose()
}

/// A token count in a usage object; absent or null counts as 0.
pub(crate) fn count(obj: &Map<String, Value>, name: &str, at: &Loc) -> Result<u64, TranslateError> {
    Ok(optional_u64(obj, name, at)?.unwrap_or(0))
}
