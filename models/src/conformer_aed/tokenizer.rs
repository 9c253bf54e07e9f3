//! FireRedASR's text side: `dict.txt` + SentencePiece BPE, CJK characters as single tokens.
//!
//! Follows `ChineseCharEnglishSpmTokenizer` in FireRedASR
//! `fireredasr/tokenizer/aed_tokenizer.py`: text is upper-cased, the punctuation
//! `，。？！,.?!` becomes spaces, every CJK character (U+3400–U+4DBF, U+4E00–U+9FFF) is a
//! token, the other stretches go through SentencePiece, and pieces are looked up in
//! `dict.txt` (`<unk>` when absent). Decoding joins dictionary tokens and turns "▁" into
//! spaces.
//!
//! The SentencePiece reader and the token list live in the tokenizer crate
//! (`tokenizer/src/sentencepiece.rs`, `tokenizer/src/units.rs`); until that crate exports
//! them they are compiled in here from the same files.

use std::path::Path;

#[path = "../../../tokenizer/src/sentencepiece.rs"]
pub mod sentencepiece;
#[path = "../../../tokenizer/src/units.rs"]
pub mod units;

use super::error::ConformerError;
use sentencepiece::SentencePieceModel;
use units::TokenList;

/// FireRedASR-AED tokenizer.
#[derive(Debug, Clone)]
pub struct FireRedTokenizer {
    dict: TokenList,
    /// `None` for unit lists without a BPE model (WeNet char units): then each non-CJK
    /// word is looked up whole, else character by character.
    spm: Option<SentencePieceModel>,
    unk_id: u32,
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4dbf}' | '\u{4e00}'..='\u{9fff}')
}

impl FireRedTokenizer {
    /// Loads `dict.txt` and the SentencePiece model (`<unk>` must be in the dictionary).
    pub fn load(dict: &Path, spm_model: &Path) -> Result<Self, ConformerError> {
        let dict = TokenList::load(dict).map_err(|e| ConformerError::Tokenizer(e.to_string()))?;
        let spm = SentencePieceModel::load(spm_model)
            .map_err(|e| ConformerError::Tokenizer(e.to_string()))?;
        let unk_id = dict
            .id("<unk>")
            .ok_or_else(|| ConformerError::Tokenizer("dict has no <unk> token".into()))?;
        Ok(Self {
            dict,
            spm: Some(spm),
            unk_id,
        })
    }

    /// Loads a unit list alone (WeNet `units.txt` / ESPnet `tokens.txt` without a BPE model).
    pub fn load_units(dict: &Path) -> Result<Self, ConformerError> {
        let dict = TokenList::load(dict).map_err(|e| ConformerError::Tokenizer(e.to_string()))?;
        let unk_id = dict
            .id("<unk>")
            .ok_or_else(|| ConformerError::Tokenizer("unit list has no <unk> token".into()))?;
        Ok(Self {
            dict,
            spm: None,
            unk_id,
        })
    }

    /// Loads the tokenizer files named by a model directory's config.
    pub fn from_model_dir(
        dir: &Path,
        cfg: &super::ConformerConfig,
    ) -> Result<Self, ConformerError> {
        if cfg.spm_model.is_empty() {
            Self::load_units(&dir.join(&cfg.dict))
        } else {
            Self::load(&dir.join(&cfg.dict), &dir.join(&cfg.spm_model))
        }
    }

    /// Text → (pieces, ids), as the reference's `tokenize(text, replace_punc=True)`.
    pub fn tokenize(&self, text: &str) -> (Vec<String>, Vec<u32>) {
        let upper: String = text
            .to_uppercase()
            .chars()
            .map(|c| {
                if "，。？！,.?!".contains(c) {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let mut pieces = Vec::new();
        let mut run = String::new();
        let flush = |run: &mut String, pieces: &mut Vec<String>| {
            let part = run.trim();
            if !part.is_empty() {
                match &self.spm {
                    Some(spm) => pieces.extend(spm.encode_as_pieces(part)),
                    None => {
                        for word in part.split_whitespace() {
                            if self.dict.id(word).is_some() {
                                pieces.push(word.to_string());
                            } else {
                                pieces.extend(word.chars().map(String::from));
                            }
                        }
                    }
                }
            }
            run.clear();
        };
        for c in upper.trim().chars() {
            if is_cjk(c) {
                flush(&mut run, &mut pieces);
                pieces.push(c.to_string());
            } else {
                run.push(c);
            }
        }
        flush(&mut run, &mut pieces);
        let ids = pieces
            .iter()
            .map(|p| self.dict.id(p).unwrap_or(self.unk_id))
            .collect();
        (pieces, ids)
    }

    /// Ids → text (`detokenize`: join, "▁" → " ", strip).
    pub fn detokenize(&self, ids: &[u32]) -> String {
        self.dict.detokenize(ids)
    }

    /// The dictionary.
    pub fn dict(&self) -> &TokenList {
        &self.dict
    }
}
