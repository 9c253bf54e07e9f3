//! GPT-2 byte-level helpers: the byte <-> printable-char table and the
//! pre-tokenisation split.
//!
//! Reference: openai/gpt-2 `src/encoder.py` (`bytes_to_unicode`, the `pat` regex) and
//! huggingface/tokenizers `tokenizers/src/pre_tokenizers/byte_level.rs`, whose regex is
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
//!
//! The regex is implemented by hand (no regex engine): at each position the
//! alternatives are tried in the regex's order, which is what a backtracking engine
//! does; the only backtracking case, `\s+(?!\S)`, gives back exactly one whitespace
//! character when the run is followed by a non-space.

use crate::letters::LETTER_RANGES;

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others (control
/// characters, space, and a few Latin-1 ranges) to code points 256, 257, ... in order.
pub(crate) fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256u32;
    for b in 0u32..256 {
        let cp = if printable(b) {
            b
        } else {
            let cp = next;
            next += 1;
            cp
        };
        // All code points used are below 0x200, hence valid chars.
        table[b as usize] = char::from_u32(cp).unwrap_or('\u{FFFD}');
    }
    table
}

/// `\p{L}`: Unicode General_Category Letter (Lu, Ll, Lt, Lm, Lo).
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    let cp = u32::from(c);
    LETTER_RANGES
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// `\p{N}`: Nd, Nl, No — exactly `char::is_numeric`.
pub(crate) fn is_number(c: char) -> bool {
    c.is_numeric()
}

/// `\s`: the Unicode White_Space property — exactly `char::is_whitespace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Number,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if is_space(c) {
        Class::Space
    } else if is_letter(c) {
        Class::Letter
    } else if is_number(c) {
        Class::Number
    } else {
        Class::Other
    }
}

/// Split `text` into GPT-2 pre-tokens (byte ranges into `text`), in order; the
/// pieces cover the whole text.
pub(crate) fn pretokenize(text: &str) -> Vec<&str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let n = chars.len();
    let byte_at = |i: usize| if i < n { chars[i].0 } else { text.len() };
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < n {
        let end = match_at(&chars, i);
        debug_assert!(end > i);
        pieces.push(&text[byte_at(i)..byte_at(end)]);
        i = end;
    }
    pieces
}

/// Returns the (exclusive) char index where the regex match starting at `i` ends.
fn match_at(chars: &[(usize, char)], i: usize) -> usize {
    let n = chars.len();
    let at = |k: usize| if k < n { Some(chars[k].1) } else { None };
    let c = chars[i].1;
    // 's|'t|'re|'ve|'m|'ll|'d
    if c == '\'' {
        match (at(i + 1), at(i + 2)) {
            (Some('s' | 't' | 'm' | 'd'), _) => return i + 2,
            (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                return i + 3
            }
            _ => {}
        }
    }
    // ` ?X+` for X in {\p{L}, \p{N}, [^\s\p{L}\p{N}]}: the optional space only
    // helps when it is followed by a character of the class.
    let (start_class, first) = if c == ' ' {
        match at(i + 1).map(class) {
            Some(k) if k != Class::Space => (k, i + 1),
            _ => (Class::Space, i),
        }
    } else {
        (class(c), i)
    };
    if start_class != Class::Space {
        let mut k = first;
        while k < n && class(chars[k].1) == start_class {
            k += 1;
        }
        return k;
    }
    // \s+(?!\S) | \s+
    let mut k = i;
    while k < n && is_space(chars[k].1) {
        k += 1;
    }
    if k == n || k - i == 1 {
        // At the end (the lookahead holds), or a single space followed by a
        // non-space: the lookahead alternative fails and `\s+` takes the one char.
        k
    } else {
        k - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_to_unicode_is_a_bijection_with_gpt2_offsets() {
        let t = bytes_to_unicode();
        assert_eq!(t[b'a' as usize], 'a');
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        let mut seen: Vec<char> = t.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn pretokenize_follows_gpt2_regex() {
        assert_eq!(
            pretokenize("Hello world's  end 123abc?! \n\n x"),
            vec!["Hello", " world", "'s", " ", " end", " 123", "abc", "?!", " \n\n", " x"]
        );
        assert_eq!(pretokenize("a   "), vec!["a", "   "]);
        assert_eq!(pretokenize("'hello 'LL"), vec!["'", "hello", " '", "LL"]);
        assert_eq!(pretokenize("é日本"), vec!["é日本"]);
    }
}
