//! Model replies as HTML: Markdown rendered on the server, made inert. Raw HTML in a reply is
//! shown as text, never as markup, and links and images may only point to http(s), mail or this
//! site; the rest of the output is escaped by the renderer. (The page's Content-Security-Policy
//! forbids inline scripts besides.)

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

pub fn to_html(text: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Link { link_type, dest_url: safe_url(dest_url), title, id })
        }
        Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
            Event::Start(Tag::Image { link_type, dest_url: safe_url(dest_url), title, id })
        }
        other => other,
    });
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// `url` if its scheme is a harmless one (or it is a path or fragment of this site), else `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim_start().to_ascii_lowercase();
    let safe = ["https://", "http://", "mailto:"].iter().any(|s| lower.starts_with(s))
        || (lower.starts_with('/') && !lower.starts_with("//"))
        || lower.starts_with('#');
    if safe { url } else { CowStr::Borrowed("#") }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn markdown_is_rendered() {
        let html = to_html(
            "# Title\n\n**bold** and `code`\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        for part in [
            "<h1>Title</h1>",
            "<strong>bold</strong>",
            "<code>code</code>",
            "<pre><code class=\"language-rust\">",
            "<table>",
        ] {
            assert!(html.contains(part), "{part} in {html}");
        }
    }

    #[test]
    fn scripts_and_dangerous_links_are_inert() {
        let html = to_html(
            "<script>alert(1)</script>\n\nHi <img src=x onerror=alert(2)> [a](javascript:alert(3)) \
             [b](JaVaScRiPt:alert(4)) [c]( data:text/html,x) ![d](vbscript:x) [e](//evil.example) [ok](https://example.com)",
        );
        for bad in [
            "<script",
            "<img src=\"x\"",
            "<img src=x",
            "javascript:",
            "JaVaScRiPt:",
            "data:text",
            "vbscript:",
            "//evil",
        ] {
            assert!(!html.contains(bad), "{bad} in {html}");
        }
        assert!(html.contains("&lt;script&gt;") && html.contains("href=\"https://example.com\""), "{html}");
    }
}
