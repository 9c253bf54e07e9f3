//! `spelled`: hark's own normaliser for spelled-letter test sets (AN4 and the like).
//!
//! Such references spell letters and digits as words ("ERASE U D B E FIVE") while a
//! general-purpose model writes "Erase UDBE5.". Both sides are mapped to one
//! canonical form, by the same function (the rule is symmetric; nothing depends on
//! which side a text comes from):
//!
//! 1. Punctuation and symbols become spaces (as in `basic`, apostrophes inside words
//!    kept); the case of the ORIGINAL text is remembered for step 3.
//! 2. Each token is split into runs of digits and of non-digits ("UDBE5" → "UDBE",
//!    "5"). Every digit is one item ("1990" → 1 9 9 0, "1,990" too).
//! 3. A letter run is an *acronym*, spelled out letter by letter ("UDBE" → U D B E),
//!    when it has 2 to 6 letters and either
//!    - it is written wholly in capitals, and the text also contains lower-case
//!      letters or the run is glued to a digit ("TRTFI7"); so words of all-caps
//!      references such as "ERASE" are not split, or
//!    - it has no vowel (A E I O U Y), whatever the case ("cbwxv" → C B W X V;
//!      interjections like "hmm" are split too, which costs nothing on these sets).
//!
//!    Other runs are upper-cased words.
//! 4. Number words become digits, so that written and spoken forms meet:
//!    ZERO..NINE → one digit; TEN..NINETEEN → two digits; a tens word (TWENTY..NINETY)
//!    followed by a unit (ONE..NINE) → two digits ("FIFTY SEVEN" → 5 7), alone → tens
//!    digit and 0; HUNDRED after a digit → "0 0", or "0" before a unit, or nothing
//!    before a tens/teen word ("ONE HUNDRED FIVE" → 1 0 5, "ONE HUNDRED TWENTY" →
//!    1 2 0); OH → 0 when a digit or number word is next to it ("ONE OH FOUR" → 1 0 4;
//!    the letter O stays a letter). "NINETEEN NINETY" therefore reads 1 9 9 0, like
//!    "1990". Not handled: THOUSAND, ordinals, "AND" inside numbers.
//! 5. Every digit is written back as its word (0 → ZERO), one word per digit
//!    ("29" → "TWO NINE"; "57" and "FIFTY SEVEN" both → "FIVE SEVEN").

use super::unicode::{category, is_py_space, Cat};

/// One item of the canonical sequence.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Digit(u8),
    Word(String),
}

const DIGITS: [&str; 10] = [
    "ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE",
];
const TEENS: [&str; 10] = [
    "TEN",
    "ELEVEN",
    "TWELVE",
    "THIRTEEN",
    "FOURTEEN",
    "FIFTEEN",
    "SIXTEEN",
    "SEVENTEEN",
    "EIGHTEEN",
    "NINETEEN",
];
const TENS: [&str; 8] = [
    "TWENTY", "THIRTY", "FORTY", "FIFTY", "SIXTY", "SEVENTY", "EIGHTY", "NINETY",
];

fn unit_of(w: &str) -> Option<u8> {
    DIGITS.iter().position(|d| *d == w).map(|p| p as u8)
}
fn teen_of(w: &str) -> Option<u8> {
    TEENS.iter().position(|d| *d == w).map(|p| p as u8)
}
fn tens_of(w: &str) -> Option<u8> {
    TENS.iter().position(|d| *d == w).map(|p| p as u8 + 2)
}
fn is_number_word(w: &str) -> bool {
    unit_of(w).is_some() || teen_of(w).is_some() || tens_of(w).is_some() || w == "HUNDRED"
}

/// Applies the `spelled` normaliser (see the module docs).
pub fn spelled(text: &str) -> String {
    let has_lower = text.chars().any(char::is_lowercase);
    let items = tokenize(text, has_lower);
    let items = numbers_to_digits(items);
    let mut out: Vec<&str> = Vec::with_capacity(items.len());
    for it in &items {
        match it {
            Item::Digit(d) => out.push(DIGITS[usize::from(*d)]),
            Item::Word(w) => out.push(w),
        }
    }
    out.join(" ")
}

/// Steps 1-3: punctuation removed, digit/letter runs split, acronyms spelled out.
fn tokenize(text: &str, has_lower: bool) -> Vec<Item> {
    let chars: Vec<char> = text
        .chars()
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect();
    let word_char = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut cleaned = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let keep_apostrophe =
            c == '\'' && i > 0 && word_char(chars.get(i - 1)) && word_char(chars.get(i + 1));
        let drop = !keep_apostrophe && matches!(category(c), Some(Cat::Punctuation | Cat::Symbol));
        cleaned.push(if drop { ' ' } else { c });
    }
    let mut items = Vec::new();
    for token in cleaned.split(is_py_space).filter(|w| !w.is_empty()) {
        let mut run = String::new();
        // whether the current letter run follows a digit in this token
        let mut after_digit = false;
        for c in token.chars() {
            if let Some(d) = c.to_digit(10) {
                // a run that ends at a digit is glued to it
                flush_run(&mut run, true, &mut items);
                items.push(Item::Digit(d as u8));
                after_digit = true;
            } else {
                run.push(c);
            }
        }
        flush_run(&mut run, has_lower || after_digit, &mut items);
    }
    items
}

/// `caps_mark`: an all-caps run counts as an acronym (the text has lower-case
/// letters, or the run is glued to a digit).
fn flush_run(run: &mut String, caps_mark: bool, items: &mut Vec<Item>) {
    if run.is_empty() {
        return;
    }
    if is_acronym(run, caps_mark) {
        for c in run.chars() {
            items.push(Item::Word(c.to_uppercase().collect()));
        }
    } else {
        items.push(Item::Word(run.to_uppercase()));
    }
    run.clear();
}

/// Step 3's rule.
fn is_acronym(run: &str, caps_mark: bool) -> bool {
    let n = run.chars().count();
    if !(2..=6).contains(&n) || !run.chars().all(char::is_alphabetic) {
        return false;
    }
    let all_caps = run.chars().all(char::is_uppercase);
    let no_vowel = !run
        .chars()
        .any(|c| matches!(c.to_ascii_uppercase(), 'A' | 'E' | 'I' | 'O' | 'U' | 'Y'));
    (caps_mark && all_caps) || no_vowel
}

/// Step 4: number words to digits.
fn numbers_to_digits(items: Vec<Item>) -> Vec<Item> {
    let word = |i: usize| match items.get(i) {
        Some(Item::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let numeric = |i: usize| match items.get(i) {
        Some(Item::Digit(_)) => true,
        Some(Item::Word(w)) => is_number_word(w),
        None => false,
    };
    let mut out = Vec::with_capacity(items.len());
    let mut i = 0;
    while i < items.len() {
        let Some(w) = word(i) else {
            out.push(items[i].clone());
            i += 1;
            continue;
        };
        if let Some(u) = unit_of(w) {
            out.push(Item::Digit(u));
        } else if let Some(t) = teen_of(w) {
            out.extend([Item::Digit(1), Item::Digit(t)]);
        } else if let Some(t) = tens_of(w) {
            match word(i + 1).and_then(unit_of).filter(|&u| u > 0) {
                Some(u) => {
                    out.extend([Item::Digit(t), Item::Digit(u)]);
                    i += 1;
                }
                None => out.extend([Item::Digit(t), Item::Digit(0)]),
            }
        } else if w == "HUNDRED" && matches!(out.last(), Some(Item::Digit(_))) {
            let next = word(i + 1);
            if next.is_some_and(|n| teen_of(n).is_some() || tens_of(n).is_some()) {
                // the next word supplies two digits
            } else if next.and_then(unit_of).is_some() {
                out.push(Item::Digit(0));
            } else {
                out.extend([Item::Digit(0), Item::Digit(0)]);
            }
        } else if w == "OH" && ((i > 0 && numeric(i - 1)) || numeric(i + 1)) {
            out.push(Item::Digit(0));
        } else {
            out.push(items[i].clone());
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::spelled;

    #[test]
    fn spelled_maps_acronyms_and_digits_to_the_an4_reference_form() {
        assert_eq!(spelled("Erase UDBE5."), "ERASE U D B E FIVE");
        assert_eq!(spelled("ERASE U D B E FIVE"), "ERASE U D B E FIVE");
        assert_eq!(spelled("Enter 2981."), "ENTER TWO NINE EIGHT ONE");
        assert_eq!(spelled("Rubout U-B-U-T-R 6"), "RUBOUT U B U T R SIX");
        assert_eq!(spelled("c.b.w.x.v, four"), "C B W X V FOUR");
        assert_eq!(spelled("TRTFI7."), "T R T F I SEVEN");
        assert_eq!(spelled("Erase UDB-E5."), "ERASE U D B E FIVE");
        assert_eq!(spelled("GO 5"), "GO FIVE");
    }

    #[test]
    fn spelled_number_words_and_digits_meet_digit_by_digit() {
        assert_eq!(
            spelled("ERASE A B F N Q FIFTY SEVEN"),
            spelled("Erase ABFNQ 57")
        );
        assert_eq!(spelled("FIFTY SEVEN"), "FIVE SEVEN");
        assert_eq!(spelled("SEVENTY SEVEN SEVENTY SEVEN"), spelled("7777"));
        assert_eq!(spelled("SEVEN THIRTY SIX"), "SEVEN THREE SIX");
        assert_eq!(spelled("THIRTY"), "THREE ZERO");
        assert_eq!(spelled("NINETEEN NINETY"), spelled("1990"));
        assert_eq!(spelled("1,990"), "ONE NINE NINE ZERO");
        assert_eq!(spelled("ONE HUNDRED"), "ONE ZERO ZERO");
        assert_eq!(spelled("ONE HUNDRED FIVE"), spelled("105"));
        assert_eq!(spelled("TWO HUNDRED TWELVE"), spelled("212"));
        assert_eq!(spelled("twenty-five"), "TWO FIVE");
    }

    #[test]
    fn spelled_reads_oh_as_zero_only_next_to_numbers() {
        assert_eq!(spelled("ENTER ONE OH FOUR"), spelled("Enter 104."));
        assert_eq!(spelled("OH"), "OH");
        assert_eq!(spelled("Oh, no."), "OH NO");
        assert_eq!(spelled("SAY B A O Z FIVE THREE"), spelled("Say BAOZ 53"));
    }

    #[test]
    fn spelled_keeps_ordinary_words_and_all_caps_references() {
        // All-caps text (a reference) keeps its words; only vowel-less runs split.
        assert_eq!(spelled("REPEAT ERASE GO NO"), "REPEAT ERASE GO NO");
        assert_eq!(spelled("Repeat."), "REPEAT");
        assert_eq!(spelled("Don't stop, I said."), "DON'T STOP I SAID");
        // Mixed-case text: a capitalised word is not an acronym, an all-caps run is.
        assert_eq!(spelled("Go NASA"), "GO N A S A");
        // Longer than six letters: a word even in capitals.
        assert_eq!(spelled("the RUBOUTS"), "THE RUBOUTS");
        assert_eq!(spelled(""), "");
    }
}
