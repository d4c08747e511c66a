//! A credential's fields as the secret store keeps them, and their one codec.
//!
//! Stored token data is a JSON object in Aurora's field names (`access_token`, `refresh_token`,
//! `expires_at`, ...), written to the secret store as its JSON text. [`TokenData::decode`] parses that text
//! once per secret version read; from then on the parsed fields travel (the read cache keeps them, a hit
//! clones a reference), and [`TokenData::encode`] is the only way back to text.

use std::sync::Arc;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use zeroize::Zeroize as _;

/// Secret token data: immutable, cheap to clone (the fields are shared), its strings zeroized when the
/// last clone is dropped. `Debug` shows the field names only.
#[derive(Clone)]
pub struct TokenData(Arc<Fields>);

struct Fields(Map<String, Value>);

impl Drop for Fields {
    fn drop(&mut self) {
        for value in self.0.values_mut() {
            zeroize_value(value);
        }
    }
}

/// Overwrites every string inside `value` (nested ones too) before its memory is freed.
fn zeroize_value(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_value),
        Value::Object(map) => map.values_mut().for_each(zeroize_value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Stored text that is not a JSON object (the message names no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token data is not a JSON object")]
pub struct NotAnObject;

impl TokenData {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self(Arc::new(Fields(fields)))
    }

    /// Parses token data as stored: a JSON object's text.
    pub fn decode(text: &SecretString) -> Result<Self, NotAnObject> {
        match serde_json::from_str(text.expose_secret()) {
            Ok(Value::Object(fields)) => Ok(Self::new(fields)),
            _ => Err(NotAnObject),
        }
    }

    /// The text to store: the object's compact JSON.
    pub fn encode(&self) -> SecretString {
        SecretString::from(Value::Object(self.fields().clone()).to_string())
    }

    pub fn fields(&self) -> &Map<String, Value> {
        &self.0.0
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields().get(name)
    }

    /// A non-empty string field, trimmed.
    pub fn str_field(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim()),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.fields().len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields().is_empty()
    }

    /// A copy with `changes` set (replacing fields of the same name).
    pub fn with<'a>(&self, changes: impl IntoIterator<Item = (&'a str, Value)>) -> Self {
        let mut fields = self.fields().clone();
        for (name, value) in changes {
            fields.insert(name.to_string(), value);
        }
        Self::new(fields)
    }
}

/// `data["field"]`: the field's value, `Null` when absent (as for a JSON value).
impl std::ops::Index<&str> for TokenData {
    type Output = Value;

    fn index(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.get(name).unwrap_or(&NULL)
    }
}

impl Serialize for TokenData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.fields().serialize(s)
    }
}

impl std::fmt::Debug for TokenData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&String> = self.fields().keys().collect();
        write!(f, "TokenData(<redacted: {keys:?}>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn decodes_objects_only_and_encodes_back() {
        let data = TokenData::decode(&text(r#"{"access_token":"ya29.x","expires_at":1700000000}"#)).unwrap();
        assert_eq!(data["access_token"], "ya29.x");
        assert_eq!(data["missing"], Value::Null);
        assert_eq!(data.str_field("access_token"), Some("ya29.x"));
        let again = TokenData::decode(&data.encode()).unwrap();
        assert_eq!(again.fields(), data.fields());
        for bad in ["[1]", "\"x\"", "not json", ""] {
            assert_eq!(TokenData::decode(&text(bad)).err(), Some(NotAnObject), "{bad:?}");
        }
    }

    #[test]
    fn debug_shows_names_only() {
        let data = TokenData::decode(&text(r#"{"api_key":"very-secret-value"}"#)).unwrap();
        let debug = format!("{data:?}");
        assert!(
            debug.contains("api_key") && !debug.contains("very-secret-value"),
            "{debug}"
        );
    }

    #[test]
    fn with_replaces_fields_in_a_copy() {
        let data = TokenData::decode(&text(r#"{"a":"1","b":"2"}"#)).unwrap();
        let changed = data.with([("b", Value::from("3")), ("c", Value::from(4))]);
        assert_eq!(
            (&changed["a"], &changed["b"], &changed["c"]),
            (&json("1"), &json("3"), &Value::from(4))
        );
        assert_eq!(data["b"], "2", "the original is unchanged");
    }

    fn json(s: &str) -> Value {
        Value::from(s)
    }

    #[test]
    fn zeroizes_nested_strings() {
        let mut v: Value = serde_json::from_str(r#"{"k":["secret",{"n":"deep"}],"x":1}"#).unwrap();
        zeroize_value(&mut v);
        assert_eq!(
            v,
            serde_json::from_str::<Value>(r#"{"k":["",{"n":""}],"x":1}"#).unwrap()
        );
    }
}
