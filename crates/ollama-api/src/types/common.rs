//! Values shared by several endpoints: `format`, `think`, `options`, metrics, log probabilities.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// `format`: free text constrained to JSON (`"json"`) or to a JSON Schema (structured output).
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Json,
    Schema(Map<String, Value>),
}

impl Serialize for Format {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Format::Json => serializer.serialize_str("json"),
            Format::Schema(schema) => schema.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Format {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) if s == "json" => Ok(Format::Json),
            Value::Object(schema) => Ok(Format::Schema(schema)),
            _ => Err(de::Error::custom(r#"invalid format: expected "json" or a valid JSON schema"#)),
        }
    }
}

/// Field helper: Ollama treats `"format": ""` and `"format": null` as "no format".
pub(crate) fn optional_format<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Format>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => Format::deserialize(v).map(Some).map_err(de::Error::custom),
    }
}

/// `think`: reasoning on or off, or a reasoning effort for models that support levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Think {
    Enabled(bool),
    Level(ThinkLevel),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkLevel {
    Low,
    Medium,
    High,
    Max,
}

impl ThinkLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkLevel::Low => "low",
            ThinkLevel::Medium => "medium",
            ThinkLevel::High => "high",
            ThinkLevel::Max => "max",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "low" => Some(ThinkLevel::Low),
            "medium" => Some(ThinkLevel::Medium),
            "high" => Some(ThinkLevel::High),
            "max" => Some(ThinkLevel::Max),
            _ => None,
        }
    }
}

impl Think {
    /// A level means thinking is on.
    pub fn is_enabled(self) -> bool {
        match self {
            Think::Enabled(on) => on,
            Think::Level(_) => true,
        }
    }
}

impl Serialize for Think {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Think::Enabled(on) => serializer.serialize_bool(*on),
            Think::Level(level) => serializer.serialize_str(level.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Think;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"true, false, "low", "medium", "high" or "max""#)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Think, E> {
                Ok(Think::Enabled(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Think, E> {
                ThinkLevel::parse(v).map(Think::Level).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A string or a list of strings: embedding `input`, a model's `license`, OpenAI's `stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            OneOrMany::One(s) => (Some(s.as_str()), &[][..]),
            OneOrMany::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Model parameters (`options`), typed for every key Ollama documents. Keys it does not know go
/// to `extra` and are sent on unchanged, as Ollama ignores unknown options with a warning.
///
/// Integers accept a JSON float (truncated) and `stop` accepts a single string, as Ollama does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_keep: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Maximum tokens to generate; -1 is unbounded, -2 fills the context.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typical_p: Option<f32>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub repeat_last_n: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub mirostat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirostat_tau: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirostat_eta: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub penalize_newline: Option<bool>,
    #[serde(default, deserialize_with = "lenient_strings", skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    // Runner options: a value that differs from the loaded model's forces a reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numa: Option<bool>,
    /// Context window in tokens. Always send it: each different value reloads the model, and
    /// without it an over-long prompt may be silently truncated to the server's default.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_batch: Option<i64>,
    /// Layers to offload to the GPU; -1 lets the server decide.
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_gpu: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub main_gpu: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_vram: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vocab_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_mmap: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_mlock: Option<bool>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub num_thread: Option<i64>,
    #[serde(default, deserialize_with = "lenient_int", skip_serializing_if = "Option::is_none")]
    pub draft_num_predict: Option<i64>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Timing and token counts of a finished request (final chunk). Durations are nanoseconds.
/// Tokens per second = `eval_count / eval_duration * 1e9`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_eval_duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_duration: Option<u64>,
}

/// One alternative token and its log probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<u8>,
}

/// The log probability of a generated token, with the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logprob {
    pub token: String,
    pub logprob: f64,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub bytes: Vec<u8>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<TokenLogprob>,
}

/// Go decodes `null` into an empty slice or map; so do we.
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An integer option; Go's options parser truncates a JSON float, so `4096.0` is 4096.
fn lenient_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v).map(Some).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.is_finite() { Ok(Some(v as i64)) } else { Err(E::invalid_value(de::Unexpected::Float(v), &self)) }
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    deserializer.deserialize_any(V)
}

/// `stop` as a list; a single string is accepted too (Ollama's OpenAPI description allows it).
fn lenient_strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(Option::<OneOrMany>::deserialize(deserializer)?.map(OneOrMany::into_vec))
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_json_or_a_schema() {
        assert_eq!(serde_json::from_str::<Format>(r#""json""#).unwrap(), Format::Json);
        let schema: Format = serde_json::from_str(r#"{"type":"object"}"#).unwrap();
        assert!(matches!(schema, Format::Schema(ref m) if m["type"] == "object"));
        assert!(serde_json::from_str::<Format>(r#""xml""#).is_err());
        assert!(serde_json::from_str::<Format>("[]").is_err());
    }

    #[test]
    fn empty_or_null_format_is_no_format() {
        #[derive(Deserialize)]
        struct R {
            #[serde(default, deserialize_with = "optional_format")]
            format: Option<Format>,
        }
        for json in [r#"{"format":""}"#, r#"{"format":null}"#, "{}"] {
            assert_eq!(serde_json::from_str::<R>(json).unwrap().format, None, "{json}");
        }
    }

    #[test]
    fn think_is_a_bool_or_a_level() {
        assert_eq!(serde_json::from_str::<Think>("true").unwrap(), Think::Enabled(true));
        assert_eq!(serde_json::from_str::<Think>(r#""low""#).unwrap(), Think::Level(ThinkLevel::Low));
        assert!(serde_json::from_str::<Think>(r#""extreme""#).is_err());
        assert!(serde_json::from_str::<Think>("1").is_err());
        assert_eq!(serde_json::to_string(&Think::Level(ThinkLevel::Max)).unwrap(), r#""max""#);
        assert!(!Think::Enabled(false).is_enabled() && Think::Level(ThinkLevel::High).is_enabled());
    }

    #[test]
    fn options_are_typed_with_unknown_keys_kept() {
        let o: Options = serde_json::from_str(
            r#"{"num_ctx":4096.0,"temperature":0,"stop":"\n","tfs_z":0.5,"seed":null,"use_mmap":true}"#,
        )
        .unwrap();
        assert_eq!(o.num_ctx, Some(4096));
        assert_eq!(o.temperature, Some(0.0));
        assert_eq!(o.stop.as_deref(), Some(&["\n".to_owned()][..]));
        assert_eq!(o.seed, None);
        assert_eq!(o.use_mmap, Some(true));
        assert_eq!(o.extra["tfs_z"], 0.5);
        let back: Value = serde_json::to_value(&o).unwrap();
        assert_eq!(back["stop"], serde_json::json!(["\n"]));
        assert_eq!(back["tfs_z"], 0.5);
        assert!(back.get("seed").is_none());
    }

    #[test]
    fn options_reject_wrong_types_as_ollama_does() {
        for bad in [r#"{"temperature":"hot"}"#, r#"{"num_ctx":"big"}"#, r#"{"use_mmap":1}"#, r#"{"stop":[1]}"#] {
            assert!(serde_json::from_str::<Options>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_or_many() {
        let one: OneOrMany = serde_json::from_str(r#""a""#).unwrap();
        let many: OneOrMany = serde_json::from_str(r#"["a","b"]"#).unwrap();
        assert_eq!(one.texts().collect::<Vec<_>>(), ["a"]);
        assert_eq!(many.texts().collect::<Vec<_>>(), ["a", "b"]);
    }
}
