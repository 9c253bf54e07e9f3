//! Text normalisers applied to references and hypotheses before scoring.
//!
//! - `none`: the text as is (scoring still splits words on whitespace).
//! - `basic`: (1) Unicode lower-case (`str::to_lowercase`); (2) U+2019 becomes an
//!   ASCII apostrophe, and an apostrophe with a letter or digit on both sides is kept
//!   (`don't`, `o'clock`); (3) every other character of Unicode category P*
//!   (punctuation) or S* (symbol) becomes a space (letters, digits and combining
//!   marks are kept, so `café` survives); (4) whitespace runs (Python's
//!   `str.isspace()`: Unicode White_Space plus U+001C..U+001F) become one space and
//!   the ends are trimmed.
//! - `upper`: `basic` with upper-case instead of lower-case (AN4-style references:
//!   upper-case words, no punctuation).
//! - `whisper-en`: openai-whisper's `EnglishTextNormalizer`, see [`super::english`].
//! - `spelled`: hark's own normaliser for spelled-letter test sets such as AN4
//!   (upper-case, acronyms split into letters, numbers written digit by digit as
//!   words: "Erase UDBE5." and "ERASE U D B E FIVE" both become the latter); the
//!   rules are in [`super::spelled`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::english::whisper_english;
use super::spelled::spelled;
use super::unicode::{category, is_py_space, Cat};
use super::EvalError;

/// Which normaliser to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalizer {
    /// Leave the text unchanged.
    None,
    /// Lower-case, punctuation/symbols removed, whitespace collapsed.
    Basic,
    /// Like `Basic` but upper-case.
    Upper,
    /// openai-whisper's English normaliser.
    WhisperEn,
    /// hark's normaliser for spelled letters and digits (AN4-style references).
    Spelled,
}

impl Normalizer {
    /// All normalisers with their command-line names.
    pub const ALL: [Normalizer; 5] = [
        Normalizer::None,
        Normalizer::Basic,
        Normalizer::Upper,
        Normalizer::WhisperEn,
        Normalizer::Spelled,
    ];

    /// Command-line name (`none`, `basic`, `upper`, `whisper-en`, `spelled`).
    pub fn name(self) -> &'static str {
        match self {
            Normalizer::None => "none",
            Normalizer::Basic => "basic",
            Normalizer::Upper => "upper",
            Normalizer::WhisperEn => "whisper-en",
            Normalizer::Spelled => "spelled",
        }
    }

    /// Normalise one text.
    pub fn apply(self, text: &str) -> String {
        match self {
            Normalizer::None => text.to_string(),
            Normalizer::Basic => basic(&text.to_lowercase()),
            Normalizer::Upper => basic(&text.to_uppercase()),
            Normalizer::WhisperEn => whisper_english(text),
            Normalizer::Spelled => spelled(text),
        }
    }
}

impl fmt::Display for Normalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Normalizer {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Normalizer::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| EvalError::UnknownNormalizer(s.to_string()))
    }
}

/// Steps 2-4 of `basic` on already case-mapped text.
fn basic(text: &str) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect();
    let word_char = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let keep_apostrophe =
            c == '\'' && i > 0 && word_char(chars.get(i - 1)) && word_char(chars.get(i + 1));
        let drop = !keep_apostrophe && matches!(category(c), Some(Cat::Punctuation | Cat::Symbol));
        out.push(if drop { ' ' } else { c });
    }
    out.split(is_py_space)
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_upper_follow_their_documented_rules() {
        assert_eq!(
            Normalizer::Basic.apply("  Hello, World!  Don’t 'quote' café-au-lait "),
            "hello world don't quote café au lait"
        );
        assert_eq!(
            Normalizer::Upper.apply("yes. no, maybe $5"),
            "YES NO MAYBE 5"
        );
        assert_eq!(Normalizer::None.apply(" A,b "), " A,b ");
        assert_eq!(
            "whisper-en".parse::<Normalizer>().ok(),
            Some(Normalizer::WhisperEn)
        );
        assert!("x".parse::<Normalizer>().is_err());
    }
}
