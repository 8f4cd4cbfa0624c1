//! A tiny random-weights llama model (a few hundred KB) that llama.cpp loads: a byte-level BPE
//! vocabulary (GPT-2's byte-to-character mapping, no merges) plus ChatML's special tokens, two
//! layers, 64-wide. The same seed always gives the same file, so tests are deterministic.
//!
//! The output projection favours letters and spaces (other tokens, the end-of-generation tokens
//! included, get zero logits), so generated text is printable and runs until `num_predict`.

use std::path::Path;

use ollamanet_model_format::gguf::{GgufError, GgufWriter, TensorData, Value, ValueType};
use ollamanet_model_format::template::CHATML;

const N_EMBD: u64 = 64;
const N_FF: u64 = 128;
const N_LAYER: u32 = 2;
const N_HEAD: u32 = 4;
const N_HEAD_KV: u32 = 2;
const CONTEXT: u32 = 2048;

/// Writes the tiny model to `path`.
pub fn write_tiny_llama(path: &Path, seed: u64) -> Result<(), GgufError> {
    write_tiny_llama_with_template(path, seed, CHATML)
}

/// Writes the tiny model to `path`, with `template` as its chat template (a hostile one, say).
pub fn write_tiny_llama_with_template(path: &Path, seed: u64, template: &str) -> Result<(), GgufError> {
    let mut rng = Rng(seed ^ 0x9e37_79b9_7f4a_7c15);
    let byte_chars = gpt2_byte_chars();
    let mut tokens: Vec<String> = byte_chars.iter().map(|c| c.to_string()).collect();
    let mut types = vec![1i32; 256];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_owned());
        types.push(3);
    }
    let n_vocab = tokens.len() as u64;
    let head_dim = N_EMBD / u64::from(N_HEAD);
    let kv_dim = head_dim * u64::from(N_HEAD_KV);

    let mut w = GgufWriter::new();
    w.string("general.architecture", "llama")
        .string("general.name", "tiny-random-llama")
        .u32("general.file_type", 0)
        .u32("llama.context_length", CONTEXT)
        .u32("llama.embedding_length", N_EMBD as u32)
        .u32("llama.block_count", N_LAYER)
        .u32("llama.feed_forward_length", N_FF as u32)
        .u32("llama.attention.head_count", N_HEAD)
        .u32("llama.attention.head_count_kv", N_HEAD_KV)
        .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
        .u32("llama.rope.dimension_count", head_dim as u32)
        .f32("llama.rope.freq_base", 10_000.0)
        .u32("llama.vocab_size", n_vocab as u32)
        .string("tokenizer.ggml.model", "gpt2")
        .string("tokenizer.ggml.pre", "default")
        .strings("tokenizer.ggml.tokens", tokens)
        .i32s("tokenizer.ggml.token_type", types)
        .kv("tokenizer.ggml.merges", Value::Array(ValueType::String, Vec::new()))
        .u32("tokenizer.ggml.bos_token_id", 256)
        .u32("tokenizer.ggml.eos_token_id", 258)
        .u32("tokenizer.ggml.padding_token_id", 256)
        .bool("tokenizer.ggml.add_bos_token", false)
        .string("tokenizer.chat_template", template);

    let embd: Vec<f32> = (0..n_vocab * N_EMBD).map(|_| rng.normal()).collect();
    w.tensor(TensorData::f32("token_embd.weight", &[N_EMBD, n_vocab], &embd));
    let scale = 1.0 / (N_EMBD as f32).sqrt();
    for l in 0..N_LAYER {
        let mut matrix = |name: &str, cols: u64, rows: u64, scale: f32| {
            let values: Vec<f32> = (0..cols * rows).map(|_| rng.normal() * scale).collect();
            TensorData::f32(format!("blk.{l}.{name}.weight"), &[cols, rows], &values)
        };
        let q = matrix("attn_q", N_EMBD, N_EMBD, scale * 2.0);
        let k = matrix("attn_k", N_EMBD, kv_dim, scale * 2.0);
        let v = matrix("attn_v", N_EMBD, kv_dim, scale);
        let o = matrix("attn_output", N_EMBD, N_EMBD, scale);
        let gate = matrix("ffn_gate", N_EMBD, N_FF, scale);
        let up = matrix("ffn_up", N_EMBD, N_FF, scale);
        let down = matrix("ffn_down", N_FF, N_EMBD, 1.0 / (N_FF as f32).sqrt());
        w.tensor(TensorData::f32(format!("blk.{l}.attn_norm.weight"), &[N_EMBD], &vec![1.0; N_EMBD as usize]));
        w.tensor(q).tensor(k).tensor(v).tensor(o);
        w.tensor(TensorData::f32(format!("blk.{l}.ffn_norm.weight"), &[N_EMBD], &vec![1.0; N_EMBD as usize]));
        w.tensor(gate).tensor(down).tensor(up);
    }
    w.tensor(TensorData::f32("output_norm.weight", &[N_EMBD], &vec![1.0; N_EMBD as usize]));
    let mut output = Vec::with_capacity((n_vocab * N_EMBD) as usize);
    for t in 0..n_vocab {
        let favoured = t < 256 && {
            let b = t as u8;
            b.is_ascii_lowercase() || b == b' ' || b == b'.' || b == b','
        };
        for _ in 0..N_EMBD {
            output.push(if favoured { rng.normal() } else { 0.0 });
        }
    }
    w.tensor(TensorData::f32("output.weight", &[N_EMBD, n_vocab], &output));
    w.write(path)
}

/// GPT-2's reversible byte-to-character mapping: printable bytes stand for themselves, the
/// others are shifted past U+0100.
fn gpt2_byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~')).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut map = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            extra += 1;
            255 + extra
        };
        map[b as usize] = char::from_u32(c).unwrap_or('?');
    }
    map
}

/// splitmix64 with Box-Muller normals: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f32 {
        let (u1, u2) = (self.uniform(), self.uniform());
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_mapping_is_gpt2s() {
        let m = gpt2_byte_chars();
        assert_eq!(m[b'a' as usize], 'a');
        assert_eq!(m[b' ' as usize], 'Ġ');
        assert_eq!(m[b'\n' as usize], 'Ċ');
        let distinct: std::collections::HashSet<_> = m.iter().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn same_seed_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.gguf"), dir.path().join("b.gguf"));
        write_tiny_llama(&a, 7).unwrap();
        write_tiny_llama(&b, 7).unwrap();
        let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
        assert_eq!(a, b);
        assert!(a.len() < 1_000_000, "{} bytes", a.len());
    }
}
