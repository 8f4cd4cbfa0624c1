//! Model management: `/api/tags`, `/api/show`, `/api/ps`, `/api/pull`, `/api/create`,
//! `/api/copy`, `/api/delete`, plus `/api/version` and the error body.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::chat::Message;
use super::common::{OneOrMany, Options, is_false, nullable};

/// Requests that name a model accept the deprecated `name` key, which Ollama reads when `model`
/// is empty. Ollama's own Go client sends both (`"name": ""`), so a plain serde alias would
/// reject it as a duplicate; instead `name` is folded into `model` before the fields are read.
/// The object is read as a struct with the type's fields and `name`, so that
/// [`crate::strict::from_slice`] checks its keys as it does any struct's.
macro_rules! accepts_legacy_name {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                static FIELDS: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
                let fields = FIELDS.get_or_init(|| {
                    let mut fields = crate::strict::declared_fields(<$t>::deserialize).to_vec();
                    fields.push("name");
                    fields
                });
                let mut map = deserializer.deserialize_struct(stringify!($t), fields, ObjectVisitor)?;
                if let Some(Value::String(name)) = map.remove("name") {
                    let model_empty = map.get("model").is_none_or(|m| m.as_str() == Some(""));
                    if model_empty && !name.is_empty() {
                        map.insert("model".to_owned(), Value::String(name));
                    }
                }
                <$t>::deserialize(Value::Object(map)).map_err(de::Error::custom)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, serializer)
            }
        }
    };
}

/// A JSON object, whatever fields it was asked for as.
struct ObjectVisitor;

impl<'de> de::Visitor<'de> for ObjectVisitor {
    type Value = Map<String, Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        while let Some((key, value)) = access.next_entry::<String, Value>()? {
            map.insert(key, value);
        }
        Ok(map)
    }
}

/// What a model is, as `/api/tags`, `/api/show` and `/api/ps` describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelDetails {
    #[serde(default)]
    pub parent_model: String,
    /// `gguf`.
    #[serde(default)]
    pub format: String,
    #[serde(default)]
    pub family: String,
    /// `null` when unknown, as Go sends a nil slice.
    #[serde(default)]
    pub families: Option<Vec<String>>,
    /// E.g. `7.6B`.
    #[serde(default)]
    pub parameter_size: String,
    /// E.g. `Q4_K_M`.
    #[serde(default)]
    pub quantization_level: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding_length: Option<u64>,
}

/// What a model can do (`/api/show` `capabilities`); use as catalog metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    Completion,
    Tools,
    Insert,
    Vision,
    Embedding,
    Thinking,
    Image,
    Audio,
    /// A capability newer than this crate, kept as sent.
    Other(String),
}

impl Capability {
    pub fn as_str(&self) -> &str {
        match self {
            Capability::Completion => "completion",
            Capability::Tools => "tools",
            Capability::Insert => "insert",
            Capability::Vision => "vision",
            Capability::Embedding => "embedding",
            Capability::Thinking => "thinking",
            Capability::Image => "image",
            Capability::Audio => "audio",
            Capability::Other(s) => s,
        }
    }
}

impl From<&str> for Capability {
    fn from(s: &str) -> Self {
        match s {
            "completion" => Capability::Completion,
            "tools" => Capability::Tools,
            "insert" => Capability::Insert,
            "vision" => Capability::Vision,
            "embedding" => Capability::Embedding,
            "thinking" => Capability::Thinking,
            "image" => Capability::Image,
            "audio" => Capability::Audio,
            other => Capability::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Capability {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Capability {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Capability::from(String::deserialize(deserializer)?.as_str()))
    }
}

/// `GET /api/tags`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<ModelEntry>,
}

/// A model on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub name: String,
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
    #[serde(with = "time::serde::rfc3339")]
    pub modified_at: OffsetDateTime,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the manifest.
    pub digest: String,
    #[serde(default)]
    pub details: ModelDetails,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
}

/// `POST /api/show` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct ShowRequest {
    #[serde(default)]
    pub model: String,
    /// Include large fields (tokenizer arrays) in `model_info`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub verbose: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system: String,
    /// Deprecated.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Options>,
}
accepts_legacy_name!(ShowRequest);

/// `POST /api/show` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShowResponse {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub license: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub modelfile: String,
    /// The model's default parameters, one `name value` per line.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parameters: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub renderer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parser: String,
    #[serde(default)]
    pub details: ModelDetails,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub remote_host: String,
    /// GGUF metadata: `general.architecture`, `<arch>.context_length`, … (values of any JSON
    /// type, `null` for arrays left out without `verbose`).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Map::is_empty")]
    pub model_info: Map<String, Value>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Map::is_empty")]
    pub projector_info: Map<String, Value>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub tensors: Vec<Tensor>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<Capability>,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<OffsetDateTime>,
    /// Minimum server version the model needs.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requires: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub shape: Vec<u64>,
}

/// `GET /api/ps`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsResponse {
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<RunningModel>,
}

/// A model loaded in memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningModel {
    pub name: String,
    #[serde(default)]
    pub model: String,
    /// Bytes in memory, all devices.
    pub size: u64,
    pub digest: String,
    #[serde(default)]
    pub details: ModelDetails,
    /// When it unloads if unused.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Bytes in GPU memory; less than `size` means part of the model runs on the CPU.
    #[serde(default)]
    pub size_vram: u64,
    /// The context it was loaded with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
}

/// `POST /api/pull` request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct PullRequest {
    #[serde(default)]
    pub model: String,
    /// Allow plain HTTP and unverified TLS to the registry.
    #[serde(default, skip_serializing_if = "is_false")]
    pub insecure: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}
accepts_legacy_name!(PullRequest);

impl PullRequest {
    /// Ollama streams unless `stream` is explicitly `false`.
    pub fn is_streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

/// A progress line of pull, push and create; the last is `{"status":"success"}`. While a layer
/// downloads, `digest`, `total` and (after the first bytes) `completed` are set, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressResponse {
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

impl ProgressResponse {
    pub fn status(status: impl Into<String>) -> Self {
        Self { status: status.into(), ..Self::default() }
    }

    /// The final line of a successful operation.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }
}

/// `POST /api/create` request: from an existing model (`from`) or from uploaded blobs (`files`,
/// file name → `sha256:<hex>`), optionally quantized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct CreateRequest {
    #[serde(default)]
    pub model: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub adapters: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<OneOrMany>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub system: String,
    /// Default options baked into the model (`num_ctx`, `stop`, …).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Map::is_empty")]
    pub parameters: Map<String, Value>,
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// `q4_K_M`, `q4_K_S`, `q8_0`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quantize: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub renderer: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parser: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
}
accepts_legacy_name!(CreateRequest);

impl CreateRequest {
    /// Ollama streams unless `stream` is explicitly `false`.
    pub fn is_streaming(&self) -> bool {
        self.stream.unwrap_or(true)
    }
}

/// `POST /api/copy` request: 200 with an empty body, or 404.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRequest {
    pub source: String,
    pub destination: String,
}

/// `DELETE /api/delete` request: 200 with an empty body, or 404.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct DeleteRequest {
    #[serde(default)]
    pub model: String,
}
accepts_legacy_name!(DeleteRequest);

/// `GET /api/version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResponse {
    pub version: String,
}

/// Every Ollama error: `{"error": "…"}`, with the HTTP status carrying the kind; mid-stream, the
/// same object as the last line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    /// A stable code, for the failures OllamaNet's engine tells apart where Ollama has only a
    /// message (`registry_unavailable`, `registry_timeout`, …). Ollama never sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl ErrorResponse {
    pub fn new(error: impl Into<String>) -> Self {
        Self { error: error.into(), code: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_name_is_read_when_model_is_empty() {
        let only_name: DeleteRequest = serde_json::from_str(r#"{"name":"llama3:13b"}"#).unwrap();
        assert_eq!(only_name.model, "llama3:13b");
        // What Ollama's Go client sends: both keys, `name` empty.
        let both: DeleteRequest = serde_json::from_str(r#"{"model":"llama3","name":""}"#).unwrap();
        assert_eq!(both.model, "llama3");
        let model_wins: ShowRequest = serde_json::from_str(r#"{"model":"a","name":"b","verbose":true}"#).unwrap();
        assert_eq!((model_wins.model.as_str(), model_wins.verbose), ("a", true));
        let pull: PullRequest = serde_json::from_str(r#"{"name":"x","stream":false}"#).unwrap();
        assert_eq!((pull.model.as_str(), pull.is_streaming()), ("x", false));
        assert_eq!(serde_json::to_string(&only_name).unwrap(), r#"{"model":"llama3:13b"}"#);
    }

    #[test]
    fn legacy_name_wrapper_keeps_field_errors() {
        let err = serde_json::from_str::<PullRequest>(r#"{"model":"x","insecure":"yes"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        assert!(serde_json::from_str::<DeleteRequest>("[]").is_err());
    }

    #[test]
    fn capabilities_keep_unknown_values() {
        let caps: Vec<Capability> = serde_json::from_str(r#"["completion","vision","teleport"]"#).unwrap();
        assert_eq!(caps, [Capability::Completion, Capability::Vision, Capability::Other("teleport".into())]);
        assert_eq!(serde_json::to_string(&caps).unwrap(), r#"["completion","vision","teleport"]"#);
    }
}
