//! Small serde helpers for Consul's encodings: base64 `[]byte`, nanosecond durations,
//! and JSON `null` standing in for an empty collection.

use serde::{Deserialize, Deserializer, Serializer};

/// `Option<Vec<u8>>` as base64 (Go's `[]byte`): `None` is `null`.
pub mod base64_opt {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        match s {
            None => Ok(None),
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("illegal base64 data: {e}"))),
        }
    }
}

/// `Vec<u8>` as base64 (compact bytes inside JSON messages).
pub mod base64_bytes {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("illegal base64 data: {e}")))
    }
}

/// Deserializes `null` as the type's default (Go decodes `null` into a nil slice/map,
/// which handlers then treat as empty).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}
