//! Chat templates: the GGUF's `tokenizer.chat_template` (Hugging Face Jinja) rendered with
//! minijinja, configured like transformers' sandbox (`trim_blocks`, `lstrip_blocks`, loop
//! controls, Python string methods, `raise_exception`, `strftime_now`, `tojson`).

use minijinja::value::Value;
use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

/// What a template sees of one message.
#[derive(Debug, Clone, Serialize)]
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

/// Renders `template` for `messages`, ending with the assistant's turn opened.
pub fn render(
    template: &str,
    messages: &[TemplateMessage],
    tools: Option<&serde_json::Value>,
    bos_token: &str,
    eos_token: &str,
) -> Result<String, Error> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env.add_function("strftime_now", |fmt: String| -> String { strftime(&fmt, time::OffsetDateTime::now_utc()) });
    env.add_template("chat", template)?;
    let tmpl = env.get_template("chat")?;
    let tools = tools.filter(|t| t.as_array().is_some_and(|a| !a.is_empty()));
    let ctx = minijinja::context! {
        messages => Value::from_serialize(messages),
        tools => tools.map(Value::from_serialize),
        add_generation_prompt => true,
        bos_token => bos_token,
        eos_token => eos_token,
        date_string => strftime("%d %b %Y", time::OffsetDateTime::now_utc()),
    };
    tmpl.render(ctx)
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

    #[test]
    fn renders_chatml() {
        let msgs = [TemplateMessage::new("system", "Be brief."), TemplateMessage::new("user", "Hi")];
        let out = render(crate::tiny::CHATML_TEMPLATE, &msgs, None, "", "").unwrap();
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
        let out = render(t, &msgs, None, "<s>", "</s>").unwrap();
        assert_eq!(out, "<s>[USER] xy!42", "trim_blocks drops the newline after a tag");
        let err = render("{{ raise_exception('no system role') }}", &msgs, None, "", "").unwrap_err();
        assert!(err.to_string().contains("no system role"));
    }

    #[test]
    fn formats_dates() {
        let t = time::macros::datetime!(2024-07-04 15:05:09 UTC);
        assert_eq!(strftime("%d %b %Y %H:%M:%S %A %p %%", t), "04 Jul 2024 15:05:09 Thursday PM %");
    }
}
