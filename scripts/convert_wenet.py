#!/usr/bin/env python3
"""Convert a WeNet (or ESPnet-layout) conformer checkpoint into a hark model directory.

Input directory (as a WeNet experiment leaves it):
  final.pt        torch.save(model.state_dict()): encoder.*, decoder.*, optional ctc.*
  train.yaml      the training config (input_dim, output_dim, encoder_conf, decoder_conf, ...)
  global_cmvn     WeNet JSON CMVN stats {"mean_stat": [...], "var_stat": [...], "frame_num": n}
                  (optional when final.pt holds encoder.global_cmvn.{mean,istd})
  units.txt       "<token> <id>" per line (ESPnet: tokens.txt); BPE pieces use "▁"
  *.model         optional SentencePiece model (tokenizer_conf.bpe_path or the only *.model)

Output directory: config.json ("family": "conformer_aed", "source": "wenet"),
model.safetensors (tensors renamed to hark's conformer_aed names, BatchNorm folded into the
depthwise convolution, "cmvn.means"/"cmvn.istd"), units.txt and the BPE model if any.

Semantics (module names as in WeNet wenet/transformer/{encoder,encoder_layer,attention,
convolution,decoder,decoder_layer,subsampling,embedding,cmvn}.py and ESPnet
espnet2/asr/encoder/conformer_encoder.py, which share the state-dict layout):
  * encoder_conf.pos_enc_layer_type "rel_pos": WeNet computes relative-position scores
    WITHOUT rel_shift (positions 0..T-1). ESPnet configs carry `rel_pos_type`: "latest"
    means the Transformer-XL rel_shift over 2T-1 positions, "legacy" (or
    pos_enc_layer_type "legacy_rel_pos") ESPnet's legacy encoding and shift.
  * LayerNorm epsilon: encoder_conf.norm_eps if given, else 1e-12 for ESPnet configs and
    1e-5 for WeNet (override with --layer-norm-eps).
  * BatchNorm (cnn_module_norm "batch_norm", the default) is folded at conversion:
    w' = w·γ/√(σ²+ε), b' = (b-μ)·γ/√(σ²+ε) + β, ε = 1e-5; hark then has no norm there.
  * Every option that changes the network must be known; unknown options are an error
    (--allow-unknown-options to ignore them), and so are missing/unexpected tensors and
    mismatched shapes, each message naming the option or tensor.

Causal convolutions (encoder_conf.causal, WeNet's streaming U2/U2++ models) are kept
(`causal_conv` in config.json: kernel-1 zeros on the left, none on the right); hark decodes at
full context or with a chunk attention mask (`--chunk-ms`). A model trained with a static chunk
size (static_chunk_size > 0) is rejected. The checkpoint is a pickle: only convert files you trust.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_fireredasr import write_safetensors  # noqa: E402


class ConvertError(Exception):
    pass


# encoder_conf options that define the network -> allowed values (None = any value).
ENCODER_OPTIONS = {
    "output_size": None,
    "attention_heads": None,
    "linear_units": None,
    "num_blocks": None,
    "input_layer": {"conv2d", "conv2d6", "conv2d8"},
    "normalize_before": {True},
    "concat_after": {False},
    "macaron_style": {True},
    "use_cnn_module": {True},
    "cnn_module_kernel": None,
    "cnn_module_norm": {"batch_norm", "layer_norm"},
    "activation_type": {"swish", "relu"},
    "pos_enc_layer_type": {"rel_pos", "legacy_rel_pos"},
    "selfattention_layer_type": {"rel_selfattn", "legacy_rel_selfattn"},
    "rel_pos_type": {"latest", "legacy"},
    "positionwise_layer_type": {"linear"},
    "causal": {False, True},
    "static_chunk_size": {0},
    "zero_triu": {False},
    "norm_eps": None,
    "max_pos_emb_len": None,
}
ENCODER_TRAINING_ONLY = {
    "dropout_rate", "positional_dropout_rate", "attention_dropout_rate", "use_dynamic_chunk",
    "use_dynamic_left_chunk", "stochastic_depth_rate", "layer_drop_rate", "gradient_checkpointing",
}
DECODER_OPTIONS = {
    "attention_heads": None,
    "linear_units": None,
    "num_blocks": None,
    "normalize_before": {True},
    "concat_after": {False},
    "src_attention": {True},
    "activation_type": {"relu"},
    "input_layer": {"embed"},
    "use_output_layer": {True},
    "r_num_blocks": {0},
    "norm_eps": None,
}
DECODER_TRAINING_ONLY = {
    "dropout_rate", "positional_dropout_rate", "self_attention_dropout_rate",
    "src_attention_dropout_rate", "gradient_checkpointing", "tie_word_embedding",
}
TOP_LEVEL_MODEL = {"input_dim", "output_dim", "encoder", "encoder_conf", "decoder", "decoder_conf"}


def check_options(section, conf, known, training_only, allow_unknown):
    for k, v in conf.items():
        if k in training_only:
            continue
        if k not in known:
            if allow_unknown:
                continue
            raise ConvertError(
                f"train.yaml: unknown option {section}.{k} = {v!r} (hark does not know whether it "
                "changes the model; pass --allow-unknown-options to ignore it)")
        allowed = known[k]
        if allowed is not None and v not in allowed:
            raise ConvertError(
                f"train.yaml: option {section}.{k} = {v!r} is not supported "
                f"(supported: {sorted(map(str, allowed))})")


def read_config(yaml_path, allow_unknown):
    import yaml

    with open(yaml_path) as f:
        y = yaml.safe_load(f)
    for k in ("input_dim", "output_dim", "encoder_conf", "decoder_conf"):
        if k not in y:
            raise ConvertError(f"train.yaml: missing option {k}")
    if y.get("encoder", "conformer") != "conformer":
        raise ConvertError(f"train.yaml: option encoder = {y['encoder']!r} is not supported (supported: conformer)")
    if y.get("decoder", "transformer") != "transformer":
        raise ConvertError(f"train.yaml: option decoder = {y['decoder']!r} is not supported (supported: transformer)")
    enc, dec = dict(y["encoder_conf"]), dict(y["decoder_conf"])
    check_options("encoder_conf", enc, ENCODER_OPTIONS, ENCODER_TRAINING_ONLY, allow_unknown)
    check_options("decoder_conf", dec, DECODER_OPTIONS, DECODER_TRAINING_ONLY, allow_unknown)
    for k in ("output_size", "attention_heads", "linear_units", "num_blocks"):
        if k not in enc:
            raise ConvertError(f"train.yaml: missing option encoder_conf.{k}")
    return y, enc, dec


def structure(y, enc, dec, eps_override):
    """hark config options from the training config."""
    d = int(enc["output_size"])
    h = int(enc["attention_heads"])
    if d % h:
        raise ConvertError(f"train.yaml: encoder_conf.output_size {d} is not divisible by attention_heads {h}")
    if int(dec.get("attention_heads", h)) != h:
        raise ConvertError("train.yaml: decoder_conf.attention_heads differs from encoder_conf.attention_heads "
                           "(hark uses one n_head)")
    lu = int(enc["linear_units"])
    if lu % d or int(dec.get("linear_units", lu)) != lu:
        raise ConvertError(f"train.yaml: linear_units {lu} must be a multiple of output_size {d} and equal in "
                           "encoder_conf and decoder_conf")
    kernel = int(enc.get("cnn_module_kernel", 15))
    causal = bool(enc.get("causal", False))
    if kernel % 2 != 1 and not causal:
        raise ConvertError(f"train.yaml: encoder_conf.cnn_module_kernel {kernel} must be odd (or causal: true)")
    espnet = "rel_pos_type" in enc
    pos = enc.get("pos_enc_layer_type", "rel_pos")
    if enc.get("rel_pos_type") == "legacy":
        pos = "legacy_rel_pos"
    if pos == "legacy_rel_pos":
        rel_shift = True
    else:
        rel_shift = espnet  # ESPnet "latest" shifts; WeNet removed rel_shift
    eps = eps_override or enc.get("norm_eps") or (1e-12 if espnet else 1e-5)
    return {
        "idim": int(y["input_dim"]),
        "odim": int(y["output_dim"]),
        "d_model": d,
        "n_head": h,
        "n_layers_enc": int(enc["num_blocks"]),
        "n_layers_dec": int(dec.get("num_blocks", 6)),
        "kernel_size": kernel,
        "pe_maxlen": int(enc.get("max_pos_emb_len", 5000)),
        "subsampling": {"conv2d": "conv2d4", "conv2d6": "conv2d6", "conv2d8": "conv2d8"}[enc.get("input_layer", "conv2d")],
        "subsampling_channels": d,
        "pad_context": 0,
        "layer_norm_eps": float(eps),
        "ffn_mult": lu // d,
        "conv_inner_mult": 1,
        "conv_norm": enc.get("cnn_module_norm", "batch_norm"),
        "qkv_layer_norm": False,
        "rel_shift": rel_shift,
        "pos_enc_layer_type": pos,
        "xscale": True,
        "dec_embed_scale": True,
        "dec_activation": "relu",
        "enc_activation": enc.get("activation_type", "swish"),
        "tied_output": False,
        "linear_bias": True,
        "enc_after_norm": True,
        **({"causal_conv": True} if causal else {}),
    }


def expected_tensors(c, sub_keys):
    """hark tensor name -> shape for config c."""
    d, h, k, v = c["d_model"], c["n_head"], c["kernel_size"], c["odim"]
    f = d * c["ffn_mult"]
    t = {}
    layers = {"conv2d4": [3, 3], "conv2d6": [3, 5], "conv2d8": [3, 3, 3]}[c["subsampling"]]
    strides = {"conv2d4": [2, 2], "conv2d6": [2, 3], "conv2d8": [2, 2, 2]}[c["subsampling"]]
    cin, fdim = 1, c["idim"]
    for i, (kk, s) in enumerate(zip(layers, strides)):
        t[f"encoder.input_preprocessor.conv.{2 * i}.weight"] = (d, cin, kk, kk)
        t[f"encoder.input_preprocessor.conv.{2 * i}.bias"] = (d,)
        cin, fdim = d, (fdim - kk) // s + 1
    t["encoder.input_preprocessor.out.weight"] = (d, d * fdim)
    t["encoder.input_preprocessor.out.bias"] = (d,)

    def lin(p, o, i, bias=True):
        t[p + ".weight"] = (o, i)
        if bias:
            t[p + ".bias"] = (o,)

    def ln(p):
        t[p + ".weight"] = (d,)
        t[p + ".bias"] = (d,)

    for i in range(c["n_layers_enc"]):
        p = f"encoder.layer_stack.{i}"
        for ff in ("ffn1", "ffn2"):
            ln(f"{p}.{ff}.net.0")
            lin(f"{p}.{ff}.net.1", f, d)
            lin(f"{p}.{ff}.net.4", d, f)
        ln(f"{p}.mhsa.layer_norm")
        for w in ("w_qs", "w_ks", "w_vs", "fc"):
            lin(f"{p}.mhsa.{w}", d, d)
        lin(f"{p}.mhsa.linear_pos", d, d, bias=False)
        t[f"{p}.mhsa.pos_bias_u"] = (h, d // h)
        t[f"{p}.mhsa.pos_bias_v"] = (h, d // h)
        ln(f"{p}.conv.pre_layer_norm")
        t[f"{p}.conv.pointwise_conv1.weight"] = (2 * d, d, 1)
        t[f"{p}.conv.pointwise_conv1.bias"] = (2 * d,)
        t[f"{p}.conv.depthwise_conv.weight"] = (d, 1, k)
        t[f"{p}.conv.depthwise_conv.bias"] = (d,)
        if c["conv_norm"] == "layer_norm":
            ln(f"{p}.conv.batch_norm")
        t[f"{p}.conv.pointwise_conv2.weight"] = (d, d, 1)
        t[f"{p}.conv.pointwise_conv2.bias"] = (d,)
        ln(f"{p}.layer_norm")
    ln("encoder.after_norm")
    t["decoder.tgt_word_emb.weight"] = (v, d)
    lin("decoder.tgt_word_prj", v, d)
    ln("decoder.layer_norm_out")
    for i in range(c["n_layers_dec"]):
        p = f"decoder.layer_stack.{i}"
        for att in ("self_attn", "cross_attn"):
            ln(f"{p}.{att}_norm")
            for w in ("w_qs", "w_ks", "w_vs", "fc"):
                lin(f"{p}.{att}.{w}", d, d)
        ln(f"{p}.mlp_norm")
        lin(f"{p}.mlp.w_1", f, d)
        lin(f"{p}.mlp.w_2", d, f)
    if c["ctc"]:
        lin("ctc.ctc_lo", v, d)
    t["cmvn.means"] = (c["idim"],)
    t["cmvn.istd"] = (c["idim"],)
    return t


ENC_LAYER_MAP = [
    ("feed_forward_macaron.w_1.", "ffn1.net.1."),
    ("feed_forward_macaron.w_2.", "ffn1.net.4."),
    ("norm_ff_macaron.", "ffn1.net.0."),
    ("feed_forward.w_1.", "ffn2.net.1."),
    ("feed_forward.w_2.", "ffn2.net.4."),
    ("norm_ff.", "ffn2.net.0."),
    ("self_attn.linear_q.", "mhsa.w_qs."),
    ("self_attn.linear_k.", "mhsa.w_ks."),
    ("self_attn.linear_v.", "mhsa.w_vs."),
    ("self_attn.linear_out.", "mhsa.fc."),
    ("self_attn.linear_pos.", "mhsa.linear_pos."),
    ("self_attn.pos_bias_u", "mhsa.pos_bias_u"),
    ("self_attn.pos_bias_v", "mhsa.pos_bias_v"),
    ("norm_mha.", "mhsa.layer_norm."),
    ("conv_module.pointwise_conv1.", "conv.pointwise_conv1."),
    ("conv_module.depthwise_conv.", "conv.depthwise_conv."),
    ("conv_module.pointwise_conv2.", "conv.pointwise_conv2."),
    ("conv_module.norm.", "conv.batch_norm."),
    ("norm_conv.", "conv.pre_layer_norm."),
    ("norm_final.", "layer_norm."),
]
DEC_LAYER_MAP = [
    ("self_attn.linear_q.", "self_attn.w_qs."),
    ("self_attn.linear_k.", "self_attn.w_ks."),
    ("self_attn.linear_v.", "self_attn.w_vs."),
    ("self_attn.linear_out.", "self_attn.fc."),
    ("src_attn.linear_q.", "cross_attn.w_qs."),
    ("src_attn.linear_k.", "cross_attn.w_ks."),
    ("src_attn.linear_v.", "cross_attn.w_vs."),
    ("src_attn.linear_out.", "cross_attn.fc."),
    ("feed_forward.w_1.", "mlp.w_1."),
    ("feed_forward.w_2.", "mlp.w_2."),
    ("norm1.", "self_attn_norm."),
    ("norm2.", "cross_attn_norm."),
    ("norm3.", "mlp_norm."),
]
IGNORED_SUFFIXES = ("num_batches_tracked", ".pe")


def rename(name):
    """WeNet/ESPnet tensor name -> hark name (None: not a model tensor)."""
    if name.endswith(IGNORED_SUFFIXES):
        return None
    if name.startswith("encoder.global_cmvn."):
        return name
    if name.startswith("encoder.embed."):
        rest = name[len("encoder.embed."):]
        if rest.startswith("conv."):
            return "encoder.input_preprocessor." + rest
        for pre in ("out.0.", "out.", "linear."):
            if rest.startswith(pre):
                return "encoder.input_preprocessor.out." + rest[len(pre):]
    if name.startswith("encoder.encoders."):
        i, rest = name[len("encoder.encoders."):].split(".", 1)
        for a, b in ENC_LAYER_MAP:
            if rest.startswith(a):
                return f"encoder.layer_stack.{i}.{b}{rest[len(a):]}"
    if name.startswith("encoder.after_norm."):
        return name
    if name == "decoder.embed.0.weight":
        return "decoder.tgt_word_emb.weight"
    if name.startswith("decoder.after_norm."):
        return "decoder.layer_norm_out." + name.rsplit(".", 1)[1]
    if name.startswith("decoder.output_layer."):
        return "decoder.tgt_word_prj." + name.rsplit(".", 1)[1]
    if name.startswith("decoder.decoders."):
        i, rest = name[len("decoder.decoders."):].split(".", 1)
        for a, b in DEC_LAYER_MAP:
            if rest.startswith(a):
                return f"decoder.layer_stack.{i}.{b}{rest[len(a):]}"
    if name.startswith("ctc.ctc_lo."):
        return name
    return ""  # unknown


def original_name(hark):
    """hark name -> the WeNet/ESPnet name it comes from (for error messages)."""
    import re

    m = re.match(r"encoder\.layer_stack\.(\d+)\.(.*)", hark)
    if m:
        i, rest = m.groups()
        for a, b in ENC_LAYER_MAP:
            if rest.startswith(b):
                return f"encoder.encoders.{i}.{a}{rest[len(b):]}"
    m = re.match(r"decoder\.layer_stack\.(\d+)\.(.*)", hark)
    if m:
        i, rest = m.groups()
        for a, b in DEC_LAYER_MAP:
            if rest.startswith(b):
                return f"decoder.decoders.{i}.{a}{rest[len(b):]}"
    for a, b in (("encoder.input_preprocessor.out.", "encoder.embed.out."),
                 ("encoder.input_preprocessor.conv.", "encoder.embed.conv."),
                 ("decoder.tgt_word_emb.weight", "decoder.embed.0.weight"),
                 ("decoder.layer_norm_out.", "decoder.after_norm."),
                 ("decoder.tgt_word_prj.", "decoder.output_layer.")):
        if hark.startswith(a):
            return b + hark[len(a):]
    return hark


def read_json_cmvn(path):
    """WeNet's load_cmvn (JSON): means and inverse stddevs, variance floor 1e-20."""
    with open(path) as f:
        j = json.load(f)
    for k in ("mean_stat", "var_stat", "frame_num"):
        if k not in j:
            raise ConvertError(f"{path}: CMVN JSON has no {k!r}")
    n = float(j["frame_num"])
    if n < 1:
        raise ConvertError(f"{path}: CMVN frame_num {n} < 1")
    mean = np.asarray(j["mean_stat"], dtype=np.float64) / n
    var = np.asarray(j["var_stat"], dtype=np.float64) / n - mean * mean
    var = np.maximum(var, 1e-20)
    istd = 1.0 / np.sqrt(var)
    return mean.astype(np.float32), istd.astype(np.float32)


def find_units(model_dir):
    for n in ("units.txt", "tokens.txt", "lang_char.txt"):
        if os.path.exists(os.path.join(model_dir, n)):
            return n
    raise ConvertError(f"{model_dir}: no units.txt / tokens.txt")


def convert(model_dir, out_dir, dtype="f32", allow_unknown=False, layer_norm_eps=None):
    import torch

    y, enc, dec = read_config(os.path.join(model_dir, "train.yaml"), allow_unknown)
    c = structure(y, enc, dec, layer_norm_eps)

    ckpt = os.path.join(model_dir, "final.pt")
    sd = torch.load(ckpt, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict):
        raise ConvertError(f"{ckpt}: expected a state dict")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    c["ctc"] = "ctc.ctc_lo.weight" in sd

    renamed, unexpected, origin = {}, [], {}
    for k, v in sd.items():
        r = rename(k)
        if r is None:
            continue
        if r == "":
            unexpected.append(k)
            continue
        renamed[r] = v.detach().cpu().double().numpy()
        origin[r] = k
    if unexpected:
        raise ConvertError(f"{ckpt}: unexpected tensor(s) {', '.join(sorted(unexpected))}")

    # CMVN: the JSON file, or the checkpoint's GlobalCMVN buffers; both must agree.
    cm = renamed.pop("encoder.global_cmvn.mean", None)
    ci = renamed.pop("encoder.global_cmvn.istd", None)
    cmvn_path = os.path.join(model_dir, "global_cmvn")
    if os.path.exists(cmvn_path):
        means, istd = read_json_cmvn(cmvn_path)
        if cm is not None and (not np.allclose(cm, means, rtol=1e-5, atol=1e-6)
                               or not np.allclose(ci, istd, rtol=1e-5, atol=1e-6)):
            raise ConvertError(f"{cmvn_path}: differs from final.pt's encoder.global_cmvn buffers")
    elif cm is not None:
        means, istd = cm.astype(np.float32), ci.astype(np.float32)
    else:
        raise ConvertError(f"{model_dir}: no global_cmvn file and no encoder.global_cmvn in final.pt")
    if means.shape != (c["idim"],):
        raise ConvertError(f"CMVN dim {means.shape[0]} != input_dim {c['idim']}")
    renamed["cmvn.means"] = means
    renamed["cmvn.istd"] = istd

    # Fold BatchNorm into the depthwise convolution.
    if c["conv_norm"] == "batch_norm":
        for i in range(c["n_layers_enc"]):
            p = f"encoder.layer_stack.{i}.conv"
            need = [f"{p}.batch_norm.{n}" for n in ("weight", "bias", "running_mean", "running_var")]
            miss = [original_name(n) for n in need + [f"{p}.depthwise_conv.weight"] if n not in renamed]
            if miss:
                raise ConvertError(f"{ckpt}: missing tensor(s) {', '.join(miss)} (cnn_module_norm is batch_norm)")
            g, b, m, var = (renamed.pop(n) for n in need)
            w = renamed[f"{p}.depthwise_conv.weight"]
            if w.shape[0] != g.shape[0]:
                raise ConvertError(f"{ckpt}: encoder.encoders.{i}.conv_module.norm has {g.shape[0]} channels, "
                                   f"depthwise_conv {w.shape[0]}")
            bias = renamed.get(f"{p}.depthwise_conv.bias", np.zeros(w.shape[0]))
            scale = g / np.sqrt(var + 1e-5)
            renamed[f"{p}.depthwise_conv.weight"] = w * scale[:, None, None]
            renamed[f"{p}.depthwise_conv.bias"] = (bias - m) * scale + b

    exp = expected_tensors(c, None)
    missing = sorted(original_name(k) for k in exp if k not in renamed)
    if missing:
        raise ConvertError(f"{ckpt}: missing tensor(s) {', '.join(missing)}")
    extra = sorted(origin.get(k, k) for k in renamed if k not in exp)
    if extra:
        raise ConvertError(f"{ckpt}: unexpected tensor(s) {', '.join(extra)} (not used by this train.yaml)")
    for k, shape in exp.items():
        if tuple(renamed[k].shape) != shape:
            raise ConvertError(f"{ckpt}: tensor {origin.get(k, k)} has shape {list(renamed[k].shape)} "
                               f"(after BatchNorm folding), expected {list(shape)}")

    units = find_units(model_dir)
    with open(os.path.join(model_dir, units), encoding="utf8") as f:
        tokens = [(line.split() or [" "])[0] for line in f]
    if len(tokens) != c["odim"]:
        raise ConvertError(f"{units}: {len(tokens)} tokens but output_dim is {c['odim']}")
    sos = c["odim"] - 1  # WeNet/ESPnet: <sos/eos> is the last unit
    blank = tokens.index("<blank>") if "<blank>" in tokens else 0
    if "<unk>" not in tokens:
        raise ConvertError(f"{units}: no <unk> unit")

    tk = y.get("tokenizer_conf", {}) or {}
    bpe = tk.get("bpe_path") or y.get("bpe_model")
    spm = ""
    if bpe:
        bpe_name = os.path.basename(bpe)
        if not os.path.exists(os.path.join(model_dir, bpe_name)):
            raise ConvertError(f"{model_dir}: BPE model {bpe_name} named in train.yaml is missing")
        spm = bpe_name
    else:
        models = [f for f in sorted(os.listdir(model_dir)) if f.endswith(".model")]
        if len(models) == 1:
            spm = models[0]

    np_dtype = {"f32": np.float32, "f16": np.float16}[dtype]
    tensors = {}
    for k, v in renamed.items():
        # Matrices take the requested dtype; vectors and convolution kernels (folded
        # BatchNorm) stay f32.
        keep = v.ndim < 2 or "depthwise_conv" in k or "input_preprocessor.conv" in k
        tensors[k] = v.astype(np.float32) if keep else v.astype(np_dtype)

    config = {
        "family": "conformer_aed",
        "source": "wenet",
        **{k: c[k] for k in ("idim", "odim", "d_model", "n_head", "n_layers_enc", "n_layers_dec",
                             "kernel_size", "pe_maxlen")},
        "sos_id": sos,
        "eos_id": sos,
        "pad_id": blank,  # decoder keys are masked by token == pad_id; blank never enters the decoder
        **{k: c[k] for k in ("subsampling", "subsampling_channels", "pad_context", "layer_norm_eps", "ffn_mult",
                             "conv_inner_mult", "conv_norm", "qkv_layer_norm", "rel_shift", "xscale",
                             "dec_embed_scale", "dec_activation", "tied_output")},
        "weights_dtype": dtype,
        "dict": units,
        "spm_model": spm,
        "pos_enc_layer_type": c["pos_enc_layer_type"],
        "enc_activation": c["enc_activation"],
        "linear_bias": True,
        "enc_after_norm": True,
        "ctc": c["ctc"],
        "blank_id": blank,
        **({"causal_conv": True} if c.get("causal_conv") else {}),
    }
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), tensors)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    shutil.copyfile(os.path.join(model_dir, units), os.path.join(out_dir, units))
    if spm:
        shutil.copyfile(os.path.join(model_dir, spm), os.path.join(out_dir, spm))
    return config


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="WeNet experiment directory (final.pt, train.yaml, global_cmvn, units.txt)")
    p.add_argument("out_dir", help="hark model directory to write")
    p.add_argument("--dtype", choices=["f32", "f16"], default="f32", help="storage type of weight matrices")
    p.add_argument("--allow-unknown-options", action="store_true", help="ignore unknown train.yaml options")
    p.add_argument("--layer-norm-eps", type=float, default=None, help="LayerNorm epsilon (default: see above)")
    o = p.parse_args()
    try:
        convert(o.model_dir, o.out_dir, o.dtype, o.allow_unknown_options, o.layer_norm_eps)
    except ConvertError as e:
        print(f"convert_wenet: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
