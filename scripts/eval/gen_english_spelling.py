#!/usr/bin/env python3
"""Generate models/src/eval/english_spelling.tsv (British -> American spellings) from
the english.json that openai-whisper's EnglishSpellingNormalizer uses, as shipped in
the `whisper-normalizer` package. One `british<TAB>american` pair per line, in the
JSON's order.

Usage: python3 scripts/eval/gen_english_spelling.py > models/src/eval/english_spelling.tsv
"""
import json
import os
import sys

import whisper_normalizer

path = os.path.join(os.path.dirname(whisper_normalizer.__file__), "normalizers", "english.json")
with open(path, encoding="utf-8") as f:
    mapping = json.load(f)
for british, american in mapping.items():
    assert "\t" not in british + american and "\n" not in british + american
    sys.stdout.write(f"{british}\t{american}\n")
