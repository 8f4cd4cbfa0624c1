//! Word documents (Office Open XML): a zip whose `word/document.xml` holds the body text.
//!
//! Only that one entry is ever inflated. The archive's headers are checked first (entry count,
//! declared total, declared ratio) and the entry is then read through [`read_capped`], since
//! headers are written by whoever made the file and may lie.

use std::io::Cursor;

use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use zip::ZipArchive;

use crate::inflate::read_capped;
use crate::{DocumentError, Kind, Limits};

const DOCUMENT: &str = "word/document.xml";
const CONTENT_TYPES: &str = "[Content_Types].xml";

/// Entries that inflate to less than this are not held to the compression ratio: small, highly
/// repetitive parts (an empty style sheet, a blank bitmap) are harmless and common.
const RATIO_FLOOR: u64 = 1024 * 1024;

/// WordprocessingML, transitional and strict.
const WORD_NAMESPACES: [&str; 2] = [
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
];

/// Markup compatibility: `mc:Fallback` repeats the content of `mc:Choice` for old readers.
const MC_NAMESPACE: &str = "http://schemas.openxmlformats.org/markup-compatibility/2006";

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

/// A zip is a DOCX when it has the two parts every Word document has; any other zip (an
/// OpenDocument file, a spreadsheet, an archive of anything) is not supported.
pub(crate) fn sniff(bytes: &[u8]) -> Result<Kind, DocumentError> {
    let archive = open(bytes)?;
    if archive.index_for_name(DOCUMENT).is_some() && archive.index_for_name(CONTENT_TYPES).is_some() {
        Ok(Kind::Docx)
    } else {
        Err(not_word())
    }
}

/// The body text: one line per paragraph, tabs and line breaks kept, page breaks not counted.
pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<String, DocumentError> {
    let mut archive = open(bytes)?;
    check_headers(&archive, limits)?;
    let index = archive.index_for_name(DOCUMENT).ok_or_else(not_word)?;
    let entry = archive.by_index(index).map_err(|e| {
        DocumentError::Corrupt(format!("{DOCUMENT} cannot be unpacked (encrypted, or an unsupported method): {e}"))
    })?;
    // The cap is the smaller of the ratio allowance (never below the floor) and the total budget,
    // so the error says which one the entry broke.
    let by_ratio = entry.compressed_size().saturating_mul(limits.max_compression_ratio).max(RATIO_FLOOR);
    let cap = by_ratio.min(limits.max_uncompressed_bytes);
    let read = read_capped(entry, cap);
    if read.over {
        return Err(if cap == limits.max_uncompressed_bytes {
            too_large(limits)
        } else {
            DocumentError::Suspicious(format!(
                "{DOCUMENT} inflates past {}:1, more than its header admits",
                limits.max_compression_ratio
            ))
        });
    }
    if let Some(e) = read.error {
        return Err(DocumentError::Corrupt(format!("{DOCUMENT} cannot be unpacked: {e}")));
    }
    let xml =
        String::from_utf8(read.data).map_err(|_| DocumentError::Corrupt(format!("{DOCUMENT} is not UTF-8 XML")))?;
    body_text(&xml)
}

fn not_word() -> DocumentError {
    DocumentError::UnsupportedType("a zip archive that is not a Word document".into())
}

fn open(bytes: &[u8]) -> Result<Archive<'_>, DocumentError> {
    ZipArchive::new(Cursor::new(bytes)).map_err(|e| DocumentError::Corrupt(format!("not a readable zip archive: {e}")))
}

/// Rejects an archive on what it declares, before anything is inflated.
fn check_headers(archive: &Archive<'_>, limits: &Limits) -> Result<(), DocumentError> {
    if archive.len() > limits.max_entries {
        return Err(DocumentError::Suspicious(format!(
            "the archive has {} entries (at most {} are accepted)",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut declared = 0u64;
    for index in 0..archive.len() {
        let entry = archive
            .by_index_data(index)
            .map_err(|e| DocumentError::Corrupt(format!("unreadable archive entry: {e}")))?;
        let (size, packed) = (entry.size(), entry.compressed_size());
        if size > RATIO_FLOOR && size / packed.max(1) > limits.max_compression_ratio {
            return Err(DocumentError::Suspicious(format!(
                "an entry claims a compression ratio of {}:1 (at most {}:1 is accepted)",
                size / packed.max(1),
                limits.max_compression_ratio
            )));
        }
        declared = declared.saturating_add(size);
    }
    if declared > limits.max_uncompressed_bytes {
        return Err(too_large(limits));
    }
    Ok(())
}

fn too_large(limits: &Limits) -> DocumentError {
    DocumentError::TooLarge(format!("the archive unpacks to more than {} MiB", limits.max_uncompressed_bytes >> 20))
}

/// Where the reader is in the document tree, as far as text goes.
#[derive(Default)]
struct Depths {
    /// Inside a run (`w:r`): only there are `w:tab` and `w:br` characters (in paragraph
    /// properties `w:tab` is a tab stop).
    run: usize,
    /// Inside `w:t`, the only element whose text is document text (`w:delText`, `w:instrText`
    /// are deleted text and field codes).
    text: usize,
    /// Inside `mc:Fallback`, a copy of content already read from `mc:Choice`.
    fallback: usize,
}

/// The text of `word/document.xml`. The XML is never expanded beyond its predefined and numeric
/// character references (quick-xml does not read DTDs), so there is no entity bomb to defuse.
fn body_text(xml: &str) -> Result<String, DocumentError> {
    let mut reader = NsReader::from_str(xml);
    let mut out = String::with_capacity(xml.len() / 4);
    let mut at = Depths::default();
    loop {
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| DocumentError::Corrupt(format!("{DOCUMENT} is not well-formed XML: {e}")))?;
        let word = matches!(ns, ResolveResult::Bound(Namespace(uri)) if WORD_NAMESPACES.contains(&uri));
        let mc = matches!(ns, ResolveResult::Bound(Namespace(MC_NAMESPACE)));
        match event {
            Event::Start(e) => match e.local_name().into_inner() {
                "Fallback" if mc => at.fallback += 1,
                "r" if word => at.run += 1,
                "t" if word => at.text += 1,
                _ => {}
            },
            Event::End(e) => match e.local_name().into_inner() {
                "Fallback" if mc => at.fallback = at.fallback.saturating_sub(1),
                "r" if word => at.run = at.run.saturating_sub(1),
                "t" if word => at.text = at.text.saturating_sub(1),
                "p" if word && at.fallback == 0 => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) if word && at.run > 0 && at.fallback == 0 => match e.local_name().into_inner() {
                "tab" => out.push('\t'),
                "br" | "cr" => out.push('\n'),
                "noBreakHyphen" => out.push('-'),
                _ => {}
            },
            Event::Text(t) if at.text > 0 && at.fallback == 0 => out.push_str(&t.xml10_content()),
            Event::CData(t) if at.text > 0 && at.fallback == 0 => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if at.text > 0 && at.fallback == 0 => {
                let c = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    Ok(None) => predefined_entity(&r),
                    Err(_) => None,
                };
                out.extend(c);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

/// The five entities XML predefines; Word writes no others.
fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fixtures::{document_xml, docx, zip_of};
    use crate::{Page, extract as extract_document, sniff as sniff_document};

    #[test]
    fn a_docx_is_sniffed_whatever_its_name() {
        let bytes = docx(&document_xml(&["Hello."]));
        assert_eq!(sniff_document(&bytes, Some("report.txt")).unwrap(), Kind::Docx);
        assert_eq!(sniff_document(&bytes, None).unwrap(), Kind::Docx);
    }

    #[test]
    fn paragraphs_runs_tabs_breaks_and_entities() {
        let xml = format!(
            r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="{w}" xmlns:mc="{mc}"><w:body>
<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr>
  <w:r><w:t>Fish</w:t></w:r><w:r><w:t xml:space="preserve"> &amp; chips</w:t><w:tab/><w:t>&#8364;5</w:t></w:r></w:p>
<w:p><w:r><w:t>line one</w:t><w:br/><w:t>line two</w:t></w:r></w:p>
<w:p><w:del><w:r><w:delText>deleted</w:delText></w:r></w:del><w:r><w:instrText>PAGE</w:instrText><w:t>kept</w:t></w:r></w:p>
<w:p><mc:AlternateContent><mc:Choice Requires="wps"><w:r><w:t>box text</w:t></w:r></mc:Choice>
  <mc:Fallback><w:r><w:t>box text</w:t></w:r></mc:Fallback></mc:AlternateContent></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell a</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>cell b</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
</w:body></w:document>"#,
            w = WORD_NAMESPACES[0],
            mc = MC_NAMESPACE
        );
        let got = extract_document(Kind::Docx, &docx(&xml), &Limits::default()).unwrap();
        assert_eq!(
            got.pages,
            vec![Page {
                number: None,
                text: "Fish & chips €5\nline one\nline two\nkept\nbox text\ncell a\ncell b".into()
            }]
        );
    }

    #[test]
    fn another_prefix_for_the_word_namespace_works() {
        let xml = format!(
            r#"<x:document xmlns:x="{}"><x:body><x:p><x:r><x:t>Odd prefix.</x:t></x:r></x:p></x:body></x:document>"#,
            WORD_NAMESPACES[1]
        );
        let got = extract_document(Kind::Docx, &docx(&xml), &Limits::default()).unwrap();
        assert_eq!(got.pages[0].text, "Odd prefix.");
    }

    #[test]
    fn a_docx_without_text_has_no_text() {
        let got = extract_document(Kind::Docx, &docx(&document_xml(&["", " "])), &Limits::default());
        assert!(matches!(got, Err(DocumentError::NoText)), "{got:?}");
    }

    #[test]
    fn zips_that_are_not_word_documents_are_unsupported() {
        let no_document = zip_of(&[(CONTENT_TYPES, b"<Types/>".as_slice()), ("word/other.xml", b"<x/>")]);
        assert!(matches!(sniff_document(&no_document, Some("a.docx")), Err(DocumentError::UnsupportedType(_))));
        assert!(matches!(
            extract_document(Kind::Docx, &no_document, &Limits::default()),
            Err(DocumentError::UnsupportedType(_))
        ));
        let odt =
            zip_of(&[("mimetype", b"application/vnd.oasis.opendocument.text".as_slice()), ("content.xml", b"<x/>")]);
        assert!(matches!(sniff_document(&odt, Some("a.docx")), Err(DocumentError::UnsupportedType(_))));
    }

    #[test]
    fn broken_zips_are_corrupt_not_panics() {
        let mut garbage = b"PK\x03\x04".to_vec();
        garbage.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
        assert!(matches!(sniff_document(&garbage, Some("a.docx")), Err(DocumentError::Corrupt(_))));
        assert!(matches!(extract_document(Kind::Docx, &garbage, &Limits::default()), Err(DocumentError::Corrupt(_))));

        let whole = docx(&document_xml(&["Some text that will be cut off."]));
        for cut in [whole.len() / 3, whole.len() / 2, whole.len() - 10] {
            let got = extract_document(Kind::Docx, &whole[..cut], &Limits::default());
            assert!(matches!(got, Err(DocumentError::Corrupt(_))), "cut at {cut}: {got:?}");
        }

        let bad_xml = docx("<w:document><w:body><w:p>mismatched</w:r></w:body></w:document>");
        assert!(matches!(extract_document(Kind::Docx, &bad_xml, &Limits::default()), Err(DocumentError::Corrupt(_))));
    }

    /// A zip bomb in a DOCX's clothes: 200 MB of zeros as `word/document.xml`, about 200 KB packed.
    fn bomb(entry: &str) -> Vec<u8> {
        crate::fixtures::zip_with_zeros(&[(CONTENT_TYPES, b"<Types/>".as_slice())], entry, 200 << 20)
    }

    #[test]
    fn a_zip_bomb_is_refused_from_its_headers_at_once() {
        let bytes = bomb(DOCUMENT);
        assert!(bytes.len() < 1 << 20, "the bomb should be small: {}", bytes.len());
        assert_eq!(sniff_document(&bytes, Some("cv.docx")).unwrap(), Kind::Docx);
        let started = Instant::now();
        let got = extract_document(Kind::Docx, &bytes, &Limits::default());
        assert!(matches!(got, Err(DocumentError::Suspicious(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

        // Hidden in another entry, the bomb is never inflated either: its declared size is refused.
        let got = extract_document(Kind::Docx, &bomb("word/media/image1.png"), &Limits::default());
        assert!(matches!(got, Err(DocumentError::Suspicious(_))), "{got:?}");
    }

    #[test]
    fn a_zip_bomb_that_lies_in_its_headers_is_stopped_while_reading() {
        // Patch the declared uncompressed size of the bomb entry down to 1 KiB in both the local
        // header and the central directory, so every header check passes. The zip crate itself
        // stops at the declared size (Corrupt); the capped reader would stop it at 100:1 if not.
        let mut bytes = bomb(DOCUMENT);
        crate::fixtures::patch_uncompressed_size(&mut bytes, DOCUMENT, 1024);
        let started = Instant::now();
        let got = extract_document(Kind::Docx, &bytes, &Limits::default());
        assert!(matches!(got, Err(DocumentError::Suspicious(_) | DocumentError::Corrupt(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    }

    #[test]
    fn limits_on_entries_and_total_size() {
        let many: Vec<(String, &[u8])> = (0..20).map(|i| (format!("word/part{i}.xml"), b"<x/>".as_slice())).collect();
        let mut entries: Vec<(&str, &[u8])> = many.iter().map(|(n, b)| (n.as_str(), *b)).collect();
        let xml = document_xml(&["Text."]);
        entries.push((CONTENT_TYPES, b"<Types/>"));
        entries.push((DOCUMENT, xml.as_bytes()));
        let bytes = zip_of(&entries);
        let few = Limits { max_entries: 10, ..Limits::default() };
        assert!(matches!(extract_document(Kind::Docx, &bytes, &few), Err(DocumentError::Suspicious(_))));
        let small = Limits { max_uncompressed_bytes: 100, ..Limits::default() };
        assert!(matches!(extract_document(Kind::Docx, &bytes, &small), Err(DocumentError::TooLarge(_))));
        assert!(extract_document(Kind::Docx, &bytes, &Limits::default()).is_ok());
    }
}
