"""Streaming pieces for FireRedASR's conformer encoder (WeNet U2's recipe, Zhang et al. 2020):
causal depthwise convolutions and chunk attention masks.

* Causal convolution: each convolution module's depthwise Conv1d pads kernel-1 zeros on the
  left and none on the right (WeNet `causal: true`), so frame t depends on frames <= t only.
  The module keeps its parameter names (a forward pre-hook pads the input), so a causal model
  saves and converts like any other; its checkpoint `args.causal_conv = True` says so
  (scripts/convert_fireredasr.py writes it to config.json, hark reads it).
* Chunk attention mask: with chunk size c (encoder frames, 40 ms each after 4x subsampling),
  frame i attends to every frame j < (i // c + 1) * c: its own chunk and all earlier ones.
  Together with causal convolutions this makes the encoder output of a chunk independent of
  later audio, so decoding chunk by chunk gives the same encoder output as the masked
  full-utterance forward used here (the subsampling front end looks 6 input frames = 60 ms
  ahead, as in WeNet).
* Dynamic chunk training (WeNet's `use_dynamic_chunk`): per batch, full context with
  probability ~1/2, else a chunk size drawn from 1..max_chunk, so one model decodes at any
  chunk size.

Used by scripts/train_an4.py (training), scripts/an4/ref_decode.py (reference decode) and
scripts/conformer/make_fixtures.py (hark's golden fixtures).
"""

import torch
import torch.nn.functional as F


def chunk_mask(t, chunk):
    """(t, t) bool: True where query i may attend to key j (j in i's chunk or an earlier one);
    chunk <= 0 means full context."""
    if chunk <= 0 or chunk >= t:
        return torch.ones(t, t, dtype=torch.bool)
    ends = (torch.arange(t) // chunk + 1) * chunk
    return torch.arange(t).unsqueeze(0) < ends.unsqueeze(1)


def make_causal(encoder):
    """Turns every convolution module of a FireRedASR ConformerEncoder causal in place (left
    padding kernel-1, none on the right). Parameter names and shapes are unchanged."""
    for block in encoder.layer_stack:
        conv = block.conv.depthwise_conv
        if getattr(conv, "_causal", False):
            continue
        k = conv.kernel_size[0]
        conv.padding = (0,)
        conv.register_forward_pre_hook(lambda _m, inp, k=k: (F.pad(inp[0], (k - 1, 0)),) + tuple(inp[1:]))
        conv._causal = True
    return encoder


def causal_from_centred(weight):
    """Depthwise kernels for a causal convolution from a centred one's ([C, 1, K]): the taps
    on the current and past frames move to the end of the kernel, the future taps are dropped,
    so the causal module starts as the centred one with its look-ahead removed."""
    k = weight.shape[-1]
    c = (k - 1) // 2
    out = torch.zeros_like(weight)
    out[..., k - 1 - c:] = weight[..., :c + 1]
    return out


def encode(encoder, x, xlens, chunk=0):
    """FireRedASR's ConformerEncoder.forward with a chunk attention mask (chunk <= 0: exactly
    the encoder's own forward). Returns (output, lengths, padding mask) like the encoder."""
    if chunk <= 0:
        return encoder(x, xlens)
    x = F.pad(x, (0, 0, 0, encoder.input_preprocessor.context - 1), "constant", 0.0)
    pad_mask = encoder.padding_position_is_0(x, xlens)
    h, lens, pad_mask = encoder.input_preprocessor(x, pad_mask)
    t = h.shape[1]
    att_mask = pad_mask.bool() & chunk_mask(t, chunk).unsqueeze(0)
    h = encoder.dropout(h)
    pos_emb = encoder.dropout(encoder.positional_encoding(h))
    for layer in encoder.layer_stack:
        h = layer(h, pos_emb, slf_attn_mask=att_mask.to(torch.uint8), pad_mask=pad_mask)
    return h, lens, pad_mask


def draw_chunk(rng, t, max_chunk=25):
    """WeNet's dynamic chunk size for a batch of t encoder frames: 0 (full context) when a
    uniform draw from 1..t lands in the upper half, else 1..max_chunk."""
    r = rng.randint(1, max(t, 1))
    if r > t // 2:
        return 0
    return r % max_chunk + 1
