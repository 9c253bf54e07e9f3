//! Port of openai-whisper's `EnglishTextNormalizer` and `EnglishSpellingNormalizer`
//! (openai/whisper `whisper/normalizers/english.py` and `basic.py`; identical code
//! ships in the `whisper-normalizer` package, which the parity fixture uses).
//!
//! Steps, in the reference's order: lower-case; drop `[...]`/`<...>` and `(...)`
//! spans; drop fillers (hmm, mm, mhm, mmm, uh, um); join " '" to "'"; expand
//! contractions and titles; remove commas between digits; remove periods not
//! followed by a digit; NFKD and replace marks/symbols/punctuation by spaces (Mn
//! dropped; `.%$¢€£` kept; œ→oe, ß→ss, ...); numbers ([`super::english_numbers`]);
//! British→American spellings (`english_spelling.tsv`, generated from the reference's
//! `english.json` by `scripts/eval/gen_english_spelling.py`); remove currency/period/
//! percent symbols not attached to a number; collapse whitespace (not stripped, as in
//! the reference).
//!
//! Python's `\b` (see `pyre.rs`) and `\s` (which includes U+001C..U+001F) are
//! reproduced explicitly, since Rust's `regex` defines both differently.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::{NoExpand, Regex};
use unicode_normalization::UnicodeNormalization;

use super::english_numbers::{normalize_numbers, py_split};
use super::pyre::PyRegex;
use super::unicode::{category, is_mark_symbol_punct, Cat};

/// Python's `\s` as a regex class.
pub(crate) const PY_SPACE: &str = r"[\s\x1C-\x1F]";

/// Non-ASCII letters that NFKD does not decompose (`ADDITIONAL_DIACRITICS`).
fn additional_diacritic(c: char) -> Option<&'static str> {
    Some(match c {
        'œ' => "oe",
        'Œ' => "OE",
        'ø' => "o",
        'Ø' => "O",
        'æ' => "ae",
        'Æ' => "AE",
        'ß' => "ss",
        'ẞ' => "SS",
        'đ' => "d",
        'Đ' => "D",
        'ð' => "d",
        'Ð' => "D",
        'þ' => "th",
        'Þ' => "th",
        'ł' => "l",
        'Ł' => "L",
        _ => return None,
    })
}

/// `remove_symbols_and_diacritics(s, keep)` of whisper's `basic.py`.
pub(crate) fn remove_symbols_and_diacritics(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.nfkd() {
        if keep.contains(c) {
            out.push(c);
        } else if let Some(r) = additional_diacritic(c) {
            out.push_str(r);
        } else if category(c) == Some(Cat::MarkNonspacing) {
        } else if is_mark_symbol_punct(c) {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

struct English {
    brackets: Regex,
    parens: Regex,
    ignore: PyRegex,
    space_apostrophe: Regex,
    replacers: Vec<(PyRegex, &'static str)>,
    digit_commas: Regex,
    periods: Regex,
    symbols_before: Regex,
    percent_after: Regex,
    spaces: Regex,
    spelling: HashMap<&'static str, &'static str>,
}

const REPLACERS: &[(&str, &str)] = &[
    // common contractions
    (r"\bwon't\b", "will not"),
    (r"\bcan't\b", "can not"),
    (r"\blet's\b", "let us"),
    (r"\bain't\b", "aint"),
    (r"\by'all\b", "you all"),
    (r"\bwanna\b", "want to"),
    (r"\bkinda\b", "kind of"),
    (r"\bsorta\b", "sort of"),
    (r"\bdunno\b", "do not know"),
    (r"\bgotta\b", "got to"),
    (r"\bgonna\b", "going to"),
    (r"\bi'ma\b", "i am going to"),
    (r"\bimma\b", "i am going to"),
    (r"\bwoulda\b", "would have"),
    (r"\bcoulda\b", "could have"),
    (r"\bshoulda\b", "should have"),
    (r"\bcause\b", "because"),
    (r"\bma'am\b", "madam"),
    // contractions in titles/prefixes
    (r"\bmr\b", "mister "),
    (r"\bmrs\b", "missus "),
    (r"\bst\b", "saint "),
    (r"\bdr\b", "doctor "),
    (r"\bprof\b", "professor "),
    (r"\bcapt\b", "captain "),
    (r"\bgov\b", "governor "),
    (r"\bald\b", "alderman "),
    (r"\bgen\b", "general "),
    (r"\bsen\b", "senator "),
    (r"\brep\b", "representative "),
    (r"\bpres\b", "president "),
    (r"\brev\b", "reverend "),
    (r"\bhon\b", "honorable "),
    (r"\basst\b", "assistant "),
    (r"\bassoc\b", "associate "),
    (r"\blt\b", "lieutenant "),
    (r"\bcol\b", "colonel "),
    (r"\bjr\b", "junior "),
    (r"\bsr\b", "senior "),
    (r"\besq\b", "esquire "),
    // perfect tenses
    (r"'d been\b", " had been"),
    (r"'s been\b", " has been"),
    (r"'d gone\b", " had gone"),
    (r"'s gone\b", " has gone"),
    (r"'d done\b", " had done"),
    (r"'s got\b", " has got"),
    // general contractions
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'s\b", " is"),
    (r"'d\b", " would"),
    (r"'ll\b", " will"),
    (r"'t\b", " not"),
    (r"'ve\b", " have"),
    (r"'m\b", " am"),
];

fn re(p: &str) -> Regex {
    // Built-in constant patterns; covered by unit tests.
    Regex::new(p).unwrap_or_else(|e| panic!("invalid built-in regex {p:?}: {e}"))
}

fn english() -> &'static English {
    static E: OnceLock<English> = OnceLock::new();
    E.get_or_init(|| {
        let s = PY_SPACE;
        let spelling = include_str!("english_spelling.tsv")
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .collect();
        English {
            brackets: re(r"[<\[][^>\]]*[>\]]"),
            parens: re(r"\(([^)]+?)\)"),
            ignore: PyRegex::new(r"\b(hmm|mm|mhm|mmm|uh|um)\b"),
            space_apostrophe: re(&format!(r"{s}+'")),
            replacers: REPLACERS
                .iter()
                .map(|(p, r)| (PyRegex::new(p), *r))
                .collect(),
            digit_commas: re(r"(\d),(\d)"),
            periods: re(r"\.([^0-9]|$)"),
            symbols_before: re(r"[.$¢€£]([^0-9])"),
            percent_after: re(r"([^0-9])%"),
            spaces: re(&format!(r"{s}+")),
            spelling,
        }
    })
}

/// Whisper's `EnglishTextNormalizer`.
pub fn whisper_english(text: &str) -> String {
    let e = english();
    let s = text.to_lowercase();
    let s = e.brackets.replace_all(&s, NoExpand(""));
    let s = e.parens.replace_all(&s, NoExpand(""));
    let s = e.ignore.replace_literal(&s, "");
    let mut s = e
        .space_apostrophe
        .replace_all(&s, NoExpand("'"))
        .into_owned();
    for (pattern, replacement) in &e.replacers {
        s = pattern.replace_literal(&s, replacement);
    }
    let s = e.digit_commas.replace_all(&s, "$1$2");
    let s = e.periods.replace_all(&s, " $1");
    let s = remove_symbols_and_diacritics(&s, ".%$¢€£");
    let s = normalize_numbers(&s);
    let s: Vec<&str> = py_split(&s)
        .map(|w| e.spelling.get(w).copied().unwrap_or(w))
        .collect();
    let s = s.join(" ");
    let s = e.symbols_before.replace_all(&s, " $1");
    let s = e.percent_after.replace_all(&s, "$1 ");
    e.spaces.replace_all(&s, NoExpand(" ")).into_owned()
}
