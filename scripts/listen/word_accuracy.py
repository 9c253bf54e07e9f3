#!/usr/bin/env python3
"""Word accuracy of a `hark listen --no-tui` run (its JSON lines on stdout, as
scripts/listen/latency.sh prints them) against the AN4 reference transcripts of the
utterances it replayed: the first N test utterances in file-name order, as latency.sh joins
them.

Words are compared as app/tests/listen_e2e.rs compares them (`words`, `word_match`): split
at non-alphanumerics, lower-cased, a piece of at most 4 upper-case letters/digits or with a
digit counted letter by letter; accuracy = 1 - word edit distance / reference words over the
concatenation of all finals.

Usage:
    scripts/listen/latency.sh 20 target/release/hark --model an4-conformer > run.jsonl
    scripts/listen/word_accuracy.py run.jsonl [--n 20] [--data ../shared/data/an4/test]
    scripts/listen/word_accuracy.py --offline offline.txt   # `hark transcribe --format txt`
"""

import argparse
import glob
import json
import os
import re


def words(text):
    out = []
    for piece in re.split(r"[^0-9A-Za-z]+", text):
        if not piece:
            continue
        spelled = len(piece) <= 4 and all(c.isdigit() or (c.isascii() and c.isupper()) for c in piece)
        if spelled or any(c.isdigit() for c in piece):
            out.extend(c.lower() for c in piece)
        else:
            out.append(piece.lower())
    return out


def word_match(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref):
        cur = [i + 1] * (len(hyp) + 1)
        for j, h in enumerate(hyp):
            cur[j + 1] = min(prev[j] + (r != h), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return 1.0 - prev[len(hyp)] / max(len(ref), 1)


def references(data, n):
    text = {}
    with open(os.path.join(data, "text"), encoding="utf8") as f:
        for line in f:
            uid, _, t = line.strip().partition(" ")
            text[uid] = t
    files = sorted(glob.glob(os.path.join(data, "*.flac")))[:n]
    return " ".join(text[os.path.basename(p)[: -len(".flac")]] for p in files)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="stdout of hark listen --no-tui (JSON lines)")
    p.add_argument("--offline", help="instead: a `hark transcribe --format txt` output of the same files")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--data", default=os.path.join(here, "..", "..", "..", "shared", "data", "an4", "test"))
    o = p.parse_args()
    if o.offline:
        with open(o.offline, encoding="utf8") as f:
            hyp = f.read()
    elif o.run:
        finals = []
        with open(o.run, encoding="utf8") as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                v = json.loads(line)
                if v.get("type") == "final" or v.get("final") is True:
                    finals.append(v["text"])
        hyp = " ".join(finals)
    else:
        p.error("give a run's JSON lines or --offline")
    ref = references(o.data, o.n)
    print(f"word accuracy {100 * word_match(words(ref), words(hyp)):.1f}% ({len(words(ref))} reference words)")


if __name__ == "__main__":
    main()
