#!/usr/bin/env python3
"""Reference decode of an AN4 checkpoint with FireRedASR's own code, and parity with hark.

Decodes a data dir (default: AN4 test) with `FireRedAsrAed.transcribe` (FireRedASR's
batch_beam_search) on FireRedASR's features (KaldifeatFbank on int16-scale samples + CMVN), one
utterance at a time, with the beam settings `hark eval` uses (beam 5, nbest 1, no length
penalty, softmax_smoothing 1, eos_penalty 1). Writes `<id> <text>` lines and prints the WER
(upper-case words, no punctuation). With --hark REPORT (repeatable; the JSON written by
`hark eval ... --report REPORT`) it also prints how many utterances hark decoded to exactly the
same text, and lists the ones that differ.

A model with causal convolutions (checkpoint `args.causal_conv`) is run as such, and --chunk N
applies a chunk attention mask of N encoder frames (scripts/conformer/streaming.py), as
`hark eval --chunk-ms` does (N x 40 ms).

With --ctc-checkpoint (a state dict holding the training-time CTC head `ctc.weight`/`ctc.bias`,
e.g. scripts/train_an4.py's averaged_with_ctc.pt, the same head that
`convert_fireredasr.py --ctc-checkpoint` ships) it decodes as hark does for a model with a CTC
head: CTC prefix beam search (beam --beam) and attention rescoring with FireRedASR's decoder,
decoder score + --ctc-weight x CTC score (scripts/conformer/ctc_search.py, WeNet's search).

Usage (from the repository root):
  python3 scripts/an4/ref_decode.py /tmp/an4_train/export --out /tmp/an4_ref_test.txt \
      [--hark /tmp/an4_hark_report.json]
The checkpoint directory is the FireRedASR-layout export of scripts/train_an4.py
(model.pth.tar, cmvn.ark, dict.txt, *.model).
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np
import soundfile as sf
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
for p in ("/tmp/fireredasr_pkg",):
    if os.path.isdir(p):
        sys.path.append(p)

from conformer.ctc_search import attention_rescoring, best, ctc_prefix_beam_search  # noqa: E402
from conformer.streaming import encode, make_causal  # noqa: E402
from fireredasr.data.asr_feat import CMVN, KaldifeatFbank  # noqa: E402
from fireredasr.models.fireredasr_aed import FireRedAsrAed  # noqa: E402
from fireredasr.tokenizer.aed_tokenizer import ChineseCharEnglishSpmTokenizer  # noqa: E402


def norm(t):
    return re.sub(r"[^A-Z0-9' ]", " ", t.upper()).split()


def word_errors(r, h):
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)]


def decoder_score(model, enc, enc_mask):
    """score_fn for ctc_search.attention_rescoring: FireRedASR's decoder, teacher-forced on
    <sos> + hyp, summing the log-probabilities of hyp and <eos>."""
    dec = model.decoder

    def score(hyp):
        ys = torch.tensor([[dec.sos_id] + hyp])
        mask = dec.ignored_target_position_is_0(ys, dec.pad_id)
        h = dec.tgt_word_emb(ys) * dec.scale + dec.positional_encoding(ys)
        for layer in dec.layer_stack:
            h = layer(h, enc, mask, enc_mask)
        lp = torch.log_softmax(dec.tgt_word_prj(dec.layer_norm_out(h)), dim=-1)[0]
        return sum(float(lp[j][w]) for j, w in enumerate(hyp)) + float(lp[len(hyp)][dec.eos_id])

    return score


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ckpt_dir")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "an4", "test"))
    p.add_argument("--out", required=True, help="hypotheses file to write (<id> <text>)")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--hark", action="append", default=[],
                   help="hark eval --report JSON to compare with (repeat for several: decoded once)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=0, help="decode only the first N utterances")
    p.add_argument("--ctc-checkpoint", help="state dict with ctc.weight/ctc.bias: decode by CTC prefix beam "
                   "search + attention rescoring instead of the attention beam search")
    p.add_argument("--ctc-weight", type=float, default=0.5, help="CTC weight in attention rescoring")
    p.add_argument("--chunk", type=int, default=0,
                   help="chunk attention mask, encoder frames (16 = 640 ms; `hark eval --chunk-ms`); 0: full context")
    o = p.parse_args()
    torch.set_num_threads(o.threads)

    pkg = torch.load(os.path.join(o.ckpt_dir, "model.pth.tar"), map_location="cpu", weights_only=False)
    model = FireRedAsrAed.from_args(pkg["args"])
    model.load_state_dict(pkg["model_state_dict"], strict=True)
    model.eval()
    if getattr(pkg["args"], "causal_conv", False):
        make_causal(model.encoder)
    ctc = None
    if o.ctc_checkpoint:
        sd = torch.load(o.ctc_checkpoint, map_location="cpu", weights_only=False)
        ctc = torch.nn.Linear(sd["ctc.weight"].shape[1], sd["ctc.weight"].shape[0])
        ctc.load_state_dict({"weight": sd["ctc.weight"], "bias": sd["ctc.bias"]})
        blank = 0
    spm_model = [f for f in os.listdir(o.ckpt_dir) if f.endswith(".model")][0]
    tok = ChineseCharEnglishSpmTokenizer(os.path.join(o.ckpt_dir, "dict.txt"), os.path.join(o.ckpt_dir, spm_model))
    cmvn = CMVN(os.path.join(o.ckpt_dir, "cmvn.ark"))
    fbank = KaldifeatFbank(num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)

    utts = [json.loads(line) for line in open(os.path.join(o.data, "manifest.jsonl"))]
    if o.limit:
        utts = utts[:o.limit]
    hyps, errs, words = {}, 0, 0
    t0 = time.time()
    with torch.no_grad():
        for u in utts:
            wav, sr = sf.read(os.path.join(o.data, u["audio_filepath"]), dtype="int16")
            x = torch.from_numpy(cmvn(fbank((sr, wav.astype(np.float32)))).astype(np.float32)).unsqueeze(0)
            xl = torch.tensor([x.shape[1]])
            if ctc is None and o.chunk > 0:
                enc, _, enc_mask = encode(model.encoder, x, xl, o.chunk)
                nbest = model.decoder.batch_beam_search(enc, enc_mask, o.beam, 1, 0, 1.0, 0.0, 1.0)
                ids = nbest[0][0]["yseq"].tolist()
            elif ctc is None:
                nbest = model.transcribe(x, torch.tensor([x.shape[1]]), beam_size=o.beam, nbest=1,
                                         decode_max_len=0, softmax_smoothing=1.0, length_penalty=0.0,
                                         eos_penalty=1.0)
                ids = nbest[0][0]["yseq"].tolist()
            else:
                enc, _, enc_mask = encode(model.encoder, x, xl, o.chunk)
                logp = torch.log_softmax(ctc(enc), dim=-1)[0]
                cands = ctc_prefix_beam_search(logp, o.beam, blank)
                rescored = attention_rescoring(decoder_score(model, enc, enc_mask), cands, o.ctc_weight)
                ids = rescored[best(rescored)][0]
            text = tok.detokenize(ids)
            hyps[u["id"]] = text
            r = norm(u["text"])
            errs += word_errors(r, norm(text))
            words += len(r)
    with open(o.out, "w") as f:
        for k, v in hyps.items():
            f.write(f"{k} {v}\n")
    mode = "attention beam" if ctc is None else f"CTC prefix beam + attention rescoring (ctc weight {o.ctc_weight})"
    if o.chunk > 0:
        mode += f", chunk {o.chunk} frames"
    print(f"reference decode ({mode}, beam {o.beam}): {len(utts)} utts, WER {100.0 * errs / words:.2f}% "
          f"({errs}/{words}), {time.time() - t0:.0f}s")

    for report in o.hark:
        rep = json.load(open(report))
        hark = {}
        for u in rep.get("utterances", []):
            hark[u["id"]] = u.get("hypothesis_raw", u.get("hypothesis", u.get("hyp", "")))
        same = sum(1 for k in hyps if " ".join(norm(hark.get(k, "<missing>"))) == " ".join(norm(hyps[k])))
        print(f"hark ({report}) vs reference: {same}/{len(hyps)} identical ({100.0 * same / len(hyps):.1f}%)")
        for k in hyps:
            if " ".join(norm(hark.get(k, "<missing>"))) != " ".join(norm(hyps[k])):
                print(f"  {k}: ref {hyps[k]!r} hark {hark.get(k)!r}")


if __name__ == "__main__":
    main()
