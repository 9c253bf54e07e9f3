//! Port of openai-whisper's `EnglishNumberNormalizer`
//! (openai/whisper `whisper/normalizers/english.py`, also shipped as the
//! `whisper-normalizer` package's `english.py`).
//!
//! Spelled-out numbers become digits ("twenty five" -> "25", "one oh one" -> "101"),
//! with currency words turned into prefixes ("$20"), percent, ordinals and plurals
//! kept as suffixes ("21st", "1960s"), "and a half" -> ".5".
//!
//! The Python code relies on unbounded integers ("nine hundred decillion" is 9e35)
//! and on `Fraction` parsing of decimal strings; every multiplier is a power of ten,
//! so both are implemented exactly on decimal digit strings ([`Num`], [`to_fraction`]).
//! Python's `value or ""` (where the integer 0 is falsy) is mirrored by
//! [`Val::or_empty`]. Where the Python code would fail an `assert`, this port
//! falls back to plain concatenation instead of failing.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use regex::Regex;

use super::pyre::PyRegex;
use super::unicode::{digit_value, is_py_space};

/// Non-negative integer as a normalised decimal string (no leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Num(String);

impl Num {
    fn from_digits(d: &str) -> Num {
        let t = d.trim_start_matches('0');
        Num(if t.is_empty() { "0".into() } else { t.into() })
    }
    fn small(v: u64) -> Num {
        Num(v.to_string())
    }
    fn is_zero(&self) -> bool {
        self.0 == "0"
    }
    /// `self % 10^k == 0`.
    fn divisible_pow10(&self, k: usize) -> bool {
        self.is_zero()
            || (self.0.len() > k && self.0[self.0.len() - k..].bytes().all(|b| b == b'0'))
    }
    /// `self % 1000`.
    fn rem_1000(&self) -> u64 {
        let s = &self.0[self.0.len().saturating_sub(3)..];
        s.parse().unwrap_or(0)
    }
    /// `self // 1000 * 1000`.
    fn floor_1000(&self) -> Num {
        if self.0.len() <= 3 {
            Num::small(0)
        } else {
            Num(format!("{}000", &self.0[..self.0.len() - 3]))
        }
    }
    fn mul_pow10(&self, k: usize) -> Num {
        if self.is_zero() {
            self.clone()
        } else {
            Num(format!("{}{}", self.0, "0".repeat(k)))
        }
    }
    fn add(&self, other: &Num) -> Num {
        let a = self.0.as_bytes();
        let b = other.0.as_bytes();
        let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
        let mut carry = 0u8;
        for i in 0..a.len().max(b.len()) {
            let da = if i < a.len() {
                a[a.len() - 1 - i] - b'0'
            } else {
                0
            };
            let db = if i < b.len() {
                b[b.len() - 1 - i] - b'0'
            } else {
                0
            };
            let s = da + db + carry;
            out.push(b'0' + s % 10);
            carry = s / 10;
        }
        if carry > 0 {
            out.push(b'0' + carry);
        }
        out.reverse();
        Num(String::from_utf8(out).unwrap_or_default())
    }
    fn add_small(&self, v: u64) -> Num {
        self.add(&Num::small(v))
    }
}

/// Python's `Fraction(s)` restricted to what can occur here: an optionally signed
/// decimal `123`, `1.5`, `3.`, `.5` (any script's decimal digits). Returns the
/// digits before and after the point; `None` where Python raises `ValueError`.
fn to_fraction(s: &str) -> Option<(bool, String, String)> {
    let t = s.trim_matches(is_py_space);
    let (neg, t) = match t.chars().next() {
        Some('-') => (true, &t[1..]),
        Some('+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match t.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (t, None),
    };
    let to_ascii = |p: &str| -> Option<String> {
        p.chars()
            .map(|c| digit_value(c).map(|d| char::from(b'0' + d as u8)))
            .collect()
    };
    let int_digits = to_ascii(int_part)?;
    let frac_digits = match frac_part {
        Some(f) => to_ascii(f)?,
        None => String::new(),
    };
    // (?=\d|\.\d): at least one digit overall, starting right away.
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    Some((neg, int_digits, frac_digits))
}

/// `Fraction(value) * 10^k` if it is an integer (non-negative), else `None`.
fn fraction_times_pow10(frac: &(bool, String, String), k: usize) -> Option<Num> {
    let (neg, int_digits, frac_digits) = frac;
    let trimmed = frac_digits.trim_end_matches('0');
    if trimmed.len() > k {
        return None;
    }
    let mut digits = format!("{int_digits}{trimmed}");
    digits.push_str(&"0".repeat(k - trimmed.len()));
    let n = Num::from_digits(&digits);
    if *neg && !n.is_zero() {
        // Negative values never reach here (signs are prefixes); keep Python's
        // result shape out of scope rather than invent one.
        return None;
    }
    Some(n)
}

/// The number being built: Python's `value` (an `int` or a `str`).
#[derive(Debug, Clone)]
enum Val {
    Int(Num),
    Str(String),
}

impl Val {
    fn to_str(&self) -> String {
        match self {
            Val::Int(n) => n.0.clone(),
            Val::Str(s) => s.clone(),
        }
    }
    /// Python's `str(value or "")`.
    fn or_empty(v: &Option<Val>) -> String {
        match v {
            None => String::new(),
            Some(Val::Int(n)) if n.is_zero() => String::new(),
            Some(x) => x.to_str(),
        }
    }
}

/// `^\d+(\.\d+)?$` with Unicode decimal digits.
fn is_decimal_number(s: &str) -> bool {
    let (a, b) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    let all_digits = |p: &str| !p.is_empty() && p.chars().all(|c| digit_value(c).is_some());
    all_digits(a) && b.is_none_or(all_digits)
}

struct Tables {
    zeros: HashSet<&'static str>,
    ones: HashMap<String, u64>,
    ones_suffixed: HashMap<String, (u64, &'static str)>,
    tens: HashMap<String, u64>,
    tens_suffixed: HashMap<String, (u64, &'static str)>,
    /// name -> power of ten.
    multipliers: HashMap<String, usize>,
    multipliers_suffixed: HashMap<String, (usize, &'static str)>,
    decimals: HashSet<String>,
    preceding_prefixers: HashMap<&'static str, &'static str>,
    following_prefixers: HashMap<&'static str, &'static str>,
    prefixes: HashSet<char>,
    specials: HashSet<&'static str>,
    words: HashSet<String>,
    and_a_half: PyRegex,
    letter_digit: Regex,
    digit_letter: Regex,
    digit_suffix: PyRegex,
    combine_cents: PyRegex,
    extract_cents: PyRegex,
    one_word: PyRegex,
}

const ONES: [&str; 19] = [
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [(&str, u64); 8] = [
    ("twenty", 20),
    ("thirty", 30),
    ("forty", 40),
    ("fifty", 50),
    ("sixty", 60),
    ("seventy", 70),
    ("eighty", 80),
    ("ninety", 90),
];
const MULTIPLIERS: [(&str, usize); 12] = [
    ("hundred", 2),
    ("thousand", 3),
    ("million", 6),
    ("billion", 9),
    ("trillion", 12),
    ("quadrillion", 15),
    ("quintillion", 18),
    ("sextillion", 21),
    ("septillion", 24),
    ("octillion", 27),
    ("nonillion", 30),
    ("decillion", 33),
];

fn re(p: &str) -> Regex {
    // Patterns are constants of this module; a failure is a programming error
    // caught by the unit tests, never input-dependent.
    Regex::new(p).unwrap_or_else(|e| panic!("invalid built-in regex {p:?}: {e}"))
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let zeros: HashSet<&str> = ["o", "oh", "zero"].into_iter().collect();
        let ones: HashMap<String, u64> = ONES
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), i as u64 + 1))
            .collect();
        let mut ones_suffixed: HashMap<String, (u64, &str)> = HashMap::new();
        for (name, &v) in &ones {
            let plural = if name == "six" {
                "sixes".to_string()
            } else {
                format!("{name}s")
            };
            ones_suffixed.insert(plural, (v, "s"));
        }
        for (name, v, s) in [
            ("zeroth", 0, "th"),
            ("first", 1, "st"),
            ("second", 2, "nd"),
            ("third", 3, "rd"),
            ("fifth", 5, "th"),
            ("twelfth", 12, "th"),
        ] {
            ones_suffixed.insert(name.to_string(), (v, s));
        }
        for (name, &v) in &ones {
            if v > 3 && v != 5 && v != 12 {
                let n = if name.ends_with('t') {
                    format!("{name}h")
                } else {
                    format!("{name}th")
                };
                ones_suffixed.insert(n, (v, "th"));
            }
        }
        let tens: HashMap<String, u64> = TENS.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        let mut tens_suffixed = HashMap::new();
        for (n, v) in TENS {
            tens_suffixed.insert(n.replace('y', "ies"), (v, "s"));
        }
        for (n, v) in TENS {
            tens_suffixed.insert(n.replace('y', "ieth"), (v, "th"));
        }
        let multipliers: HashMap<String, usize> = MULTIPLIERS
            .iter()
            .map(|(n, k)| (n.to_string(), *k))
            .collect();
        let mut multipliers_suffixed = HashMap::new();
        for (n, k) in MULTIPLIERS {
            multipliers_suffixed.insert(format!("{n}s"), (k, "s"));
        }
        for (n, k) in MULTIPLIERS {
            multipliers_suffixed.insert(format!("{n}th"), (k, "th"));
        }
        let decimals: HashSet<String> = ones
            .keys()
            .cloned()
            .chain(tens.keys().cloned())
            .chain(zeros.iter().map(|s| s.to_string()))
            .collect();
        let preceding_prefixers: HashMap<&str, &str> = [
            ("minus", "-"),
            ("negative", "-"),
            ("plus", "+"),
            ("positive", "+"),
        ]
        .into_iter()
        .collect();
        let following_prefixers: HashMap<&str, &str> = [
            ("pound", "£"),
            ("pounds", "£"),
            ("euro", "€"),
            ("euros", "€"),
            ("dollar", "$"),
            ("dollars", "$"),
            ("cent", "¢"),
            ("cents", "¢"),
        ]
        .into_iter()
        .collect();
        let prefixes: HashSet<char> = preceding_prefixers
            .values()
            .chain(following_prefixers.values())
            .filter_map(|s| s.chars().next())
            .collect();
        let specials: HashSet<&str> = ["and", "double", "triple", "point"].into_iter().collect();
        let mut words: HashSet<String> = HashSet::new();
        words.extend(zeros.iter().map(|s| s.to_string()));
        words.extend(ones.keys().cloned());
        words.extend(ones_suffixed.keys().cloned());
        words.extend(tens.keys().cloned());
        words.extend(tens_suffixed.keys().cloned());
        words.extend(multipliers.keys().cloned());
        words.extend(multipliers_suffixed.keys().cloned());
        words.extend(preceding_prefixers.keys().map(|s| s.to_string()));
        words.extend(following_prefixers.keys().map(|s| s.to_string()));
        words.extend(["per".to_string(), "percent".to_string()]);
        words.extend(specials.iter().map(|s| s.to_string()));
        let s = super::english::PY_SPACE;
        Tables {
            zeros,
            ones,
            ones_suffixed,
            tens,
            tens_suffixed,
            multipliers,
            multipliers_suffixed,
            decimals,
            preceding_prefixers,
            following_prefixers,
            prefixes,
            specials,
            words,
            and_a_half: PyRegex::new(&format!(r"\band{s}+a{s}+half\b")),
            letter_digit: re(r"([a-z])([0-9])"),
            digit_letter: re(r"([0-9])([a-z])"),
            digit_suffix: PyRegex::new(&format!(r"([0-9]){s}+(st|nd|rd|th|s)\b")),
            combine_cents: PyRegex::new(r"([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\b"),
            extract_cents: PyRegex::new(r"[€£$]0.([0-9]{1,2})\b"),
            one_word: PyRegex::new(r"\b1(s?)\b"),
        }
    })
}

/// Python's `str.split()`.
pub(crate) fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// `EnglishNumberNormalizer.__call__`.
pub(crate) fn normalize_numbers(s: &str) -> String {
    let t = tables();
    let s = preprocess(t, s);
    let words: Vec<&str> = py_split(&s).collect();
    let out = process_words(t, &words).join(" ");
    postprocess(t, &out)
}

fn preprocess(t: &Tables, s: &str) -> String {
    let segments: Vec<&str> = t.and_a_half.split(s);
    let mut results: Vec<&str> = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        if seg.trim_matches(is_py_space).is_empty() {
            continue;
        }
        results.push(seg);
        if i != segments.len() - 1 {
            let last = py_split(seg).last().unwrap_or("");
            if t.decimals.contains(last) || t.multipliers.contains_key(last) {
                results.push("point five");
            } else {
                results.push("and a half");
            }
        }
    }
    let s = results.join(" ");
    let s = t.letter_digit.replace_all(&s, "$1 $2");
    let s = t.digit_letter.replace_all(&s, "$1 $2");
    t.digit_suffix.replace(&s, |g| format!("{}{}", g(1), g(2)))
}

fn postprocess(t: &Tables, s: &str) -> String {
    let s = t.combine_cents.replace(s, |g| {
        let cents: u32 = g(3).parse().unwrap_or(0);
        format!("{}{}.{:02}", g(1), g(2), cents)
    });
    let s = t.extract_cents.replace(&s, |g| {
        let cents: u32 = g(1).parse().unwrap_or(0);
        format!("¢{cents}")
    });
    t.one_word.replace(&s, |g| format!("one{}", g(1)))
}

struct State {
    prefix: Option<String>,
    value: Option<Val>,
    out: Vec<String>,
}

impl State {
    /// Python's `output(result)`: applies and clears the prefix, clears the value.
    fn output(&mut self, result: String) {
        let r = match self.prefix.take() {
            Some(p) => p + &result,
            None => result,
        };
        self.value = None;
        self.out.push(r);
    }
    fn output_value(&mut self) {
        if let Some(v) = self.value.take() {
            self.output(v.to_str());
        }
    }
}

fn process_words(t: &Tables, words: &[&str]) -> Vec<String> {
    let mut st = State {
        prefix: None,
        value: None,
        out: Vec::new(),
    };
    let mut skip = false;
    for (idx, &current) in words.iter().enumerate() {
        let prev = idx.checked_sub(1).map(|i| words[i]);
        let next = words.get(idx + 1).copied();
        if skip {
            skip = false;
            continue;
        }
        let next_is_numeric = next.is_some_and(is_decimal_number);
        let first = current.chars().next();
        let has_prefix = first.is_some_and(|c| t.prefixes.contains(&c));
        let without_prefix = if has_prefix {
            &current[first.map_or(0, char::len_utf8)..]
        } else {
            current
        };
        let prev_in_ones = prev.is_some_and(|p| t.ones.contains_key(p));
        let prev_in_tens = prev.is_some_and(|p| t.tens.contains_key(p));
        let in_words = |w: Option<&str>| w.is_some_and(|w| t.words.contains(w));

        if is_decimal_number(without_prefix) {
            // Arabic numbers, potentially with a sign/currency prefix and decimals.
            let frac = to_fraction(without_prefix);
            if let Some(v) = &st.value {
                if let Val::Str(sv) = v {
                    if sv.ends_with('.') {
                        // Concatenate decimals / IP address components.
                        st.value = Some(Val::Str(format!("{sv}{current}")));
                        continue;
                    }
                }
                st.output_value();
            }
            if has_prefix {
                st.prefix = first.map(String::from);
            }
            st.value = Some(match frac {
                Some((_, int_digits, frac_digits))
                    if frac_digits.trim_end_matches('0').is_empty() =>
                {
                    Val::Int(Num::from_digits(&int_digits))
                }
                _ => Val::Str(without_prefix.to_string()),
            });
        } else if !t.words.contains(current) {
            st.output_value();
            st.output(current.to_string());
        } else if t.zeros.contains(current) {
            st.value = Some(Val::Str(Val::or_empty(&st.value) + "0"));
        } else if let Some(&ones) = t.ones.get(current) {
            st.value = Some(match st.value.take() {
                None => Val::Int(Num::small(ones)),
                Some(Val::Int(n)) if !prev_in_ones => {
                    let k = if ones < 10 { 1 } else { 2 };
                    if n.divisible_pow10(k) {
                        Val::Int(n.add_small(ones))
                    } else {
                        Val::Str(format!("{}{}", n.0, ones))
                    }
                }
                Some(v) => {
                    let sv = v.to_str();
                    if prev_in_tens && ones < 10 && sv.ends_with('0') {
                        Val::Str(format!("{}{}", &sv[..sv.len() - 1], ones))
                    } else {
                        Val::Str(format!("{sv}{ones}"))
                    }
                }
            });
        } else if let Some(&(ones, suffix)) = t.ones_suffixed.get(current) {
            let text = match st.value.clone() {
                None => format!("{ones}{suffix}"),
                Some(Val::Int(n)) if !prev_in_ones => {
                    let k = if ones < 10 { 1 } else { 2 };
                    if n.divisible_pow10(k) {
                        format!("{}{}", n.add_small(ones).0, suffix)
                    } else {
                        format!("{}{}{}", n.0, ones, suffix)
                    }
                }
                Some(v) => {
                    let sv = v.to_str();
                    if prev_in_tens && ones < 10 && sv.ends_with('0') {
                        format!("{}{}{}", &sv[..sv.len() - 1], ones, suffix)
                    } else {
                        format!("{sv}{ones}{suffix}")
                    }
                }
            };
            st.output(text);
            st.value = None;
        } else if let Some(&tens) = t.tens.get(current) {
            st.value = Some(match st.value.take() {
                None => Val::Int(Num::small(tens)),
                Some(Val::Str(s)) => Val::Str(format!("{s}{tens}")),
                Some(Val::Int(n)) => {
                    if n.divisible_pow10(2) {
                        Val::Int(n.add_small(tens))
                    } else {
                        Val::Str(format!("{}{}", n.0, tens))
                    }
                }
            });
        } else if let Some(&(tens, suffix)) = t.tens_suffixed.get(current) {
            let text = match st.value.clone() {
                None => format!("{tens}{suffix}"),
                Some(Val::Str(s)) => format!("{s}{tens}{suffix}"),
                Some(Val::Int(n)) => {
                    if n.divisible_pow10(2) {
                        format!("{}{}", n.add_small(tens).0, suffix)
                    } else {
                        format!("{}{}{}", n.0, tens, suffix)
                    }
                }
            };
            st.output(text);
        } else if let Some(&k) = t.multipliers.get(current) {
            let multiplier = Num::small(1).mul_pow10(k);
            match st.value.clone() {
                None => st.value = Some(Val::Int(multiplier)),
                Some(Val::Int(n)) if !n.is_zero() => {
                    let before = n.floor_1000();
                    let residual = Num::small(n.rem_1000()).mul_pow10(k);
                    st.value = Some(Val::Int(before.add(&residual)));
                }
                Some(v) => {
                    let f = match &v {
                        Val::Str(s) => to_fraction(s),
                        Val::Int(n) => Some((false, n.0.clone(), String::new())),
                    };
                    match f.as_ref().and_then(|f| fraction_times_pow10(f, k)) {
                        Some(p) => st.value = Some(Val::Int(p)),
                        None => {
                            st.output(v.to_str());
                            st.value = Some(Val::Int(multiplier));
                        }
                    }
                }
            }
        } else if let Some(&(k, suffix)) = t.multipliers_suffixed.get(current) {
            let multiplier = Num::small(1).mul_pow10(k);
            match st.value.clone() {
                None => st.output(format!("{}{}", multiplier.0, suffix)),
                Some(Val::Str(s)) => {
                    match to_fraction(&s).and_then(|f| fraction_times_pow10(&f, k)) {
                        Some(p) => st.output(format!("{}{}", p.0, suffix)),
                        None => {
                            st.output(s);
                            st.output(format!("{}{}", multiplier.0, suffix));
                        }
                    }
                }
                Some(Val::Int(n)) => {
                    let before = n.floor_1000();
                    let residual = Num::small(n.rem_1000()).mul_pow10(k);
                    let v = before.add(&residual);
                    st.output(format!("{}{}", v.0, suffix));
                }
            }
            st.value = None;
        } else if let Some(&sym) = t.preceding_prefixers.get(current) {
            st.output_value();
            if in_words(next) || next_is_numeric {
                st.prefix = Some(sym.to_string());
            } else {
                st.output(current.to_string());
            }
        } else if let Some(&sym) = t.following_prefixers.get(current) {
            if st.value.is_some() {
                st.prefix = Some(sym.to_string());
                st.output_value();
            } else {
                st.output(current.to_string());
            }
        } else if current == "per" || current == "percent" {
            if let Some(v) = st.value.clone() {
                if current == "per" {
                    if next == Some("cent") {
                        st.output(v.to_str() + "%");
                        skip = true;
                    } else {
                        st.output(v.to_str());
                        st.output(current.to_string());
                    }
                } else {
                    st.output(v.to_str() + "%");
                }
            } else {
                st.output(current.to_string());
            }
        } else if t.specials.contains(current) {
            if !in_words(next) && !next_is_numeric {
                st.output_value();
                st.output(current.to_string());
            } else if current == "and" {
                // Ignore "and" after hundreds, thousands, etc.
                if !prev.is_some_and(|p| t.multipliers.contains_key(p)) {
                    st.output_value();
                    st.output(current.to_string());
                }
            } else if current == "double" || current == "triple" {
                let next_w = next.unwrap_or("");
                if t.ones.contains_key(next_w) || t.zeros.contains(next_w) {
                    let repeats = if current == "double" { 2 } else { 3 };
                    let ones = t.ones.get(next_w).copied().unwrap_or(0);
                    st.value = Some(Val::Str(
                        Val::or_empty(&st.value) + &ones.to_string().repeat(repeats),
                    ));
                    skip = true;
                } else {
                    st.output_value();
                    st.output(current.to_string());
                }
            } else if current == "point"
                && (next.is_some_and(|n| t.decimals.contains(n)) || next_is_numeric)
            {
                st.value = Some(Val::Str(Val::or_empty(&st.value) + "."));
            }
        }
    }
    st.output_value();
    st.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_string_arithmetic() {
        assert_eq!(Num::small(999).add(&Num::small(1)).0, "1000");
        assert_eq!(Num::small(2003).floor_1000().0, "2000");
        assert_eq!(Num::small(2003).rem_1000(), 3);
        assert!(Num::small(300).divisible_pow10(2));
        assert!(!Num::small(310).divisible_pow10(2));
        assert!(Num::small(0).divisible_pow10(2));
        let f = to_fraction("1.50").expect("fraction");
        assert_eq!(fraction_times_pow10(&f, 2).map(|n| n.0), Some("150".into()));
        assert_eq!(fraction_times_pow10(&f, 0), None);
        assert!(to_fraction(".").is_none());
        assert!(to_fraction("1.2.3").is_none());
    }

    #[test]
    fn spelled_numbers_become_digits() {
        assert_eq!(normalize_numbers("twenty five dollars"), "$25");
        assert_eq!(normalize_numbers("one oh one"), "101");
        assert_eq!(normalize_numbers("two thousand and three"), "2003");
    }
}
