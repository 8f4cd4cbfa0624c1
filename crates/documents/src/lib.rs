//! Uploaded documents for retrieval: what a file is, what text it holds, how that text is cut into
//! chunks for embedding, and where its bytes are kept. Pure and synchronous: no HTTP, no database.
//!
//! - [`sniff`] tells a [`Kind`] from the bytes alone; a client's file name only chooses between
//!   Markdown and plain text, and its Content-Type is never consulted.
//! - [`extract`] turns a document into [`Page`]s of whitespace-normalised text. PDF pages keep
//!   their numbers so a citation can name its page; DOCX, Markdown and text are one unnumbered page.
//! - [`chunk()`] cuts pages into sentence-aware, overlapping [`Chunk`]s that never cross a page.
//! - [`Store`] keeps the original bytes content-addressed by SHA-256; [`safe_display_name`] makes a
//!   client's file name fit to show (never to build a path from).
//!
//! # Limits
//!
//! An upload is hostile until read. The service caps the upload size; [`Limits`] caps what reading
//! it may cost beyond that:
//!
//! - **DOCX** (a zip): at most [`Limits::max_entries`] entries; the sizes the archive declares may
//!   not add up to more than [`Limits::max_uncompressed_bytes`], nor may an entry past 1 MiB
//!   declare more than [`Limits::max_compression_ratio`] times its compressed size; and the one
//!   entry read (`word/document.xml`) is inflated through a reader that stops at those same
//!   bounds, so an archive that lies in its headers is caught while reading, not after.
//! - **PDF**: before `lopdf` loads it, every stream (object and cross-reference streams
//!   included) may inflate to at most [`Limits::max_uncompressed_bytes`], the streams lopdf keeps
//!   inflated to that much together, and all to sixteen times that; cross-reference widths and
//!   predictor rows are checked before lopdf allocates them. At most [`Limits::max_pages`] pages.
//!   Before the extractor runs, a preflight inflates
//!   through capped readers: the streams it reads besides images (content, forms, fonts) may
//!   together not exceed [`Limits::max_uncompressed_bytes`]; XObjects a page draws (images
//!   included: the extractor inflates those too) may not draw themselves, nest more than 32 deep,
//!   or add up, repeats counted, to more than four times that budget (forms drawing forms ten
//!   times over, a "billion laughs"); page-tree parents may not loop. Password-protected PDFs are
//!   refused (those that open with the empty password are read). The extractor (`pdf-extract`)
//!   panics on some malformed fonts; each page runs under `catch_unwind` and a panic becomes
//!   [`DocumentError::Corrupt`] (this needs the default `panic = "unwind"`; the panic hook still
//!   reports the panic).
//! - **Text**: must be UTF-8 (a BOM is dropped) without NUL bytes or a noticeable share of control
//!   characters.
//!
//! The limits bound what this crate's code does and as much of `lopdf`'s loading as can be bounded
//! from outside it (see the `pdf` module); they cannot bound a parser's bug, a recursion they did
//! not foresee or a loop. So a server never calls [`extract`] itself: [`isolated::extract`] runs
//! it in a child process with a memory bound and a time limit, and a child that dies or is killed
//! is [`DocumentError::TooComplex`]. The limits still give the precise answer (413, 422) for an
//! ordinary bomb, and keep the child's work small.
//!
//! Everything here but [`isolated::extract`] blocks (parsing, inflating, file I/O): call it from
//! `spawn_blocking`.

mod chunk;
mod docx;
mod error;
#[cfg(any(test, feature = "fixtures"))]
#[doc(hidden)]
pub mod fixtures;
mod inflate;
pub mod isolated;
mod pdf;
mod pdf_load;
mod store;
mod text;

pub use chunk::{Chunk, ChunkingError, chunk};
pub use error::DocumentError;
pub use store::{Store, StoredFile, safe_display_name};

/// What a document is, as told by its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Pdf,
    Docx,
    Markdown,
    Text,
}

impl Kind {
    /// A short stable name, for a database column or an API field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Docx => "docx",
            Kind::Markdown => "markdown",
            Kind::Text => "text",
        }
    }

    /// The media type to serve the original bytes with.
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Docx => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            Kind::Markdown => "text/markdown; charset=utf-8",
            Kind::Text => "text/plain; charset=utf-8",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = DocumentError;

    /// The inverse of [`Kind::as_str`], for reading a stored kind back.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Kind::Pdf, Kind::Docx, Kind::Markdown, Kind::Text]
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| DocumentError::UnsupportedType(format!("unknown document kind {s:?}")))
    }
}

/// What reading a document may cost; see the crate documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes that inflating a document may produce (default 50 MiB).
    pub max_uncompressed_bytes: u64,
    /// Highest uncompressed-to-compressed ratio of an archive entry past 1 MiB (default 100).
    pub max_compression_ratio: u64,
    /// Most entries in a DOCX archive (default 10 000; real ones have tens to a few hundred).
    pub max_entries: usize,
    /// Most pages in a PDF (default 2 000).
    pub max_pages: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_uncompressed_bytes: 50 * 1024 * 1024,
            max_compression_ratio: 100,
            max_entries: 10_000,
            max_pages: 2_000,
        }
    }
}

/// One page of extracted text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    /// The 1-based page number for a PDF; `None` where the format has no fixed pages (DOCX pages
    /// depend on the renderer, so its explicit page breaks are not counted: a wrong page number
    /// in a citation is worse than none).
    pub number: Option<u32>,
    /// The text, whitespace-normalised: `\n` line ends, runs of spaces and tabs as one space, no
    /// blank line doubled, no control characters, trimmed.
    pub text: String,
}

/// The text of a document, page by page. A PDF keeps its blank pages (so numbers stay in step);
/// at least one page holds text, or extraction fails with [`DocumentError::NoText`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Extracted {
    pub pages: Vec<Page>,
}

/// Tells what `bytes` are from their content.
///
/// `%PDF-` at the start is a PDF; a zip holding `word/document.xml` and `[Content_Types].xml` is a
/// DOCX, any other zip is unsupported; UTF-8 text without NULs is text, or Markdown when
/// `name_hint` (the client's file name) ends in `.md`/`.markdown` or the text has Markdown
/// structure (an ATX heading, a code fence, or several list items). The name never overrides the
/// content: a PDF called `notes.txt` is a PDF, a text file called `report.docx` is text.
pub fn sniff(bytes: &[u8], name_hint: Option<&str>) -> Result<Kind, DocumentError> {
    sniff_named(bytes, name_hint.is_some_and(is_markdown_name))
}

/// Whether a client's file name says Markdown (`.md`, `.markdown`): all [`sniff`] takes from it.
pub fn is_markdown_name(name: &str) -> bool {
    text::has_markdown_extension(name)
}

/// [`sniff`] with what the name says already told.
fn sniff_named(bytes: &[u8], markdown_name: bool) -> Result<Kind, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    if bytes.starts_with(b"%PDF-") {
        return Ok(Kind::Pdf);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        return docx::sniff(bytes);
    }
    let text = text::decode(bytes)?;
    if text.is_empty() {
        return Err(DocumentError::Empty);
    }
    if markdown_name || text::looks_like_markdown(text) { Ok(Kind::Markdown) } else { Ok(Kind::Text) }
}

/// Reads the text out of a document of the given kind (as [`sniff`] told it).
pub fn extract(kind: Kind, bytes: &[u8], limits: &Limits) -> Result<Extracted, DocumentError> {
    if bytes.is_empty() {
        return Err(DocumentError::Empty);
    }
    let raw = match kind {
        Kind::Pdf => pdf::extract(bytes, limits)?,
        Kind::Docx => vec![Page { number: None, text: docx::extract(bytes, limits)? }],
        Kind::Markdown | Kind::Text => {
            let text = text::decode(bytes)?;
            if text.is_empty() {
                return Err(DocumentError::Empty);
            }
            vec![Page { number: None, text: text.to_owned() }]
        }
    };
    let pages: Vec<Page> =
        raw.into_iter().map(|page| Page { number: page.number, text: text::normalise(&page.text) }).collect();
    if pages.iter().all(|page| page.text.is_empty()) {
        return Err(DocumentError::NoText);
    }
    Ok(Extracted { pages })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_input_is_empty_everywhere() {
        assert!(matches!(sniff(b"", None), Err(DocumentError::Empty)));
        assert!(matches!(sniff(b"\xEF\xBB\xBF", Some("a.txt")), Err(DocumentError::Empty)));
        for kind in [Kind::Pdf, Kind::Docx, Kind::Markdown, Kind::Text] {
            assert!(matches!(extract(kind, b"", &Limits::default()), Err(DocumentError::Empty)), "{kind:?}");
        }
    }

    #[test]
    fn text_and_markdown_are_told_by_content_and_name() {
        assert_eq!(sniff(b"Just a note.\nNothing more.", None).unwrap(), Kind::Text);
        assert_eq!(sniff(b"Just a note.", Some("notes.md")).unwrap(), Kind::Markdown);
        assert_eq!(sniff(b"Just a note.", Some("NOTES.Markdown")).unwrap(), Kind::Markdown);
        assert_eq!(sniff(b"# Title\n\nBody text.", Some("notes.txt")).unwrap(), Kind::Markdown);
        assert_eq!(sniff(b"Intro\n\n```rust\nfn main() {}\n```\n", None).unwrap(), Kind::Markdown);
        assert_eq!(sniff(b"Shopping:\n- eggs\n- milk\n- bread\n", None).unwrap(), Kind::Markdown);
        // The name never makes text into something it is not.
        assert_eq!(sniff(b"Plain words in a file.", Some("report.docx")).unwrap(), Kind::Text);
        assert_eq!(sniff(b"Plain words in a file.", Some("scan.pdf")).unwrap(), Kind::Text);
    }

    #[test]
    fn binary_is_unsupported() {
        for bytes in [&b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"[..], b"GIF89a\x01\0\x01\0", b"\xff\xfe\xfd", b"a\0b"] {
            assert!(matches!(sniff(bytes, Some("x.txt")), Err(DocumentError::UnsupportedType(_))), "{bytes:?}");
        }
        assert!(matches!(extract(Kind::Text, b"\xff\xfe", &Limits::default()), Err(DocumentError::UnsupportedType(_))));
    }

    #[test]
    fn text_is_one_unnumbered_normalised_page() {
        let input = format!("\u{feff}Hello\t  world \r\n\r\n\r\n\r\nBye\u{7}.\n{}", "Filler text. ".repeat(10));
        let got = extract(Kind::Text, input.as_bytes(), &Limits::default()).unwrap();
        let want = format!("Hello world\n\nBye.\n{}", "Filler text. ".repeat(10).trim_end());
        assert_eq!(got.pages, vec![Page { number: None, text: want }]);
    }

    #[test]
    fn whitespace_only_text_has_no_text() {
        assert!(matches!(extract(Kind::Text, b" \n\t\r\n ", &Limits::default()), Err(DocumentError::NoText)));
    }

    #[test]
    fn kind_round_trips_through_its_name() {
        for kind in [Kind::Pdf, Kind::Docx, Kind::Markdown, Kind::Text] {
            assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
        }
        assert!("exe".parse::<Kind>().is_err());
    }
}
