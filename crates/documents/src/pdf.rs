//! PDF text, page by page, with `pdf-extract` (on `lopdf`).
//!
//! `pdf-extract` trusts its input: it inflates every stream it meets without a bound, follows
//! XObjects and page-tree parents by plain recursion (a loop overflows the stack, which aborts the
//! process and cannot be caught), and `unwrap`s freely. So before it runs, a preflight
//! bounds what it will do:
//!
//! - every stream it may read other than images (content, forms, fonts, colour profiles)
//!   inflates, all together, within [`Limits::max_uncompressed_bytes`];
//! - each page's `/Parent` chain is short and loop-free;
//! - the walk it makes through each page's content and the XObjects drawn (`/Name Do`), resolved
//!   against the same resources, is replayed with sizes: no XObject may draw itself or nest more
//!   than 32 deep, no single one inflate past the budget, and all drawing, repeats counted (it
//!   also "draws" images by inflating them), may not exceed four times the budget.
//!
//! Then each page is extracted under `catch_unwind`, so the panics that remain (odd fonts,
//! missing keys) become [`DocumentError::Corrupt`].
//!
//! Before all that, `lopdf` loads the file, inflating object and cross-reference streams on its
//! own: the `pdf_load` module bounds that first. Not covered: fonts are parsed again on every page
//! that uses them, so a huge font on many pages costs time (bounded, not memory); and what the
//! `pdf_load` module names as beyond it. The child process documents are read in covers those.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use flate2::read::{DeflateDecoder, ZlibDecoder};
use pdf_extract::content::Content;
use pdf_extract::{Dictionary, Document, Object, ObjectId, PlainTextOutput, Stream, output_doc_page};

use crate::inflate::{CappedWriter, read_capped};
use crate::{DocumentError, Limits, Page};

/// How deep XObjects may draw XObjects. Real documents nest two or three levels.
const MAX_XOBJECT_DEPTH: usize = 32;

/// How long a page's chain of `/Parent`s may be. Real page trees are a few levels deep.
const MAX_PARENT_DEPTH: usize = 64;

/// How many times the inflated stream budget the extractor may process once XObjects drawn more
/// than once are counted each time, images included (a logo on every page, a report full of
/// screenshots are fine; forms drawing forms drawing forms ten times each are not).
const EXPANSION_FACTOR: u64 = 4;

/// Stream types the extractor never reads: nothing to bound.
const UNREAD_STREAM_TYPES: [&[u8]; 4] = [b"EmbeddedFile", b"Metadata", b"XRef", b"ObjStm"];

/// XObjects the extractor only inflates when a page draws them; bounded in the walk instead.
const IMAGE_SUBTYPE: &[u8] = b"Image";

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Vec<Page>, DocumentError> {
    guarded(|| crate::pdf_load::check(bytes, limits))
        .ok_or_else(|| corrupt("the PDF's structure cannot be parsed"))??;
    let doc = guarded(|| Document::load_mem(bytes))
        .ok_or_else(|| corrupt("the PDF's structure cannot be parsed"))?
        .map_err(|e| DocumentError::Corrupt(format!("not a readable PDF: {e}")))?;
    // lopdf decrypts while loading when the empty user password opens the file (and then drops
    // /Encrypt from the trailer); a file that needs a real password keeps it and loads no objects.
    if doc.trailer.has(b"Encrypt") {
        return Err(corrupt("the PDF is password-protected"));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(corrupt("the PDF has no pages"));
    }
    if pages.len() > limits.max_pages as usize {
        return Err(DocumentError::TooLarge(format!(
            "the PDF has {} pages (at most {} are accepted)",
            pages.len(),
            limits.max_pages
        )));
    }
    guarded(|| preflight(&doc, &pages, limits)).ok_or_else(|| corrupt("the PDF's structure cannot be parsed"))??;

    let mut out = Vec::with_capacity(pages.len());
    for &number in pages.keys() {
        let mut text = String::new();
        let result = guarded(|| output_doc_page(&doc, &mut PlainTextOutput::new(&mut text), number));
        match result {
            Some(Ok(())) => out.push(Page { number: Some(number), text }),
            Some(Err(e)) => return Err(DocumentError::Corrupt(format!("page {number} cannot be read: {e}"))),
            None => {
                return Err(DocumentError::Corrupt(format!(
                    "page {number} uses a font or construct the text extractor cannot read"
                )));
            }
        }
    }
    Ok(out)
}

/// Runs `f`, turning a panic into `None`. (The panic hook still reports the panic.)
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).ok()
}

fn corrupt(why: &str) -> DocumentError {
    DocumentError::Corrupt(why.to_owned())
}

fn too_large(limits: &Limits) -> DocumentError {
    DocumentError::TooLarge(format!(
        "the PDF's content inflates to more than {} MiB",
        limits.max_uncompressed_bytes >> 20
    ))
}

/// Refuses what would make the extractor loop, recurse without end, or inflate without bound.
fn preflight(doc: &Document, pages: &BTreeMap<u32, ObjectId>, limits: &Limits) -> Result<(), DocumentError> {
    let mut left = limits.max_uncompressed_bytes;
    for object in doc.objects.values() {
        let Object::Stream(stream) = object else { continue };
        let name = |key: &[u8]| stream.dict.get(key).and_then(Object::as_name).ok();
        if name(b"Type").is_some_and(|t| UNREAD_STREAM_TYPES.contains(&t)) || name(b"Subtype") == Some(IMAGE_SUBTYPE) {
            continue;
        }
        let size = decode(stream, left).ok_or_else(|| too_large(limits))?.len() as u64;
        left -= size;
    }

    let mut walk = Walk {
        doc,
        limits,
        cap: limits.max_uncompressed_bytes.saturating_mul(EXPANSION_FACTOR),
        scanned: HashMap::new(),
        expanded: HashMap::new(),
        active: HashSet::new(),
    };
    let mut total = 0u64;
    for (&number, &page) in pages {
        let resources = page_resources(doc, page, number)?;
        total = total.saturating_add(walk.page(page, resources)?);
        if total > walk.cap {
            return Err(too_large(limits));
        }
    }
    Ok(())
}

/// The page's resources as the extractor finds them: on the page or the nearest ancestor. The
/// whole `/Parent` chain is checked, since the extractor climbs it (by recursion) for other
/// inherited keys too.
fn page_resources(doc: &Document, page: ObjectId, number: u32) -> Result<Option<&Dictionary>, DocumentError> {
    let mut resources = None;
    let mut seen = HashSet::new();
    let mut node = Some(page);
    while let Some(id) = node {
        if !seen.insert(id) || seen.len() > MAX_PARENT_DEPTH {
            return Err(DocumentError::Corrupt(format!("page {number}'s page tree loops or is absurdly deep")));
        }
        let Ok(dict) = doc.get_dictionary(id) else { break };
        if resources.is_none() {
            resources = dict.get(b"Resources").ok().and_then(|r| deref(doc, r)).and_then(|r| r.as_dict().ok());
        }
        node = dict.get(b"Parent").and_then(Object::as_reference).ok();
    }
    Ok(resources)
}

fn deref<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Object> {
    doc.dereference(object).ok().map(|(_, o)| o)
}

/// What one content stream costs and which XObjects it draws.
#[derive(Clone)]
struct Scanned {
    len: u64,
    draws: Rc<[Vec<u8>]>,
}

/// The extractor's walk through content and XObjects, replayed with sizes instead of text.
struct Walk<'a> {
    doc: &'a Document,
    limits: &'a Limits,
    /// Most bytes the extractor may process for the whole document, drawing repeats counted.
    cap: u64,
    scanned: HashMap<ObjectId, Scanned>,
    /// Content bytes processed for an XObject drawn with the resources of an owner (a page or an
    /// XObject), including what it draws in turn.
    expanded: HashMap<(ObjectId, ObjectId), u64>,
    /// The XObjects being expanded right now: meeting one again is a loop.
    active: HashSet<(ObjectId, ObjectId)>,
}

impl<'a> Walk<'a> {
    fn page(&mut self, page: ObjectId, resources: Option<&'a Dictionary>) -> Result<u64, DocumentError> {
        // The extractor concatenates the page's content streams and parses them as one.
        let mut content = Vec::new();
        for id in self.doc.get_page_contents(page) {
            if let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) {
                let decoded =
                    decode(stream, self.limits.max_uncompressed_bytes).ok_or_else(|| too_large(self.limits))?;
                content.extend_from_slice(&decoded);
                content.push(b'\n');
            }
        }
        let draws = draws(&content);
        self.draw_all(content.len() as u64, &draws, page, resources, 1)
    }

    fn draw_all(
        &mut self,
        mut total: u64,
        draws: &[Vec<u8>],
        owner: ObjectId,
        resources: Option<&'a Dictionary>,
        depth: usize,
    ) -> Result<u64, DocumentError> {
        for name in draws {
            let Some(target) = self.xobject(resources, name) else { continue };
            total = total.saturating_add(self.expand(target, owner, resources, depth)?);
            if total > self.cap {
                return Err(too_large(self.limits));
            }
        }
        Ok(total)
    }

    /// The XObject `name` resolves to, as the extractor resolves it. Names it cannot resolve are
    /// left to it (it panics on them, which becomes `Corrupt`).
    fn xobject(&self, resources: Option<&'a Dictionary>, name: &[u8]) -> Option<ObjectId> {
        let xobjects = deref(self.doc, resources?.get(b"XObject").ok()?)?.as_dict().ok()?;
        let id = xobjects.get(name).ok()?.as_reference().ok()?;
        self.doc.get_object(id).ok()?.as_stream().ok()?;
        Some(id)
    }

    fn expand(
        &mut self,
        id: ObjectId,
        owner: ObjectId,
        resources: Option<&'a Dictionary>,
        depth: usize,
    ) -> Result<u64, DocumentError> {
        if depth > MAX_XOBJECT_DEPTH {
            return Err(DocumentError::Corrupt(format!("XObjects are nested more than {MAX_XOBJECT_DEPTH} deep")));
        }
        let key = (id, owner);
        if let Some(&size) = self.expanded.get(&key) {
            return Ok(size);
        }
        if !self.active.insert(key) {
            return Err(corrupt("an XObject draws itself"));
        }
        let doc = self.doc;
        let stream = doc.get_object(id).and_then(Object::as_stream).map_err(|_| corrupt("a missing XObject"))?;
        let Scanned { len, draws } = self.scan(id, stream)?;
        // Without resources of its own an XObject uses those it was drawn with.
        let own = stream.dict.get(b"Resources").ok().and_then(|r| deref(doc, r)).and_then(|r| r.as_dict().ok());
        let (owner, resources) = if own.is_some() { (id, own) } else { (owner, resources) };
        let size = self.draw_all(len, &draws, owner, resources, depth + 1)?;
        self.active.remove(&key);
        self.expanded.insert(key, size);
        Ok(size)
    }

    fn scan(&mut self, id: ObjectId, stream: &Stream) -> Result<Scanned, DocumentError> {
        if let Some(scanned) = self.scanned.get(&id) {
            return Ok(scanned.clone());
        }
        let content = decode(stream, self.limits.max_uncompressed_bytes).ok_or_else(|| too_large(self.limits))?;
        let scanned = Scanned { len: content.len() as u64, draws: draws(&content).into() };
        self.scanned.insert(id, scanned.clone());
        Ok(scanned)
    }
}

/// The XObject names a content stream draws (`/Name Do`), in order, repeats included.
fn draws(content: &[u8]) -> Vec<Vec<u8>> {
    let Ok(content) = Content::decode(content) else { return Vec::new() };
    content
        .operations
        .into_iter()
        .filter(|op| op.operator == "Do")
        .filter_map(|op| op.operands.first().and_then(|o| o.as_name().ok()).map(<[u8]>::to_vec))
        .collect()
}

/// A stream's content as lopdf would decode it for the extractor, or `None` if it inflates past
/// `cap`. Filters lopdf does not know leave the raw bytes (lopdf fails on them). Predictors are
/// not applied (they never grow the data), but a predictor row larger than the data is refused:
/// lopdf allocates two rows before it looks at the data.
fn decode(stream: &Stream, cap: u64) -> Option<Cow<'_, [u8]>> {
    decode_parts(&stream.dict, &stream.content, cap)
}

/// [`decode`] of a stream given as its dictionary and raw content.
pub(crate) fn decode_parts<'a>(dict: &Dictionary, content: &'a [u8], cap: u64) -> Option<Cow<'a, [u8]>> {
    let raw = || (content.len() as u64 <= cap).then_some(Cow::Borrowed(content));
    let Ok(filters) = filters(dict) else { return raw() };
    let mut data = Cow::Borrowed(content);
    for filter in filters {
        data = Cow::Owned(match filter {
            b"FlateDecode" => inflate(&data, cap)?,
            b"LZWDecode" => unlzw(&data, early_change(dict), cap)?,
            b"ASCII85Decode" => match ascii85(&data) {
                Some(decoded) if decoded.len() as u64 <= cap => decoded,
                Some(_) => return None,
                None => return raw(),
            },
            _ => return raw(),
        });
    }
    let row = predictor_row(dict);
    if row > data.len().max(MAX_ROW_WITHOUT_DATA) {
        return None;
    }
    Some(data)
}

/// The filter names of a stream, as lopdf reads them.
pub(crate) fn filters(dict: &Dictionary) -> Result<Vec<&[u8]>, pdf_extract::Error> {
    match dict.get(b"Filter")? {
        Object::Array(names) => names.iter().map(Object::as_name).collect(),
        other => Ok(vec![other.as_name()?]),
    }
}

/// A predictor row this long is allowed whatever the data (a real row is a scan line).
const MAX_ROW_WITHOUT_DATA: usize = 64 * 1024;

/// The bytes of one row lopdf allocates for a PNG predictor (twice), 0 without one.
fn predictor_row(dict: &Dictionary) -> usize {
    let Some(params) = dict.get(b"DecodeParms").and_then(Object::as_dict).ok() else { return 0 };
    let int = |key: &[u8], default: i64| params.get(key).and_then(Object::as_i64).unwrap_or(default);
    if !(10..=15).contains(&int(b"Predictor", 1)) {
        return 0;
    }
    let positive = |v: i64| usize::try_from(v.max(1)).unwrap_or(usize::MAX);
    let bits = positive(int(b"BitsPerComponent", 8).max(8));
    (positive(int(b"Colors", 1)).saturating_mul(bits) / 8).saturating_mul(positive(int(b"Columns", 1)))
}

/// zlib, falling back to raw deflate past the header when nothing came out (as lopdf does for
/// streams with a broken checksum); errors keep what was inflated, like lopdf.
fn inflate(data: &[u8], cap: u64) -> Option<Vec<u8>> {
    let zlib = read_capped(ZlibDecoder::new(data), cap);
    let read = if zlib.data.is_empty() && zlib.error.is_some() && data.len() > 2 {
        read_capped(DeflateDecoder::new(&data[2..]), cap)
    } else {
        zlib
    };
    (!read.over).then_some(read.data)
}

fn early_change(dict: &Dictionary) -> bool {
    dict.get(b"DecodeParms")
        .and_then(Object::as_dict)
        .and_then(|p| p.get(b"EarlyChange"))
        .and_then(Object::as_i64)
        .map_or(true, |v| v != 0)
}

/// LZW the way lopdf configures it, into a sink that stops the decoder at the cap.
fn unlzw(data: &[u8], early_change: bool, cap: u64) -> Option<Vec<u8>> {
    use weezl::{BitOrder, decode::Decoder};
    let mut decoder =
        if early_change { Decoder::with_tiff_size_switch(BitOrder::Msb, 8) } else { Decoder::new(BitOrder::Msb, 8) };
    let mut sink = CappedWriter::new(cap);
    // A decoding error keeps what came before it, as in lopdf.
    let _ = decoder.into_stream(&mut sink).decode_all(data).status;
    (!sink.over).then_some(sink.data)
}

/// ASCII85 through lopdf itself (it can only shrink data by a fifth or grow `z` groups fourfold).
fn ascii85(data: &[u8]) -> Option<Vec<u8>> {
    let mut dict = Dictionary::new();
    dict.set("Filter", Object::Name(b"ASCII85Decode".to_vec()));
    Stream::new(dict, data.to_vec()).decompressed_content().ok()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::ZlibEncoder;

    use super::*;
    use crate::fixtures::{
        pdf, pdf_objects_with_contents, pdf_of, pdf_with_contents, pdf_with_trailer, stream, text_content,
    };
    use crate::{Kind, extract as extract_document, sniff as sniff_document};

    fn extract_pdf(bytes: &[u8]) -> Result<Vec<Page>, DocumentError> {
        extract_document(Kind::Pdf, bytes, &Limits::default()).map(|e| e.pages)
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn pages_keep_their_numbers() {
        let bytes = pdf(&[&["Hello from page one.", "Second line."], &[], &["Page three says goodbye."]]);
        assert_eq!(sniff_document(&bytes, Some("notes.txt")).unwrap(), Kind::Pdf);
        let pages = extract_pdf(&bytes).unwrap();
        let numbers: Vec<_> = pages.iter().map(|p| p.number).collect();
        assert_eq!(numbers, [Some(1), Some(2), Some(3)]);
        assert_eq!(pages[0].text, "Hello from page one.\nSecond line.");
        assert_eq!(pages[1].text, "");
        assert_eq!(pages[2].text, "Page three says goodbye.");
    }

    #[test]
    fn compressed_content_is_read() {
        let content = zlib(&text_content(&["Deflated words."]));
        let bytes = pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents 5 0 R >>".to_vec(),
            stream("/Filter /FlateDecode", &content),
        ]);
        assert_eq!(extract_pdf(&bytes).unwrap()[0].text, "Deflated words.");
    }

    #[test]
    fn a_pdf_without_text_has_no_text() {
        let bytes = pdf_with_contents(&[b"0 0 m 100 100 l S".to_vec(), Vec::new()]);
        assert!(matches!(extract_pdf(&bytes), Err(DocumentError::NoText)));
    }

    #[test]
    fn truncated_and_garbled_pdfs_are_corrupt() {
        let whole = pdf(&[&["Some text."], &["More text."]]);
        for cut in [10, whole.len() / 2, whole.len() - 40] {
            let got = extract_pdf(&whole[..cut]);
            assert!(matches!(got, Err(DocumentError::Corrupt(_))), "cut at {cut}: {got:?}");
        }
        let garbage: Vec<u8> =
            b"%PDF-1.7\n".iter().copied().chain((0..5000u32).map(|i| (i * 31 % 256) as u8)).collect();
        assert!(matches!(extract_pdf(&garbage), Err(DocumentError::Corrupt(_))));
    }

    /// The text PDF encrypted by lopdf (RC4, 128-bit key) with the given user password.
    fn encrypted(user_password: &str) -> Vec<u8> {
        use pdf_extract::{EncryptionState, EncryptionVersion, Permissions};
        let id = format!("/ID [<{0}> <{0}>]", "01".repeat(16));
        let contents = [text_content(&["Sealed but readable."])];
        let plain = pdf_with_trailer(&pdf_objects_with_contents(&contents), &id);
        let mut doc = Document::load_mem(&plain).unwrap();
        let version = EncryptionVersion::V2 {
            document: &doc,
            owner_password: "owner secret",
            user_password,
            key_length: 128,
            permissions: Permissions::all(),
        };
        let state = EncryptionState::try_from(version).unwrap();
        doc.encrypt(&state).unwrap();
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn an_encrypted_pdf_opens_with_the_empty_password_or_is_refused() {
        let open = encrypted("");
        assert!(!open.windows(b"Sealed".len()).any(|w| w == b"Sealed"), "the fixture should be encrypted");
        assert_eq!(extract_pdf(&open).unwrap()[0].text, "Sealed but readable.");

        let got = extract_pdf(&encrypted("user secret"));
        assert!(matches!(&got, Err(DocumentError::Corrupt(m)) if m.contains("password")), "{got:?}");
    }

    /// Page resources name one form XObject (object 6) whose content is `form_content`.
    fn pdf_with_form(form_dict: &str, form_content: &[u8], page_content: &[u8]) -> Vec<u8> {
        pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> /XObject << /X1 6 0 R >> >> /Contents 5 0 R >>".to_vec(),
            stream("", page_content),
            stream(&format!("/Type /XObject /Subtype /Form /BBox [0 0 612 792] {form_dict}"), form_content),
        ])
    }

    #[test]
    fn form_xobjects_are_read() {
        let bytes = pdf_with_form("", &text_content(&["Inside a form."]), b"/X1 Do");
        assert_eq!(extract_pdf(&bytes).unwrap()[0].text, "Inside a form.");
    }

    #[test]
    fn an_xobject_that_draws_itself_is_refused_not_a_stack_overflow() {
        // Without resources of its own the form resolves /X1 in the page's resources: itself.
        let bytes = pdf_with_form("", b"/X1 Do", b"/X1 Do");
        let got = extract_pdf(&bytes);
        assert!(matches!(&got, Err(DocumentError::Corrupt(m)) if m.contains("itself")), "{got:?}");
        // Same through its own resources.
        let bytes = pdf_with_form("/Resources << /XObject << /X1 6 0 R >> >>", b"/X1 Do", b"/X1 Do");
        assert!(matches!(extract_pdf(&bytes), Err(DocumentError::Corrupt(_))));
    }

    #[test]
    fn forms_fanning_out_are_refused() {
        // Ten levels of forms, each drawing the next ten times: 10^10 draws of the last one.
        let levels = 10;
        let mut objects = vec![
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
            stream("", b"/X Do"),
        ];
        for level in 0..levels {
            let id = 5 + level;
            let (resources, content) = if level + 1 < levels {
                (format!("/Resources << /XObject << /X {} 0 R >> >>", id + 1), "/X Do ".repeat(10).into_bytes())
            } else {
                (String::new(), b"0 0 m 1 1 l S".to_vec())
            };
            objects.push(stream(&format!("/Type /XObject /Subtype /Form /BBox [0 0 1 1] {resources}"), &content));
        }
        let started = std::time::Instant::now();
        let got = extract_pdf(&pdf_of(&objects));
        assert!(matches!(got, Err(DocumentError::TooLarge(_))), "{got:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_page_tree_loop_is_refused() {
        // A page without MediaBox whose parent is itself: the extractor would climb forever.
        let bytes = pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>".to_vec(),
            stream("", b"BT ET"),
        ]);
        let got = extract_pdf(&bytes);
        assert!(matches!(&got, Err(DocumentError::Corrupt(m)) if m.contains("loops")), "{got:?}");
    }

    #[test]
    fn a_deflate_bomb_in_a_stream_is_refused() {
        let bomb = zlib(&vec![0u8; 3 << 20]);
        let bytes = pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
            stream("/Filter /FlateDecode", &bomb),
        ]);
        let limits = Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() };
        let got = extract_document(Kind::Pdf, &bytes, &limits);
        assert!(matches!(got, Err(DocumentError::TooLarge(_))), "{got:?}");
        // The same file within a larger budget is read (and has no text).
        let roomy = Limits { max_uncompressed_bytes: 8 << 20, ..Limits::default() };
        assert!(matches!(extract_document(Kind::Pdf, &bytes, &roomy), Err(DocumentError::NoText)));
    }

    #[test]
    fn extractor_panics_become_corrupt() {
        // No MediaBox anywhere, and a form name the resources do not define: pdf-extract panics
        // on both.
        let no_media_box = pdf_of(&[
            b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
            b"<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_vec(),
            stream("", b"BT ET"),
        ]);
        let unknown_form = pdf_with_form("", b"", b"/Nowhere Do");
        for bytes in [no_media_box, unknown_form] {
            let got = extract_pdf(&bytes);
            assert!(matches!(&got, Err(DocumentError::Corrupt(m)) if m.contains("page 1")), "{got:?}");
        }
    }

    #[test]
    fn images_count_only_when_drawn_and_no_stream_inflates_past_the_budget() {
        let pixels = zlib(&vec![0u8; 3 << 20]);
        let image = |page_content: &[u8]| {
            pdf_of(&[
                b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /Im1 5 0 R >> >> /Contents 4 0 R >>".to_vec(),
                stream("", page_content),
                stream("/Type /XObject /Subtype /Image /Width 1024 /Height 1024 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode", &pixels),
            ])
        };
        let budget = Limits { max_uncompressed_bytes: 4 << 20, ..Limits::default() };
        let drawn = |times: usize| image(&b"q 612 0 0 792 0 0 cm /Im1 Do Q ".repeat(times));
        assert!(matches!(extract_document(Kind::Pdf, &drawn(1), &budget), Err(DocumentError::NoText)));
        // 18 MiB of drawing: past four times the budget.
        assert!(matches!(extract_document(Kind::Pdf, &drawn(6), &budget), Err(DocumentError::TooLarge(_))));
        let unused = image(b"0 0 m 1 1 l S");
        assert!(matches!(extract_document(Kind::Pdf, &unused, &budget), Err(DocumentError::NoText)));
        // Drawn or not, no one stream may inflate past the budget: lopdf may inflate any of them.
        let tight = Limits { max_uncompressed_bytes: 1 << 20, ..Limits::default() };
        assert!(matches!(extract_document(Kind::Pdf, &unused, &tight), Err(DocumentError::TooLarge(_))));
    }

    #[test]
    fn too_many_pages_are_refused() {
        let bytes = pdf(&[&["one"], &["two"], &["three"]]);
        let limits = Limits { max_pages: 2, ..Limits::default() };
        assert!(matches!(extract_document(Kind::Pdf, &bytes, &limits), Err(DocumentError::TooLarge(_))));
    }

    #[test]
    fn lzw_and_ascii85_are_bounded_too() {
        let data = vec![b'a'; 5000];
        let mut encoded = Vec::new();
        let mut encoder = weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8);
        encoder.into_stream(&mut encoded).encode_all(&data[..]).status.unwrap();
        let mut dict = Dictionary::new();
        dict.set("Filter", Object::Name(b"LZWDecode".to_vec()));
        let lzw = Stream::new(dict, encoded);
        assert_eq!(decode(&lzw, 5000).unwrap().len(), 5000);
        assert!(decode(&lzw, 4999).is_none());

        let mut dict = Dictionary::new();
        dict.set("Filter", Object::Name(b"ASCII85Decode".to_vec()));
        let a85 = Stream::new(dict, b"zzzz~>".to_vec());
        assert_eq!(decode(&a85, 16).unwrap().len(), 16);
        assert!(decode(&a85, 15).is_none());
    }
}
