#!/usr/bin/env python3
"""Generate the evaluation parity fixtures under models/tests/fixtures/:

- eval_wer.json: reference/hypothesis pairs, their normalised forms under each hark
  normaliser, and jiwer 4's word and character measures (S/D/I/H counts, rates and
  word alignment chunks) per pair and per corpus.
- whisper_normalizer.json: tricky strings and the output of the `whisper-normalizer`
  package's EnglishTextNormalizer (a copy of openai-whisper's).

`basic` and `upper` are hark's own normalisers; they are re-implemented here from
their documented rules (models/src/eval/normalize.rs) so the fixture pins them.

Usage: python3 scripts/eval/gen_eval_fixtures.py models/tests/fixtures
"""
import json
import random
import sys
import unicodedata

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer


def basic(text, upper=False):
    t = text.upper() if upper else text.lower()
    chars = ["'" if c == "\u2019" else c for c in t]
    out = []
    for i, c in enumerate(chars):
        keep = (
            c == "'"
            and 0 < i < len(chars) - 1
            and chars[i - 1].isalnum()
            and chars[i + 1].isalnum()
        )
        cat = unicodedata.category(c)
        out.append(" " if (not keep and cat[0] in "PS") else c)
    return " ".join("".join(out).split())


english = EnglishTextNormalizer()
NORMALIZERS = {
    "none": lambda s: s,
    "basic": basic,
    "upper": lambda s: basic(s, upper=True),
    "whisper-en": english,
}


def long_pair(seed, n):
    rng = random.Random(seed)
    vocab = "the a of to and in is it you that he was for on are with as i his they be at one have this from".split()
    ref = [rng.choice(vocab) for _ in range(n)]
    hyp = []
    for w in ref:
        r = rng.random()
        if r < 0.05:
            continue  # deletion
        if r < 0.12:
            hyp.append(rng.choice(vocab))  # substitution (or accidental hit)
        else:
            hyp.append(w)
        if rng.random() < 0.04:
            hyp.append(rng.choice(vocab))  # insertion
    return " ".join(ref), " ".join(hyp)


def random_pairs(n, seed=7):
    """Short pairs over a 3-word vocabulary: many equal-cost alignments, so the
    S/D/I split exercises the back-trace tie-breaking."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ref = " ".join(rng.choice("a b c".split()) for _ in range(rng.randint(0, 8)))
        hyp = " ".join(rng.choice("a b c".split()) for _ in range(rng.randint(0, 8)))
        out.append((ref, hyp))
    return out


def random_number_phrases(n, seed=11):
    """Random sequences of number words, currency/percent words, digits and plain
    words for the EnglishNumberNormalizer state machine."""
    rng = random.Random(seed)
    vocab = (
        "zero oh o one two three four five six seven eight nine ten eleven twelve "
        "thirteen fifteen nineteen twenty thirty forty ninety hundred thousand million "
        "billion first second third fifth ninth twelfth twentieth hundredth thousands "
        "millions sixes ones twenties and a half point double triple minus plus "
        "negative dollars dollar cents pounds euros percent per cent the of cat 3 1.5 "
        "$5 £2 0 07 1,000 2.50 1st 10s . , -"
    ).split()
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9))) for _ in range(n)]


def random_mixed_strings(n, seed=5):
    """Random strings mixing scripts, marks, joiners, symbols, numbers and the words
    the normaliser's patterns look for, to pin word-boundary and NFKD behaviour."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " " * 8 + "\t\n\u00a0\u2003\u3000\u2028\u0085\u001c",
        "'" * 6 + "sStTrReEvVmMlLdD",
        ".,;:!?-_()[]{}<>\"#$%&*+/=@\\^`|~",
        "éèêëàâäôöûüçñßøåæœÉÀÇ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
        "日本語中文字漢字ひらがなカタカナ한국어",
        "\u0301\u0308\u0327\u093e\u094d\u0e31\u05b7",
        "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९²³½¼Ⅻ①",
        "😀👍🏽🇫🇷♪♫€£¥©®™°±×÷¢",
        "\u200b\u200c\u200d\ufeff\u00ad",
    ]
    words = (
        "won't can't mr mrs dr st the cat um uh hmm it's he's we'd been gonna colour "
        "centre $ £ € ¢ % . , ' ( ) [ ] < > - twenty one hundred and a half point five "
        "3 1.5 $5 10% ½ ² é ß œ 1 1s"
    ).split()
    out = []
    for k in range(n):
        if k % 2 == 0:
            m = rng.randint(1, 40)
            out.append("".join(rng.choice(rng.choice(pools)) for _ in range(m)))
        else:
            out.append(
                "".join(
                    rng.choice(words) + rng.choice([" ", " ", "", "  ", "\t", "'", ".", ","])
                    for _ in range(rng.randint(1, 10))
                )
            )
    return out


PAIRS = [
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat", "the cat sat on mat"),
    ("the cat sat on the mat", "a cat sat on the the mat"),
    ("a b", "b c"),
    ("a b c d", "b c d e"),
    ("a b c", "c b a"),
    ("the the the", "the"),
    ("a", "a a a"),
    ("one two three four five", "one too three for five six"),
    ("hello world", ""),
    ("", "hello world"),
    ("", ""),
    ("  spaced   out  words ", "spaced out words"),
    ("Hello, World! It's 5 o'clock.", "hello world its five o clock"),
    ("I paid $20.50 for two and a half pounds", "i paid twenty dollars fifty for 2.5 pounds"),
    ("The colour of the theatre's centre", "the color of the theaters center"),
    ("Mr. Smith won't go; he's gonna stay!", "mister smith will not go he is going to stay"),
    ("café naïve résumé", "cafe naive resume"),
    ("日本 語 の テキスト", "日本 語 テキスト です"),
    ("emoji 😀 test 👍", "emoji test 👍 😀"),
    ("ENTER TWO NINE EIGHT ONE", "enter 2981"),
    ("ERASE U D B E FIVE", "erase you d b e 5"),
    ("twenty first of march nineteen ninety nine", "21st of march 1999"),
    ("x y z x y z x y z", "x z y x z y"),
    ("abc abd abe", "abd abe abc"),
    ("a\u00a0b c", "a b\u2003c"),
    ("x\x1cy z", "x y z"),
    ("\x1c a b \x1c", "a b"),
    ("a\tb  c", "a b c"),
    ("a \t b\n\nc", "a\rb c "),
    long_pair(1, 120),
    long_pair(2, 150),
    long_pair(3, 60),
] + random_pairs(80)


def word_chunks(out):
    return [
        [c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_start_idx, c.hyp_end_idx]
        for c in out.alignments[0]
    ]


def counts(out):
    return {
        "hits": out.hits,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
    }


def main():
    outdir = sys.argv[1]
    cases = []
    for ref, hyp in PAIRS:
        entry = {"reference": ref, "hypothesis": hyp, "normalized": {}}
        for name, norm in NORMALIZERS.items():
            r, h = norm(ref), norm(hyp)
            w = jiwer.process_words(r, h)
            c = jiwer.process_characters(r, h)
            entry["normalized"][name] = {
                "reference": r,
                "hypothesis": h,
                "words": counts(w),
                "wer": w.wer,
                "word_alignment": word_chunks(w),
                "chars": counts(c),
                "cer": c.cer,
            }
        cases.append(entry)
    corpus = {}
    for name, norm in NORMALIZERS.items():
        refs = [norm(r) for r, _ in PAIRS]
        hyps = [norm(h) for _, h in PAIRS]
        w = jiwer.process_words(refs, hyps)
        c = jiwer.process_characters(refs, hyps)
        corpus[name] = {"words": counts(w), "wer": w.wer, "chars": counts(c), "cer": c.cer}
    with open(f"{outdir}/eval_wer.json", "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "corpus": corpus}, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")

    norm_cases = [
        {"input": s, "output": english(s)}
        for s in NORMALIZER_STRINGS + random_number_phrases(300) + random_mixed_strings(300)
    ]
    with open(f"{outdir}/whisper_normalizer.json", "w", encoding="utf-8") as f:
        json.dump(norm_cases, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"{len(cases)} pairs, {len(norm_cases)} normaliser strings", file=sys.stderr)


NORMALIZER_STRINGS = [
    # numbers
    "one", "ones", "two", "twos", "sixes", "zero", "oh", "o",
    "twenty five", "twenty-five", "one hundred and one", "one hundred one",
    "two thousand and three", "two thousand twenty three", "nineteen ninety nine",
    "nineteen hundred", "three million two hundred thousand", "a hundred",
    "one two three four", "one oh one", "zero zero seven", "double five", "triple seven",
    "double oh seven", "double and", "seven point five", "point five", "three point one four one five",
    "one point", "ten point two five million", "1.5 million", "3.2 billion dollars",
    "twelve thousand and twelve", "ninety nine thousand nine hundred ninety nine",
    "nine hundred decillion", "one decillion decillion", "1 2 3", "123 456",
    "a million", "millions of people", "thousands", "hundreds and thousands",
    "the nineteen sixties", "the 1960s", "in the 80s", "the twenties", "the twentieth",
    "eleven twelve thirteen", "one twenty three", "one twenty", "twenty one twenty",
    "sixty five and a half", "two and a half", "and a half", "a half", "one and a half million",
    "three hundred and a half", "twenty and a half years",
    # ordinals
    "first", "second", "third", "fourth", "fifth", "ninth", "nineth", "twelfth",
    "twenty first", "twenty second", "one hundredth", "thousandth", "21st", "2nd place",
    "the 3 rd", "101st airborne", "twenty third of may",
    # currencies and percent
    "$20", "$20 million", "twenty dollars", "twenty dollars and fifty cents", "five cents",
    "£5", "five pounds", "ten euros", "€10", "$0.50", "$2.07", "$2 and ¢7", "one dollar",
    "a dollar", "dollars", "50 percent", "fifty percent", "fifty per cent", "per cent",
    "100%", "5 %", "ten per", "the percent", "¢50", "$1.5 billion",
    "minus five", "negative twenty", "plus three", "positive", "minus", "minus and five",
    # fractions, decimals, ip-like
    "½", "¾ cup", "3½", "1/2", "192.168.0.1", "version 2.0", "3.14", "0.5", ".5", "5.",
    "1,000,000", "1,2,3", "10,000 people", "$1,000.50",
    # contractions
    "won't", "can't", "let's", "ain't", "y'all", "wanna", "kinda", "sorta", "dunno", "gotta",
    "gonna", "i'ma", "imma", "woulda", "coulda", "shoulda", "cause", "ma'am", "don't", "isn't",
    "they're", "he's", "she'd", "we'll", "it'd been", "he's been", "she's gone", "you've",
    "i'm", "it's got", "they'd done", "o'clock", "rock 'n' roll", "the dog 's bone",
    "I 'm here", "don ' t",
    # titles
    "Mr. Smith", "Mrs. Jones", "Dr. Who", "St. Louis", "Prof. X", "Capt. Hook", "Gov. Brown",
    "Gen. Lee", "Sen. Paul", "Rep. Kim", "Pres. Lincoln", "Rev. King", "Hon. judge",
    "Lt. Dan", "Col. Mustard", "Jr.", "Sr.", "Esq.", "asst. manager", "assoc. professor",
    # British spellings
    "colour", "favourite colours", "centre", "theatre", "organise", "organisation", "analyse",
    "travelled", "catalogue", "programme", "defence", "licence", "grey", "aluminium",
    "behaviour", "honour", "neighbour", "realise", "apologise", "jewellery", "cheque", "tyre",
    # symbols, hyphens, brackets, fillers
    "hello, world!", "hello... world?!", "e-mail", "state-of-the-art", "well—actually",
    "[laughter] hello", "(inaudible) yes", "<noise> ok", "hmm yes", "um, uh, well",
    "mm hmm", "mhm", "a & b", "x + y = z", "#hashtag", "@user", "50 °C", "3×4",
    "\"quoted\"", "'single'", "it’s curly", "C++ and C#", "the U.S.A.", "U.S. army",
    "etc.", "end.", "a.m. and p.m.", "1.5.", "Dr.", "The End.",
    # diacritics and unicode
    "café", "naïve", "Ångström", "Straße", "Œuvre", "smørrebrød", "Łódź", "þorn",
    "ﬁle", "Ｆｕｌｌｗｉｄｔｈ", "１２３", "x²", "H₂O", "日本語", "😀 smile", "ÀÉÎÕÜ",
    # whitespace
    "  leading and trailing  ", "tabs\tand\nnewlines", "", " ", "multiple   spaces",
    # mixed sentences
    "I was born on the twenty first of March, nineteen eighty-five.",
    "He paid $3.50 for 2 coffees at 7:30am.",
    "The meeting is at three thirty p.m. on the second floor.",
    "We've sold one hundred and twenty-three thousand units (approx.) this year.",
    "She ran the 100m in nine point five eight seconds!",
    "It's about 5 percent of GDP, roughly two trillion dollars.",
    "My number is five five five, one two three four.",
    "Call me at double seven double oh nine.",
    "In 2019, revenue rose 12% to £4.5bn.",
    "The 1st, 2nd and 3rd runners-up got prizes.",
]

if __name__ == "__main__":
    main()
