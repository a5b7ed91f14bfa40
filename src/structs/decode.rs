//! Request-body decoding the way Consul's Go decoder does it: JSON object keys match
//! struct fields case-insensitively, snake_case spellings match too
//! (`enable_tag_override` → `EnableTagOverride`), and unknown keys are rejected.
//!
//! serde hands `deserialize_struct` the list of field names, so a thin deserializer
//! over `serde_json::Value` can rename each key to the field it matches before the
//! derived visitor sees it. Nested structs, lists and maps are wrapped the same way.
//!
//! Only a JSON object decodes into a struct: an array, string, number or bool is
//! Go's "cannot unmarshal" error (serde alone would read an array as the struct's
//! fields in order), and `null` leaves the struct at its defaults, as Go does.

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};

/// Decodes `bytes` into `T`, Go-style. The error text is what follows
/// `Request decode failed: ` in Consul's 400 answers.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err("EOF".to_string());
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    from_value(value)
}

pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    T::deserialize(Loose(value, None)).map_err(|e| e.to_string())
}

/// Where a value sits: the struct it is a field of and the field's name.
type Place = Option<(&'static str, String)>;

/// Go's text for a JSON value of the wrong kind for a struct.
fn mismatch(value: &Value, ty: &str, at: &Place) -> serde_json::Error {
    let kind = match value {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    };
    let target = match at {
        Some((parent, field)) => format!("Go struct field {parent}.{field}"),
        None => "Go value".to_string(),
    };
    de::Error::custom(format!(
        "json: cannot unmarshal {kind} into {target} of type {ty}"
    ))
}

fn fold(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(|c| c.to_lowercase())
        .collect()
}

/// A `Value` whose object keys are matched loosely against struct fields.
struct Loose(Value, Place);

impl<'de> de::Deserializer<'de> for Loose {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(LooseSeq(items.into_iter(), self.1)),
            Value::Object(map) => visitor.visit_map(LooseMap::new(map, None)?),
            other => other.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Loose(other, self.1)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Array(items) => visitor.visit_seq(LooseSeq(items.into_iter(), self.1)),
            other => other.deserialize_seq(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(LooseMap::new(map, None)?),
            other => other.deserialize_map(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Object(map) => visitor.visit_map(LooseMap::new(map, Some((name, fields)))?),
            Value::Null => visitor.visit_map(LooseMap::new(Map::new(), Some((name, fields)))?),
            other => Err(mismatch(&other, name, &self.1)),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

struct LooseSeq(std::vec::IntoIter<Value>, Place);

impl<'de> SeqAccess<'de> for LooseSeq {
    type Error = serde_json::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        match self.0.next() {
            Some(v) => seed.deserialize(Loose(v, self.1.clone())).map(Some),
            None => Ok(None),
        }
    }
}

struct LooseMap {
    entries: std::vec::IntoIter<(String, Value)>,
    /// The struct being decoded (none for a map).
    name: Option<&'static str>,
    pending: Option<(String, Value)>,
}

impl LooseMap {
    fn new(
        map: Map<String, Value>,
        shape: Option<(&'static str, &'static [&'static str])>,
    ) -> Result<Self, serde_json::Error> {
        let fields = shape.map(|(_, fields)| fields);
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let key = match fields {
                None => key,
                Some(fields) => match fields.iter().find(|f| **f == key) {
                    Some(f) => f.to_string(),
                    None => {
                        let folded = fold(&key);
                        match fields.iter().find(|f| fold(f) == folded) {
                            Some(f) => f.to_string(),
                            None => {
                                return Err(de::Error::custom(format!(
                                    "json: unknown field \"{key}\""
                                )));
                            }
                        }
                    }
                },
            };
            entries.push((key, value));
        }
        Ok(LooseMap {
            entries: entries.into_iter(),
            name: shape.map(|(name, _)| name),
            pending: None,
        })
    }
}

impl<'de> MapAccess<'de> for LooseMap {
    type Error = serde_json::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((k, v)) => {
                let key = seed.deserialize(k.as_str().into_deserializer()).map(Some);
                self.pending = Some((k, v));
                key
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let (key, v) = self.pending.take().unwrap_or_default();
        let at = self.name.map(|name| (name, key));
        seed.deserialize(Loose(v, at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::RegisterRequest;

    #[test]
    fn keys_match_case_insensitively_and_snake_case() {
        let r: RegisterRequest = from_slice(
            br#"{"node":"n1","ADDRESS":"1.2.3.4","node_meta":{"k":"v"},"Service":{"service":"web","enable_tag_override":true,"Tags":null}}"#,
        )
        .unwrap();
        assert_eq!(r.node, "n1");
        assert_eq!(r.address, "1.2.3.4");
        assert_eq!(r.node_meta.get("k").map(String::as_str), Some("v"));
        let svc = r.service.unwrap();
        assert_eq!(svc.service, "web");
        assert!(svc.enable_tag_override);
        assert!(svc.tags.is_empty());
    }

    #[test]
    fn map_keys_are_kept_verbatim() {
        let r: RegisterRequest =
            from_slice(br#"{"Node":"n","NodeMeta":{"Some_Key":"v"}}"#).unwrap();
        assert!(r.node_meta.get("Some_Key").is_some());
    }

    #[test]
    fn unknown_fields_are_rejected_with_gos_text() {
        let err = from_slice::<RegisterRequest>(br#"{"Node":"n","Bogus":1}"#).unwrap_err();
        assert_eq!(err, "json: unknown field \"Bogus\"");
    }

    #[test]
    fn only_an_object_decodes_into_a_struct() {
        for (body, kind) in [
            ("[]", "array"),
            (r#"["n"]"#, "array"),
            ("3", "number"),
            (r#""n""#, "string"),
            ("true", "bool"),
        ] {
            let err = from_slice::<RegisterRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                format!("json: cannot unmarshal {kind} into Go value of type RegisterRequest"),
                "{body}"
            );
        }
        let err = from_slice::<RegisterRequest>(br#"{"Node":"n","Service":[]}"#).unwrap_err();
        assert_eq!(
            err,
            "json: cannot unmarshal array into Go struct field RegisterRequest.Service of type ServiceInput"
        );
    }

    #[test]
    fn null_leaves_a_struct_at_its_defaults() {
        let r: RegisterRequest = from_slice(b"null").unwrap();
        assert_eq!(r.node, "");
        assert!(r.service.is_none());
    }

    #[test]
    fn empty_body_is_eof() {
        assert_eq!(from_slice::<RegisterRequest>(b"").unwrap_err(), "EOF");
    }
}
