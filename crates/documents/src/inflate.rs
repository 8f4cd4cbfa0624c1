//! Reading a decompressor without trusting it: whatever the archive or stream claims, no more
//! than a fixed number of bytes is ever produced or held.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a capped read could not grow its buffer: the process ran into its memory bound
/// (`RLIMIT_AS`, [`crate::isolated`]) before the cap. Such a read stops as if over its cap; the
/// process (which reads one document) then answers that the document needs more memory than it
/// may have, whatever error the reading ended in.
static MEMORY_RAN_OUT: AtomicBool = AtomicBool::new(false);

/// Whether a capped read in this process ran out of memory.
pub(crate) fn memory_ran_out() -> bool {
    MEMORY_RAN_OUT.load(Ordering::Relaxed)
}

/// What a capped read produced.
pub(crate) struct Capped {
    /// Everything read, never more than the cap.
    pub data: Vec<u8>,
    /// The source had more to give than the cap (reading stopped one byte past it).
    pub over: bool,
    /// The source failed after yielding `data`.
    pub error: Option<io::Error>,
}

/// Reads `reader` to its end or to `cap` bytes, whichever comes first.
pub(crate) fn read_capped(reader: impl Read, cap: u64) -> Capped {
    let mut data = Vec::new();
    let error = reader.take(cap.saturating_add(1)).read_to_end(&mut data).err();
    // `read_to_end` reports an allocation that failed instead of aborting.
    let exhausted = error.as_ref().is_some_and(|e| e.kind() == io::ErrorKind::OutOfMemory);
    if exhausted {
        MEMORY_RAN_OUT.store(true, Ordering::Relaxed);
    }
    let over = exhausted || data.len() as u64 > cap;
    if over {
        data.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    }
    Capped { data, over, error }
}

/// A sink for push-style decoders that refuses bytes past its cap, so the decoder stops there.
pub(crate) struct CappedWriter {
    pub data: Vec<u8>,
    cap: usize,
    pub over: bool,
}

impl CappedWriter {
    pub fn new(cap: u64) -> Self {
        Self { data: Vec::new(), cap: usize::try_from(cap).unwrap_or(usize::MAX), over: false }
    }
}

impl Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.data.len().saturating_add(buf.len()) > self.cap {
            self.over = true;
            return Err(io::Error::other("output cap reached"));
        }
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_capped_stops_one_byte_past_the_cap() {
        let got = read_capped(io::repeat(0), 10);
        assert!(got.over);
        assert_eq!(got.data.len(), 10);
        assert!(got.error.is_none());

        let got = read_capped(&b"abc"[..], 3);
        assert!(!got.over);
        assert_eq!(got.data, b"abc");
    }

    #[test]
    fn capped_writer_refuses_past_the_cap() {
        let mut w = CappedWriter::new(4);
        w.write_all(b"ab").unwrap();
        assert!(w.write_all(b"cde").is_err());
        assert!(w.over);
        assert_eq!(w.data, b"ab");
    }
}
