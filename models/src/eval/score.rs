//! Word and character error rates with jiwer-compatible alignments.
//!
//! Reference: jitsi/jiwer `jiwer/process.py` (jiwer 4), which takes its alignment from
//! rapidfuzz `Levenshtein.opcodes` (rapidfuzz-cpp `distance/Levenshtein_impl.hpp`,
//! `levenshtein_align` + `recover_alignment`). Several alignments can have the same
//! distance but different S/D/I counts (`a b` -> `b c` is 2 substitutions or 1
//! deletion + 1 insertion), so the back-trace follows rapidfuzz exactly:
//! 1. the common prefix and suffix are matched first and removed;
//! 2. a full Levenshtein matrix `D` of the middle is computed, and walked back from
//!    the end: a deletion when `D[i][j] == D[i-1][j] + 1`; otherwise an insertion
//!    when `D[i][j-1] == D[i-1][j-1] - 1` (insertion strictly better than the
//!    diagonal); otherwise the diagonal (match or substitution);
//! 3. leftover reference items are deletions, leftover hypothesis items insertions.
//!
//! rapidfuzz switches to Hirschberg's divide and conquer when the matrix of one
//! pair exceeds ~4M cells (e.g. two 2000-word sentences); hark keeps the full matrix
//! up to 64M cells and splits (its own Hirschberg split points) beyond. For pairs
//! between 4M and 64M cells, and beyond, the S/D/I split of a tie may differ from
//! jiwer's; the distance never does.
//!
//! Tokenisation follows jiwer's defaults (whitespace = Python's `str.isspace()`):
//! words = `wer_default` (runs of two or more
//! whitespace characters become one space, the text is stripped and split on single
//! spaces, so a lone tab stays inside a word, as in jiwer); characters =
//! `cer_default` (stripped, then every character including spaces).
//!
//! Empty references: jiwer 4 reports the *number of insertions* as the error rate
//! when the total reference length is zero (0 when the hypothesis is empty too);
//! [`ErrorCounts::error_rate`] does the same.

use serde::{Deserialize, Serialize};

use super::unicode::is_py_space;

/// One edit operation of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditOp {
    /// Reference and hypothesis tokens are equal.
    Equal,
    /// A reference token replaced by a different hypothesis token.
    Substitute,
    /// A reference token missing from the hypothesis.
    Delete,
    /// A hypothesis token absent from the reference.
    Insert,
}

/// A run of one operation, with half-open index ranges (jiwer's `AlignmentChunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignmentChunk {
    /// The operation.
    pub op: EditOp,
    /// Start index in the reference.
    pub ref_start: usize,
    /// End index (exclusive) in the reference.
    pub ref_end: usize,
    /// Start index in the hypothesis.
    pub hyp_start: usize,
    /// End index (exclusive) in the hypothesis.
    pub hyp_end: usize,
}

/// One aligned position: a reference token, a hypothesis token, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignedToken {
    /// The operation at this position.
    pub op: EditOp,
    /// Reference token (absent for insertions).
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<String>,
    /// Hypothesis token (absent for deletions).
    #[serde(rename = "hyp", skip_serializing_if = "Option::is_none", default)]
    pub hypothesis: Option<String>,
}

/// Hit, substitution, deletion and insertion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Correct tokens.
    pub hits: usize,
    /// Substituted tokens.
    pub substitutions: usize,
    /// Deleted reference tokens.
    pub deletions: usize,
    /// Inserted hypothesis tokens.
    pub insertions: usize,
}

impl ErrorCounts {
    /// S + D + I.
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }
    /// Reference length: H + S + D.
    pub fn reference_len(&self) -> usize {
        self.hits + self.substitutions + self.deletions
    }
    /// Hypothesis length: H + S + I.
    pub fn hypothesis_len(&self) -> usize {
        self.hits + self.substitutions + self.insertions
    }
    /// (S + D + I) / (H + S + D); with an empty reference, the number of insertions
    /// (jiwer 4's convention).
    pub fn error_rate(&self) -> f64 {
        let n = self.reference_len();
        if n == 0 {
            self.insertions as f64
        } else {
            self.errors() as f64 / n as f64
        }
    }
    /// Add another count (corpus totals).
    pub fn add(&mut self, other: &ErrorCounts) {
        self.hits += other.hits;
        self.substitutions += other.substitutions;
        self.deletions += other.deletions;
        self.insertions += other.insertions;
    }
    /// Counts of an alignment.
    pub fn from_chunks(chunks: &[AlignmentChunk]) -> Self {
        let mut c = Self::default();
        for ch in chunks {
            let n = ch.ref_end - ch.ref_start;
            match ch.op {
                EditOp::Equal => c.hits += n,
                EditOp::Substitute => c.substitutions += n,
                EditOp::Delete => c.deletions += n,
                EditOp::Insert => c.insertions += ch.hyp_end - ch.hyp_start,
            }
        }
        c
    }
}

/// jiwer's `wer_default` word split.
pub fn words(text: &str) -> Vec<&str> {
    // RemoveMultipleSpaces (`\s\s+` -> " ") then Strip then split(" "): a single
    // non-space whitespace char between words stays part of a word; any run of
    // two or more whitespace chars separates words.
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let is_ws = is_py_space(c);
        let run_len = if is_ws {
            chars[i..]
                .iter()
                .take_while(|(_, c)| is_py_space(*c))
                .count()
        } else {
            0
        };
        let at_edge = i == 0 || i + run_len == chars.len();
        let separator = is_ws && (c == ' ' || run_len >= 2 || at_edge);
        if separator {
            if let Some(s) = start.take() {
                out.push(&text[s..pos]);
            }
            i += run_len.max(1);
            continue;
        }
        if start.is_none() {
            start = Some(pos);
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push(&text[s..]);
    }
    out
}

/// jiwer's `cer_default` character split: stripped text, every character.
pub fn chars(text: &str) -> Vec<char> {
    text.trim_matches(is_py_space).chars().collect()
}

/// Edit operations (rapidfuzz `editops`) between `reference` and `hypothesis`.
fn editops<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> Vec<(EditOp, usize, usize)> {
    editops_bounded(reference, hypothesis, MAX_MATRIX_CELLS)
}

/// Above this many matrix cells (256 MiB of `u32`), the alignment is split with
/// Hirschberg's method so memory stays linear; the distance is still exact, but the
/// S/D/I split of ties may then differ from jiwer's.
const MAX_MATRIX_CELLS: usize = 64 << 20;

/// Last row of the Levenshtein matrix of `a` against `b`: distances of all of `a`
/// against every prefix of `b`.
fn last_row<T: PartialEq>(a: &[T], b: &[T]) -> Vec<u32> {
    let mut row: Vec<u32> = (0..=b.len() as u32).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diag = row[0];
        row[0] = i as u32 + 1;
        for j in 1..=b.len() {
            let up = row[j];
            row[j] = (diag + u32::from(*x != b[j - 1]))
                .min(up + 1)
                .min(row[j - 1] + 1);
            diag = up;
        }
    }
    row
}

fn editops_bounded<T: PartialEq>(
    reference: &[T],
    hypothesis: &[T],
    max_cells: usize,
) -> Vec<(EditOp, usize, usize)> {
    let prefix = reference
        .iter()
        .zip(hypothesis)
        .take_while(|(a, b)| a == b)
        .count();
    let r = &reference[prefix..];
    let h = &hypothesis[prefix..];
    let suffix = r
        .iter()
        .rev()
        .zip(h.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let s1 = &r[..r.len() - suffix];
    let s2 = &h[..h.len() - suffix];
    let (n, m) = (s1.len(), s2.len());
    let mut ops = Vec::new();
    if n == 0 || m == 0 {
        for i in 0..n {
            ops.push((EditOp::Delete, prefix + i, prefix));
        }
        for j in 0..m {
            ops.push((EditOp::Insert, prefix, prefix + j));
        }
        return ops;
    }
    if (n + 1).saturating_mul(m + 1) > max_cells && n >= 2 {
        // Hirschberg: split s1 in the middle, find where s2 splits on an optimal path.
        let mid = n / 2;
        let fwd = last_row(&s1[..mid], s2);
        let r1: Vec<&T> = s1[mid..].iter().rev().collect();
        let r2: Vec<&T> = s2.iter().rev().collect();
        let bwd = last_row(&r1, &r2);
        let split = (0..=m).min_by_key(|&j| fwd[j] + bwd[m - j]).unwrap_or(0);
        let mut ops = Vec::new();
        for (op, i, j) in editops_bounded(&s1[..mid], &s2[..split], max_cells) {
            ops.push((op, prefix + i, prefix + j));
        }
        for (op, i, j) in editops_bounded(&s1[mid..], &s2[split..], max_cells) {
            ops.push((op, prefix + mid + i, prefix + split + j));
        }
        return ops;
    }
    // D[i][j]: distance between s1[..i] and s2[..j]; stored row-major by i.
    let w = m + 1;
    let mut d = vec![0u32; (n + 1) * w];
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j as u32;
    }
    for i in 1..=n {
        d[i * w] = i as u32;
        for j in 1..=m {
            let sub = d[(i - 1) * w + j - 1] + u32::from(s1[i - 1] != s2[j - 1]);
            let del = d[(i - 1) * w + j] + 1;
            let ins = d[i * w + j - 1] + 1;
            d[i * w + j] = sub.min(del).min(ins);
        }
    }
    let at = |i: usize, j: usize| d[i * w + j] as i64;
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        if at(i, j) - at(i - 1, j) == 1 {
            i -= 1;
            ops.push((EditOp::Delete, prefix + i, prefix + j));
        } else {
            j -= 1;
            if j > 0 && at(i, j) - at(i - 1, j) == -1 {
                ops.push((EditOp::Insert, prefix + i, prefix + j));
            } else {
                i -= 1;
                if s1[i] != s2[j] {
                    ops.push((EditOp::Substitute, prefix + i, prefix + j));
                }
            }
        }
    }
    while i > 0 {
        i -= 1;
        ops.push((EditOp::Delete, prefix + i, prefix + j));
    }
    while j > 0 {
        j -= 1;
        ops.push((EditOp::Insert, prefix + i, prefix + j));
    }
    ops.reverse();
    ops
}

/// Alignment chunks (rapidfuzz `opcodes`, jiwer's `alignments`).
pub fn align<T: PartialEq>(reference: &[T], hypothesis: &[T]) -> Vec<AlignmentChunk> {
    let ops = editops(reference, hypothesis);
    let mut out = Vec::new();
    let (mut sp, mut dp) = (0usize, 0usize);
    let mut k = 0;
    while k < ops.len() {
        let (op, s, d) = ops[k];
        if sp < s || dp < d {
            out.push(AlignmentChunk {
                op: EditOp::Equal,
                ref_start: sp,
                ref_end: s,
                hyp_start: dp,
                hyp_end: d,
            });
            sp = s;
            dp = d;
        }
        let (sb, db) = (sp, dp);
        loop {
            match op {
                EditOp::Substitute => {
                    sp += 1;
                    dp += 1;
                }
                EditOp::Insert => dp += 1,
                EditOp::Delete => sp += 1,
                EditOp::Equal => {}
            }
            k += 1;
            if !(k < ops.len() && ops[k].0 == op && ops[k].1 == sp && ops[k].2 == dp) {
                break;
            }
        }
        out.push(AlignmentChunk {
            op,
            ref_start: sb,
            ref_end: sp,
            hyp_start: db,
            hyp_end: dp,
        });
    }
    if sp < reference.len() || dp < hypothesis.len() {
        out.push(AlignmentChunk {
            op: EditOp::Equal,
            ref_start: sp,
            ref_end: reference.len(),
            hyp_start: dp,
            hyp_end: hypothesis.len(),
        });
    }
    out
}

/// Expand chunks into one entry per aligned position.
pub fn aligned_tokens<T: ToString>(
    reference: &[T],
    hypothesis: &[T],
    chunks: &[AlignmentChunk],
) -> Vec<AlignedToken> {
    let mut out = Vec::new();
    for ch in chunks {
        let rn = ch.ref_end - ch.ref_start;
        let hn = ch.hyp_end - ch.hyp_start;
        for k in 0..rn.max(hn) {
            out.push(AlignedToken {
                op: ch.op,
                reference: (k < rn).then(|| reference[ch.ref_start + k].to_string()),
                hypothesis: (k < hn).then(|| hypothesis[ch.hyp_start + k].to_string()),
            });
        }
    }
    out
}

/// Scores of one reference/hypothesis pair (already normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    /// Word-level counts.
    pub words: ErrorCounts,
    /// Character-level counts.
    pub chars: ErrorCounts,
    /// Word-by-word alignment.
    pub alignment: Vec<AlignedToken>,
}

/// Score one pair at word and character level.
pub fn score_pair(reference: &str, hypothesis: &str) -> PairScore {
    let rw = words(reference);
    let hw = words(hypothesis);
    let wchunks = align(&rw, &hw);
    let rc = chars(reference);
    let hc = chars(hypothesis);
    let cchunks = align(&rc, &hc);
    PairScore {
        words: ErrorCounts::from_chunks(&wchunks),
        chars: ErrorCounts::from_chunks(&cchunks),
        alignment: aligned_tokens(&rw, &hw, &wchunks),
    }
}

/// Render an alignment as three lines (REF, HYP, and S/D/I markers), in the spirit
/// of jiwer's `visualize_alignment`.
pub fn render_alignment(alignment: &[AlignedToken]) -> String {
    let (mut r, mut h, mut m) = (
        String::from("REF: "),
        String::from("HYP: "),
        String::from("     "),
    );
    for t in alignment {
        let rs = t.reference.as_deref().unwrap_or("");
        let hs = t.hypothesis.as_deref().unwrap_or("");
        let width = rs.chars().count().max(hs.chars().count()).max(1);
        let pad = |s: &str, fill: char| {
            let mut out = s.to_string();
            out.extend(std::iter::repeat_n(fill, width - s.chars().count()));
            out
        };
        r.push_str(&pad(
            if t.reference.is_some() { rs } else { "" },
            if t.reference.is_some() { ' ' } else { '*' },
        ));
        h.push_str(&pad(
            if t.hypothesis.is_some() { hs } else { "" },
            if t.hypothesis.is_some() { ' ' } else { '*' },
        ));
        let mark = match t.op {
            EditOp::Equal => ' ',
            EditOp::Substitute => 'S',
            EditOp::Delete => 'D',
            EditOp::Insert => 'I',
        };
        m.push_str(&pad(&mark.to_string(), ' '));
        r.push(' ');
        h.push(' ');
        m.push(' ');
    }
    format!("{}\n{}\n{}", r.trim_end(), h.trim_end(), m.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_follow_jiwer_wer_default() {
        assert_eq!(words("  a  b c\td \n"), vec!["a", "b", "c\td"]);
        assert_eq!(words(""), Vec::<&str>::new());
        assert_eq!(words("\ta"), vec!["a"]);
    }

    #[test]
    fn linear_memory_split_keeps_the_exact_distance() {
        // Deterministic pseudo-random sequences over a small alphabet.
        let mut x = 12345u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 60) as u8 % 4
        };
        for len in [3usize, 10, 57, 200] {
            let a: Vec<u8> = (0..len).map(|_| next()).collect();
            let b: Vec<u8> = (0..len * 3 / 4 + 1).map(|_| next()).collect();
            let full = editops_bounded(&a, &b, usize::MAX);
            let split = editops_bounded(&a, &b, 16);
            let dist = *last_row(&a, &b).last().expect("row");
            assert_eq!(full.len() as u32, dist);
            assert_eq!(split.len() as u32, dist);
            // The split ops form a valid alignment: replaying them turns a into b.
            let mut out = Vec::new();
            let mut i = 0;
            for &(op, s, d) in &split {
                while i < s {
                    out.push(a[i]);
                    i += 1;
                }
                match op {
                    EditOp::Delete => i += 1,
                    EditOp::Insert => out.push(b[d]),
                    EditOp::Substitute => {
                        out.push(b[d]);
                        i += 1;
                    }
                    EditOp::Equal => {}
                }
            }
            out.extend_from_slice(&a[i..]);
            assert_eq!(out, b);
        }
    }

    #[test]
    fn tie_prefers_substitutions_like_rapidfuzz() {
        let c = ErrorCounts::from_chunks(&align(&["a", "b"], &["b", "c"]));
        assert_eq!(c.errors(), 2);
    }
}
