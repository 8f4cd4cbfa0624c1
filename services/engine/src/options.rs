//! Request options (`options`, a model's `params` layer) and `keep_alive`, read as leniently as
//! Ollama reads them.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::llm::Sampling;
use crate::sched::KeepAlive;

/// Everything a generation takes from `options`.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub sampling: Sampling,
    pub num_predict: i64,
    pub num_keep: usize,
    pub stop: Vec<String>,
    pub num_ctx: Option<u32>,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self { sampling: Sampling::default(), num_predict: -1, num_keep: 4, stop: Vec::new(), num_ctx: None }
    }
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Applies `options` over `base`. Unknown keys are ignored (as Ollama does); a known key with a
/// value of the wrong type is an error.
pub fn apply(base: &mut GenOptions, options: &Map<String, Value>) -> Result<(), String> {
    for (key, v) in options {
        if v.is_null() {
            continue;
        }
        let bad = || format!("option \"{key}\" has an invalid value: {v}");
        let f = || num(v).ok_or_else(bad);
        let s = &mut base.sampling;
        match key.as_str() {
            "temperature" => s.temperature = f()? as f32,
            "top_k" => s.top_k = f()? as i32,
            "top_p" => s.top_p = f()? as f32,
            "min_p" => s.min_p = f()? as f32,
            "seed" => {
                let seed = f()?;
                s.seed = if seed < 0.0 { None } else { Some(seed as u64 as u32) };
            }
            "repeat_penalty" => s.repeat_penalty = f()? as f32,
            "repeat_last_n" => s.repeat_last_n = f()? as i32,
            "presence_penalty" => s.presence_penalty = f()? as f32,
            "frequency_penalty" => s.frequency_penalty = f()? as f32,
            "num_predict" => base.num_predict = f()? as i64,
            "num_keep" => base.num_keep = f()?.max(0.0) as usize,
            "num_ctx" => {
                let n = f()?;
                base.num_ctx = if n > 0.0 { Some(n.min(f64::from(u32::MAX)) as u32) } else { None };
            }
            "stop" => {
                base.stop = match v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(items) => {
                        items.iter().map(|i| i.as_str().map(str::to_owned).ok_or_else(bad)).collect::<Result<_, _>>()?
                    }
                    _ => return Err(bad()),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `keep_alive`: a number of seconds, or a Go duration string (`"5m"`, `"1h30m"`, `"-1"`).
/// Any negative value keeps the model loaded forever.
pub fn keep_alive(v: &Value) -> Result<KeepAlive, String> {
    let secs = match v {
        Value::Number(n) => n.as_f64().ok_or("keep_alive: invalid number")?,
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(n) => n,
            Err(_) => go_duration(s.trim()).ok_or_else(|| format!("time: invalid duration \"{s}\""))?,
        },
        _ => return Err("keep_alive must be a number or a duration string".into()),
    };
    if secs < 0.0 { Ok(KeepAlive::Forever) } else { Ok(KeepAlive::For(Duration::from_secs_f64(secs.min(1e10)))) }
}

/// Parses Go's `time.ParseDuration` syntax into seconds.
fn go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u_end..];
        total += n * unit;
    }
    Some(if neg { -total } else { total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keep_alive_forms() {
        assert_eq!(keep_alive(&json!(0)), Ok(KeepAlive::For(Duration::ZERO)));
        assert_eq!(keep_alive(&json!(-1)), Ok(KeepAlive::Forever));
        assert_eq!(keep_alive(&json!("-1m")), Ok(KeepAlive::Forever));
        assert_eq!(keep_alive(&json!("1h30m")), Ok(KeepAlive::For(Duration::from_secs(5400))));
        assert_eq!(keep_alive(&json!("300ms")), Ok(KeepAlive::For(Duration::from_millis(300))));
        assert_eq!(keep_alive(&json!("10")), Ok(KeepAlive::For(Duration::from_secs(10))));
        assert!(keep_alive(&json!(true)).is_err());
        assert!(keep_alive(&json!("5 parsecs")).is_err());
    }

    #[test]
    fn options_apply() {
        let mut o = GenOptions::default();
        let m = json!({"temperature": 0, "seed": 42, "stop": "\n", "num_predict": 5, "num_ctx": 512, "mirostat": 1});
        apply(&mut o, m.as_object().unwrap()).unwrap();
        assert_eq!(o.sampling.temperature, 0.0);
        assert_eq!(o.sampling.seed, Some(42));
        assert_eq!(o.stop, ["\n"]);
        assert_eq!((o.num_predict, o.num_ctx), (5, Some(512)));
        assert!(apply(&mut o, json!({"temperature": "hot"}).as_object().unwrap()).is_err());
    }
}
