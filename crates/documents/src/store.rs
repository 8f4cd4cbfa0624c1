//! Original files, kept content-addressed on disk, and file names fit for display.
//!
//! A file lives at `<dir>/<first two hex digits>/<sha256 hex>`: the same bytes always land on the
//! same path, so storing twice is a no-op and two uploads of one file share it. Paths are built
//! only from validated digests, never from anything a client named.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::DocumentError;

/// Longest display name, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Longest extension kept whole when a display name is shortened.
const MAX_EXTENSION_CHARS: usize = 10;
const FALLBACK_NAME: &str = "document";

/// A content-addressed file store under one directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Where [`Store::put`] left a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// SHA-256 of the bytes, 64 lowercase hex characters: the file's name and its key.
    pub sha256: String,
    pub path: PathBuf,
    pub size: u64,
}

impl Store {
    /// A store under `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, DocumentError> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Stores `bytes` under their digest. Writing goes to a temporary file in the same directory,
    /// synced, then renamed into place, so a reader sees the whole file or none and a crash leaves
    /// at worst a stray `.tmp-*` file. If the file is already there (same size), nothing is
    /// written.
    pub fn put(&self, bytes: &[u8]) -> Result<StoredFile, DocumentError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let path = self.path(&sha256)?;
        let stored = StoredFile { sha256, path, size: bytes.len() as u64 };
        if fs::metadata(&stored.path).is_ok_and(|meta| meta.len() == stored.size) {
            return Ok(stored);
        }
        let shard = stored.path.parent().unwrap_or(&self.dir);
        fs::create_dir_all(shard)?;
        let mut temp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(shard)?;
        temp.write_all(bytes)?;
        temp.as_file().sync_all()?;
        temp.persist(&stored.path).map_err(|e| e.error)?;
        sync_dir(shard)?;
        Ok(stored)
    }

    /// The bytes stored under `sha256`, or `None` if there are none.
    pub fn get(&self, sha256: &str) -> Result<Option<Vec<u8>>, DocumentError> {
        let path = self.path(sha256)?;
        none_if_missing(fs::read(path))
    }

    /// The stored file opened for reading, to stream it rather than load it.
    pub fn open(&self, sha256: &str) -> Result<Option<File>, DocumentError> {
        let path = self.path(sha256)?;
        none_if_missing(File::open(path))
    }

    /// Deletes the file stored under `sha256`; `false` if there was none. The store does not count
    /// references: remove a digest only once no document row names it any more.
    pub fn remove(&self, sha256: &str) -> Result<bool, DocumentError> {
        let path = self.path(sha256)?;
        Ok(none_if_missing(fs::remove_file(path))?.is_some())
    }

    /// The digests of the files stored more than `age` ago, to look for ones nothing names any
    /// more; temporary files of writes that never finished, older than `age`, are deleted.
    pub fn stored_before(&self, age: Duration) -> Result<Vec<String>, DocumentError> {
        let Some(cutoff) = SystemTime::now().checked_sub(age) else { return Ok(Vec::new()) };
        let mut digests = Vec::new();
        for shard in fs::read_dir(&self.dir)? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                let entry = entry?;
                let old = entry.metadata()?.modified()? < cutoff;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !old {
                    continue;
                }
                if name.starts_with(".tmp-") {
                    none_if_missing(fs::remove_file(entry.path()))?;
                } else if self.path(&name).is_ok_and(|p| p == entry.path()) {
                    digests.push(name);
                }
            }
        }
        Ok(digests)
    }

    /// The path for a digest, which must be exactly 64 lowercase hex characters: anything else
    /// (`../etc/passwd`, `/abs`, uppercase, short) is refused before a path exists.
    fn path(&self, sha256: &str) -> Result<PathBuf, DocumentError> {
        let valid = sha256.len() == 64 && sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !valid {
            return Err(DocumentError::InvalidDigest);
        }
        Ok(self.dir.join(&sha256[..2]).join(sha256))
    }
}

fn none_if_missing<T>(result: io::Result<T>) -> Result<Option<T>, DocumentError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Makes a rename durable: the directory entry is synced, not just the file.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing on other platforms.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// A client's file name made fit to show: the last path component (of `/` or `\` paths), without
/// control or bidirectional-override characters (which can disguise an extension), `..`, leading
/// dots, or surrounding spaces and trailing dots, at most 120 characters with the extension kept;
/// "document" if nothing is left. For display only: never build a path from it, and still escape
/// it for HTML and encode it (RFC 6266 `filename*`) for a `Content-Disposition` header.
pub fn safe_display_name(client_name: &str) -> String {
    let base = client_name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = base.chars().filter(|&c| !c.is_control() && !is_bidi_control(c)).collect();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    let name = name.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim_start();
    if name.is_empty() {
        return FALLBACK_NAME.to_owned();
    }
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_owned();
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && (1..=MAX_EXTENSION_CHARS).contains(&ext.chars().count()) => {
            (stem, Some(ext))
        }
        _ => (name, None),
    };
    let room = MAX_NAME_CHARS - extension.map_or(0, |ext| ext.chars().count() + 1);
    let stem: String = stem.chars().take(room).collect();
    let stem = stem.trim_end_matches(['.', ' ']);
    match extension {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem.to_owned(),
    }
}

/// Embedding and override marks that reorder how text displays (`evil\u{202E}fdp.exe`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("docs")).unwrap();
        let first = store.put(b"hello").unwrap();
        assert_eq!(first.sha256, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(first.path, dir.path().join("docs/2c").join(&first.sha256));
        assert_eq!(first.size, 5);
        let modified = fs::metadata(&first.path).unwrap().modified().unwrap();

        let second = store.put(b"hello").unwrap();
        assert_eq!(second, first);
        assert_eq!(fs::metadata(&first.path).unwrap().modified().unwrap(), modified);
        assert_eq!(store.get(&first.sha256).unwrap().as_deref(), Some(&b"hello"[..]));
        assert!(store.open(&first.sha256).unwrap().is_some());

        // No temporary files are left behind.
        let names: Vec<_> =
            fs::read_dir(first.path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [std::ffi::OsString::from(&first.sha256)]);
    }

    #[test]
    fn stored_before_lists_old_files_and_clears_old_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let age_file = |path: &Path| {
            let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
            File::options().write(true).open(path).unwrap().set_modified(two_hours_ago).unwrap();
        };
        let old = store.put(b"old").unwrap();
        age_file(&old.path);
        let new = store.put(b"new").unwrap();
        let shard = old.path.parent().unwrap();
        let stale_tmp = shard.join(".tmp-stale");
        fs::write(&stale_tmp, b"half").unwrap();
        age_file(&stale_tmp);
        let fresh_tmp = shard.join(".tmp-fresh");
        fs::write(&fresh_tmp, b"writing").unwrap();
        let stranger = shard.join("not-a-digest");
        fs::write(&stranger, b"?").unwrap();
        age_file(&stranger);

        assert_eq!(store.stored_before(Duration::from_secs(3600)).unwrap(), [old.sha256]);
        assert!(!stale_tmp.exists());
        assert!(fresh_tmp.exists() && stranger.exists() && new.path.exists() && old.path.exists());
    }

    #[test]
    fn a_truncated_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let stored = store.put(b"complete content").unwrap();
        fs::write(&stored.path, b"compl").unwrap();
        store.put(b"complete content").unwrap();
        assert_eq!(fs::read(&stored.path).unwrap(), b"complete content");
    }

    #[test]
    fn get_and_remove_of_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let stored = store.put(b"bytes").unwrap();
        assert!(store.remove(&stored.sha256).unwrap());
        assert!(!store.remove(&stored.sha256).unwrap());
        assert_eq!(store.get(&stored.sha256).unwrap(), None);
        assert!(store.open(&stored.sha256).unwrap().is_none());
    }

    #[test]
    fn only_digests_name_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path()).unwrap();
        let valid = "a".repeat(64);
        let attempts = [
            "../etc/passwd".to_owned(),
            "/etc/passwd".to_owned(),
            format!("../{}", &valid[3..]),
            format!("/{}", &valid[1..]),
            "A".repeat(64),
            "a".repeat(63),
            "a".repeat(65),
            format!("{}g", &valid[1..]),
            format!("{}/", &valid[1..]),
            String::new(),
            "..".to_owned(),
        ];
        for attempt in &attempts {
            assert!(matches!(store.get(attempt), Err(DocumentError::InvalidDigest)), "{attempt:?}");
            assert!(matches!(store.open(attempt), Err(DocumentError::InvalidDigest)), "{attempt:?}");
            assert!(matches!(store.remove(attempt), Err(DocumentError::InvalidDigest)), "{attempt:?}");
        }
        assert_eq!(store.get(&valid).unwrap(), None);
    }

    #[test]
    fn display_names() {
        let cases = [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\me\\Desktop\\cv.docx", "cv.docx"),
            ("/abs/path/notes.md", "notes.md"),
            ("..", "document"),
            ("...", "document"),
            ("", "document"),
            ("   ", "document"),
            ("dir/", "document"),
            (".bashrc", "bashrc"),
            ("..hidden..txt", "hidden.txt"),
            ("a\u{0}b\r\nc\td.txt", "abcd.txt"),
            ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
            ("trailing dots... ", "trailing dots"),
            ("  spaced name.txt  ", "spaced name.txt"),
            ("Résumé – 2024.pdf", "Résumé – 2024.pdf"),
        ];
        for (input, want) in cases {
            assert_eq!(safe_display_name(input), want, "{input:?}");
        }
    }

    #[test]
    fn long_display_names_keep_their_extension() {
        let long = format!("{}.pdf", "é".repeat(300));
        let got = safe_display_name(&long);
        assert_eq!(got.chars().count(), MAX_NAME_CHARS);
        assert!(got.ends_with("é.pdf"));

        let no_extension = "x".repeat(300);
        assert_eq!(safe_display_name(&no_extension).chars().count(), MAX_NAME_CHARS);

        let odd_extension = format!("{}.{}", "y".repeat(200), "z".repeat(50));
        let got = safe_display_name(&odd_extension);
        assert_eq!(got.chars().count(), MAX_NAME_CHARS);
        assert!(got.starts_with("yyy"));
    }
}
