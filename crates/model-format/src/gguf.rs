//! GGUF files: a metadata reader (what `/api/show` and `/api/tags` report) and a writer (the tiny
//! test model and the safetensors import).
//!
//! Layout (version 3, little-endian): magic `GGUF`, version u32, tensor count u64, metadata count
//! u64, the metadata (key string, value type u32, value), the tensor infos (name, dimension count
//! u32, dimensions u64 innermost first, ggml type u32, offset u64 from the data start), padding to
//! `general.alignment` (32), then the tensor data, each tensor aligned.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays longer than this are summarised (not kept) unless the caller asks for everything.
const LARGE_ARRAY: u64 = 64;

// What a header may declare, whatever the file holds. Real models have tens of metadata pairs,
// up to tens of thousands of tensors, strings of at most a few hundred kilobytes (chat
// templates) and vocabularies of a few hundred thousand tokens.
const MAX_KV: u64 = 1 << 16;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_STRING: u64 = 16 << 20;
/// ggml's own limit is 4.
const MAX_DIMS: u32 = 8;
/// Items of long arrays a full read keeps, all arrays together (a full read is `/api/show`
/// with `verbose`; what does not fit is summarised as if the read were not full).
const MAX_KEPT_ITEMS: u64 = 1 << 22;

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error("not a GGUF file")]
    BadMagic,
    #[error("unsupported GGUF version {0}")]
    Version(u32),
    #[error("malformed GGUF: {0}")]
    Malformed(String),
    #[error("malformed GGUF: the header ends early")]
    Truncated,
}

/// A metadata value. Arrays keep their element type so that they can be written back.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(ValueType, Vec<Value>),
    /// An array that was too long to keep: its element type and length.
    LongArray(ValueType, u64),
    U64(u64),
    I64(i64),
    F64(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    fn from_u32(v: u32) -> Result<Self, GgufError> {
        Ok(match v {
            0 => Self::U8,
            1 => Self::I8,
            2 => Self::U16,
            3 => Self::I16,
            4 => Self::U32,
            5 => Self::I32,
            6 => Self::F32,
            7 => Self::Bool,
            8 => Self::String,
            9 => Self::Array,
            10 => Self::U64,
            11 => Self::I64,
            12 => Self::F64,
            _ => return Err(GgufError::Malformed(format!("unknown value type {v}"))),
        })
    }
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(..) | Value::LongArray(..) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// An integer value of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as JSON, the way Ollama's `model_info` shows it (long arrays as `null`).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::U8(v) => J::from(*v),
            Value::I8(v) => J::from(*v),
            Value::U16(v) => J::from(*v),
            Value::I16(v) => J::from(*v),
            Value::U32(v) => J::from(*v),
            Value::I32(v) => J::from(*v),
            Value::U64(v) => J::from(*v),
            Value::I64(v) => J::from(*v),
            Value::F32(v) => serde_json::Number::from_f64(f64::from(*v)).map_or(J::Null, J::Number),
            Value::F64(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Value::Bool(v) => J::Bool(*v),
            Value::String(s) => J::String(s.clone()),
            Value::Array(_, items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::LongArray(..) => J::Null,
        }
    }
}

/// ggml tensor types this crate writes or needs to size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorType {
    F32,
    F16,
    Other(u32),
}

impl TensorType {
    pub fn id(self) -> u32 {
        match self {
            TensorType::F32 => 0,
            TensorType::F16 => 1,
            TensorType::Other(v) => v,
        }
    }

    fn from_id(v: u32) -> Self {
        match v {
            0 => TensorType::F32,
            1 => TensorType::F16,
            v => TensorType::Other(v),
        }
    }

    /// The ggml name of the type, as `/api/show` lists tensors.
    pub fn name(self) -> &'static str {
        match self.id() {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        }
    }
}

/// `general.file_type` (llama_ftype) as Ollama names the quantization level.
pub fn file_type_name(ftype: u64) -> &'static str {
    match ftype {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => "unknown",
    }
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// Innermost first, as GGUF stores them.
    pub dims: Vec<u64>,
    pub kind: TensorType,
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().fold(1u64, |n, d| n.saturating_mul(*d))
    }
}

/// The metadata and tensor directory of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    pub tensors: Vec<TensorInfo>,
}

impl GgufFile {
    /// Reads the header of `path`. Long arrays (token lists) are kept only with `full`.
    pub fn read(path: &Path, full: bool) -> Result<Self, GgufError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Self::read_from(BufReader::with_capacity(1 << 16, file), len, full)
    }

    /// Reads a header from `r`, which holds `len` bytes: no count or length the header declares
    /// is believed beyond what those bytes can hold, and nothing is allocated ahead of the bytes
    /// that fill it, so a truncated or lying header is an error, never a huge allocation.
    pub fn read_from<R: Read>(r: R, len: u64, full: bool) -> Result<Self, GgufError> {
        let mut h = HeaderReader { r, left: len, kept: if full { MAX_KEPT_ITEMS } else { 0 } };
        let magic: [u8; 4] = match h.bytes() {
            // A file shorter than the magic is not GGUF either.
            Err(GgufError::Truncated) => return Err(GgufError::BadMagic),
            other => other?,
        };
        if &magic != MAGIC {
            return Err(GgufError::BadMagic);
        }
        let version = h.u32()?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version(version));
        }
        let n_tensors = h.u64()?;
        let n_kv = h.u64()?;
        // The smallest pair is a key length, a type and a one-byte value; the smallest tensor
        // info a name length, a dimension count, a type and an offset.
        h.holds("metadata pairs", n_kv, MAX_KV, 8 + 4 + 1)?;
        h.holds("tensors", n_tensors, MAX_TENSORS, 8 + 4 + 4 + 8)?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = h.string()?;
            let ty = ValueType::from_u32(h.u32()?)?;
            let value = h.value(ty)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = h.string()?;
            let n_dims = h.u32()?;
            if n_dims > MAX_DIMS {
                return Err(GgufError::Malformed(format!("tensor {name} has {n_dims} dimensions")));
            }
            let dims = (0..n_dims).map(|_| h.u64()).collect::<Result<Vec<_>, _>>()?;
            if dims.iter().try_fold(1u64, |n, d| n.checked_mul(*d)).is_none() {
                return Err(GgufError::Malformed(format!("tensor {name} has more elements than a u64 counts")));
            }
            let kind = TensorType::from_id(h.u32()?);
            let offset = h.u64()?;
            tensors.push(TensorInfo { name, dims, kind, offset });
        }
        Ok(Self { version, metadata, tensors })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// A key of the architecture's namespace, e.g. `arch_u64("context_length")`.
    pub fn arch_u64(&self, key: &str) -> Option<u64> {
        self.get_u64(&format!("{}.{key}", self.architecture()?))
    }

    pub fn context_length(&self) -> Option<u64> {
        self.arch_u64("context_length")
    }

    pub fn embedding_length(&self) -> Option<u64> {
        self.arch_u64("embedding_length")
    }

    pub fn parameter_count(&self) -> u64 {
        self.get_u64("general.parameter_count")
            .unwrap_or_else(|| self.tensors.iter().fold(0u64, |n, t| n.saturating_add(t.elements())))
    }

    pub fn file_type(&self) -> Option<u64> {
        self.get_u64("general.file_type")
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
    }

    pub fn tokenizer_model(&self) -> Option<&str> {
        self.get_str("tokenizer.ggml.model")
    }

    /// The quantization level for `details.quantization_level`: from `general.file_type`, or the
    /// most common tensor type when that key is missing.
    pub fn quantization_level(&self) -> String {
        if let Some(ft) = self.file_type() {
            return file_type_name(ft).to_owned();
        }
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        for t in &self.tensors {
            let n = counts.entry(t.kind.name()).or_default();
            *n = n.saturating_add(t.elements());
        }
        counts.into_iter().max_by_key(|(_, n)| *n).map_or_else(|| "unknown".to_owned(), |(k, _)| k.to_owned())
    }

    /// Whether the model produces embeddings rather than text (BERT-family encoders).
    pub fn is_embedding(&self) -> bool {
        let arch = self.architecture().unwrap_or_default();
        matches!(arch, "bert" | "nomic-bert" | "nomic-bert-moe" | "jina-bert-v2" | "modern-bert" | "neo-bert")
            || self.arch_u64("pooling_type").is_some_and(|p| p > 0)
    }
}

/// Ollama's human-readable parameter count: `7.6B`, `134.52M`, `22M`.
pub fn human_parameters(n: u64) -> String {
    let n_f = n as f64;
    let (value, unit, decimals) = if n >= 1_000_000_000 {
        (n_f / 1e9, "B", 1)
    } else if n >= 1_000_000 {
        (n_f / 1e6, "M", 2)
    } else if n >= 1_000 {
        (n_f / 1e3, "K", 0)
    } else {
        return n.to_string();
    };
    if value.fract() == 0.0 { format!("{value:.0}{unit}") } else { format!("{value:.decimals$}{unit}") }
}

/// Reads a header while counting the bytes the file has left.
struct HeaderReader<R> {
    r: R,
    left: u64,
    /// Items of long arrays that may still be kept (the rest are summarised).
    kept: u64,
}

impl<R: Read> HeaderReader<R> {
    /// Refuses `count` items of at least `each` bytes when the file cannot hold them or there
    /// are more than `max`.
    fn holds(&self, what: &str, count: u64, max: u64, each: u64) -> Result<(), GgufError> {
        if count > max {
            return Err(GgufError::Malformed(format!("{count} {what} (at most {max})")));
        }
        match count.checked_mul(each) {
            Some(bytes) if bytes <= self.left => Ok(()),
            _ => Err(GgufError::Malformed(format!("{count} {what} do not fit in the file"))),
        }
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], GgufError> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b).map_err(truncated)?;
        self.left = self.left.saturating_sub(N as u64);
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, GgufError> {
        self.bytes().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Result<u64, GgufError> {
        self.bytes().map(u64::from_le_bytes)
    }

    fn string(&mut self) -> Result<String, GgufError> {
        let len = self.u64()?;
        self.holds("string bytes", len, MAX_STRING, 1)?;
        // `len` is proven to be in the file, so the buffer never outgrows what is read into it.
        let mut buf = Vec::with_capacity(len as usize);
        let got = self.r.by_ref().take(len).read_to_end(&mut buf).map_err(truncated)?;
        if got as u64 != len {
            return Err(GgufError::Truncated);
        }
        self.left -= len;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn skip(&mut self, len: u64) -> Result<(), GgufError> {
        self.holds("bytes", len, u64::MAX, 1)?;
        let copied = io::copy(&mut self.r.by_ref().take(len), &mut io::sink()).map_err(truncated)?;
        if copied != len {
            return Err(GgufError::Truncated);
        }
        self.left -= len;
        Ok(())
    }

    fn value(&mut self, ty: ValueType) -> Result<Value, GgufError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.bytes()?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.bytes()?)),
            ValueType::Bool => Value::Bool(self.bytes::<1>()?[0] != 0),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.bytes()?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.bytes()?)),
            ValueType::U32 => Value::U32(u32::from_le_bytes(self.bytes()?)),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.bytes()?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.bytes()?)),
            ValueType::U64 => Value::U64(u64::from_le_bytes(self.bytes()?)),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.bytes()?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.bytes()?)),
            ValueType::String => Value::String(self.string()?),
            ValueType::Array => {
                let elem = ValueType::from_u32(self.u32()?)?;
                let len = self.u64()?;
                // ggml reads no arrays of arrays either: nesting ends here, at depth one.
                if elem == ValueType::Array {
                    return Err(GgufError::Malformed("nested arrays".into()));
                }
                // A string element is at least its length.
                let size = scalar_size(elem).unwrap_or(8);
                self.holds("array items", len, u64::MAX, size)?;
                if len > LARGE_ARRAY && len > self.kept {
                    match scalar_size(elem) {
                        Some(size) => self.skip(len * size)?,
                        None => {
                            for _ in 0..len {
                                let n = self.u64()?;
                                self.skip(n)?;
                            }
                        }
                    }
                    return Ok(Value::LongArray(elem, len));
                }
                if len > LARGE_ARRAY {
                    self.kept -= len;
                }
                let mut items = Vec::new();
                for _ in 0..len {
                    items.push(self.value(elem)?);
                }
                Value::Array(elem, items)
            }
        })
    }
}

fn truncated(e: io::Error) -> GgufError {
    if e.kind() == io::ErrorKind::UnexpectedEof { GgufError::Truncated } else { GgufError::Io(e) }
}

fn scalar_size(ty: ValueType) -> Option<u64> {
    Some(match ty {
        ValueType::U8 | ValueType::I8 | ValueType::Bool => 1,
        ValueType::U16 | ValueType::I16 => 2,
        ValueType::U32 | ValueType::I32 | ValueType::F32 => 4,
        ValueType::U64 | ValueType::I64 | ValueType::F64 => 8,
        ValueType::String | ValueType::Array => return None,
    })
}

/// A tensor to write: its data are already in the target type's byte layout.
pub struct TensorData {
    pub name: String,
    /// Innermost first.
    pub dims: Vec<u64>,
    pub kind: TensorType,
    pub data: Vec<u8>,
}

impl TensorData {
    /// An F32 tensor. `dims` innermost first: a PyTorch `[rows, cols]` weight is `[cols, rows]`.
    pub fn f32(name: impl Into<String>, dims: &[u64], values: &[f32]) -> Self {
        debug_assert_eq!(dims.iter().product::<u64>() as usize, values.len());
        let mut data = Vec::with_capacity(values.len() * 4);
        for v in values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        Self { name: name.into(), dims: dims.to_vec(), kind: TensorType::F32, data }
    }
}

/// Builds a GGUF file in memory and writes it out.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorData>,
}

impl GgufWriter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn kv(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        self.metadata.push((key.into(), value));
        self
    }

    pub fn string(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.kv(key, Value::String(value.into()))
    }

    pub fn u32(&mut self, key: &str, value: u32) -> &mut Self {
        self.kv(key, Value::U32(value))
    }

    pub fn f32(&mut self, key: &str, value: f32) -> &mut Self {
        self.kv(key, Value::F32(value))
    }

    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.kv(key, Value::Bool(value))
    }

    pub fn strings(&mut self, key: &str, values: impl IntoIterator<Item = String>) -> &mut Self {
        self.kv(key, Value::Array(ValueType::String, values.into_iter().map(Value::String).collect()))
    }

    pub fn i32s(&mut self, key: &str, values: impl IntoIterator<Item = i32>) -> &mut Self {
        self.kv(key, Value::Array(ValueType::I32, values.into_iter().map(Value::I32).collect()))
    }

    pub fn f32s(&mut self, key: &str, values: impl IntoIterator<Item = f32>) -> &mut Self {
        self.kv(key, Value::Array(ValueType::F32, values.into_iter().map(Value::F32).collect()))
    }

    pub fn tensor(&mut self, tensor: TensorData) -> &mut Self {
        self.tensors.push(tensor);
        self
    }

    pub fn write(&self, path: &Path) -> Result<(), GgufError> {
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        self.write_to(&mut w)?;
        w.into_inner().map_err(|e| GgufError::Io(e.into_error()))?.sync_all()?;
        Ok(())
    }

    pub fn write_to<W: Write>(&self, w: &mut W) -> Result<(), GgufError> {
        let align = DEFAULT_ALIGNMENT;
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&3u32.to_le_bytes());
        buf.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        buf.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            write_string(&mut buf, key);
            buf.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
            write_value(&mut buf, value)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            write_string(&mut buf, &t.name);
            buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend_from_slice(&d.to_le_bytes());
            }
            buf.extend_from_slice(&t.kind.id().to_le_bytes());
            buf.extend_from_slice(&offset.to_le_bytes());
            offset += (t.data.len() as u64).next_multiple_of(align);
        }
        let header_len = buf.len() as u64;
        buf.resize(header_len.next_multiple_of(align) as usize, 0);
        w.write_all(&buf)?;
        for t in &self.tensors {
            w.write_all(&t.data)?;
            let pad = (t.data.len() as u64).next_multiple_of(align) - t.data.len() as u64;
            w.write_all(&vec![0u8; pad as usize])?;
        }
        Ok(())
    }
}

fn write_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn write_value(buf: &mut Vec<u8>, value: &Value) -> Result<(), GgufError> {
    match value {
        Value::U8(v) => buf.push(*v),
        Value::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::Bool(v) => buf.push(u8::from(*v)),
        Value::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        Value::String(s) => write_string(buf, s),
        Value::Array(elem, items) => {
            buf.extend_from_slice(&(*elem as u32).to_le_bytes());
            buf.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                if item.value_type() != *elem {
                    return Err(GgufError::Malformed("array items of mixed types".into()));
                }
                write_value(buf, item)?;
            }
        }
        Value::LongArray(..) => return Err(GgufError::Malformed("cannot write a summarised array".into())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_metadata_and_tensors() {
        let mut w = GgufWriter::new();
        w.string("general.architecture", "llama")
            .u32("llama.context_length", 128)
            .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
            .bool("flag", true)
            .strings("tokenizer.ggml.tokens", (0..100).map(|i| format!("t{i}")))
            .i32s("small", [1, -2, 3]);
        w.tensor(TensorData::f32("a", &[2, 3], &[0.0; 6]));
        w.tensor(TensorData::f32("b", &[5], &[1.0; 5]));
        let mut bytes = Vec::new();
        w.write_to(&mut bytes).unwrap();
        let f = GgufFile::read_from(bytes.as_slice(), bytes.len() as u64, false).unwrap();
        assert_eq!(f.architecture(), Some("llama"));
        assert_eq!(f.context_length(), Some(128));
        assert_eq!(f.get("flag"), Some(&Value::Bool(true)));
        assert_eq!(f.get("tokenizer.ggml.tokens"), Some(&Value::LongArray(ValueType::String, 100)));
        assert_eq!(
            f.get("small"),
            Some(&Value::Array(ValueType::I32, vec![Value::I32(1), Value::I32(-2), Value::I32(3)]))
        );
        assert_eq!(f.tensors.len(), 2);
        assert_eq!(f.tensors[1].offset, 32);
        assert_eq!(f.parameter_count(), 11);
        let full = GgufFile::read_from(bytes.as_slice(), bytes.len() as u64, true).unwrap();
        assert!(matches!(full.get("tokenizer.ggml.tokens"), Some(Value::Array(_, v)) if v.len() == 100));
    }

    /// Reads `bytes` as a header, expecting a refusal.
    fn refused(bytes: &[u8], full: bool) -> GgufError {
        GgufFile::read_from(bytes, bytes.len() as u64, full).expect_err("a hostile header is refused")
    }

    /// A header: magic, version 3, the counts, then `rest`.
    fn header(n_tensors: u64, n_kv: u64, rest: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        b.extend_from_slice(rest);
        b
    }

    fn string(len: u64, content: &[u8]) -> Vec<u8> {
        [&len.to_le_bytes()[..], content].concat()
    }

    #[test]
    fn lying_headers_are_refused() {
        let key = string(1, b"k");
        let u32s = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        // An array of arrays of arrays…, a thousand deep.
        let mut nested = key.clone();
        nested.extend(u32s(&[ValueType::Array as u32]));
        for _ in 0..1000 {
            nested.extend(u32s(&[ValueType::Array as u32]));
            nested.extend(1u64.to_le_bytes());
        }
        let array_of = |elem: ValueType, len: u64| {
            let mut b = key.clone();
            b.extend(u32s(&[ValueType::Array as u32, elem as u32]));
            b.extend(len.to_le_bytes());
            b.extend([0u8; 64]);
            b
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("2^60 metadata pairs", header(0, 1 << 60, &[0; 64])),
            ("a thousand pairs in a few bytes", header(0, 1000, &[0; 64])),
            ("2^24 - 1 tensors in a few bytes", header((1 << 24) - 1, 0, &[0; 64])),
            ("2^60 tensors", header(1 << 60, 0, &[0; 64])),
            ("a key of 2^40 bytes", header(0, 1, &string(1 << 40, b"abc"))),
            ("a key of 15 MiB in a few bytes", header(0, 1, &string(15 << 20, b"abc"))),
            ("a value of 15 MiB", header(0, 1, &[&key[..], &u32s(&[8]), &string(15 << 20, b"abc")].concat())),
            ("deeply nested arrays", header(0, 1, &nested)),
            ("an array of 2^50 u64", header(0, 1, &array_of(ValueType::U64, 1 << 50))),
            ("an array of 2^20 strings in a few bytes", header(0, 1, &array_of(ValueType::String, 1 << 20))),
            ("a tensor of 2^70 elements", {
                let mut t = string(1, b"t");
                t.extend(u32s(&[2]));
                t.extend((1u64 << 40).to_le_bytes());
                t.extend((1u64 << 30).to_le_bytes());
                t.extend(u32s(&[0]));
                t.extend(0u64.to_le_bytes());
                header(1, 0, &t)
            }),
        ];
        for full in [false, true] {
            for (what, bytes) in &cases {
                let err = refused(bytes, full);
                assert!(matches!(err, GgufError::Malformed(_) | GgufError::Truncated), "{what}: {err}");
            }
        }
    }

    /// The cases above again, in a copy of this test binary whose address space is capped
    /// (`prlimit`, util-linux): a reader that allocated what a header declares (a gigabyte for
    /// 2^24 tensors) would abort there.
    #[test]
    fn lying_headers_need_no_memory() {
        const MARK: &str = "OLLAMANET_GGUF_UNDER_LIMIT";
        // The binary itself takes about 200 MB of address space (MALLOC_ARENA_MAX=1).
        const ADDRESS_SPACE: u64 = 768 << 20;
        if std::env::var_os(MARK).is_some() {
            return lying_headers_are_refused();
        }
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new("prlimit")
            .arg(format!("--as={ADDRESS_SPACE}"))
            .arg(me)
            .args(["--exact", "gguf::tests::lying_headers_need_no_memory", "--test-threads=1"])
            .env(MARK, "1")
            .env("MALLOC_ARENA_MAX", "1")
            .output()
            .expect("prlimit runs");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    #[test]
    fn every_truncation_of_a_real_header_is_an_error() {
        let mut w = GgufWriter::new();
        w.string("general.architecture", "llama")
            .strings("tokenizer.ggml.tokens", (0..100).map(|i| format!("t{i}")))
            .f32s("scores", (0..100).map(|i| i as f32));
        w.tensor(TensorData::f32("a", &[2, 3], &[0.0; 6]));
        let mut bytes = Vec::new();
        w.write_to(&mut bytes).unwrap();
        // Every prefix is an error or (once the header is whole) the header: never a panic.
        for cut in 0..bytes.len() {
            let part = &bytes[..cut];
            for full in [false, true] {
                if let Err(err) = GgufFile::read_from(part, part.len() as u64, full) {
                    let expected = matches!(err, GgufError::BadMagic | GgufError::Truncated | GgufError::Malformed(_));
                    assert!(expected && cut < bytes.len() - 32, "{cut}: {err}");
                }
            }
        }
        // A file that declares more bytes than its reader has is caught the same way.
        let err = GgufFile::read_from(&bytes[..100], bytes.len() as u64, true).expect_err("short reader");
        assert!(matches!(err, GgufError::Truncated), "{err}");
    }

    #[test]
    fn human_parameter_counts() {
        assert_eq!(human_parameters(134_515_008), "134.52M");
        assert_eq!(human_parameters(7_615_616_512), "7.6B");
        assert_eq!(human_parameters(22_000_000), "22M");
        assert_eq!(human_parameters(120_000), "120K");
    }
}
