//! The one error of this crate, with stable machine-readable codes.

/// Why a document could not be accepted, read or stored.
///
/// Every variant but [`DocumentError::Io`] is the uploader's problem (a 4xx); [`Self::code`] is the
/// `code` of the problem+json body and never changes once published. The messages describe the
/// document, not the server, so they can be shown to the uploader as the `detail`.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// No bytes at all (or only a byte-order mark).
    #[error("the document is empty")]
    Empty,
    /// Not a PDF, DOCX, Markdown or UTF-8 text file, whatever its name claims.
    #[error("unsupported document type: {0}")]
    UnsupportedType(String),
    /// The type is recognised but the file cannot be read: truncated, malformed, password-protected,
    /// or beyond what the extractor can parse.
    #[error("corrupt document: {0}")]
    Corrupt(String),
    /// Reading the document would take more memory or work than [`crate::Limits`] allow.
    #[error("document too large: {0}")]
    TooLarge(String),
    /// An archive whose entries are built to explode when unpacked (a zip bomb).
    #[error("suspicious archive: {0}")]
    Suspicious(String),
    /// Reading the document was stopped by the reader's memory bound or time limit, or the
    /// reader died on it ([`crate::isolated`]): a structure built to exhaust the reader.
    #[error("document too complex: {0}")]
    TooComplex(String),
    /// The document was read but holds no text: a scanned PDF, an empty page, whitespace only.
    #[error("the document contains no extractable text")]
    NoText,
    /// A stored file was named by something that is not a lowercase hex SHA-256.
    #[error("not a sha256 digest (64 lowercase hex characters)")]
    InvalidDigest,
    /// The file store failed: disk full, permissions, a missing directory. The server's problem.
    #[error("document storage failed: {0}")]
    Io(#[from] std::io::Error),
}

impl DocumentError {
    /// The stable code for the problem+json body.
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::Empty => "empty_document",
            DocumentError::UnsupportedType(_) => "unsupported_type",
            DocumentError::Corrupt(_) => "corrupt_document",
            DocumentError::TooLarge(_) => "document_too_large",
            DocumentError::Suspicious(_) => "suspicious_archive",
            DocumentError::TooComplex(_) => "document_too_complex",
            DocumentError::NoText => "no_text",
            DocumentError::InvalidDigest => "invalid_digest",
            DocumentError::Io(_) => "io",
        }
    }

    /// The error a code names, with `detail` as its description: how the answer of a child
    /// process that read a document comes back ([`crate::isolated`]). None for codes of failures
    /// a reader does not report.
    pub(crate) fn from_code(code: &str, detail: String) -> Option<Self> {
        Some(match code {
            "empty_document" => DocumentError::Empty,
            "unsupported_type" => DocumentError::UnsupportedType(detail),
            "corrupt_document" => DocumentError::Corrupt(detail),
            "document_too_large" => DocumentError::TooLarge(detail),
            "document_too_complex" => DocumentError::TooComplex(detail),
            "suspicious_archive" => DocumentError::Suspicious(detail),
            "no_text" => DocumentError::NoText,
            _ => return None,
        })
    }

    /// What [`Self::from_code`] takes back: the description without the variant's prefix.
    pub(crate) fn detail(&self) -> String {
        match self {
            DocumentError::UnsupportedType(d)
            | DocumentError::Corrupt(d)
            | DocumentError::TooLarge(d)
            | DocumentError::TooComplex(d)
            | DocumentError::Suspicious(d) => d.clone(),
            other => other.to_string(),
        }
    }

    /// True only for failures of the server itself (a 5xx); everything else is about the
    /// document or the caller's input.
    pub fn is_internal(&self) -> bool {
        matches!(self, DocumentError::Io(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_only_io_is_internal() {
        let all = [
            DocumentError::Empty,
            DocumentError::UnsupportedType("x".into()),
            DocumentError::Corrupt("x".into()),
            DocumentError::TooLarge("x".into()),
            DocumentError::Suspicious("x".into()),
            DocumentError::TooComplex("x".into()),
            DocumentError::NoText,
            DocumentError::InvalidDigest,
            DocumentError::Io(std::io::Error::other("disk")),
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(DocumentError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(all.iter().filter(|e| e.is_internal()).count(), 1);
        assert!(all.last().is_some_and(DocumentError::is_internal));
    }

    #[test]
    fn what_a_reader_reports_comes_back_as_it_was() {
        let reported = [
            DocumentError::Empty,
            DocumentError::UnsupportedType("binary".into()),
            DocumentError::Corrupt("truncated".into()),
            DocumentError::TooLarge("big".into()),
            DocumentError::TooComplex("slow".into()),
            DocumentError::Suspicious("bomb".into()),
            DocumentError::NoText,
        ];
        for e in reported {
            let back = DocumentError::from_code(e.code(), e.detail()).unwrap();
            assert_eq!((back.code(), back.to_string()), (e.code(), e.to_string()));
        }
        assert!(DocumentError::from_code("io", "disk".into()).is_none());
    }
}
