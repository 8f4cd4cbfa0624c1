//! Test documents, built by the tests themselves so no binary file is committed.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

const WORD: &str = "http://schemas.openxmlformats.org/wordprocessingml/2006/main";

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
}

/// A zip of the given entries, deflated.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, deflated()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A zip of the given entries plus one entry of `zeros` zero bytes, streamed in so the test never
/// holds them.
pub fn zip_with_zeros(entries: &[(&str, &[u8])], name: &str, zeros: usize) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (entry, data) in entries {
        zip.start_file(*entry, deflated()).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.start_file(name, deflated()).unwrap();
    let block = vec![0u8; 1 << 20];
    let mut left = zeros;
    while left > 0 {
        let n = left.min(block.len());
        zip.write_all(&block[..n]).unwrap();
        left -= n;
    }
    zip.finish().unwrap().into_inner()
}

/// Rewrites the uncompressed size that the local header and the central directory record of
/// entry `name` declare (the archive's data is left alone, so it now lies).
pub fn patch_uncompressed_size(zip: &mut [u8], name: &str, size: u32) {
    let mut patched = 0;
    // Local file header: signature, then the size at 22 and the name length at 26, name at 30.
    // Central directory header: signature, size at 24, name length at 28, name at 46.
    for (signature, size_at, name_len_at, name_at) in [(b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)] {
        for start in 0..zip.len().saturating_sub(name_at) {
            if &zip[start..start + 4] != signature {
                continue;
            }
            let len = u16::from_le_bytes([zip[start + name_len_at], zip[start + name_len_at + 1]]) as usize;
            if zip.get(start + name_at..start + name_at + len) == Some(name.as_bytes()) {
                zip[start + size_at..start + size_at + 4].copy_from_slice(&size.to_le_bytes());
                patched += 1;
            }
        }
    }
    assert_eq!(patched, 2, "expected one local and one central header for {name}");
}

/// A minimal `word/document.xml` with one paragraph per string.
pub fn document_xml(paragraphs: &[&str]) -> String {
    let body: String =
        paragraphs.iter().map(|p| format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>")).collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{WORD}"><w:body>{body}</w:body></w:document>"#
    )
}

/// A minimal DOCX around a `word/document.xml`.
pub fn docx(document_xml: &str) -> Vec<u8> {
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    zip_of(&[("[Content_Types].xml", types.as_bytes()), ("word/document.xml", document_xml.as_bytes())])
}

/// A PDF stream object body: the dictionary entries `extra` plus the right `/Length`.
pub fn stream(extra: &str, data: &[u8]) -> Vec<u8> {
    let mut out = format!("<< /Length {} {extra} >>\nstream\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\nendstream");
    out
}

/// A PDF of the given object bodies (object `n` is `objects[n - 1]`; object 1 must be the
/// catalog), with a correct cross-reference table.
pub fn pdf_of(objects: &[Vec<u8>]) -> Vec<u8> {
    pdf_with_trailer(objects, "")
}

/// [`pdf_of`] with more trailer entries.
pub fn pdf_with_trailer(objects: &[Vec<u8>], trailer: &str) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R {trailer} >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    out
}

/// A PDF with one page per content stream, all in Helvetica.
pub fn pdf_with_contents(contents: &[Vec<u8>]) -> Vec<u8> {
    pdf_of(&pdf_objects_with_contents(contents))
}

/// The objects of [`pdf_with_contents`]: 1 the catalog, 2 the page tree, 3 the font, then a page
/// and its content for each page.
pub fn pdf_objects_with_contents(contents: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let kids: Vec<String> = (0..contents.len()).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), contents.len()).into_bytes(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
    ];
    for (i, content) in contents.iter().enumerate() {
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        objects.push(stream("", content));
    }
    objects
}

/// A content stream that writes each line of text down the page.
pub fn text_content(lines: &[&str]) -> Vec<u8> {
    let mut out = String::from("BT /F1 12 Tf 14 TL 72 720 Td\n");
    for line in lines {
        let escaped = line.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
        out.push_str(&format!("({escaped}) Tj T*\n"));
    }
    out.push_str("ET");
    out.into_bytes()
}

/// A PDF with one page of text per entry (an empty entry is a blank page).
pub fn pdf(pages: &[&[&str]]) -> Vec<u8> {
    let contents: Vec<Vec<u8>> = pages.iter().map(|lines| text_content(lines)).collect();
    pdf_with_contents(&contents)
}
