use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Numbers compared as numbers: Go writes a float32 zero as `0`, serde as `0.0`, and JSON does
/// not tell them apart.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::from(n.as_f64().expect("finite")),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalize(v))).collect()),
        other => other,
    }
}

/// Parses `json` as `T`, writes it back, and returns (example, written), both normalized. The
/// written form goes through text so that `f32`s are compared as written, not widened.
pub fn round_trip<T: DeserializeOwned + Serialize>(json: &str) -> (Value, Value) {
    let typed: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("does not parse: {e}\n{json}"));
    let written = serde_json::to_string(&typed).unwrap();
    let example: Value = serde_json::from_str(json).unwrap();
    (normalize(example), normalize(serde_json::from_str(&written).unwrap()))
}

/// The documented example parses as `T` and is written back unchanged.
pub fn golden<T: DeserializeOwned + Serialize>(name: &str) {
    let (example, written) = round_trip::<T>(&fixture(name));
    assert_eq!(written, example, "{name} round trip");
}

/// Like [`golden`], for examples that differ from what the server sends: `adjust` turns the
/// example into the server's form, and says in the test why.
pub fn golden_adjusted<T: DeserializeOwned + Serialize>(name: &str, adjust: impl FnOnce(&mut Value)) {
    let (mut example, written) = round_trip::<T>(&fixture(name));
    adjust(&mut example);
    assert_eq!(written, normalize(example), "{name} round trip (adjusted)");
}

pub fn set(v: &mut Value, pointer: &str, value: Value) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    v.pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("{pointer}"))
        .insert(key.into(), value);
}

pub fn remove(v: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let removed = v.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|o| o.remove(key));
    assert!(removed.is_some(), "{pointer} not in the example");
}
