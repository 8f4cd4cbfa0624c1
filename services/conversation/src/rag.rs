//! Retrieval-augmented generation, the parts that are pure: the words a full-text ranking looks
//! for, exact cosine similarity, reciprocal rank fusion of the two rankings, and the message that
//! gives the retrieved chunks to the model. The template is stated in `docs/documents.md`.

use std::collections::{HashMap, HashSet};

use ollama_api::types::Message;

use crate::store::{ChunkKey, ChunkRecord, Citation};

/// Reciprocal rank fusion's constant (Cormack et al.): a chunk ranked `r` (from 1) in a ranking
/// adds `1 / (RRF_K + r)` to its score, so agreement between rankings beats one high rank.
pub const RRF_K: f64 = 60.0;

/// Most words of a question a full-text ranking looks for.
const MAX_WORDS: usize = 32;

/// Words too common to say what a question is about. Full-text ranking is OR over the question's
/// words; Postgres's `ts_rank` has no inverse document frequency, so without this list "the" and
/// "is" would decide its ranking (SQLite's bm25 discounts them anyway). English only: other
/// languages rely on the vector ranking for the same effect.
const STOP_WORDS: &[&str] = &[
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could", "did", "do", "does", "for",
    "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "much", "my", "of", "on",
    "or", "our", "should", "so", "tell", "than", "that", "the", "their", "them", "there", "these", "they", "this",
    "to", "us", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "why", "will", "with", "would",
    "you", "your",
];

/// The words of `q` a full-text ranking looks for: letters and digits only (so no query syntax
/// survives), lowercased, without stop words or repeats, at most [`MAX_WORDS`].
pub fn query_words(q: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .filter(|w| seen.insert(w.clone()))
        .take(MAX_WORDS)
        .collect()
}

/// Cosine similarity; 0 for vectors of different lengths (made by another model) or of no length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let (mut dot, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    let norm = (aa * bb).sqrt();
    if norm == 0.0 { 0.0 } else { dot / norm }
}

/// The best `k` of a stream of scored chunks, holding at most `2k` at any time: a conversation's
/// vectors are ranked as the database sends them, never all loaded.
pub struct TopK {
    k: usize,
    best: Vec<(ChunkKey, f32)>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        Self { k, best: Vec::with_capacity(2 * k) }
    }

    pub fn offer(&mut self, key: ChunkKey, score: f32) {
        self.best.push((key, score));
        if self.best.len() >= 2 * self.k.max(1) {
            self.settle();
        }
    }

    /// Best first, ties broken by key (a total order, so cutting at any point keeps the best).
    fn settle(&mut self) {
        self.best.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        self.best.truncate(self.k);
    }

    /// The keys, best first.
    pub fn into_keys(mut self) -> Vec<ChunkKey> {
        self.settle();
        self.best.into_iter().map(|(key, _)| key).collect()
    }
}

/// Fuses rankings (each best first) by reciprocal rank; the best `limit` with their scores, best
/// first, ties broken by key so the order is stable.
pub fn fuse(rankings: &[Vec<ChunkKey>], limit: usize) -> Vec<(ChunkKey, f64)> {
    let mut scores: HashMap<ChunkKey, f64> = HashMap::new();
    for ranking in rankings {
        for (rank, key) in ranking.iter().enumerate() {
            *scores.entry(*key).or_default() += 1.0 / (RRF_K + rank as f64 + 1.0);
        }
    }
    let mut fused: Vec<(ChunkKey, f64)> = scores.into_iter().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(limit);
    fused
}

/// A retrieved chunk with its fused score.
#[derive(Debug, Clone)]
pub struct Hit {
    pub chunk: ChunkRecord,
    pub score: f64,
}

/// The system message that gives the model the retrieved chunks, numbered from `[1]`, and the
/// citations those numbers stand for.
pub fn context_message(hits: &[Hit]) -> (Message, Vec<Citation>) {
    let mut text = String::from(
        "Excerpts from the user's documents follow, numbered. Use them to answer when they are relevant, and \
         cite the excerpts you use by their number, like [1]. If they do not contain the answer, say so rather \
         than guess.",
    );
    let mut citations = Vec::with_capacity(hits.len());
    for (i, hit) in hits.iter().enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let c = &hit.chunk;
        let page = c.page.map(|p| format!(", page {p}")).unwrap_or_default();
        text.push_str(&format!("\n\n[{number}] {}{page}\n{}", c.document_name, c.text));
        citations.push(Citation {
            number,
            document_id: c.document_id,
            document_name: c.document_name.clone(),
            page: c.page,
            chunk_index: c.chunk_index,
            score: hit.score,
        });
    }
    (Message::system(text), citations)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn query_words_are_plain_distinct_and_meaningful() {
        assert_eq!(query_words("What is the capital of Zorbia? ZORBIA!"), ["capital", "zorbia"]);
        assert_eq!(query_words("\" OR 1=1 -- NEAR(x)"), ["1", "near", "x"]);
        assert!(query_words("the of and ,.;").is_empty());
        assert_eq!(query_words(&"w ".repeat(100)).len(), 1);
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn top_k_keeps_the_best_whatever_the_order() {
        let d = Uuid::nil();
        let scores: Vec<(ChunkKey, f32)> = (0..1000).map(|i| ((d, i), ((i * 7919) % 1000) as f32)).collect();
        let mut want = scores.clone();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut top = TopK::new(5);
        for (key, score) in scores {
            top.offer(key, score);
            assert!(top.best.len() < 10);
        }
        assert_eq!(top.into_keys(), want.iter().take(5).map(|w| w.0).collect::<Vec<_>>());
        let mut ties = TopK::new(2);
        for i in [3, 1, 2] {
            ties.offer((d, i), 0.5);
        }
        assert_eq!(ties.into_keys(), [(d, 1), (d, 2)]);
    }

    #[test]
    fn fusion_rewards_agreement() {
        let d = Uuid::nil();
        let (a, b, c) = ((d, 0), (d, 1), (d, 2));
        // `b` is second in both rankings; `a` and `c` are first in one each and absent from the other.
        let fused = fuse(&[vec![a, b], vec![c, b]], 10);
        assert_eq!(fused[0].0, b);
        assert_eq!(fused.iter().map(|f| f.0).collect::<Vec<_>>(), [b, a, c]);
        assert!((fused[0].1 - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(fuse(&[vec![a, b, c]], 2).len(), 2);
    }

    #[test]
    fn the_context_numbers_its_excerpts_and_names_pages() {
        let chunk = |name: &str, page, text: &str| ChunkRecord {
            document_id: Uuid::nil(),
            document_name: name.into(),
            chunk_index: 3,
            page,
            text: text.into(),
        };
        let hits = [
            Hit { chunk: chunk("a.pdf", Some(2), "Alpha."), score: 0.5 },
            Hit { chunk: chunk("b.md", None, "Beta."), score: 0.25 },
        ];
        let (message, citations) = context_message(&hits);
        assert_eq!(message.role, "system");
        assert!(message.content.ends_with("\n\n[1] a.pdf, page 2\nAlpha.\n\n[2] b.md\nBeta."), "{}", message.content);
        assert_eq!(citations.iter().map(|c| c.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((citations[0].page, citations[1].page, citations[0].chunk_index), (Some(2), None, 3));
    }
}
