#!/usr/bin/env python3
"""Generate audio/tests/fixtures/whisper_mel.json: faster-whisper's log-mel on AN4 speech.

Reference: faster_whisper.feature_extractor.FeatureExtractor (NumPy), called exactly
as faster-whisper's transcribe() does (`padding=160`). For each utterance and mel
count we store the number of frames, the global maximum and a slice of frames (all
bins of 12 frames: first 3, last 3 and 6 spread between), which keeps the fixture
small while covering edges (reflect padding) and the middle.

Audio is read with soundfile as float32 (int16 / 32768), which is what hark's FLAC
decoder produces for these 16 kHz 16-bit files.

Usage: python3 scripts/audio/gen_whisper_mel_fixture.py  (from the repo root; needs ../shared)
"""
import json
import os

import numpy as np
import soundfile as sf
from faster_whisper.feature_extractor import FeatureExtractor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(ROOT, "..", "shared", "data", "an4", "test")
OUT = os.path.join(ROOT, "audio", "tests", "fixtures", "whisper_mel.json")

CASES = [("an391-mjwl-b.flac", 80), ("an391-mjwl-b.flac", 128), ("an396-miry-b.flac", 80)]


def main():
    entries = []
    for name, n_mels in CASES:
        audio, sr = sf.read(os.path.join(SHARED, name), dtype="float32")
        assert sr == 16000, sr
        fe = FeatureExtractor(feature_size=n_mels)
        mel = fe(audio)  # padding=160, as in WhisperModel.transcribe
        n = mel.shape[1]
        idx = sorted(set([0, 1, 2, n - 3, n - 2, n - 1] + [int(i) for i in np.linspace(3, n - 4, 6)]))
        entries.append(
            {
                "file": name,
                "n_mels": n_mels,
                "n_samples": int(len(audio)),
                "n_frames": int(n),
                "max": float(mel.max()),
                "frames": idx,
                "values": [[float(f"{v:.8g}") for v in mel[:, t]] for t in idx],
            }
        )
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/audio/gen_whisper_mel_fixture.py", "entries": entries}, f)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
