//! Request bodies read once, and refused wherever an Ollama server could read them differently.
//!
//! Ollama is written in Go, whose `encoding/json` matches an object's keys to a struct's fields
//! regardless of case — under Unicode simple folding, so `ſ` (U+017F) is an `s` and the Kelvin
//! sign `K` (U+212A) a `k` — and lets the last of several matching keys win; keys of a map (such
//! as `options`) it matches exactly, again keeping the last. serde matches keys exactly and
//! ignores unknown ones, so `{"model":"public","Model":"secret"}` is a request for `public` to
//! serde and for `secret` to Ollama. [`from_slice`] reads a body with serde and refuses it when
//!
//! - a key of an object read into a struct folds to one of the struct's fields without being it
//!   (`Model`, `ſtream`): [`Refusal::Ambiguous`];
//! - a key appears twice in one object, at any depth: [`Refusal::Duplicate`].
//!
//! What is accepted is unambiguous; re-encoding it (serde writes each field once, spelled as
//! declared, and drops unknown keys) gives an engine the very request the platform checked.
//!
//! The check runs inside the one parse, as a layer around `serde_json`'s deserializer that sees
//! every key and, for structs, the field names their `Deserialize` declares.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

/// Why a well-formed body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{key}` would be read as `{field}` by the engine, which matches keys regardless of case; write `{field}`")]
    Ambiguous { key: String, field: String },
    #[error("`{key}` appears more than once in one object")]
    Duplicate { key: String },
}

impl Refusal {
    /// The stable code clients branch on: `ambiguous_field` or `duplicate_field`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Ambiguous { .. } => "ambiguous_field",
            Refusal::Duplicate { .. } => "duplicate_field",
        }
    }

    /// The key as the body wrote it.
    pub fn key(&self) -> &str {
        match self {
            Refusal::Ambiguous { key, .. } | Refusal::Duplicate { key } => key,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error(transparent)]
    Refused(Refusal),
    /// Not JSON, or not the shape of the request.
    #[error("{0}")]
    Invalid(serde_json::Error),
}

/// Reads `bytes` as a `T`, refusing keys an Ollama server could read differently (above).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    let refusal = RefCell::new(None);
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let read = T::deserialize(Strict { inner: &mut json, refusal: &refusal }).and_then(|v| json.end().map(|()| v));
    // serde may wrap or replace the error a refusal raised (untagged enums do): the refusal
    // itself is kept aside.
    match (read, refusal.into_inner()) {
        (_, Some(r)) => Err(BodyError::Refused(r)),
        (Ok(v), None) => Ok(v),
        (Err(e), None) => Err(BodyError::Invalid(e)),
    }
}

/// Go's folding of a key character, as far as it can meet an ASCII field name: ASCII letters
/// fold with their other case, and the only other characters whose simple case-folding orbit
/// holds an ASCII letter are U+017F (`ſ`, with `s`) and U+212A (Kelvin sign, with `k`).
fn fold(c: char) -> char {
    match c {
        '\u{17F}' => 's',
        '\u{212A}' => 'k',
        c => c.to_ascii_lowercase(),
    }
}

fn folds_to(key: &str, field: &str) -> bool {
    key.chars().map(fold).eq(field.chars().map(fold))
}

/// The keys of one object so far.
struct Object {
    /// The fields of the struct the object is read into; `None` for a map.
    fields: Option<&'static [&'static str]>,
    seen: HashSet<String>,
}

impl Object {
    fn admit(&mut self, key: &str) -> Result<(), Refusal> {
        if let Some(fields) = self.fields
            && !fields.contains(&key)
            && let Some(field) = fields.iter().find(|f| folds_to(key, f))
        {
            return Err(Refusal::Ambiguous { key: key.to_owned(), field: (*field).to_owned() });
        }
        if !self.seen.insert(key.to_owned()) {
            return Err(Refusal::Duplicate { key: key.to_owned() });
        }
        Ok(())
    }
}

type Aside<'r> = &'r RefCell<Option<Refusal>>;

/// The layer around a deserializer: every visitor it hands out is wrapped in [`Visit`].
struct Strict<'r, D> {
    inner: D,
    refusal: Aside<'r>,
}

impl<'r, D> Strict<'r, D> {
    fn visit<V>(&self, inner: V, fields: Option<&'static [&'static str]>) -> Visit<'r, V> {
        Visit { inner, refusal: self.refusal, fields }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.visit(visitor, None);
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<'_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string deserialize_bytes
        deserialize_byte_buf deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, None);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, None);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, None);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, None);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, Some(fields));
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.visit(visitor, None);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    /// What the type ignores, an engine with the same fields ignores too: not looked into.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor whose nested deserializers, sequences and objects are wrapped in turn.
struct Visit<'r, V> {
    inner: V,
    refusal: Aside<'r>,
    fields: Option<&'static [&'static str]>,
}

macro_rules! forward_visit {
    ($($method:ident($t:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $t) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool) visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128) visit_f32(f32)
        visit_f64(f64) visit_char(char) visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    );

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_some(Strict { inner: d, refusal: self.refusal })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict { inner: d, refusal: self.refusal })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Seq { inner: seq, refusal: self.refusal })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let object = Object { fields: self.fields, seen: HashSet::new() };
        self.inner.visit_map(Map { inner: map, refusal: self.refusal, object })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Enum { inner: data, refusal: self.refusal })
    }
}

/// A seed whose deserializer is wrapped.
struct Seed<'r, S> {
    inner: S,
    refusal: Aside<'r>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Strict { inner: d, refusal: self.refusal })
    }
}

struct Seq<'r, A> {
    inner: A,
    refusal: Aside<'r>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Seq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed { inner: seed, refusal: self.refusal })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

struct Map<'r, A> {
    inner: A,
    refusal: Aside<'r>,
    object: Object,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Map<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(Key { inner: seed, refusal: self.refusal, object: &mut self.object })
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed { inner: seed, refusal: self.refusal })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// Reads a key as text, admits it into its object, then hands it to the type's own seed.
struct Key<'a, 'r, K> {
    inner: K,
    refusal: Aside<'r>,
    object: &'a mut Object,
}

enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'de>, E> {
        Ok(Text::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'de>, E> {
        Ok(Text::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'de>, E> {
        Ok(Text::Owned(v))
    }
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<'_, '_, K> {
    type Value = K::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<K::Value, D::Error> {
        let key = d.deserialize_str(TextVisitor)?;
        let text = match &key {
            Text::Borrowed(s) => s,
            Text::Owned(s) => s.as_str(),
        };
        if let Err(refusal) = self.object.admit(text) {
            let message = refusal.to_string();
            self.refusal.borrow_mut().get_or_insert(refusal);
            return Err(de::Error::custom(message));
        }
        match key {
            Text::Borrowed(s) => self.inner.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            Text::Owned(s) => self.inner.deserialize(de::value::StringDeserializer::new(s)),
        }
    }
}

struct Enum<'r, A> {
    inner: A,
    refusal: Aside<'r>,
}

impl<'de, 'r, A: EnumAccess<'de>> EnumAccess<'de> for Enum<'r, A> {
    type Error = A::Error;
    type Variant = Variant<'r, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((value, Variant { inner: variant, refusal: self.refusal }))
    }
}

struct Variant<'r, A> {
    inner: A,
    refusal: Aside<'r>,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Variant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed { inner: seed, refusal: self.refusal })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Visit { inner: visitor, refusal: self.refusal, fields: None })
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(fields, Visit { inner: visitor, refusal: self.refusal, fields: Some(fields) })
    }
}

/// The field names a derived `Deserialize` declares, for a type whose `Deserialize` is written by
/// hand around the derived one (and so would otherwise hide them from the check).
pub(crate) fn declared_fields<T>(derived: impl FnOnce(FieldProbe) -> Result<T, ProbeError>) -> &'static [&'static str] {
    match derived(FieldProbe) {
        Err(ProbeError(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that only answers which fields a struct asks for.
pub(crate) struct FieldProbe;

#[derive(Debug)]
pub(crate) struct ProbeError(Option<&'static [&'static str]>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("not a struct")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<M: fmt::Display>(_: M) -> Self {
        ProbeError(None)
    }
}

impl<'de> Deserializer<'de> for FieldProbe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::{ChatRequest, EmbedRequest, GenerateRequest, ShowRequest};

    fn refusal<T: DeserializeOwned + fmt::Debug>(body: &str) -> Refusal {
        match from_slice::<T>(body.as_bytes()) {
            Err(BodyError::Refused(r)) => r,
            other => panic!("{body}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_key_that_folds_to_a_field_is_ambiguous() {
        for (body, key, field) in [
            (r#"{"model":"public","Model":"secret"}"#, "Model", "model"),
            (r#"{"Model":"secret","model":"public"}"#, "Model", "model"),
            (r#"{"MODEL":"secret"}"#, "MODEL", "model"),
            (r#"{"model":"m","ſtream":false}"#, "ſtream", "stream"),
            (r#"{"model":"m","\u017ftream":false}"#, "ſtream", "stream"),
            (r#"{"model":"m","\u212Aeep_alive":0}"#, "\u{212A}eep_alive", "keep_alive"),
            (r#"{"model":"m","messages":[{"role":"user","content":"a","Content":"b"}]}"#, "Content", "content"),
            (r#"{"model":"m","messages":[{"ROLE":"system","content":"a"}]}"#, "ROLE", "role"),
        ] {
            assert_eq!(
                refusal::<ChatRequest>(body),
                Refusal::Ambiguous { key: key.to_owned(), field: field.to_owned() },
                "{body}"
            );
        }
        let r = refusal::<GenerateRequest>(r#"{"model":"m","Prompt":"x"}"#);
        assert_eq!(r.code(), "ambiguous_field");
        assert_eq!(refusal::<EmbedRequest>(r#"{"model":"m","mOdel":"x"}"#).key(), "mOdel");
        assert_eq!(refusal::<ShowRequest>(r#"{"model":"m","Name":"x"}"#).code(), "ambiguous_field");
    }

    #[test]
    fn a_repeated_key_is_refused_at_any_depth() {
        for body in [
            r#"{"model":"public","model":"secret"}"#,
            r#"{"model":"m","options":{"num_ctx":1,"num_ctx":2}}"#,
            r#"{"model":"m","options":{"custom":1,"custom":2}}"#,
            r#"{"model":"m","messages":[{"role":"user","role":"system","content":""}]}"#,
            r#"{"model":"m","format":{"type":"object","type":"array"}}"#,
            r#"{"model":"m","mod\u0065l":"x"}"#,
        ] {
            assert_eq!(refusal::<ChatRequest>(body).code(), "duplicate_field", "{body}");
        }
        assert_eq!(refusal::<ShowRequest>(r#"{"model":"a","model":"b"}"#).code(), "duplicate_field");
    }

    #[test]
    fn what_go_reads_exactly_passes() {
        // Maps keep their keys as written: Ollama's options are matched exactly, and the key of
        // a tool's parameters or of a schema is data.
        let req: ChatRequest = from_slice(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],"options":{"Num_ctx":1,"num_ctx":2},
                "format":{"properties":{"Name":{},"name":{}}},"unknown":1,"Unknown":2}"#,
        )
        .unwrap();
        assert_eq!(req.model, "m");
        assert_eq!(req.options.unwrap().num_ctx, Some(2));
        let encoded =
            serde_json::to_value(from_slice::<ChatRequest>(br#"{"model":"m","extra":{"model":"x"}}"#).unwrap())
                .unwrap();
        assert_eq!(encoded, json!({"model": "m", "messages": []}), "unknown keys are not forwarded");
        let show: ShowRequest = from_slice(br#"{"model":"m","name":""}"#).unwrap();
        assert_eq!(show.model, "m");
    }

    #[test]
    fn malformed_bodies_are_invalid_not_refused() {
        for body in ["", "{", r#"{"model":"m"} x"#, r#"{"model":1}"#, r#"{"model":"m","messages":{}}"#] {
            assert!(matches!(from_slice::<ChatRequest>(body.as_bytes()), Err(BodyError::Invalid(_))), "{body}");
        }
    }
}
