//! A catalog model: its metadata (the fields of Ollama's `/api/show` and the original design's
//! catalog), who may use it, and its tags.

use kit::{FieldError, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::CatalogError;
use crate::tags::Tag;

/// Who may see and use a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Everyone (signed in, for use; anyone, to see it in explore).
    pub public: bool,
    /// When not public: the roles whose holders may (case-insensitive). Admins always may.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Default for Access {
    fn default() -> Self {
        Self { public: true, roles: Vec::new() }
    }
}

impl Access {
    /// Whether a caller with `roles` may see and use the model.
    pub fn allows(&self, roles: &[String]) -> bool {
        self.public
            || roles.iter().any(|r| r.eq_ignore_ascii_case(kit::authn::ADMIN_ROLE))
            || self.roles.iter().any(|allowed| roles.iter().any(|r| r.eq_ignore_ascii_case(allowed)))
    }
}

/// A model as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub name: String,
    #[serde(flatten)]
    pub fields: ModelFields,
    pub access: Access,
    pub tags: Vec<Tag>,
    /// Generations and embeddings served with this model (from usage records).
    pub requests: i64,
    /// Whether some engine has the model (explore only, from the inference service's reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed: Option<bool>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
}

/// The descriptive fields, all optional. In a `PATCH` an absent field is left alone and `null`
/// clears it (lists: `[]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `gguf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub families: Vec<String>,
    /// As engines write it: `135M`, `7B`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameter_count: Option<i64>,
    /// `Q4_K_M`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization_version: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_type: Option<String>,
    /// Tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modelfile: Option<String>,
    /// Language codes: `en`, `fr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub languages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    /// `completion`, `tools`, `vision`, `embedding`, `insert`, `thinking`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released_at: Option<Timestamp>,
}

/// A partial update: each field present replaces the stored one.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelChange {
    #[serde(default)]
    pub description: Option<Option<String>>,
    #[serde(default)]
    pub version: Option<Option<String>>,
    #[serde(default)]
    pub size: Option<Option<i64>>,
    #[serde(default)]
    pub digest: Option<Option<String>>,
    #[serde(default)]
    pub format: Option<Option<String>>,
    #[serde(default)]
    pub family: Option<Option<String>>,
    #[serde(default)]
    pub families: Option<Vec<String>>,
    #[serde(default)]
    pub parameter_size: Option<Option<String>>,
    #[serde(default)]
    pub parameter_count: Option<Option<i64>>,
    #[serde(default)]
    pub quantization_level: Option<Option<String>>,
    #[serde(default)]
    pub quantization_version: Option<Option<i64>>,
    #[serde(default)]
    pub architecture: Option<Option<String>>,
    #[serde(default)]
    pub file_type: Option<Option<String>>,
    #[serde(default)]
    pub context_length: Option<Option<i64>>,
    #[serde(default)]
    pub license: Option<Option<String>>,
    #[serde(default)]
    pub template: Option<Option<String>>,
    #[serde(default)]
    pub modelfile: Option<Option<String>>,
    #[serde(default)]
    pub languages: Option<Vec<String>>,
    #[serde(default)]
    pub reference_link: Option<Option<String>>,
    #[serde(default)]
    pub image_url: Option<Option<String>>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub released_at: Option<Option<Timestamp>>,
    #[serde(default)]
    pub access: Option<Access>,
}

impl ModelChange {
    /// `fields` with this change applied.
    pub fn apply(self, mut f: ModelFields) -> ModelFields {
        macro_rules! set {
            ($($field:ident),*) => {$(
                if let Some(v) = self.$field {
                    f.$field = v;
                }
            )*};
        }
        set!(
            description,
            version,
            size,
            digest,
            format,
            family,
            families,
            parameter_size,
            parameter_count,
            quantization_level,
            quantization_version,
            architecture,
            file_type,
            context_length,
            license,
            template,
            modelfile,
            languages,
            reference_link,
            image_url,
            capabilities,
            released_at
        );
        f
    }
}

const MAX_TEXT: usize = 200;
const MAX_DESCRIPTION: usize = 10_000;
const MAX_DOCUMENT: usize = 200_000;
const MAX_LIST: usize = 32;

impl ModelFields {
    /// Checks every field; list items are lower-cased (they are matched case-insensitively).
    pub fn validated(mut self) -> Result<Self, CatalogError> {
        let mut errors = Vec::new();
        let too_long = |field: &str, value: &Option<String>, max: usize| {
            value
                .as_ref()
                .filter(|v| v.chars().count() > max)
                .map(|_| FieldError::new(field, "too_long", format!("at most {max} characters")))
        };
        errors.extend(too_long("description", &self.description, MAX_DESCRIPTION));
        errors.extend(too_long("template", &self.template, MAX_DOCUMENT));
        errors.extend(too_long("modelfile", &self.modelfile, MAX_DOCUMENT));
        errors.extend(too_long("license", &self.license, MAX_DOCUMENT));
        for (field, value) in [
            ("version", &self.version),
            ("digest", &self.digest),
            ("format", &self.format),
            ("family", &self.family),
            ("parameter_size", &self.parameter_size),
            ("quantization_level", &self.quantization_level),
            ("architecture", &self.architecture),
            ("file_type", &self.file_type),
        ] {
            errors.extend(too_long(field, value, MAX_TEXT));
        }
        for (field, value) in [("reference_link", &self.reference_link), ("image_url", &self.image_url)] {
            let valid = |url: &String| {
                (url.starts_with("https://") || url.starts_with("http://"))
                    && url.len() <= 2000
                    && !url.chars().any(char::is_whitespace)
            };
            if value.as_ref().is_some_and(|url| !valid(url)) {
                errors.push(FieldError::new(field, "invalid_url", "an http(s) URL without spaces"));
            }
        }
        for (field, value) in [
            ("size", self.size),
            ("parameter_count", self.parameter_count),
            ("quantization_version", self.quantization_version),
            ("context_length", self.context_length),
        ] {
            if value.is_some_and(|v| v < 0) {
                errors.push(FieldError::new(field, "negative", "must not be negative"));
            }
        }
        self.family = self.family.map(|f| f.to_lowercase());
        for (field, list) in [
            ("families", &mut self.families),
            ("languages", &mut self.languages),
            ("capabilities", &mut self.capabilities),
        ] {
            if let Err(e) = list_items(field, list) {
                errors.push(e);
            }
        }
        if errors.is_empty() { Ok(self) } else { Err(CatalogError::Validation(errors)) }
    }
}

/// Lower-cases, sorts and de-duplicates `list`, whose items are words (`[a-z0-9._-]`).
pub(crate) fn list_items(field: &str, list: &mut Vec<String>) -> Result<(), FieldError> {
    for item in list.iter_mut() {
        *item = item.trim().to_lowercase();
    }
    list.sort();
    list.dedup();
    if list.len() > MAX_LIST {
        return Err(FieldError::new(field, "too_many", format!("at most {MAX_LIST} items")));
    }
    if list.iter().any(|i| i.is_empty() || i.len() > 64 || !i.chars().all(|c| c.is_alphanumeric() || "._-".contains(c)))
    {
        return Err(FieldError::new(field, "invalid_item", "items are words of letters, digits, `.`, `_` and `-`"));
    }
    Ok(())
}

impl Access {
    /// Role names are matched case-insensitively; not public with no role means admins only.
    pub(crate) fn validated(mut self) -> Result<Self, CatalogError> {
        list_items("access.roles", &mut self.roles).map_err(|e| CatalogError::Validation(vec![e]))?;
        Ok(self)
    }
}
