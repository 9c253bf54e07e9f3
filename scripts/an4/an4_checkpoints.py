"""Checkpoint averaging and export in the layout scripts/convert_fireredasr.py reads (shared by
scripts/train_an4.py's epoch average and scripts/an4/average_runs.py's run average; needs only
torch)."""

import json
import os
import sys

import torch


def average_state_dicts(paths):
    """The element-wise mean of the state dicts saved at `paths` (summed in float64, stored back in
    each tensor's dtype); every dict must have the same names and shapes."""
    avg, ref = None, None
    for path in paths:
        sd = torch.load(path, map_location="cpu", weights_only=False)
        if avg is None:
            avg, ref = {k: v.clone().double() for k, v in sd.items()}, sd
            continue
        if sd.keys() != avg.keys() or any(sd[k].shape != avg[k].shape for k in sd):
            raise SystemExit(f"{path}: parameter names or shapes differ from {paths[0]}'s")
        for k in avg:
            avg[k] += sd[k].double()
    return {k: (v / len(paths)).to(ref[k].dtype) for k, v in avg.items()}


def write_export(dest, avg, args, tok_files, provenance):
    """<dest>/averaged_with_ctc.pt (the whole model, CTC head included) and <dest>/export/: a
    FireRedASR checkpoint dir (model.pth.tar, the tied output projection restored) + the tokenizer
    and CMVN files + provenance.json, what convert_fireredasr.py reads. Returns the export dir."""
    import shutil

    out = os.path.join(dest, "export")
    os.makedirs(out, exist_ok=True)
    aed_sd = {k[len("aed."):]: v for k, v in avg.items() if k.startswith("aed.")}
    aed_sd["decoder.tgt_word_prj.weight"] = aed_sd["decoder.tgt_word_emb.weight"]
    torch.save({"args": args, "model_state_dict": aed_sd}, os.path.join(out, "model.pth.tar"))
    torch.save(avg, os.path.join(dest, "averaged_with_ctc.pt"))
    for src in tok_files:
        shutil.copyfile(src, os.path.join(out, os.path.basename(src)))
    for name, value in provenance.items():
        with open(os.path.join(out, name), "w") as f:
            json.dump(value, f, indent=1)
    return out


def load_init(path):
    """A state dict in the training model's names (`aed.` + FireRedASR's names, `ctc.ctc_lo.*`) from
    either a run's averaged_with_ctc.pt or a hark model directory written by convert_fireredasr.py
    (its model.safetensors keeps the reference's names; f16 weights come back as float32, the
    CMVN tensors are dropped: the recipe recomputes them from the same training data)."""
    if not os.path.isdir(path):
        return torch.load(path, map_location="cpu", weights_only=False)
    st = os.path.join(path, "model.safetensors")
    if not os.path.exists(st):
        raise SystemExit(f"{path}: a directory without model.safetensors is not a hark model")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from convert_fireredasr import read_safetensors

    out = {}
    for name, arr in read_safetensors(st).items():
        if name.startswith("cmvn."):
            continue
        key = "ctc." + name[len("ctc.ctc_lo."):] if name.startswith("ctc.ctc_lo.") else "aed." + name
        out[key] = torch.from_numpy(arr.copy())
    return out
