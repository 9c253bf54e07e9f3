#!/usr/bin/env python3
"""Convert a FireRedASR-AED checkpoint directory into a hark model directory.

Input directory (as published for FireRedASR-AED-L):
  model.pth.tar          pickle {"args": argparse.Namespace, "model_state_dict": {...}}
  cmvn.ark               Kaldi global CMVN statistics (2 x (dim+1) matrix)
  dict.txt               "<token> <id>" per line
  train_bpe1000.model    SentencePiece BPE model (any *.model file is accepted)

Output directory:
  config.json            {"family": "conformer_aed", ...} hyper-parameters named as
                         FireRedASR's `args` names them, plus the structural options
                         hark needs to know (all fixed for FireRedASR, explicit for WeNet)
  model.safetensors      the state dict under the reference's own tensor names, plus
                         "cmvn.means" / "cmvn.istd" (f32). The output projection is tied to
                         the embedding, so only `decoder.tgt_word_emb.weight` is written.
  dict.txt, <spm>.model  copied unchanged

Optional CTC head (hark's own trainer, ESPnet/WeNet style joint CTC-attention): when
model_state_dict holds `ctc.ctc_lo.{weight,bias}` or `ctc.{weight,bias}` ([odim, d_model] +
[odim]), or --ctc-checkpoint names a state dict that does, it is written as
`ctc.ctc_lo.{weight,bias}` with config "ctc": true and "blank_id" (the id of "<blank>" in
dict.txt, else 0), enabling CTC prefix beam search + attention rescoring. Checkpoints without
one convert exactly as before.

Reference: FireRedASR fireredasr/models/fireredasr_aed.py (model construction from args),
fireredasr/data/asr_feat.py (CMVN: means and inverse standard deviations, variance floor 1e-20).

This is the only place that needs PyTorch. The checkpoint is a pickle (it stores an
argparse.Namespace), so it is loaded with weights_only=False: only convert files you trust.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

# Options of FireRedASR's `args` that define the model (named as the reference names them).
MODEL_ARGS = [
    "idim",
    "odim",
    "d_model",
    "n_head",
    "n_layers_enc",
    "n_layers_dec",
    "kernel_size",
    "pe_maxlen",
    "sos_id",
    "eos_id",
    "pad_id",
]
# Options that only matter for training (dropout); accepted and ignored.
TRAINING_ONLY_ARGS = ["residual_dropout", "dropout_rate"]
# Optional options that change the model, with the value meaning "absent": `causal_conv` (set by
# scripts/train_an4.py --causal-conv, scripts/conformer/streaming.py) pads the depthwise
# convolutions on the left only.
OPTIONAL_MODEL_ARGS = {"causal_conv": False}

# Conv2dSubsampling's out_channels (fixed at 32 in FireRedASR's conformer_encoder.py).
SUBSAMPLING_CHANNELS = 32


class ConvertError(Exception):
    pass


def expected_tensors(a):
    """Name -> shape of every tensor FireRedAsrAed(args) has, derived from args alone."""
    d, h, k, c = a["d_model"], a["n_head"], a["kernel_size"], SUBSAMPLING_CHANNELS
    dk = d // h
    sub_idim = ((a["idim"] - 1) // 2 - 1) // 2
    t = {
        "encoder.input_preprocessor.conv.0.weight": (c, 1, 3, 3),
        "encoder.input_preprocessor.conv.0.bias": (c,),
        "encoder.input_preprocessor.conv.2.weight": (c, c, 3, 3),
        "encoder.input_preprocessor.conv.2.bias": (c,),
        "encoder.input_preprocessor.out.weight": (d, c * sub_idim),
        "encoder.input_preprocessor.out.bias": (d,),
        "encoder.positional_encoding.pe": None,  # buffer, recomputed by hark
    }

    def ln(p, n):
        t[p + ".weight"] = (n,)
        t[p + ".bias"] = (n,)

    for i in range(a["n_layers_enc"]):
        p = f"encoder.layer_stack.{i}"
        for f in ("ffn1", "ffn2"):
            ln(f"{p}.{f}.net.0", d)
            t[f"{p}.{f}.net.1.weight"] = (4 * d, d)
            t[f"{p}.{f}.net.1.bias"] = (4 * d,)
            t[f"{p}.{f}.net.4.weight"] = (d, 4 * d)
            t[f"{p}.{f}.net.4.bias"] = (d,)
        for w in ("w_qs", "w_ks", "w_vs", "fc", "linear_pos"):
            t[f"{p}.mhsa.{w}.weight"] = (d, d)
        for n in ("layer_norm_q", "layer_norm_k", "layer_norm_v"):
            ln(f"{p}.mhsa.{n}", d)
        t[f"{p}.mhsa.pos_bias_u"] = (h, dk)
        t[f"{p}.mhsa.pos_bias_v"] = (h, dk)
        ln(f"{p}.conv.pre_layer_norm", d)
        t[f"{p}.conv.pointwise_conv1.weight"] = (4 * d, d, 1)
        t[f"{p}.conv.depthwise_conv.weight"] = (2 * d, 1, k)
        ln(f"{p}.conv.batch_norm", 2 * d)
        t[f"{p}.conv.pointwise_conv2.weight"] = (d, 2 * d, 1)
        ln(f"{p}.layer_norm", d)
    t["decoder.tgt_word_emb.weight"] = (a["odim"], d)
    t["decoder.tgt_word_prj.weight"] = (a["odim"], d)
    t["decoder.positional_encoding.pe"] = None
    ln("decoder.layer_norm_out", d)
    for i in range(a["n_layers_dec"]):
        p = f"decoder.layer_stack.{i}"
        for att in ("self_attn", "cross_attn"):
            ln(f"{p}.{att}_norm", d)
            t[f"{p}.{att}.w_qs.weight"] = (d, d)
            t[f"{p}.{att}.w_qs.bias"] = (d,)
            t[f"{p}.{att}.w_ks.weight"] = (d, d)
            t[f"{p}.{att}.w_vs.weight"] = (d, d)
            t[f"{p}.{att}.w_vs.bias"] = (d,)
            t[f"{p}.{att}.fc.weight"] = (d, d)
            t[f"{p}.{att}.fc.bias"] = (d,)
        ln(f"{p}.mlp_norm", d)
        t[f"{p}.mlp.w_1.weight"] = (4 * d, d)
        t[f"{p}.mlp.w_1.bias"] = (4 * d,)
        t[f"{p}.mlp.w_2.weight"] = (d, 4 * d)
        t[f"{p}.mlp.w_2.bias"] = (d,)
    return t


def read_args(args_obj, allow_unknown):
    a = dict(vars(args_obj)) if not isinstance(args_obj, dict) else dict(args_obj)
    missing = [k for k in MODEL_ARGS if k not in a]
    if missing:
        raise ConvertError(f"checkpoint args: missing option(s) {', '.join(missing)}")
    unknown = sorted(k for k in a if k not in MODEL_ARGS and k not in TRAINING_ONLY_ARGS
                     and k not in OPTIONAL_MODEL_ARGS)
    if unknown and not allow_unknown:
        raise ConvertError(
            f"checkpoint args: unknown option(s) {', '.join(unknown)} "
            "(hark does not know whether they change the model; pass --allow-unknown-args to ignore)"
        )
    out = {k: int(a[k]) for k in MODEL_ARGS}
    if bool(a.get("causal_conv", False)):
        out["causal_conv"] = True
    if out["d_model"] % out["n_head"] != 0:
        raise ConvertError(f"checkpoint args: d_model {out['d_model']} is not divisible by n_head {out['n_head']}")
    if out["kernel_size"] % 2 != 1:
        raise ConvertError(f"checkpoint args: kernel_size {out['kernel_size']} must be odd")
    return out


CTC_NAMES = {"ctc.ctc_lo.weight": "weight", "ctc.ctc_lo.bias": "bias", "ctc.weight": "weight", "ctc.bias": "bias"}


def take_ctc(sd, a, origin):
    """Removes an optional CTC head from sd: {"weight", "bias"} or None."""
    found = {CTC_NAMES[k]: sd.pop(k) for k in list(sd) if k in CTC_NAMES}
    if not found:
        return None
    for part, shape in (("weight", (a["odim"], a["d_model"])), ("bias", (a["odim"],))):
        if part not in found:
            raise ConvertError(f"{origin}: CTC head has no {part} tensor (ctc.ctc_lo.{part} or ctc.{part})")
        if tuple(found[part].shape) != shape:
            raise ConvertError(f"{origin}: tensor ctc.ctc_lo.{part} has shape {list(found[part].shape)}, "
                               f"expected {list(shape)}")
    return found


def check_state_dict(sd, a):
    exp = expected_tensors(a)
    missing = sorted(k for k in exp if k not in sd and exp[k] is not None)
    if missing:
        raise ConvertError(f"model_state_dict: missing tensor(s) {', '.join(missing)}")
    unexpected = sorted(k for k in sd if k not in exp)
    if unexpected:
        raise ConvertError(f"model_state_dict: unexpected tensor(s) {', '.join(unexpected)}")
    for k, shape in exp.items():
        if shape is None or k not in sd:
            continue
        got = tuple(sd[k].shape)
        if got != shape:
            raise ConvertError(f"model_state_dict: tensor {k} has shape {list(got)}, expected {list(shape)}")


def read_kaldi_cmvn(path):
    """Kaldi global CMVN stats -> (means, inverse stddevs), as FireRedASR's CMVN class computes them."""
    import kaldiio

    stats = np.asarray(kaldiio.load_mat(path), dtype=np.float64)
    if stats.ndim != 2 or stats.shape[0] != 2:
        raise ConvertError(f"{path}: CMVN stats must be a 2 x (dim+1) matrix, got shape {list(stats.shape)}")
    dim = stats.shape[1] - 1
    count = stats[0, dim]
    if count < 1:
        raise ConvertError(f"{path}: CMVN frame count {count} < 1")
    means = stats[0, :dim] / count
    var = np.maximum(stats[1, :dim] / count - means * means, 1e-20)
    istd = np.array([1.0 / math.sqrt(v) for v in var])
    return means.astype(np.float32), istd.astype(np.float32)


def read_safetensors(path):
    """The tensors of a safetensors file written by write_safetensors (F32/F16/I32), as float32
    numpy arrays by name ("__metadata__" skipped)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dtypes = {"F32": np.float32, "F16": np.float16, "I32": np.int32}
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        if v["dtype"] not in dtypes:
            raise ConvertError(f"{path}: tensor {name} has dtype {v['dtype']}, expected F32, F16 or I32")
        a, b = v["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dtypes[v["dtype"]]).reshape(v["shape"]).astype(np.float32)
    return out


def write_safetensors(path, tensors):
    """Minimal safetensors writer (header JSON + little-endian raw data), numpy only."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int32): "I32"}
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        dt = names[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def convert(model_dir, out_dir, dtype="f32", allow_unknown=False, ctc_checkpoint=None):
    import torch

    ckpt = os.path.join(model_dir, "model.pth.tar")
    pkg = torch.load(ckpt, map_location="cpu", weights_only=False)
    if not isinstance(pkg, dict) or "args" not in pkg or "model_state_dict" not in pkg:
        raise ConvertError(f"{ckpt}: expected a dict with 'args' and 'model_state_dict'")
    a = read_args(pkg["args"], allow_unknown)
    sd = dict(pkg["model_state_dict"])
    ctc = take_ctc(sd, a, ckpt)
    if ctc_checkpoint:
        other = torch.load(ctc_checkpoint, map_location="cpu", weights_only=True)
        other = {k: v for k, v in other.items() if k in CTC_NAMES}
        if not other:
            raise ConvertError(f"{ctc_checkpoint}: no CTC head (ctc.ctc_lo.weight or ctc.weight)")
        if ctc is not None:
            raise ConvertError(f"{ckpt} already has a CTC head; do not pass --ctc-checkpoint")
        ctc = take_ctc(other, a, ctc_checkpoint)
    check_state_dict(sd, a)

    np_dtype = {"f32": np.float32, "f16": np.float16}[dtype]
    tensors = {}
    for k, v in sd.items():
        if k.endswith("positional_encoding.pe") or k == "decoder.tgt_word_prj.weight":
            continue  # recomputed / tied to decoder.tgt_word_emb.weight
        arr = v.detach().cpu().float().numpy()
        # Norm parameters and small vectors stay f32; matrices take the requested dtype.
        tensors[k] = arr.astype(np_dtype) if arr.ndim >= 2 else arr.astype(np.float32)
    if not torch.equal(sd["decoder.tgt_word_prj.weight"], sd["decoder.tgt_word_emb.weight"]):
        raise ConvertError("decoder.tgt_word_prj.weight differs from decoder.tgt_word_emb.weight (expected tied)")

    cmvn = os.path.join(model_dir, "cmvn.ark")
    means, istd = read_kaldi_cmvn(cmvn)
    if means.shape[0] != a["idim"]:
        raise ConvertError(f"{cmvn}: CMVN dim {means.shape[0]} != idim {a['idim']}")
    tensors["cmvn.means"] = means
    tensors["cmvn.istd"] = istd
    if ctc is not None:
        tensors["ctc.ctc_lo.weight"] = ctc["weight"].detach().cpu().float().numpy().astype(np_dtype)
        tensors["ctc.ctc_lo.bias"] = ctc["bias"].detach().cpu().float().numpy().astype(np.float32)

    spm = [f for f in sorted(os.listdir(model_dir)) if f.endswith(".model")]
    if len(spm) != 1:
        raise ConvertError(f"{model_dir}: expected exactly one SentencePiece *.model file, found {spm}")
    dict_path = os.path.join(model_dir, "dict.txt")
    with open(dict_path, encoding="utf8") as f:
        dict_tokens = [(line.split() or [" "])[0] for line in f]
    n_tokens = len(dict_tokens)
    if n_tokens != a["odim"]:
        raise ConvertError(f"{dict_path}: {n_tokens} tokens but odim is {a['odim']}")

    config = {
        "family": "conformer_aed",
        "source": "fireredasr",
        **a,
        # Structure fixed by FireRedASR's code (explicit so other toolkits can differ).
        "subsampling": "conv2d4",
        "subsampling_channels": SUBSAMPLING_CHANNELS,
        "pad_context": 6,
        "layer_norm_eps": 1e-5,
        "ffn_mult": 4,
        "conv_inner_mult": 2,
        "conv_norm": "layer_norm",
        "qkv_layer_norm": True,
        "rel_shift": True,
        "xscale": False,
        "dec_embed_scale": True,
        "dec_activation": "gelu",
        "tied_output": True,
        "weights_dtype": dtype,
        "dict": "dict.txt",
        "spm_model": spm[0],
    }
    if ctc is not None:
        config["ctc"] = True
        config["blank_id"] = dict_tokens.index("<blank>") if "<blank>" in dict_tokens else 0
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    shutil.copyfile(dict_path, os.path.join(out_dir, "dict.txt"))
    shutil.copyfile(os.path.join(model_dir, spm[0]), os.path.join(out_dir, spm[0]))
    return config


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="FireRedASR-AED directory (model.pth.tar, cmvn.ark, dict.txt, *.model)")
    p.add_argument("out_dir", help="hark model directory to write")
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="storage type of weight matrices")
    p.add_argument("--allow-unknown-args", action="store_true", help="ignore unknown options in the checkpoint args")
    p.add_argument("--ctc-checkpoint", help="state dict holding a CTC head (ctc.weight/ctc.bias) to export too")
    o = p.parse_args()
    try:
        convert(o.model_dir, o.out_dir, o.dtype, o.allow_unknown_args, o.ctc_checkpoint)
    except ConvertError as e:
        print(f"convert_fireredasr: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
