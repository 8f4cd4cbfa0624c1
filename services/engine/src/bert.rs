//! Converts a Hugging Face BERT embedding model (safetensors + WordPiece vocabulary, e.g.
//! sentence-transformers' all-MiniLM-L6-v2) into a GGUF that llama.cpp's `bert` architecture
//! loads: the tensor names and metadata llama.cpp's converter writes for BERT, matrices in F16,
//! norms, biases and the token-type and position tables in F32, the vocabulary in "phantom space" form (`▁word`, `##piece` → `piece`),
//! and the pooling of the sentence-transformers `1_Pooling` module.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::EngineError;
use ollamanet_model_format::gguf::{GgufWriter, TensorData, TensorType, Value as GValue};

#[derive(Deserialize)]
struct BertConfig {
    hidden_size: u32,
    num_hidden_layers: u32,
    num_attention_heads: u32,
    intermediate_size: u32,
    max_position_embeddings: u32,
    #[serde(default = "default_eps")]
    layer_norm_eps: f32,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: u32,
    #[serde(default)]
    model_type: String,
}

fn default_eps() -> f32 {
    1e-12
}

fn default_type_vocab() -> u32 {
    2
}

/// One tensor of a safetensors file.
struct SafeTensor {
    dtype: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

impl SafeTensor {
    fn to_f32(&self) -> Result<Vec<f32>, EngineError> {
        let bad = || EngineError::Other(format!("unsupported tensor type {}", self.dtype));
        Ok(match self.dtype.as_str() {
            "F32" => self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            "F16" => self.data.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            "BF16" => self
                .data
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            _ => return Err(bad()),
        })
    }
}

/// Reads a safetensors file: an 8-byte little-endian header length, a JSON header
/// (`name → {dtype, shape, data_offsets}`), then the data.
fn read_safetensors(path: &Path) -> Result<BTreeMap<String, SafeTensor>, EngineError> {
    let bytes = fs::read(path)?;
    let bad = |m: &str| EngineError::Other(format!("{}: {m}", path.display()));
    let len =
        u64::from_le_bytes(bytes.get(..8).ok_or_else(|| bad("too short"))?.try_into().map_err(|_| bad("header"))?);
    let header_end =
        8usize.checked_add(usize::try_from(len).map_err(|_| bad("header length"))?).ok_or_else(|| bad("header"))?;
    let header: BTreeMap<String, Value> =
        serde_json::from_slice(bytes.get(8..header_end).ok_or_else(|| bad("truncated header"))?)
            .map_err(|e| bad(&e.to_string()))?;
    let data = &bytes[header_end..];
    let mut out = BTreeMap::new();
    for (name, info) in header {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info["dtype"].as_str().ok_or_else(|| bad("dtype"))?.to_owned();
        let shape: Vec<u64> =
            info["shape"].as_array().ok_or_else(|| bad("shape"))?.iter().filter_map(Value::as_u64).collect();
        let offsets = info["data_offsets"].as_array().ok_or_else(|| bad("data_offsets"))?;
        let (start, end) = (
            offsets.first().and_then(Value::as_u64).ok_or_else(|| bad("offset"))? as usize,
            offsets.get(1).and_then(Value::as_u64).ok_or_else(|| bad("offset"))? as usize,
        );
        let slice = data.get(start..end).ok_or_else(|| bad("tensor data out of range"))?;
        out.insert(name, SafeTensor { dtype, shape, data: slice.to_vec() });
    }
    Ok(out)
}

/// The llama.cpp name of a Hugging Face BERT tensor (`None`: not needed for embeddings).
fn gguf_name(hf: &str) -> Option<String> {
    let name = hf.strip_prefix("bert.").unwrap_or(hf);
    let name = name.replace(".gamma", ".weight").replace(".beta", ".bias");
    let (stem, suffix) = name.rsplit_once('.')?;
    let fixed = match stem {
        "embeddings.word_embeddings" => "token_embd".to_owned(),
        "embeddings.position_embeddings" => "position_embd".to_owned(),
        "embeddings.token_type_embeddings" => "token_types".to_owned(),
        "embeddings.LayerNorm" => "token_embd_norm".to_owned(),
        _ => {
            let rest = stem.strip_prefix("encoder.layer.")?;
            let (n, part) = rest.split_once('.')?;
            let n: u32 = n.parse().ok()?;
            let t = match part {
                "attention.self.query" => "attn_q",
                "attention.self.key" => "attn_k",
                "attention.self.value" => "attn_v",
                "attention.output.dense" => "attn_output",
                "attention.output.LayerNorm" => "attn_output_norm",
                "intermediate.dense" => "ffn_up",
                "output.dense" => "ffn_down",
                "output.LayerNorm" => "layer_output_norm",
                _ => return None,
            };
            format!("blk.{n}.{t}")
        }
    };
    Some(format!("{fixed}.{suffix}"))
}

/// Converts the model in `dir` (config.json, model.safetensors, vocab.txt or tokenizer.json) to
/// a GGUF at `out`.
pub fn import_safetensors_dir(dir: &Path, out: &Path, name: &str) -> Result<(), EngineError> {
    let config: BertConfig = serde_json::from_slice(&fs::read(dir.join("config.json"))?)
        .map_err(|e| EngineError::Other(format!("config.json: {e}")))?;
    if !config.model_type.is_empty() && config.model_type != "bert" {
        return Err(EngineError::Other(format!("only BERT models convert; this is {:?}", config.model_type)));
    }
    let vocab = read_vocab(dir)?;
    let specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let id_of = |t: &str| vocab.iter().position(|v| v == t).map(|i| i as u32);
    let mut tokens = Vec::with_capacity(vocab.len());
    let mut types = Vec::with_capacity(vocab.len());
    for tok in &vocab {
        if specials.contains(&tok.as_str()) {
            tokens.push(tok.clone());
            types.push(3);
        } else if let Some(piece) = tok.strip_prefix("##") {
            tokens.push(piece.to_owned());
            types.push(1);
        } else {
            tokens.push(format!("\u{2581}{tok}"));
            types.push(1);
        }
    }
    let pooling = pooling_type(dir);

    let mut w = GgufWriter::new();
    w.string("general.architecture", "bert")
        .string("general.name", name)
        .u32("general.file_type", 1)
        .u32("bert.context_length", config.max_position_embeddings)
        .u32("bert.embedding_length", config.hidden_size)
        .u32("bert.feed_forward_length", config.intermediate_size)
        .u32("bert.block_count", config.num_hidden_layers)
        .u32("bert.attention.head_count", config.num_attention_heads)
        .f32("bert.attention.layer_norm_epsilon", config.layer_norm_eps)
        .bool("bert.attention.causal", false)
        .u32("bert.pooling_type", pooling)
        .u32("tokenizer.ggml.token_type_count", config.type_vocab_size)
        .string("tokenizer.ggml.model", "bert")
        .string("tokenizer.ggml.pre", "default")
        .strings("tokenizer.ggml.tokens", tokens)
        .i32s("tokenizer.ggml.token_type", types);
    for (key, tok) in [
        ("tokenizer.ggml.unknown_token_id", "[UNK]"),
        ("tokenizer.ggml.seperator_token_id", "[SEP]"),
        ("tokenizer.ggml.padding_token_id", "[PAD]"),
        ("tokenizer.ggml.cls_token_id", "[CLS]"),
        ("tokenizer.ggml.mask_token_id", "[MASK]"),
    ] {
        if let Some(id) = id_of(tok) {
            w.kv(key, GValue::U32(id));
        }
    }

    let weights = dir.join("model.safetensors");
    let tensors = read_safetensors(&weights)?;
    let mut written = 0;
    for (hf, t) in &tensors {
        let Some(gname) = gguf_name(hf) else { continue };
        let values = t.to_f32()?;
        let dims: Vec<u64> = t.shape.iter().rev().copied().collect();
        // The graph adds token_types (and position_embd) rows directly: those stay F32, as
        // llama.cpp's converter keeps them.
        let keep_f32 = gname.starts_with("token_types") || gname.starts_with("position_embd");
        let tensor = if dims.len() >= 2 && !keep_f32 {
            let mut data = Vec::with_capacity(values.len() * 2);
            for v in &values {
                data.extend_from_slice(&f32_to_f16(*v).to_le_bytes());
            }
            TensorData { name: gname, dims, kind: TensorType::F16, data }
        } else {
            TensorData::f32(gname, &dims, &values)
        };
        w.tensor(tensor);
        written += 1;
    }
    if written == 0 {
        return Err(EngineError::Other("no BERT tensors found in model.safetensors".into()));
    }
    w.write(out)?;
    Ok(())
}

/// The vocabulary, one token per id: `vocab.txt`, else `tokenizer.json`'s WordPiece model.
fn read_vocab(dir: &Path) -> Result<Vec<String>, EngineError> {
    if let Ok(text) = fs::read_to_string(dir.join("vocab.txt")) {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    let tok: Value = serde_json::from_slice(&fs::read(dir.join("tokenizer.json"))?)
        .map_err(|e| EngineError::Other(format!("tokenizer.json: {e}")))?;
    let map =
        tok["model"]["vocab"].as_object().ok_or_else(|| EngineError::Other("tokenizer.json has no vocab".into()))?;
    let mut v = vec![String::new(); map.len()];
    for (t, id) in map {
        let id = id.as_u64().unwrap_or(u64::MAX) as usize;
        *v.get_mut(id).ok_or_else(|| EngineError::Other("tokenizer.json ids are not dense".into()))? = t.clone();
    }
    Ok(v)
}

/// llama.cpp pooling: 1 mean (the sentence-transformers default), 2 CLS.
fn pooling_type(dir: &Path) -> u32 {
    let Ok(bytes) = fs::read(dir.join("1_Pooling").join("config.json")) else { return 1 };
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else { return 1 };
    if v["pooling_mode_cls_token"].as_bool() == Some(true) { 2 } else { 1 }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut m = mant;
            while m & 0x400 == 0 {
                m <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((m & 0x3ff) << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

/// IEEE half precision, round to nearest even.
fn f32_to_f16(f: f32) -> u16 {
    let x = f.to_bits();
    let sign = ((x >> 16) & 0x8000) as u16;
    let exp = ((x >> 23) & 0xff) as i32;
    let mant = x & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && r & 1 == 1) {
        r += 1;
    }
    sign | r as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_round_trips() {
        for v in [0.0f32, 1.0, -2.5, 0.333_333, 65504.0, 1e-5, -1e-7, 6.1e-5] {
            let back = f16_to_f32(f32_to_f16(v));
            assert!((back - v).abs() <= v.abs() * 1e-3 + 1e-7, "{v} -> {back}");
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(f32::INFINITY), 0x7c00);
        assert!(f16_to_f32(f32_to_f16(f32::NAN)).is_nan());
    }

    #[test]
    fn tensor_names_follow_llama_cpp() {
        assert_eq!(gguf_name("embeddings.word_embeddings.weight").as_deref(), Some("token_embd.weight"));
        assert_eq!(gguf_name("bert.embeddings.LayerNorm.gamma").as_deref(), Some("token_embd_norm.weight"));
        assert_eq!(
            gguf_name("encoder.layer.3.attention.output.LayerNorm.bias").as_deref(),
            Some("blk.3.attn_output_norm.bias")
        );
        assert_eq!(gguf_name("encoder.layer.0.output.dense.weight").as_deref(), Some("blk.0.ffn_down.weight"));
        assert_eq!(gguf_name("embeddings.position_ids"), None);
        assert_eq!(gguf_name("pooler.dense.weight"), None);
    }
}
