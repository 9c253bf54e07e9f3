#!/usr/bin/env python3
"""Reference values for hark-engine op tests, computed with NumPy/SciPy in float64.

Writes engine/tests/fixtures/ops.json: {name: {"shape": [...], "data": [...]}}.
Inputs are float32 values (drawn with a fixed seed); references are computed in float64
from those float32 inputs and stored rounded to float32.

Each reference follows the PyTorch / ESPnet / openai-whisper definition named in the
comment next to it, written from the formula (not by calling those libraries), so the
Rust ops are checked against an independent implementation. ESPnet's rel_shift is
reproduced with its zero-pad + reshape trick (espnet transformer/attention.py), so the
index formula used inside hark's fused attention is checked against the original trick.

Usage: python3 scripts/engine/make_op_fixtures.py   (from the repository root)
"""
import json
import math
import os

import numpy as np
from scipy.special import erf

rng = np.random.default_rng(20261121)
OUT = {}


def f32(a):
    return np.asarray(a, dtype=np.float32)


def put(name, a):
    a = np.asarray(a, dtype=np.float64).astype(np.float32)
    OUT[name] = {"shape": list(a.shape), "data": [float(f"{v:.9g}") for v in a.reshape(-1)]}


def rand(*shape, scale=1.0):
    return f32(rng.standard_normal(shape) * scale)


# ---- linear: out = x W^T + b (torch.nn.Linear), W [out, in]
x = rand(5, 48)
w = rand(40, 48, scale=0.2)
b = rand(40, scale=0.1)
put("linear.x", x); put("linear.w", w); put("linear.b", b)
put("linear.out", x.astype(np.float64) @ w.astype(np.float64).T + b)
# f16-rounded and bf16-rounded weights (round to nearest even), for exact-weight checks
w16 = w.astype(np.float16).astype(np.float64)
put("linear.out_w16", x.astype(np.float64) @ w16.T + b)
wb = w.view(np.uint32).astype(np.uint64)
wb = ((wb + 0x7FFF + ((wb >> 16) & 1)) >> 16) << 16  # RNE to bf16
wbf = wb.astype(np.uint32).view(np.float32).astype(np.float64)
put("linear.out_wbf16", x.astype(np.float64) @ wbf.T + b)

# ---- layer norm (torch.nn.LayerNorm, biased variance)
x = rand(6, 80, scale=3.0) + 1.5
g = rand(80, scale=0.5) + 1.0
be = rand(80, scale=0.5)
xd = x.astype(np.float64)
mu = xd.mean(-1, keepdims=True)
var = ((xd - mu) ** 2).mean(-1, keepdims=True)
put("ln.x", x); put("ln.g", g); put("ln.b", be)
put("ln.out", (xd - mu) / np.sqrt(var + 1e-5) * g + be)

# ---- softmax / log_softmax over the last dim
x = rand(4, 33, scale=4.0)
xd = x.astype(np.float64)
e = np.exp(xd - xd.max(-1, keepdims=True))
put("softmax.x", x)
put("softmax.out", e / e.sum(-1, keepdims=True))
put("log_softmax.out", xd - xd.max(-1, keepdims=True) - np.log(e.sum(-1, keepdims=True)))

# ---- activations
x = f32(np.concatenate([np.linspace(-9, 9, 181), rand(59, scale=2.0)]))
xd = x.astype(np.float64)
put("act.x", x)
put("act.gelu", 0.5 * xd * (1.0 + erf(xd / math.sqrt(2.0))))  # torch gelu, approximate='none'
put("act.erf", erf(xd))
put("act.silu", xd / (1.0 + np.exp(-xd)))
put("act.relu", np.maximum(xd, 0.0))
put("act.sigmoid", 1.0 / (1.0 + np.exp(-xd)))
x = rand(3, 2 * 7)
xd = x.astype(np.float64)
put("glu.x", x)
put("glu.out", xd[:, :7] / (1.0 + np.exp(-xd[:, 7:])))  # torch glu(dim=-1): a * sigmoid(b)


# ---- conv1d (torch.nn.Conv1d), x given time-major [T, Cin], weight [Cout, Cin, K]
def conv1d_ref(x_tc, w, b, stride, pad):
    t, cin = x_tc.shape
    cout, _, k = w.shape
    xp = np.zeros((t + 2 * pad, cin))
    xp[pad:pad + t] = x_tc
    tout = (t + 2 * pad - k) // stride + 1
    out = np.zeros((tout, cout))
    for o in range(tout):
        win = xp[o * stride:o * stride + k]  # [K, Cin]
        out[o] = np.einsum("kc,ock->o", win, w) + b
    return out


x = rand(17, 12)
w = rand(10, 12, 3, scale=0.3)
b = rand(10, scale=0.1)
put("conv1d.x", x); put("conv1d.w", w); put("conv1d.b", b)
put("conv1d.s1p1", conv1d_ref(x.astype(np.float64), w.astype(np.float64), b, 1, 1))
put("conv1d.s2p1", conv1d_ref(x.astype(np.float64), w.astype(np.float64), b, 2, 1))


# ---- conv2d (torch.nn.Conv2d without batch), x [Cin, H, W], w [Cout, Cin, 3, 3], stride 2
def conv2d_ref(x, w, b, s, p):
    cin, h, wd = x.shape
    cout, _, kh, kw = w.shape
    xp = np.zeros((cin, h + 2 * p, wd + 2 * p))
    xp[:, p:p + h, p:p + wd] = x
    ho = (h + 2 * p - kh) // s + 1
    wo = (wd + 2 * p - kw) // s + 1
    out = np.zeros((cout, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * s:i * s + kh, j * s:j * s + kw]
            out[:, i, j] = np.einsum("cij,ocij->o", patch, w) + b
    return out


x = rand(2, 15, 11)
w = rand(4, 2, 3, 3, scale=0.3)
b = rand(4, scale=0.1)
put("conv2d.x", x); put("conv2d.w", w); put("conv2d.b", b)
put("conv2d.s2p0", conv2d_ref(x.astype(np.float64), w.astype(np.float64), b, 2, 0))
put("conv2d.s2p1", conv2d_ref(x.astype(np.float64), w.astype(np.float64), b, 2, 1))

# ---- depthwise conv1d (torch Conv1d groups=C), x [T, C], w [C, 1, K], symmetric pad (K-1)/2
x = rand(13, 6)
w = rand(6, 5, scale=0.4)
b = rand(6, scale=0.1)
xd = x.astype(np.float64)
xp = np.zeros((13 + 4, 6)); xp[2:15] = xd
out = np.zeros((13, 6))
for t in range(13):
    out[t] = (xp[t:t + 5].T * w).sum(-1) + b
put("dwconv.x", x); put("dwconv.w", w); put("dwconv.b", b); put("dwconv.out", out)

# ---- batch norm folding: conv(x) then BN(eval) == conv'(x)
w = rand(5, 3, 2)
cb = rand(5)
gamma = rand(5) + 1.0
beta = rand(5)
mean = rand(5)
varr = f32(rng.uniform(0.5, 2.0, 5))
sc = gamma.astype(np.float64) / np.sqrt(varr.astype(np.float64) + 1e-5)
put("bn.w", w); put("bn.cb", cb); put("bn.gamma", gamma); put("bn.beta", beta)
put("bn.mean", mean); put("bn.var", varr)
put("bn.w_folded", w.astype(np.float64) * sc[:, None, None])
put("bn.b_folded", (cb - mean.astype(np.float64)) * sc + beta)

# ---- positional encodings
# openai-whisper model.py sinusoids(length, channels)
L, C = 40, 16
inc = math.log(10000) / (C // 2 - 1)
inv = np.exp(-inc * np.arange(C // 2))
st = np.arange(L)[:, None] * inv[None, :]
put("pe.whisper", np.concatenate([np.sin(st), np.cos(st)], axis=1))


# ESPnet PositionalEncoding: pe[:, 0::2] = sin(pos*div), pe[:, 1::2] = cos(pos*div)
def espnet_pe(positions, d):
    div = np.exp(np.arange(0, d, 2, dtype=np.float64) * -(math.log(10000.0) / d))
    pe = np.zeros((len(positions), d))
    pe[:, 0::2] = np.sin(positions[:, None] * div)
    pe[:, 1::2] = np.cos(positions[:, None] * div)
    return pe


put("pe.sinusoidal", espnet_pe(np.arange(30, dtype=np.float64), 12))
# ESPnet RelPositionalEncoding: flip(pe_positive) ++ pe_negative[1:], positions T-1 .. -(T-1)
T = 9
pos = np.arange(T, dtype=np.float64)
pe_pos = np.flip(espnet_pe(pos, 12), 0)
pe_neg = espnet_pe(-pos, 12)[1:]
put("pe.rel", np.concatenate([pe_pos, pe_neg], 0))


# ---- ESPnet rel_shift (zero pad + view trick)
def rel_shift(x):  # x [..., T, 2T-1]
    *lead, t1, t2 = x.shape
    zero = np.zeros((*lead, t1, 1))
    xp = np.concatenate([zero, x], -1).reshape(*lead, t2 + 1, t1)
    return xp[..., 1:, :].reshape(*lead, t1, t2)[..., : t2 // 2 + 1]


x = rand(5, 9)
put("relshift.x", x); put("relshift.out", rel_shift(x.astype(np.float64)))


# ---- attention over [T, H*D]
def mha(q, k, v, h, d, mask=None, causal=False):
    tq, tk = q.shape[0], k.shape[0]
    out = np.zeros((tq, h * d))
    for hh in range(h):
        s = q[:, hh * d:(hh + 1) * d] @ k[:, hh * d:(hh + 1) * d].T / math.sqrt(d)
        if mask is not None:
            s = s + mask
        if causal:
            qi = np.arange(tq)[:, None] + (tk - tq)
            s = np.where(np.arange(tk)[None, :] > qi, -np.inf, s)
        e = np.exp(s - s.max(-1, keepdims=True))
        out[:, hh * d:(hh + 1) * d] = (e / e.sum(-1, keepdims=True)) @ v[:, hh * d:(hh + 1) * d]
    return out


H, D = 2, 8
tq, tk = 5, 100  # tk > one key block of 64, to exercise the online softmax
q = rand(tq, H * D); k = rand(tk, H * D); v = rand(tk, H * D)
qd, kd, vd = (a.astype(np.float64) for a in (q, k, v))
put("attn.q", q); put("attn.k", k); put("attn.v", v)
put("attn.plain", mha(qd, kd, vd, H, D))
put("attn.causal", mha(qd, kd, vd, H, D, causal=True))
mask = np.where(rng.uniform(size=(tq, tk)) < 0.3, -np.inf, 0.0)
mask[:, 0] = 0.0
put("attn.mask", np.where(np.isinf(mask), -1e30, mask)); put("attn.masked", mha(qd, kd, vd, H, D, mask=mask))
# large-magnitude scores: the running max must grow across key blocks
ks = f32(kd * np.linspace(0.1, 6.0, tk)[:, None])
put("attn.k_scaled", ks); put("attn.plain_scaled", mha(qd, ks.astype(np.float64), vd, H, D))


# ESPnet RelPositionMultiHeadedAttention (new style with rel_shift, and legacy without)
def rel_mha(q, k, v, p, u, vb, h, d, shift):
    t = q.shape[0]
    out = np.zeros((t, h * d))
    for hh in range(h):
        sl = slice(hh * d, (hh + 1) * d)
        ac = (q[:, sl] + u[sl]) @ k[:, sl].T
        bd = (q[:, sl] + vb[sl]) @ p[:, sl].T
        if shift:
            bd = rel_shift(bd)
        s = (ac + bd) / math.sqrt(d)
        e = np.exp(s - s.max(-1, keepdims=True))
        out[:, sl] = (e / e.sum(-1, keepdims=True)) @ v[:, sl]
    return out


T = 40
q = rand(T, H * D); k = rand(T, H * D); v = rand(T, H * D)
p = rand(2 * T - 1, H * D); u = rand(H * D, scale=0.5); vb = rand(H * D, scale=0.5)
put("rel.q", q); put("rel.k", k); put("rel.v", v); put("rel.p", p); put("rel.u", u); put("rel.vb", vb)
args = [a.astype(np.float64) for a in (q, k, v, p, u, vb)]
put("rel.shift", rel_mha(*args, H, D, True))
args_legacy = list(args)
args_legacy[3] = args[3][:T]
put("rel.legacy", rel_mha(*args_legacy, H, D, False))

# ---- batched matmul
a = rand(3, 4, 6); bb = rand(3, 5, 6)
put("bmm.a", a); put("bmm.b", bb)
put("bmm.out_nt", np.einsum("bmk,bnk->bmn", a.astype(np.float64), bb.astype(np.float64)))
bt = f32(np.transpose(bb, (0, 2, 1)).copy())
put("bmm.b_kn", bt)

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
path = os.path.join(root, "engine", "tests", "fixtures", "ops.json")
os.makedirs(os.path.dirname(path), exist_ok=True)
with open(path, "w") as f:
    json.dump(OUT, f, separators=(",", ":"))
print(f"wrote {path}: {len(OUT)} arrays, {os.path.getsize(path)} bytes")
