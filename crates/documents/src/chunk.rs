//! Cutting pages into pieces an embedding model can take, with `text-splitter`.

use text_splitter::{ChunkConfig, TextSplitter};

use crate::{Extracted, text};

/// One piece of a page, the unit that is embedded, retrieved and cited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document, from 0, without gaps.
    pub index: u32,
    /// The page it comes from (a chunk never spans pages, so this is exact).
    pub page: Option<u32>,
    /// The text: a verbatim slice of the page's normalised text, trimmed, never empty.
    pub text: String,
    /// Where `text` starts in its page, in characters (not bytes). The page text of
    /// [`crate::extract`] is already normalised, so this indexes [`crate::Page::text`] directly.
    pub start: usize,
}

/// Chunking parameters that cannot work; a configuration mistake, not the document's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkingError {
    #[error("the chunk size must be at least one character")]
    ZeroSize,
    #[error("the chunk overlap ({overlap}) must be smaller than the chunk size ({size})")]
    OverlapTooLarge { size: usize, overlap: usize },
}

/// Cuts each page into chunks of at most `size` characters, consecutive chunks of a page sharing
/// up to `overlap` characters so a sentence cut at a boundary is whole in one of them.
///
/// Cuts fall at the largest boundary that fits — paragraph, line, sentence, word, and only for a
/// word longer than `size` inside it — and overlaps are taken the same way, so a chunk starts and
/// ends on whole sentences wherever sentences fit. Page text is normalised first (a no-op for
/// what [`crate::extract`] returns), so sizes count characters, not stray whitespace.
pub fn chunk(extracted: &Extracted, size: usize, overlap: usize) -> Result<Vec<Chunk>, ChunkingError> {
    if size == 0 {
        return Err(ChunkingError::ZeroSize);
    }
    let config =
        ChunkConfig::new(size).with_overlap(overlap).map_err(|_| ChunkingError::OverlapTooLarge { size, overlap })?;
    let splitter = TextSplitter::new(config);
    let mut chunks = Vec::new();
    for page in &extracted.pages {
        let text = text::normalise(&page.text);
        for piece in splitter.chunk_char_indices(&text) {
            if piece.chunk.trim().is_empty() {
                continue;
            }
            chunks.push(Chunk {
                index: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
                page: page.number,
                text: piece.chunk.to_owned(),
                start: piece.char_offset,
            });
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Page;

    fn doc(pages: &[(Option<u32>, &str)]) -> Extracted {
        Extracted { pages: pages.iter().map(|&(number, text)| Page { number, text: text.to_owned() }).collect() }
    }

    /// Every chunk is the page text at its offset, within size, and indexes run 0, 1, 2…
    fn assert_well_formed(extracted: &Extracted, chunks: &[Chunk], size: usize) {
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.index as usize, i);
            assert!(!c.text.trim().is_empty());
            assert!(c.text.chars().count() <= size, "chunk {i} has {} chars: {:?}", c.text.chars().count(), c.text);
            let page = extracted.pages.iter().find(|p| p.number == c.page).unwrap();
            let text = text::normalise(&page.text);
            let at: String = text.chars().skip(c.start).take(c.text.chars().count()).collect();
            assert_eq!(at, c.text, "chunk {i} is not its page's text at offset {}", c.start);
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let d = doc(&[(None, "text")]);
        assert_eq!(chunk(&d, 0, 0), Err(ChunkingError::ZeroSize));
        assert_eq!(chunk(&d, 10, 10), Err(ChunkingError::OverlapTooLarge { size: 10, overlap: 10 }));
        assert!(chunk(&d, 10, 9).is_ok());
    }

    #[test]
    fn chunks_keep_to_sentences_overlap_and_never_cross_pages() {
        let sentences: Vec<String> =
            (1..=12).map(|i| format!("Sentence number {i} talks about topic {i} at some length.")).collect();
        let page_one = sentences[..8].join(" ");
        let page_two = sentences[8..].join(" ");
        let d = doc(&[(Some(1), &page_one), (Some(2), &page_two)]);
        let chunks = chunk(&d, 150, 60).unwrap();
        assert_well_formed(&d, &chunks, 150);

        // Never across a page: every chunk is inside its own page's text (checked above), and
        // the pages come in order.
        let pages: Vec<_> = chunks.iter().map(|c| c.page).collect();
        assert!(pages.windows(2).all(|w| w[0] <= w[1]));
        assert!(pages.contains(&Some(1)) && pages.contains(&Some(2)));

        // Whole sentences: each chunk starts a sentence and ends one.
        for c in &chunks {
            assert!(c.text.starts_with("Sentence number"), "{:?}", c.text);
            assert!(c.text.ends_with('.'), "{:?}", c.text);
        }

        // Overlap: within a page, each chunk starts before the previous one ends.
        for w in chunks.windows(2).filter(|w| w[0].page == w[1].page) {
            let end = w[0].start + w[0].text.chars().count();
            assert!(w[1].start < end, "no overlap between {:?} and {:?}", w[0].text, w[1].text);
        }
    }

    #[test]
    fn without_overlap_chunks_follow_each_other() {
        let d = doc(&[(None, "One. Two two. Three three three. Four four four four. Five.")]);
        let chunks = chunk(&d, 20, 0).unwrap();
        assert_well_formed(&d, &chunks, 20);
        for w in chunks.windows(2) {
            assert!(w[1].start >= w[0].start + w[0].text.chars().count());
        }
    }

    #[test]
    fn empty_pages_give_no_chunks_and_offsets_count_characters() {
        let d = doc(&[(Some(1), ""), (Some(2), "  \n "), (Some(3), "Ünïcödé wörds. Ånd möre hére.")]);
        let chunks = chunk(&d, 16, 0).unwrap();
        assert_well_formed(&d, &chunks, 16);
        assert!(chunks.iter().all(|c| c.page == Some(3)));
        assert_eq!(chunks[1].start, "Ünïcödé wörds. ".chars().count());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Chunking never panics, keeps its contract, and loses no word: every character that is
        /// not whitespace lies inside some chunk.
        #[test]
        fn chunking_loses_nothing(
            words in prop::collection::vec("[a-zA-Zéß0-9]{1,12}[.,!?]?", 0..300),
            seps in prop::collection::vec(prop::sample::select(vec![" ", " ", " ", "\n", "\n\n", "\t", "  "]), 300),
            size in 8usize..200,
            overlap_share in 0usize..90,
        ) {
            let text: String = words.iter().zip(&seps).flat_map(|(w, s)| [w.as_str(), s]).collect();
            let overlap = size * overlap_share / 100;
            let d = doc(&[(Some(1), &text)]);
            let chunks = chunk(&d, size, overlap).unwrap();
            assert_well_formed(&d, &chunks, size);

            let normalised: Vec<char> = text::normalise(&text).chars().collect();
            let mut covered = vec![false; normalised.len()];
            for c in &chunks {
                for slot in covered.iter_mut().skip(c.start).take(c.text.chars().count()) {
                    *slot = true;
                }
            }
            for (i, ch) in normalised.iter().enumerate() {
                prop_assert!(covered[i] || ch.is_whitespace(), "char {i} ({ch:?}) is in no chunk");
            }
            // Punctuation is a word of its own to the splitter, so it may fall in the next chunk.
            for word in words.iter().map(|w| w.trim_end_matches(['.', ',', '!', '?'])).filter(|w| w.chars().count() <= size) {
                prop_assert!(chunks.iter().any(|c| c.text.contains(word)), "{word:?} is in no chunk");
            }
        }
    }
}
