//! Character classes the normalisers need, from a table generated from Python's
//! `unicodedata` (see `scripts/eval/gen_unicode_tables.py`), so classification matches
//! the Python reference normalisers exactly.

use super::unicode_tables::CATEGORY_RANGES;

/// Category class of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cat {
    /// Mn: non-spacing mark (diacritics after NFKD).
    MarkNonspacing,
    /// Mc or Me.
    MarkOther,
    /// S*: symbols.
    Symbol,
    /// P*: punctuation.
    Punctuation,
    /// Nd: decimal digit.
    DecimalDigit,
}

fn lookup(c: char) -> Option<(u32, Cat)> {
    let cp = u32::from(c);
    CATEGORY_RANGES
        .binary_search_by(|&(lo, hi, _)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .ok()
        .map(|i| (CATEGORY_RANGES[i].0, CATEGORY_RANGES[i].2))
}

/// Category class, `None` for letters, other numbers, separators, controls...
pub(crate) fn category(c: char) -> Option<Cat> {
    lookup(c).map(|(_, cat)| cat)
}

/// `true` for M*, S* and P* characters.
pub(crate) fn is_mark_symbol_punct(c: char) -> bool {
    matches!(
        category(c),
        Some(Cat::MarkNonspacing | Cat::MarkOther | Cat::Symbol | Cat::Punctuation)
    )
}

/// Value of a decimal digit (any script, like Python's `\d` and `int()`).
pub(crate) fn digit_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(u32::from(c) - u32::from('0'));
    }
    match lookup(c) {
        Some((lo, Cat::DecimalDigit)) => Some((u32::from(c) - lo) % 10),
        _ => None,
    }
}

/// Python's `str.isspace()` for the characters that matter here: Unicode
/// White_Space plus the ASCII information separators U+001C..U+001F.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
