//! Python `re` word boundaries on top of Rust's `regex`.
//!
//! The normaliser patterns use `\b`, whose meaning differs between the engines:
//! Python's word characters are letters, numbers (all of `\p{N}`, e.g. `½`) and `_`;
//! Rust's also include combining marks, connector punctuation and the zero-width
//! joiners, and exclude `\p{No}`. Since `regex` has no look-around, a `\b` at the
//! start or end of a pattern is rewritten as a one-character context (or the text
//! edge) that is *not* a Python word character, wrapped around a capture of the
//! pattern itself; after each match the search resumes at the end of that capture,
//! so the context character stays available to the next match, as with a real
//! zero-width assertion. All boundaries here sit next to a word character of the
//! pattern, where Python's `\b` is exactly "the neighbour is not a word character".

use regex::{Captures, Regex};

/// Python's `\w` for `str` patterns, as a class body.
const PY_WORD: &str = r"\p{L}\p{N}_";

/// A compiled pattern with Python `\b` semantics at its ends.
pub(crate) struct PyRegex {
    re: Regex,
    /// 1 when the pattern was wrapped in a capture (group numbers shift by one).
    shift: usize,
}

impl PyRegex {
    /// Compile `pattern`; `\b` may appear only at its very start and/or end.
    pub(crate) fn new(pattern: &str) -> PyRegex {
        let (left, rest) = match pattern.strip_prefix(r"\b") {
            Some(r) => (true, r),
            None => (false, pattern),
        };
        let (right, core) = match rest.strip_suffix(r"\b") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        if !left && !right {
            return PyRegex {
                re: build(pattern),
                shift: 0,
            };
        }
        let l = if left {
            format!("(?:^|[^{PY_WORD}])")
        } else {
            String::new()
        };
        let r = if right {
            format!("(?:$|[^{PY_WORD}])")
        } else {
            String::new()
        };
        PyRegex {
            re: build(&format!("{l}({core}){r}")),
            shift: 1,
        }
    }

    /// Positions of successive non-overlapping matches (of the pattern proper).
    fn for_each_match(&self, s: &str, mut f: impl FnMut(usize, usize, &Captures)) {
        let mut pos = 0;
        while pos <= s.len() {
            let Some(c) = self.re.captures_at(s, pos) else {
                break;
            };
            let Some(m) = c.get(self.shift) else { break };
            f(m.start(), m.end(), &c);
            pos = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + s[m.end()..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }

    /// `re.sub(pattern, repl, s)`; `repl` gets a group accessor (0 = whole match,
    /// k = the pattern's k-th group, "" if it did not participate).
    pub(crate) fn replace(
        &self,
        s: &str,
        mut repl: impl FnMut(&dyn Fn(usize) -> String) -> String,
    ) -> String {
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        let shift = self.shift;
        self.for_each_match(s, |start, end, c| {
            out.push_str(&s[last..start]);
            let group = |k: usize| {
                c.get(k + shift)
                    .map_or(String::new(), |m| m.as_str().to_string())
            };
            out.push_str(&repl(&group));
            last = end;
        });
        out.push_str(&s[last..]);
        out
    }

    /// `re.sub(pattern, literal, s)`.
    pub(crate) fn replace_literal(&self, s: &str, literal: &str) -> String {
        self.replace(s, |_| literal.to_string())
    }

    /// `re.split(pattern, s)` for a pattern without groups of its own.
    pub(crate) fn split<'a>(&self, s: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut last = 0;
        self.for_each_match(s, |start, end, _| {
            out.push(&s[last..start]);
            last = end;
        });
        out.push(&s[last..]);
        out
    }
}

fn build(p: &str) -> Regex {
    // Built-in constant patterns only; every one is exercised by the unit tests.
    Regex::new(p).unwrap_or_else(|e| panic!("invalid built-in regex {p:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_follow_python_word_characters() {
        let one = PyRegex::new(r"\b1(s?)\b");
        let f = |s: &str| one.replace(s, |g| format!("one{}", g(1)));
        assert_eq!(f("1 1s 11 x1 1\u{200d}"), "one ones 11 x1 one\u{200d}");
        assert_eq!(f("½1"), "½1");
        let fill = PyRegex::new(r"\b(hmm|mm|mhm|mmm|uh|um)\b");
        assert_eq!(fill.replace_literal("mmm um hmmm uh", ""), "  hmmm ");
        let half = PyRegex::new(r"\band\s+a\s+half\b");
        assert_eq!(
            half.split("two and a half and a halfway"),
            vec!["two ", " and a halfway"]
        );
    }
}
