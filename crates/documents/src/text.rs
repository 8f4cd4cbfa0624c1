//! Plain text and Markdown: decoding, telling them apart, and the whitespace normalisation every
//! extracted page goes through.

use crate::DocumentError;

/// Control characters (other than tab, line feed, form feed and carriage return) in one text
/// character out of this many make it binary rather than text.
const CONTROL_SHARE: usize = 100;

/// Only this much of a text is looked at for Markdown structure.
const MARKDOWN_PROBE_LINES: usize = 2_000;

/// The text of a UTF-8 file without its byte-order mark. NUL bytes, invalid UTF-8 and text dense
/// with control characters are binary, whatever the file is called.
pub(crate) fn decode(bytes: &[u8]) -> Result<&str, DocumentError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err(DocumentError::UnsupportedType("binary content (NUL bytes)".into()));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| DocumentError::UnsupportedType("binary content (not UTF-8 text)".into()))?;
    let (chars, controls) = text.chars().fold((0usize, 0usize), |(chars, controls), c| {
        let control = c.is_control() && !matches!(c, '\t' | '\n' | '\x0c' | '\r');
        (chars + 1, controls + usize::from(control))
    });
    if controls * CONTROL_SHARE > chars {
        return Err(DocumentError::UnsupportedType("binary content (control characters)".into()));
    }
    Ok(text)
}

/// Whether a client's file name says Markdown.
pub(crate) fn has_markdown_extension(name: &str) -> bool {
    let name = name.rsplit(['/', '\\']).next().unwrap_or(name).trim_end().to_ascii_lowercase();
    name.ends_with(".md") || name.ends_with(".markdown")
}

/// Whether text is written in Markdown: an ATX heading (`# Title`) or a code fence is enough;
/// list items need to come three together, since plain notes have the odd dash too.
pub(crate) fn looks_like_markdown(text: &str) -> bool {
    let mut list_items = 0;
    for line in text.lines().take(MARKDOWN_PROBE_LINES) {
        let line = line.trim_start_matches(' ');
        if is_heading(line) || line.starts_with("```") || line.starts_with("~~~") {
            return true;
        }
        if is_list_item(line) {
            list_items += 1;
            if list_items >= 3 {
                return true;
            }
        }
    }
    false
}

fn is_heading(line: &str) -> bool {
    let hashes = line.bytes().take_while(|&b| b == b'#').count();
    (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') && !line[hashes..].trim().is_empty()
}

fn is_list_item(line: &str) -> bool {
    if ["- ", "* ", "+ "].iter().any(|bullet| line.starts_with(bullet)) {
        return true;
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (1..=9).contains(&digits) && (line[digits..].starts_with(". ") || line[digits..].starts_with(") "))
}

/// Whitespace made uniform so chunk sizes mean something and offsets are stable: line ends become
/// `\n`, each line's runs of whitespace one space (trimmed), blank lines one blank line (a
/// paragraph break), other control characters dropped, the whole trimmed.
pub(crate) fn normalise(text: &str) -> String {
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len());
    let mut blank = false;
    for line in unified.split('\n').map(normalise_line) {
        if line.is_empty() {
            blank = true;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank { "\n\n" } else { "\n" });
        }
        out.push_str(&line);
        blank = false;
    }
    out
}

/// One line with whitespace runs collapsed and control characters removed.
fn normalise_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut space = false;
    for c in line.chars() {
        if c.is_whitespace() {
            space = !out.is_empty();
        } else if !c.is_control() {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_collapses_whitespace_and_keeps_paragraphs() {
        assert_eq!(normalise("  a \t b  \n c\n\n\n\nd  "), "a b\nc\n\nd");
        assert_eq!(normalise("a\r\nb\r\n\r\nc"), "a\nb\n\nc");
        assert_eq!(normalise("a\rb"), "a\nb");
        assert_eq!(normalise("x\u{0}y\u{1b}z\u{a0}w"), "xyz w");
        assert_eq!(normalise(" \n \n"), "");
    }

    #[test]
    fn normalise_is_idempotent() {
        for text in ["a\n\nb\nc", "  a  b ", "p1\r\n\r\np2\rp3", "x\n\n\n\ny"] {
            let once = normalise(text);
            assert_eq!(normalise(&once), once);
        }
    }

    #[test]
    fn markdown_structure() {
        assert!(looks_like_markdown("Intro\n## Section\ntext"));
        assert!(looks_like_markdown("1. one\n2. two\n3) three"));
        assert!(!looks_like_markdown("#hashtag and #another"));
        assert!(!looks_like_markdown("- one dash\nthen prose.\n- another"));
        assert!(!looks_like_markdown("####### seven is not a heading"));
    }

    #[test]
    fn markdown_extension() {
        assert!(has_markdown_extension("README.md"));
        assert!(has_markdown_extension("dir\\notes.MARKDOWN"));
        assert!(!has_markdown_extension("notes.md.txt"));
        assert!(!has_markdown_extension("md"));
    }
}
