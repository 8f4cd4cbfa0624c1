//! Chat templates: the GGUF's `tokenizer.chat_template` (Hugging Face Jinja) rendered with
//! minijinja, configured like transformers' sandbox (`trim_blocks`, `lstrip_blocks`, loop
//! controls, Python string methods, `raise_exception`, `strftime_now`, `tojson`).
//!
//! A template comes with the model, from whoever published it, and runs on every chat request:
//! it gets a budget of instructions (minijinja's fuel), a recursion limit and a cap on what it
//! writes, and one that exceeds them fails that request with [`TemplateError::Limit`]. Fuel
//! bounds neither memory nor time: one instruction may double a string of 100 MB (`s ~ s`), so a
//! server renders in a confined worker process ([`crate::worker`]), never in its own.

use std::io;

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

/// Instructions a template may run by default (`engine.template_fuel`): enough for the chat
/// templates of real models over thousands of messages with tools.
pub const DEFAULT_FUEL: u64 = 5_000_000;

/// ChatML, the template of the tiny test models.
pub const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Nesting (loops, conditions, macro calls) a template may reach. Far below minijinja's own
/// ceiling, which assumes a larger stack than a runtime worker thread has.
const RECURSION_LIMIT: usize = 100;
/// Bytes a rendered prompt may have: no real one comes near the engine's 64 MiB body limit.
pub const MAX_OUTPUT: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The template used more than its budget: the request fails.
    #[error("the model's chat template exceeded its limits ({0})")]
    Limit(String),
    /// The template is not one minijinja renders (Go syntax, an unknown filter…), or it raised
    /// an exception: the engine falls back to llama.cpp's built-in templates.
    #[error("{0}")]
    Render(String),
}

impl TemplateError {
    fn classify(e: Error) -> Self {
        match e.kind() {
            ErrorKind::OutOfFuel => TemplateError::Limit("it ran out of fuel, engine.template_fuel".into()),
            ErrorKind::WriteFailure => TemplateError::Limit("its output is larger than 64 MiB".into()),
            // minijinja reports this one only by its message.
            ErrorKind::InvalidOperation if e.detail() == Some("recursion limit exceeded") => {
                TemplateError::Limit("it nests deeper than 100 levels".into())
            }
            _ => TemplateError::Render(e.to_string()),
        }
    }
}

/// A writer that refuses to grow past [`MAX_OUTPUT`].
struct Capped(Vec<u8>);

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT {
            return Err(io::Error::other("output limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a template sees of one message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateMessage {
    pub role: String,
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl TemplateMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_owned(), content: content.to_owned(), tool_calls: None, tool_name: None, name: None }
    }
}

/// A conversation to render with a model's template.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prompt {
    pub template: String,
    pub messages: Vec<TemplateMessage>,
    /// The request's tools, shown to the template when there are any.
    pub tools: Option<serde_json::Value>,
    pub bos_token: String,
    pub eos_token: String,
    /// Instructions the template may run (`engine.template_fuel`).
    pub fuel: u64,
}

/// Renders `prompt`, ending with the assistant's turn opened, within its fuel. In this process:
/// a server calls it through [`crate::worker`].
pub fn render(prompt: &Prompt) -> Result<String, TemplateError> {
    let Prompt { template, messages, tools, bos_token, eos_token, fuel } = prompt;
    let mut env = Environment::new();
    env.set_fuel(Some(*fuel));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |fmt: String| -> String { strftime(&fmt, time::OffsetDateTime::now_utc()) });
    env.add_template("chat", template).map_err(TemplateError::classify)?;
    let tmpl = env.get_template("chat").map_err(TemplateError::classify)?;
    let tools = tools.as_ref().filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    let ctx = minijinja::context! {
        messages => Value::from_serialize(messages),
        tools => tools.map(Value::from_serialize),
        add_generation_prompt => true,
        bos_token => bos_token,
        eos_token => eos_token,
        date_string => strftime("%d %b %Y", time::OffsetDateTime::now_utc()),
    };
    let mut out = Capped(Vec::new());
    tmpl.render_captured_to(ctx, &mut out).map_err(TemplateError::classify)?;
    Ok(String::from_utf8_lossy(&out.0).into_owned())
}

/// The subset of C's `strftime` that chat templates use.
fn strftime(fmt: &str, t: time::OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
    let month = MONTHS[usize::from(u8::from(t.month())) - 1];
    let day = DAYS[usize::from(t.weekday().number_days_from_monday())];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{:02}", t.day())),
            Some('e') => out.push_str(&format!("{:2}", t.day())),
            Some('m') => out.push_str(&format!("{:02}", u8::from(t.month()))),
            Some('Y') => out.push_str(&t.year().to_string()),
            Some('y') => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('a') => out.push_str(&day[..3]),
            Some('A') => out.push_str(day),
            Some('H') => out.push_str(&format!("{:02}", t.hour())),
            Some('I') => out.push_str(&format!("{:02}", (t.hour() + 11) % 12 + 1)),
            Some('M') => out.push_str(&format!("{:02}", t.minute())),
            Some('S') => out.push_str(&format!("{:02}", t.second())),
            Some('p') => out.push_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&format!("{:03}", t.ordinal())),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(template: &str, messages: &[TemplateMessage], bos: &str, eos: &str) -> Prompt {
        Prompt {
            template: template.to_owned(),
            messages: messages.to_vec(),
            tools: None,
            bos_token: bos.to_owned(),
            eos_token: eos.to_owned(),
            fuel: DEFAULT_FUEL,
        }
    }

    #[test]
    fn renders_chatml() {
        let msgs = [TemplateMessage::new("system", "Be brief."), TemplateMessage::new("user", "Hi")];
        let out = render(&prompt(CHATML, &msgs, "", "")).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn supports_hugging_face_idioms() {
        let t = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{% continue %}{% endif %}\
                 [{{ m.role | upper }}] {{ m.content.strip() }}{% if m.content.strip().startswith('x') %}!{% endif %}\n\
                 {% endfor %}{{ strftime_now('%Y') | length }}{{ messages | length | tojson }}";
        let msgs = [TemplateMessage::new("system", "s"), TemplateMessage::new("user", "  xy  ")];
        let out = render(&prompt(t, &msgs, "<s>", "</s>")).unwrap();
        assert_eq!(out, "<s>[USER] xy!42", "trim_blocks drops the newline after a tag");
        let err = render(&prompt("{{ raise_exception('no system role') }}", &msgs, "", "")).unwrap_err();
        assert!(err.to_string().contains("no system role"));
    }

    /// Each hostile template fails with a limit error, on a thread with a runtime worker's 2 MiB
    /// stack (a deep recursion that overflowed it would abort the test binary).
    #[test]
    fn hostile_templates_fail_within_their_limits() {
        let hostile = [
            ("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "fuel"),
            ("{% macro m(n) %}{{ m(n + 1) }}{% endmacro %}{{ m(0) }}", "nests"),
            ("{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}", "nests"),
            ("{% set s = 'x' * 50000000 %}{% for i in range(100) %}{{ s }}{% endfor %}", "64 MiB"),
        ];
        for (template, why) in hostile {
            let hostile = prompt(template, &[TemplateMessage::new("user", "hi")], "", "");
            let err = std::thread::Builder::new()
                .stack_size(2 << 20)
                .spawn(move || render(&hostile).unwrap_err())
                .unwrap()
                .join()
                .expect("no stack overflow");
            assert!(matches!(err, TemplateError::Limit(_)), "{template}: {err}");
            assert!(err.to_string().contains(why), "{template}: {err}");
        }
    }

    #[test]
    fn formats_dates() {
        let t = time::macros::datetime!(2024-07-04 15:05:09 UTC);
        assert_eq!(strftime("%d %b %Y %H:%M:%S %A %p %%", t), "04 Jul 2024 15:05:09 Thursday PM %");
    }
}
