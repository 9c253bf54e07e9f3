//! Token lists: FireRedASR `dict.txt`, WeNet `units.txt`, ESPnet `tokens.txt`.
//!
//! One token per line, either `token id` or just `token` (id = line number), following
//! FireRedASR `fireredasr/data/token_dict.py`: ids must equal the line number, an empty line
//! stands for " ", and `<space>` is read as " ". Decoding concatenates tokens and turns the
//! SentencePiece marker "▁" into spaces (FireRedASR `detokenize`, WeNet's BPE post-processing).
//! Self-contained (own error type) on purpose.

use std::collections::HashMap;
use std::path::Path;

/// Errors reading a token list.
#[derive(Debug, thiserror::Error)]
pub enum UnitsError {
    /// The file could not be read.
    #[error("token list: cannot read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("token list {origin}:{line}: {message}")]
    Format {
        /// File path or other origin.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// An id ↔ token table.
#[derive(Debug, Clone, Default)]
pub struct TokenList {
    id2tok: Vec<String>,
    tok2id: HashMap<String, u32>,
}

impl TokenList {
    /// Reads a token list file.
    pub fn load(path: &Path) -> Result<Self, UnitsError> {
        let text = std::fs::read_to_string(path).map_err(|source| UnitsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses token-list text (`origin` labels errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, UnitsError> {
        let mut t = TokenList::default();
        for (i, line) in text.lines().enumerate() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let (word, index) = match parts.as_slice() {
                [] => (" ", i),
                [w] => (*w, i),
                [w, id, ..] => (
                    *w,
                    id.parse::<usize>().map_err(|_| UnitsError::Format {
                        origin: origin.to_string(),
                        line: i + 1,
                        message: format!("id {id:?} is not a number"),
                    })?,
                ),
            };
            if index != t.id2tok.len() {
                return Err(UnitsError::Format {
                    origin: origin.to_string(),
                    line: i + 1,
                    message: format!("id {index} out of order (expected {})", t.id2tok.len()),
                });
            }
            let word = if word == "<space>" { " " } else { word };
            t.tok2id.insert(word.to_string(), index as u32);
            t.id2tok.push(word.to_string());
        }
        Ok(t)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.id2tok.len()
    }

    /// True if the list is empty.
    pub fn is_empty(&self) -> bool {
        self.id2tok.is_empty()
    }

    /// Token of an id.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.id2tok.get(id as usize).map(String::as_str)
    }

    /// Id of a token.
    pub fn id(&self, token: &str) -> Option<u32> {
        self.tok2id.get(token).copied()
    }

    /// Concatenates the tokens of `ids` (unknown ids skipped), "▁" → " ", trimmed.
    pub fn detokenize(&self, ids: &[u32]) -> String {
        let s: String = ids.iter().filter_map(|&i| self.token(i)).collect();
        s.replace('\u{2581}', " ").trim().to_string()
    }
}
