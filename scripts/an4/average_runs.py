#!/usr/bin/env python3
"""Average the final (already epoch-averaged) weights of several train_an4.py runs: a "model soup"
(Wortsman et al. 2022). Only meaningful for runs that share their initialisation (same --seed and
--init-from, so even the randomly initialised token embeddings start equal) and their vocabulary,
dev split and CMVN (same data, --seed, --vocab, --dev-fraction): they then differ only in the
training recipe (dropout, augmentation, losses) and stay in one basin of the loss.

Writes OUT/averaged_with_ctc.pt and OUT/export/ (FireRedASR checkpoint dir + tokenizer files) in
the layout train_an4.py's export produces, so the result goes through the same converter:

  python3 scripts/an4/average_runs.py --out /tmp/an4_soup /tmp/an4_v150C /tmp/an4_v150E
  python3 scripts/convert_fireredasr.py /tmp/an4_soup/export OUT_DIR --dtype f16 \
      --ctc-checkpoint /tmp/an4_soup/averaged_with_ctc.pt
"""
import argparse
import filecmp
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from an4_checkpoints import average_state_dicts, write_export  # noqa: E402


def pieces(spm_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=spm_model)
    return [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="train_an4.py work dirs (each with averaged_with_ctc.pt and export/)")
    p.add_argument("--out", required=True)
    o = p.parse_args()
    if len(o.runs) < 2:
        p.error("need at least two runs to average")

    first_export = os.path.join(o.runs[0], "export")
    tok_files = sorted(f for f in os.listdir(first_export) if f.endswith((".model", ".txt", ".ark")))
    for run in o.runs[1:]:
        for f in tok_files:
            a, b = os.path.join(first_export, f), os.path.join(run, "export", f)
            # A SentencePiece model also records its training file's path: compare the pieces.
            same = pieces(a) == pieces(b) if f.endswith(".model") else filecmp.cmp(a, b, shallow=False)
            if not same:
                raise SystemExit(f"{run}: {f} differs from {o.runs[0]}'s: not the same vocabulary/CMVN")

    avg = average_state_dicts([os.path.join(run, "averaged_with_ctc.pt") for run in o.runs])
    first = torch.load(os.path.join(first_export, "model.pth.tar"), map_location="cpu", weights_only=False)
    write_export(o.out, avg, first["args"], [os.path.join(first_export, f) for f in tok_files],
                 {"averaged_runs.json": [os.path.abspath(r) for r in o.runs]})
    print(f"averaged {len(o.runs)} runs into {o.out}")


if __name__ == "__main__":
    main()
