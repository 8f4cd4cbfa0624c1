//! What `lopdf` inflates while it loads a PDF, bounded before it runs.
//!
//! `Document::load_mem` inflates, without a bound, the cross-reference streams it follows
//! (`startxref`, `/Prev`, `/XRefStm`) and the object streams (`/Type /ObjStm`) it unpacks, and
//! every stream an object stream's entry names as its container (when a stream's `/Length` is an
//! object kept in one); a filter chain `[/FlateDecode /FlateDecode]` turns a few kilobytes into
//! gigabytes. It also allocates what a cross-reference stream's `/W` widths and a PNG predictor's
//! `/Columns` declare. So this pass reads the file itself first, the way lopdf would find its
//! streams, and refuses it before lopdf sees it when:
//!
//! - any one stream inflates past [`Limits::max_uncompressed_bytes`] (every stream: which one a
//!   cross-reference entry names as a container is not known until the cross-reference streams
//!   are read, and those are what is being checked), or all of them together past
//!   [`ALL_STREAMS_FACTOR`] times that;
//! - the object and cross-reference streams lopdf keeps inflated pass that budget together;
//! - a cross-reference stream declares field widths past 8 bytes or of 0 bytes in all, or a
//!   predictor's row is larger than the data it decodes;
//! - reading the structure takes more than [`WORK_FACTOR`] passes over the file (objects inside
//!   strings inside objects, built to make this pass slow).
//!
//! Streams are found by their `obj` keywords (every one, wherever it is: lopdf reads objects
//! where the cross-reference table says, which may be anywhere) and the dictionary and `stream`
//! keyword after it, parsed as lopdf's grammar has them (comments, `#xx` in names, nested
//! strings). What this pass cannot see: object streams of an encrypted file (their bytes are
//! only inflatable once decrypted, which lopdf does while loading); a dictionary lopdf reads
//! differently from this parser; and time (a stream whose `/Length` is kept in an object stream
//! makes lopdf inflate that object stream again, once per such stream). Those are left to the
//! child process the server reads documents in ([`crate::isolated`]): its memory bound and time
//! limit hold whatever the structure.

use std::collections::BTreeSet;
use std::ops::Range;

use pdf_extract::{Dictionary, Object, StringFormat};

use crate::pdf::{decode_parts, filters};
use crate::{DocumentError, Limits};

/// How many times the inflation budget all streams of a file may inflate to, one at a time
/// (images included: a scan inflates to many times its file size).
pub(crate) const ALL_STREAMS_FACTOR: u64 = 16;

/// How many bytes of structure this pass may read per byte of file (plus a floor).
const WORK_FACTOR: usize = 4;
const WORK_FLOOR: usize = 1 << 20;

/// Nesting this parser follows (lopdf stops at 100).
const MAX_DEPTH: usize = 100;

/// Widest cross-reference stream field lopdf can read into its `u32`s.
const MAX_XREF_FIELD: i64 = 8;

/// A stream in the file: where its `obj` keyword is, its dictionary and the bytes that may be its
/// data (the declared `/Length` when it is a number, else up to the end of the file: inflating
/// stops where the compressed data ends, so this bounds whatever lopdf takes).
struct Found {
    obj_at: usize,
    dict: Dictionary,
    data: Range<usize>,
}

/// Refuses a PDF whose loading would inflate or allocate past `limits`; see the module
/// documentation.
pub(crate) fn check(bytes: &[u8], limits: &Limits) -> Result<(), DocumentError> {
    // lopdf reads from the header on; offsets count from there.
    let buf = bytes.windows(5).position(|w| w == b"%PDF-").map_or(bytes, |at| &bytes[at..]);
    let mut scan = Scan { buf, work_left: buf.len().saturating_mul(WORK_FACTOR).saturating_add(WORK_FLOOR) };
    let mut streams = Vec::new();
    let mut offsets = BTreeSet::new();
    for at in keyword_positions(buf, b"obj") {
        if at >= 3 && &buf[at - 3..at] == b"end" {
            continue;
        }
        if let Some(found) = scan.stream_after_obj(at)? {
            collect_offsets(&found.dict, &mut offsets);
            streams.push(found);
        }
    }
    for at in keyword_positions(buf, b"trailer") {
        if let Some(Object::Dictionary(dict)) = scan.object_at(at + b"trailer".len())? {
            collect_offsets(&dict, &mut offsets);
        }
    }
    offsets.extend(startxref(buf));
    // The objects the cross-reference chain starts at, as lopdf parses them there.
    let mut xref_streams = BTreeSet::new();
    for offset in offsets {
        if let Some(obj_at) = scan.obj_keyword_at(offset)? {
            xref_streams.insert(obj_at);
        }
    }

    let budget = limits.max_uncompressed_bytes;
    let (mut all, mut kept) = (0u64, 0u64);
    for found in &streams {
        let is_xref = xref_streams.contains(&found.obj_at) || found.dict.has_type(b"XRef");
        if is_xref {
            check_xref_widths(&found.dict)?;
        }
        let Some(dict) = known_filters(&found.dict) else { continue };
        let size = decode_parts(&dict, &buf[found.data.clone()], budget).ok_or_else(|| too_large(limits))?.len() as u64;
        all = all.saturating_add(size);
        if is_xref || found.dict.has_type(b"ObjStm") {
            kept = kept.saturating_add(size);
        }
        if all > budget.saturating_mul(ALL_STREAMS_FACTOR) || kept > budget {
            return Err(too_large(limits));
        }
    }
    Ok(())
}

/// The stream's dictionary with its filter chain cut before the first filter lopdf cannot
/// apply (lopdf inflates up to there, then gives up); None when nothing is left to inflate.
fn known_filters(dict: &Dictionary) -> Option<Dictionary> {
    let known: Vec<Object> = filters(dict)
        .ok()?
        .into_iter()
        .take_while(|f| [&b"FlateDecode"[..], b"LZWDecode", b"ASCII85Decode"].contains(f))
        .map(|f| Object::Name(f.to_vec()))
        .collect();
    if known.is_empty() {
        return None;
    }
    let mut dict = dict.clone();
    dict.set("Filter", Object::Array(known));
    Some(dict)
}

fn too_large(limits: &Limits) -> DocumentError {
    DocumentError::TooLarge(format!(
        "the PDF's streams inflate to more than {} MiB",
        limits.max_uncompressed_bytes >> 20
    ))
}

/// Where each occurrence of `keyword` starts, as a token (not part of a longer word).
fn keyword_positions<'a>(buf: &'a [u8], keyword: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    buf.windows(keyword.len())
        .enumerate()
        .filter(move |(at, w)| *w == keyword && buf.get(at + keyword.len()).is_none_or(|&c| !is_regular(c)))
        .map(|(at, _)| at)
}

/// The other cross-reference sections a trailer or cross-reference stream points to.
fn collect_offsets(dict: &Dictionary, offsets: &mut BTreeSet<usize>) {
    for key in [&b"Prev"[..], b"XRefStm"] {
        if let Some(offset) = dict.get(key).ok().and_then(|o| o.as_i64().ok()).and_then(|o| usize::try_from(o).ok()) {
            offsets.insert(offset);
        }
    }
}

/// The offset after the last `startxref` near the end, found as lopdf finds it.
fn startxref(buf: &[u8]) -> Option<usize> {
    let tail = buf.len().saturating_sub(512);
    let eof = tail + buf[tail..].windows(5).rposition(|w| w == b"%%EOF")?;
    let from = eof.checked_sub(25)?;
    let at = from + buf[from..eof].windows(9).rposition(|w| w == b"startxref")?;
    let rest = &buf[at + 9..eof];
    let digits: Vec<u8> =
        rest.iter().copied().skip_while(u8::is_ascii_whitespace).take_while(u8::is_ascii_digit).collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

/// A cross-reference stream's `/W`: lopdf allocates each width and reads entries until its data
/// ends, so a width must be small and the widths must not all be 0 (entries of no bytes never
/// end the data: `/Index [0 4000000000]` would make four billion of them).
fn check_xref_widths(dict: &Dictionary) -> Result<(), DocumentError> {
    let Ok(widths) = dict.get(b"W").and_then(Object::as_array) else { return Ok(()) };
    let widths: Vec<i64> = widths.iter().filter_map(|w| w.as_i64().ok()).collect();
    if widths.iter().any(|w| !(0..=MAX_XREF_FIELD).contains(w)) || widths.iter().sum::<i64>() == 0 {
        return Err(DocumentError::Corrupt(format!("a cross-reference stream declares field widths {widths:?}")));
    }
    Ok(())
}

/// The parsing state shared by every object read: how much more may be read.
struct Scan<'a> {
    buf: &'a [u8],
    work_left: usize,
}

impl Scan<'_> {
    /// The stream whose `obj` keyword starts at `at`, if the object there is one.
    fn stream_after_obj(&mut self, at: usize) -> Result<Option<Found>, DocumentError> {
        self.run(at + 3, |p| {
            p.space();
            let Object::Dictionary(dict) = p.object(MAX_DEPTH)? else { return None };
            p.space();
            p.tag(b"stream")?;
            while matches!(p.peek(), Some(b' ' | b'\t')) {
                p.pos += 1;
            }
            if !(p.tag(b"\r\n").is_some() || p.tag(b"\n").is_some() || p.tag(b"\r").is_some()) {
                return None;
            }
            let end = match dict.get(b"Length").and_then(Object::as_i64) {
                Ok(length) => usize::try_from(length).map_or(p.buf.len(), |l| p.pos.saturating_add(l).min(p.buf.len())),
                Err(_) => p.buf.len(),
            };
            Some(Found { obj_at: at, dict, data: p.pos..end })
        })
    }

    /// The position of the `obj` keyword of an object header (`12 0 obj`) at `offset`, as lopdf
    /// reads one there: comments and white space first.
    fn obj_keyword_at(&mut self, offset: usize) -> Result<Option<usize>, DocumentError> {
        if offset >= self.buf.len() {
            return Ok(None);
        }
        self.run(offset, |p| {
            p.space();
            p.unsigned()?;
            p.space();
            p.unsigned()?;
            p.space();
            let at = p.pos;
            p.tag(b"obj")?;
            Some(at)
        })
    }

    /// The object at `at` (after white space and comments).
    fn object_at(&mut self, at: usize) -> Result<Option<Object>, DocumentError> {
        self.run(at, |p| {
            p.space();
            p.object(MAX_DEPTH)
        })
    }

    /// Runs `parse` from `at`, charging what it reads to the work left.
    fn run<T>(
        &mut self,
        at: usize,
        parse: impl FnOnce(&mut Parser<'_>) -> Option<T>,
    ) -> Result<Option<T>, DocumentError> {
        let end = at.saturating_add(self.work_left).min(self.buf.len());
        let mut parser = Parser { buf: &self.buf[..end], pos: at, cut: end < self.buf.len() };
        let result = parse(&mut parser);
        if parser.cut && parser.pos >= end {
            return Err(DocumentError::TooComplex("the PDF's structure is too convoluted to read safely".into()));
        }
        self.work_left -= parser.pos.saturating_sub(at).min(self.work_left);
        Ok(result)
    }
}

fn is_whitespace(c: u8) -> bool {
    b" \t\n\r\0\x0C".contains(&c)
}

fn is_delimiter(c: u8) -> bool {
    b"()<>[]{}/%".contains(&c)
}

fn is_regular(c: u8) -> bool {
    !is_whitespace(c) && !is_delimiter(c)
}

/// PDF objects as lopdf's parser reads them (`parser/mod.rs`), enough to know a stream's
/// dictionary. `buf` ends where the work budget does; `cut` says it ends early.
struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    cut: bool,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn tag(&mut self, tag: &[u8]) -> Option<()> {
        self.buf[self.pos.min(self.buf.len())..].starts_with(tag).then(|| self.pos += tag.len())
    }

    /// White space and comments.
    fn space(&mut self) {
        while let Some(c) = self.peek() {
            if is_whitespace(c) {
                self.pos += 1;
            } else if c == b'%' {
                while self.peek().is_some_and(|c| c != b'\r' && c != b'\n') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    fn digits(&mut self) -> Option<&[u8]> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.buf[start..self.pos])
    }

    fn unsigned(&mut self) -> Option<u64> {
        std::str::from_utf8(self.digits()?).ok()?.parse().ok()
    }

    /// An object and the white space after it.
    fn object(&mut self, depth: usize) -> Option<Object> {
        if depth == 0 {
            return None;
        }
        let object = match self.peek()? {
            b'/' => Object::Name(self.name()),
            b'(' => self.literal_string()?,
            b'[' => {
                self.pos += 1;
                self.space();
                let mut items = Vec::new();
                while self.tag(b"]").is_none() {
                    items.push(self.object(depth - 1)?);
                }
                Object::Array(items)
            }
            b'<' if self.buf[self.pos..].starts_with(b"<<") => {
                self.pos += 2;
                self.space();
                let mut dict = Dictionary::new();
                while self.tag(b">>").is_none() {
                    if self.peek()? != b'/' {
                        return None;
                    }
                    let key = self.name();
                    self.space();
                    dict.set(key, self.object(depth - 1)?);
                }
                Object::Dictionary(dict)
            }
            b'<' => self.hex_string()?,
            _ if self.tag(b"null").is_some() => Object::Null,
            _ if self.tag(b"true").is_some() => Object::Boolean(true),
            _ if self.tag(b"false").is_some() => Object::Boolean(false),
            _ => self.number_or_reference()?,
        };
        self.space();
        Some(object)
    }

    /// `/Name` with `#xx` escapes; a `#` without two hex digits ends it, as in lopdf.
    fn name(&mut self) -> Vec<u8> {
        self.pos += 1;
        let mut name = Vec::new();
        while let Some(c) = self.peek() {
            if c == b'#' {
                let hex = self.buf.get(self.pos + 1..self.pos + 3).and_then(|h| std::str::from_utf8(h).ok());
                let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else { break };
                name.push(byte);
                self.pos += 3;
            } else if is_regular(c) {
                name.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        name
    }

    /// `( … )`, nested parentheses balanced, a backslash escaping the next byte. (The content
    /// does not matter here.)
    fn literal_string(&mut self) -> Option<Object> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'\\' => self.pos += 1,
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return Some(Object::String(Vec::new(), StringFormat::Literal));
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    fn hex_string(&mut self) -> Option<Object> {
        self.pos += 1;
        loop {
            match self.peek()? {
                b'>' => {
                    self.pos += 1;
                    return Some(Object::String(Vec::new(), StringFormat::Hexadecimal));
                }
                c if c.is_ascii_hexdigit() || is_whitespace(c) => self.pos += 1,
                _ => return None,
            }
        }
    }

    /// `12 0 R`, a real (`-1.5`, `.5`, `3.`) or an integer.
    fn number_or_reference(&mut self) -> Option<Object> {
        let start = self.pos;
        if let Some(id) = self.unsigned() {
            let after_id = self.pos;
            self.space();
            if let Some(generation) = self.unsigned() {
                self.space();
                if self.tag(b"R").is_some() {
                    return Some(Object::Reference((u32::try_from(id).ok()?, u16::try_from(generation).ok()?)));
                }
            }
            self.pos = after_id;
        }
        self.pos = start;
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let whole = self.digits().is_some();
        if self.tag(b".").is_some() {
            let fraction = self.digits().is_some();
            if !whole && !fraction {
                return None;
            }
            let text = std::str::from_utf8(&self.buf[start..self.pos]).ok()?;
            return text.parse::<f32>().ok().map(Object::Real);
        }
        if !whole {
            return None;
        }
        std::str::from_utf8(&self.buf[start..self.pos]).ok()?.parse::<i64>().ok().map(Object::Integer)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    use super::*;
    use crate::fixtures::{pdf_of, stream, text_content};
    use crate::{Kind, extract};

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn tight() -> Limits {
        Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() }
    }

    /// A page whose font, object 6, is kept in object stream 5 (with `objstm_dict`'s entries
    /// besides `/Type`, `/N`, `/First` and `/Length`), whose data is `encode`d from the font's.
    fn pdf_with_object_stream(type_name: &str, filter: &str, encode: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";
        let mut data = b"6 0 ".to_vec();
        data.extend_from_slice(font);
        pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 6 0 R >> >> /Contents 4 0 R >>".to_vec(),
            stream("", &text_content(&["Kept in an object stream."])),
            stream(&format!("/Type {type_name} /N 1 /First 4 {filter}"), &encode(&data)),
        ])
    }

    #[test]
    fn an_object_stream_is_read_through_its_filters() {
        let bytes = pdf_with_object_stream("/ObjStm", "/Filter [/FlateDecode /FlateDecode]", |d| zlib(&zlib(d)));
        let got = extract(Kind::Pdf, &bytes, &tight()).unwrap();
        assert_eq!(got.pages[0].text, "Kept in an object stream.");
    }

    #[test]
    fn an_object_stream_that_inflates_twice_is_refused_before_lopdf_loads_it() {
        // 16 MiB of zeros, deflated twice: a few hundred bytes. (Scaled up, a 14 KB file that
        // inflates to gigabytes.)
        let bomb = zlib(&zlib(&vec![0u8; 16 << 20]));
        for type_name in ["/ObjStm", "/Obj#53tm"] {
            let bytes = pdf_with_object_stream(type_name, "/Filter [/FlateDecode /FlateDecode]", |_| bomb.clone());
            let got = check(&bytes, &tight());
            assert!(matches!(got, Err(DocumentError::TooLarge(_))), "{type_name}: {got:?}");
            assert!(matches!(extract(Kind::Pdf, &bytes, &tight()), Err(DocumentError::TooLarge(_))));
        }
    }

    /// A PDF whose `startxref` names object 2: a stream with `dict` and `data`.
    fn with_xref_stream(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"%PDF-1.5\n1 0 obj\n<< /Type /Catalog >>\nendobj\n".to_vec();
        let at = out.len();
        out.extend_from_slice(b"2 0 obj\n");
        out.extend_from_slice(&stream(&format!("/Size 3 /Root 1 0 R {dict}"), data));
        out.extend_from_slice(format!("\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
        out
    }

    #[test]
    fn cross_reference_streams_are_bounded_whatever_their_type_says() {
        // lopdf inflates the stream `startxref` names before it looks at its type.
        let bomb = zlib(&zlib(&vec![0u8; 16 << 20]));
        let bytes = with_xref_stream("/W [1 2 1] /Filter [/FlateDecode /FlateDecode]", &bomb);
        assert!(matches!(check(&bytes, &tight()), Err(DocumentError::TooLarge(_))));
        // Entries of no bytes would be made four billion times; a width of 2^40 allocated.
        for widths in ["[0 0 0] /Index [0 4000000000]", "[1 1099511627776 1]", "[1 9 1]"] {
            let bytes = with_xref_stream(&format!("/Type /XRef /W {widths}"), b"");
            assert!(matches!(check(&bytes, &tight()), Err(DocumentError::Corrupt(_))), "{widths}");
        }
        let fine = with_xref_stream("/Type /XRef /W [1 2 1]", &[1, 0, 9, 0]);
        check(&fine, &tight()).unwrap();
    }

    #[test]
    fn a_predictor_row_larger_than_its_data_is_refused() {
        // lopdf would allocate two rows of a gigabyte for four bytes.
        let params = "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 1000000000 >>";
        let bytes = pdf_of(&[b"<< /Type /Catalog >>".to_vec(), stream(params, &zlib(b"\x02abc"))]);
        assert!(matches!(check(&bytes, &Limits::default()), Err(DocumentError::TooLarge(_))));
        let params = "/Filter /FlateDecode /DecodeParms << /Predictor 12 /Columns 3 >>";
        let bytes = pdf_of(&[b"<< /Type /Catalog >>".to_vec(), stream(params, &zlib(b"\x02abc"))]);
        check(&bytes, &Limits::default()).unwrap();
    }

    #[test]
    fn structure_built_to_make_the_scan_slow_is_refused() {
        // Every `obj` starts a parse that runs to the end of the nested strings.
        let n = 20_000;
        let mut bytes = b"%PDF-1.4\n".to_vec();
        bytes.extend_from_slice("1 0 obj (".repeat(n).as_bytes());
        bytes.extend_from_slice(")".repeat(n).as_bytes());
        let started = std::time::Instant::now();
        assert!(matches!(check(&bytes, &Limits::default()), Err(DocumentError::TooComplex(_))));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    fn parse(text: &[u8]) -> Option<Object> {
        let mut p = Parser { buf: text, pos: 0, cut: false };
        p.object(MAX_DEPTH)
    }

    #[test]
    fn objects_are_read_as_lopdf_reads_them() {
        let got = parse(
            b"<< /Type /Obj#53tm % a comment\n /N 3 /First 12.5 /L [1 0 R -2 .5 (a (b) \\) c) <00 ff>] /T true >>",
        )
        .unwrap();
        let Object::Dictionary(dict) = got else { panic!("{got:?}") };
        assert!(dict.has_type(b"ObjStm"), "#53 is S");
        assert_eq!(dict.get(b"N").unwrap().as_i64().unwrap(), 3);
        let list = dict.get(b"L").unwrap().as_array().unwrap();
        assert_eq!(list[0], Object::Reference((1, 0)));
        assert_eq!(list[1], Object::Integer(-2));
        assert_eq!(list[2], Object::Real(0.5));
        assert!(matches!(list[3], Object::String(_, StringFormat::Literal)));
        assert!(matches!(list[4], Object::String(_, StringFormat::Hexadecimal)));
        assert_eq!(dict.get(b"T").unwrap(), &Object::Boolean(true));
        for broken in [&b"<< /A"[..], b"<< A 1 >>", b"(unclosed", b"<zz>", b"[1 2", b"-"] {
            assert!(parse(broken).is_none(), "{}", String::from_utf8_lossy(broken));
        }
    }

    #[test]
    fn deep_nesting_ends_the_parse() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deep.as_bytes()).is_none());
        let fine = "[".repeat(10) + &"]".repeat(10);
        assert!(parse(fine.as_bytes()).is_some());
    }

    #[test]
    fn startxref_is_found_as_lopdf_finds_it() {
        assert_eq!(startxref(b"%PDF-1.5\n...\nstartxref\n1234\n%%EOF\n"), Some(1234));
        assert_eq!(startxref(b"%PDF-1.5\nno trailer at all"), None);
    }
}
