#!/usr/bin/env python3
"""Cross-check a converted hark Whisper directory against the CTranslate2 golden fixtures.

A plain numpy Whisper (openai-whisper's model.py semantics: conv1/conv2 + GELU(erf),
sinusoidal positions, pre-LN blocks, 1/sqrt(head_dim) attention scaling, LayerNorm eps
1e-5, logits = x · embed_tokensᵀ) runs on the hark `model.safetensors` and is compared
with the fixture's encoder rows and decoder logits. If this passes, the importer's tensor
names, fusions and layouts are right, and the fixtures' numbers are reachable from hark's
format: a Rust model that fails its parity test has a bug in the model, not in the
conversion.

Usage: python3 scripts/whisper/check_converted.py ~/.cache/hark/models/tiny.en \
           models/tests/fixtures/whisper/tiny.en/an391-mjwl-b.json
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
from scipy.special import erf


def load_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "I8": np.int8}
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype=dt[e["dtype"]]).reshape(e["shape"])
    w = {}
    for name, v in out.items():
        if name.endswith(".scale"):
            continue
        v = v.astype(np.float32)
        if name + ".scale" in out:
            v = v * out[name + ".scale"].reshape(-1, *([1] * (v.ndim - 1)))
        w[name] = v
    return w


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def ln(x, w, p):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5) * w[p + ".weight"] + w[p + ".bias"]


def lin(x, w, p):
    return x @ w[p + ".weight"].T + w[p + ".bias"]


def conv1d(x, weight, bias, stride):
    # x [C_in, T], weight [C_out, C_in, 3], padding 1
    xp = np.pad(x, ((0, 0), (1, 1)))
    t_out = (x.shape[1] + 2 - 3) // stride + 1
    cols = np.stack([xp[:, k : k + stride * t_out : stride] for k in range(3)], axis=1)  # [C_in,3,T]
    return np.einsum("oik,ikt->ot", weight, cols) + bias[:, None]


def attention(q, k, v, heads, causal=False):
    t, d = q.shape
    hd = d // heads
    out = np.empty_like(q)
    for h in range(heads):
        s = slice(h * hd, (h + 1) * hd)
        a = (q[:, s] @ k[:, s].T) / np.sqrt(hd)
        if causal:
            a = a + np.triu(np.full((t, k.shape[0]), -np.inf, dtype=np.float32), 1)
        a = np.exp(a - a.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        out[:, s] = a @ v[:, s]
    return out


def main() -> None:
    model_dir, fixture = Path(sys.argv[1]).expanduser(), Path(sys.argv[2])
    cfg = json.loads((model_dir / "config.json").read_text())
    dims = cfg["dims"]
    fx = json.loads(fixture.read_text())
    w = load_safetensors(model_dir / "model.safetensors")
    d = dims["n_audio_state"]

    shape = fx["mel"]["shape"]
    mel = np.zeros((shape[0], fx["mel"]["padded_frames"]), np.float32)
    mel[:, : shape[1]] = np.fromfile(fixture.parent.parent / fx["mel"]["file"], "<f4").reshape(shape)

    x = gelu(conv1d(mel, w["encoder.conv1.weight"], w["encoder.conv1.bias"], 1))
    x = gelu(conv1d(x, w["encoder.conv2.weight"], w["encoder.conv2.bias"], 2)).T
    x = x + w["encoder.embed_positions.weight"][: x.shape[0]]
    for i in range(dims["n_audio_layer"]):
        p = f"encoder.layers.{i}"
        h = ln(x, w, p + ".self_attn_layer_norm")
        q, k, v = np.split(lin(h, w, p + ".self_attn.qkv_proj"), 3, axis=-1)
        x = x + lin(attention(q, k, v, dims["n_audio_head"]), w, p + ".self_attn.out_proj")
        x = x + lin(gelu(lin(ln(x, w, p + ".final_layer_norm"), w, p + ".fc1")), w, p + ".fc2")
    enc = ln(x, w, "encoder.layer_norm")

    rows = np.array(fx["encoder"]["rows"]["values"], np.float32)
    err_rows = np.abs(enc[fx["encoder"]["rows"]["indices"]] - rows).max()
    err_l2 = np.abs(np.sqrt((enc.astype(np.float64) ** 2).sum(1)) - fx["encoder"]["row_l2"]).max()
    print(f"encoder: max |diff| rows {err_rows:.2e}, row L2 {err_l2:.2e}")

    worst = 0.0
    for step in fx["decoder"]["steps"]:
        toks = step["prefix"]
        x = w["decoder.embed_tokens.weight"][toks] + w["decoder.embed_positions.weight"][: len(toks)]
        for i in range(dims["n_text_layer"]):
            p = f"decoder.layers.{i}"
            h = ln(x, w, p + ".self_attn_layer_norm")
            q, k, v = np.split(lin(h, w, p + ".self_attn.qkv_proj"), 3, axis=-1)
            x = x + lin(attention(q, k, v, dims["n_text_head"], causal=True), w, p + ".self_attn.out_proj")
            h = ln(x, w, p + ".encoder_attn_layer_norm")
            q = lin(h, w, p + ".encoder_attn.q_proj")
            k, v = np.split(lin(enc, w, p + ".encoder_attn.kv_proj"), 2, axis=-1)
            x = x + lin(attention(q, k, v, dims["n_text_head"]), w, p + ".encoder_attn.out_proj")
            x = x + lin(gelu(lin(ln(x, w, p + ".final_layer_norm"), w, p + ".fc1")), w, p + ".fc2")
        logits = ln(x, w, "decoder.layer_norm")[-1] @ w["decoder.embed_tokens.weight"].T
        err = np.abs(logits[step["topk_ids"]] - np.array(step["topk_logits"])).max()
        worst = max(worst, err)
        assert int(np.argmax(logits)) == step["topk_ids"][0], (step["prefix"], int(np.argmax(logits)))
    print(f"decoder: {len(fx['decoder']['steps'])} steps, max |diff| top-10 logits {worst:.2e}, argmax equal")
    ok = err_rows < 2e-3 + 1e-3 * np.abs(rows).max() and worst < 5e-3 * 4
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
