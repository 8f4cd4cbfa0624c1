//! Writes a starting corpus for each fuzz target into `<dir>/<target>/`: small valid inputs of
//! each format, built here so that no binary file is committed (`scripts/fuzz` runs it).

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use ollamanet_documents::fixtures;
use ollamanet_fuzz::Target;
use ollamanet_model_format::gguf::{GgufWriter, TensorData};
use ollamanet_model_format::manifest::{CONFIG_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, MODEL_MEDIA_TYPE, TEMPLATE_MEDIA_TYPE};
use ollamanet_model_format::template;
use serde_json::json;

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "fuzz/corpus".into());
    for target in Target::ALL {
        let out = Path::new(&dir).join(target.name());
        std::fs::create_dir_all(&out)?;
        for (i, seed) in seeds(target).iter().enumerate() {
            std::fs::write(out.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}

fn seeds(target: Target) -> Vec<Vec<u8>> {
    match target {
        Target::Sniff => [
            &b"\x00# Title\n\n- one\n- two\n\n```rust\nfn main() {}\n```\n"[..],
            b"\x01plain notes\nsecond line",
            b"\x00\xEF\xBB\xBFtext with a byte-order mark",
            b"\x00%PDF-1.4\n",
            b"\x00PK\x03\x04",
        ]
        .iter()
        .map(|s| s.to_vec())
        .collect(),
        Target::Pdf => vec![
            fixtures::pdf(&[&["Hello, world."], &[], &["A second page (with parentheses)."]]),
            fixtures::pdf_of(&flate_objects()),
        ],
        Target::Docx => vec![
            fixtures::docx(&fixtures::document_xml(&["Hello", "A <b>second</b> paragraph"])),
            fixtures::zip_of(&[("word/document.xml", b"<w:document/>"), ("other.txt", b"x")]),
        ],
        Target::Gguf => {
            let mut w = GgufWriter::new();
            w.string("general.architecture", "llama")
                .u32("llama.context_length", 128)
                .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
                .bool("flag", true)
                .strings("tokenizer.ggml.tokens", (0..80).map(|i| format!("t{i}")))
                .i32s("small", [1, -2, 3])
                .string("tokenizer.chat_template", template::CHATML);
            w.tensor(TensorData::f32("a", &[2, 3], &[0.5; 6]));
            let mut bytes = Vec::new();
            w.write_to(&mut bytes).expect("a GGUF writes to memory");
            vec![bytes]
        }
        Target::Template => [
            template::CHATML,
            "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{% set ns = namespace(sys=m.content) %}{% continue %}{% endif %}[{{ m.role | upper }}] {{ m.content.strip() }}\\n{% endfor %}{{ strftime_now('%d %b %Y') }}",
            "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}{% for message in messages %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}{{ eos_token }}",
            "{% set s = 'ab' * 10 %}{% for i in range(3) %}{{ s ~ i }}{{ loop.index }}{% endfor %}{{ messages | tojson }}",
        ]
        .iter()
        .map(|t| format!("{t}\nHello there").into_bytes())
        .collect(),
        Target::Manifest => {
            let layer = |media: &str, hex: char, size: u64| {
                json!({ "mediaType": media, "digest": format!("sha256:{}", hex.to_string().repeat(64)), "size": size })
            };
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": MANIFEST_MEDIA_TYPE,
                "config": layer(CONFIG_MEDIA_TYPE, 'a', 485),
                "layers": [layer(MODEL_MEDIA_TYPE, 'b', 270898672), layer(TEMPLATE_MEDIA_TYPE, 'c', 182)],
            });
            vec![serde_json::to_vec_pretty(&manifest).expect("JSON encodes")]
        }
        Target::RequestBody => {
            let bodies = [
                json!({ "model": "m", "messages": [{ "role": "user", "content": "hi", "images": [] }],
                        "options": { "temperature": 0.2, "num_predict": 8, "stop": ["\n"] }, "stream": false,
                        "format": "json", "keep_alive": "5m", "tools": [{ "type": "function", "function": {
                            "name": "f", "parameters": { "type": "object" } } }] }),
                json!({ "model": "m", "prompt": "hi", "system": "s", "raw": true, "options": { "seed": 1 } }),
                json!({ "model": "m", "input": ["a", "b"], "truncate": true, "dimensions": 8 }),
                json!({ "model": "m", "prompt": "a" }),
                json!({ "model": "m", "messages": [{ "role": "user", "content": [{ "type": "text", "text": "hi" }] }],
                        "max_tokens": 8, "stream": true, "stream_options": { "include_usage": true },
                        "response_format": { "type": "json_object" }, "stop": "x" }),
                json!({ "model": "m", "prompt": ["a"], "max_tokens": 4, "echo": false }),
                json!({ "model": "m", "input": "a", "encoding_format": "float" }),
                json!({ "a": { "b": [1, 2.5, null, true, "x"] } }),
            ];
            bodies
                .iter()
                .enumerate()
                .map(|(pick, body)| {
                    let mut seed = vec![pick as u8];
                    seed.extend(serde_json::to_vec(body).expect("JSON encodes"));
                    seed
                })
                .collect()
        }
    }
}

/// A catalog, a page tree and a page whose content is a Flate stream: a PDF whose streams the
/// fuzzer can bend.
fn flate_objects() -> Vec<Vec<u8>> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(&fixtures::text_content(&["Compressed text."])).expect("zlib writes to memory");
    let content = z.finish().expect("zlib finishes");
    let mut objects = fixtures::pdf_objects_with_contents(&[Vec::new()]);
    *objects.last_mut().expect("a content object") = fixtures::stream("/Filter /FlateDecode", &content);
    objects
}
