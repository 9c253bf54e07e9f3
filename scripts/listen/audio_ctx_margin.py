#!/usr/bin/env python3
"""How much reduced audio context does Whisper need to keep its transcripts?

`hark listen` decodes each utterance with `audio_ctx` = the utterance's length in
encoder positions (20 ms each) + a margin, rounded up to a multiple of 32 (see
`app/src/listen/mod.rs`, `whisper_audio_ctx`). This script measures, for several
margins, on how many AN4 test utterances `hark transcribe --audio-ctx N` gives exactly
the full-context transcript (default options: beam 5, fallback, timestamps; the final
decode of `hark listen` uses the same).

Files that share a context are transcribed in one `hark transcribe` call, so the model
is loaded a few times per margin only.

usage: scripts/listen/audio_ctx_margin.py [--n 60] [--hark target/release/hark]
       [--margins 0,32,64,96,128] [--model tiny.en] [--mode truncate|silence]
"""
import argparse
import collections
import math
import os
import subprocess
import sys

import soundfile as sf

ROUND = 32
SAMPLES_PER_POSITION = 320  # 2 mel frames of 160 samples


def ctx_for(n_samples, margin):
    # Same rule as `whisper_audio_ctx` in app/src/listen/mod.rs.
    positions = math.ceil((n_samples // 160 + 1) / 2)
    return min(1500, math.ceil((positions + margin) / ROUND) * ROUND)


def transcribe(hark, model, files, extra):
    out = subprocess.run(
        [hark, "transcribe", "--model", model, *extra, *files],
        capture_output=True, text=True, check=True,
    ).stdout
    lines = out.split("\n")[: len(files)]
    return dict(zip(files, lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--hark", default="target/release/hark")
    ap.add_argument("--model", default="tiny.en")
    ap.add_argument("--margins", default="0,32,64,96,128")
    ap.add_argument("--mode", default="truncate", choices=["truncate", "silence"],
                    help="--audio-ctx-mode of hark transcribe")
    a = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    an4 = os.path.join(root, "..", "shared", "data", "an4", "test")
    if not os.path.isdir(an4):
        print("skipping: ../shared not found", file=sys.stderr)
        return
    files = sorted(os.path.join(an4, f) for f in os.listdir(an4) if f.endswith(".flac"))[: a.n]
    lengths = {f: sf.info(f).frames for f in files}
    print(f"{len(files)} AN4 test files, {sum(lengths.values()) / 16000:.0f} s; "
          f"longest {max(lengths.values()) / 16000:.1f} s", file=sys.stderr)
    full = transcribe(a.hark, a.model, files, [])
    for margin in [int(m) for m in a.margins.split(",")]:
        groups = collections.defaultdict(list)
        for f in files:
            groups[ctx_for(lengths[f], margin)].append(f)
        got = {}
        for ctx, fs in sorted(groups.items()):
            got.update(transcribe(a.hark, a.model, fs, ["--audio-ctx", str(ctx), "--audio-ctx-mode", a.mode]))
        diff = [f for f in files if got[f] != full[f]]
        print(f"{a.mode}: margin {margin:4d} positions ({margin * 20} ms): "
              f"{len(files) - len(diff)}/{len(files)} identical")
        for f in diff:
            print(f"    {os.path.basename(f)} ({lengths[f] / 16000:.2f} s, ctx "
                  f"{ctx_for(lengths[f], margin)}): full {full[f]!r} | reduced {got[f]!r}")


if __name__ == "__main__":
    main()
