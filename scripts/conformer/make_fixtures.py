#!/usr/bin/env python3
"""Golden fixtures for hark's conformer_aed family, produced by FireRedASR's own code.

For each config below this script
  1. builds a tiny random-weight FireRedAsrAed with the reference classes (weights rounded to
     f16-representable values, so the f16-stored fixture is lossless and the Rust f32 path must
     match the reference to f32 rounding),
  2. saves it in the real checkpoint layout (model.pth.tar with args + model_state_dict,
     cmvn.ark, dict.txt, a SentencePiece BPE model trained here on AN4 train text),
  3. runs scripts/convert_fireredasr.py into models/tests/fixtures/conformer/<name>/,
  4. runs the reference on the fbank (FireRedASR's KaldifeatFbank + CMVN) of an AN4 test file
     and writes golden.safetensors (per-stage outputs) + golden.json (n-best, scores, text).

Needs: torch, sentencepiece, kaldiio, kaldi_native_fbank, soundfile and FireRedASR's python
package (pip install --no-deps fireredasr==0.0.2, or PYTHONPATH pointing at an unpacked copy).
Run from the repository root:  python3 scripts/conformer/make_fixtures.py
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
for p in ("/tmp/fireredasr_pkg",):
    if os.path.isdir(p):
        sys.path.append(p)

sys.path.insert(0, os.path.join(ROOT, "scripts", "an4"))
import an4_data  # noqa: E402
import convert_fireredasr  # noqa: E402
from conformer.streaming import encode, make_causal  # noqa: E402
from fireredasr.data.asr_feat import CMVN, KaldifeatFbank  # noqa: E402
from fireredasr.models.fireredasr_aed import FireRedAsrAed  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "data", "an4")
OUT = os.path.join(ROOT, "models", "tests", "fixtures", "conformer")

CONFIGS = [
    # FireRedASR-like: 2+2 layers, 4 heads, odd kernel 15.
    dict(name="firered_d32_k15", d_model=32, n_head=4, n_layers_enc=2, n_layers_dec=2, kernel_size=15,
         wav="an392-mjwl-b", beam=3, nbest=3, softmax_smoothing=1.25, length_penalty=0.6, eos_penalty=0.9),
    # Different heads / kernel, longer utterance, default decoding options.
    dict(name="firered_d32_h2_k7", d_model=32, n_head=2, n_layers_enc=1, n_layers_dec=1, kernel_size=7,
         wav="an402-mdms2-b", beam=2, nbest=2, softmax_smoothing=1.0, length_penalty=0.0, eos_penalty=1.0),
    # Streaming: causal convolutions (scripts/conformer/streaming.py); the encoder and the
    # search are also run with a chunk attention mask of 4 encoder frames (160 ms).
    dict(name="firered_causal_d32_k7", d_model=32, n_head=4, n_layers_enc=2, n_layers_dec=2, kernel_size=7,
         causal=True, chunks=[4], wav="an392-mjwl-b", beam=3, nbest=3, softmax_smoothing=1.25,
         length_penalty=0.6, eos_penalty=0.9),
]

SPECIALS = ["<blank>", "<unk>", "<pad>", "<sos>", "<eos>"]
CJK = list("你好世界语音识别测试")
PREFIX_LEN = 6
EOS_PULL = float(os.environ.get("EOS_PULL", "2.5"))


def train_spm(tmp):
    import sentencepiece as spm

    lines = []
    with open(os.path.join(SHARED, "train", "text")) as f:
        for line in f:
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2:
                lines.append(parts[1].upper())
    txt = os.path.join(tmp, "an4_train.txt")
    with open(txt, "w") as f:
        f.write("\n".join(lines) + "\n")
    prefix = os.path.join(tmp, "train_bpe60")
    spm.SentencePieceTrainer.train(
        input=txt, model_prefix=prefix, vocab_size=60, model_type="bpe", character_coverage=1.0,
        bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
        normalization_rule_name="identity")
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) != "<unk>"]
    return prefix + ".model", SPECIALS + CJK + pieces


def load_int16(name):
    wav, sr = sf.read(os.path.join(SHARED, "test", name + ".flac"), dtype="int16")
    return sr, wav


def write_cmvn(path, fbank):
    """Global CMVN stats over a few AN4 train files, in Kaldi's binary matrix format (the AN4
    recipe's writer)."""
    names = sorted(f for f in os.listdir(os.path.join(SHARED, "train")) if f.endswith(".flac"))[:8]
    feats = []
    for n in names:
        wav, sr = sf.read(os.path.join(SHARED, "train", n), dtype="int16")
        feats.append(fbank((sr, wav.astype(np.float32))))
    an4_data.write_cmvn(path, feats)


def randomize(model, seed):
    """Non-degenerate random weights, rounded to f16-representable values."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    with torch.no_grad():
        for k, v in sd.items():
            if k.endswith("positional_encoding.pe"):
                continue
            if "norm" in k and k.endswith(".weight"):
                new = 1.0 + 0.2 * torch.randn(v.shape, generator=g)
            elif k.endswith(".bias") or "pos_bias" in k:
                new = 0.1 * torch.randn(v.shape, generator=g)
            elif k == "decoder.tgt_word_emb.weight":
                new = torch.randn(v.shape, generator=g)
            else:
                fan_in = int(np.prod(v.shape[1:])) if v.dim() > 1 else v.shape[0]
                new = torch.randn(v.shape, generator=g) / np.sqrt(max(fan_in, 1))
            v.copy_(new.half().float())
        # Make <eos> reachable so beams finish at different steps: bias the final LayerNorm
        # towards the <eos> embedding row.
        emb = model.decoder.tgt_word_emb.weight
        eos = model.decoder.eos_id
        model.decoder.layer_norm_out.bias.copy_((EOS_PULL * emb[eos] / emb[eos].norm()).half().float())
    model.decoder.tgt_word_prj.weight = model.decoder.tgt_word_emb.weight


class TopkRecorder:
    """Records torch.topk results (the last call of batch_beam_search is the n-best selection)."""

    def __init__(self):
        self.calls = []
        self.orig = torch.topk

    def __enter__(self):
        def rec(*a, **kw):
            r = self.orig(*a, **kw)
            self.calls.append((r[0].clone(), r[1].clone()))
            return r

        torch.topk = rec
        return self

    def __exit__(self, *exc):
        torch.topk = self.orig


def make(cfg, tmp, spm_model, tokens, fbank):
    name = cfg["name"]
    src = os.path.join(tmp, name)
    os.makedirs(src, exist_ok=True)
    args = argparse.Namespace(
        idim=80, odim=len(tokens), d_model=cfg["d_model"], n_head=cfg["n_head"],
        n_layers_enc=cfg["n_layers_enc"], n_layers_dec=cfg["n_layers_dec"], kernel_size=cfg["kernel_size"],
        pe_maxlen=5000, sos_id=SPECIALS.index("<sos>"), eos_id=SPECIALS.index("<eos>"),
        pad_id=SPECIALS.index("<pad>"), residual_dropout=0.1, dropout_rate=0.1)
    if cfg.get("causal"):
        args.causal_conv = True
    torch.manual_seed(0)
    model = FireRedAsrAed.from_args(args)
    if cfg.get("causal"):
        make_causal(model.encoder)
    randomize(model, seed=len(name))
    model.eval()
    torch.save({"args": args, "model_state_dict": model.state_dict()}, os.path.join(src, "model.pth.tar"))
    write_cmvn(os.path.join(src, "cmvn.ark"), fbank)
    with open(os.path.join(src, "dict.txt"), "w", encoding="utf8") as f:
        for i, t in enumerate(tokens):
            f.write(f"{t} {i}\n")
    import shutil

    shutil.copyfile(spm_model, os.path.join(src, "train_bpe60.model"))

    out = os.path.join(OUT, name)
    convert_fireredasr.convert(src, out, dtype="f16")

    # Reference features: FireRedASR's fbank + CMVN on int16-scale samples.
    sr, wav = load_int16(cfg["wav"])
    feats = CMVN(os.path.join(src, "cmvn.ark"))(fbank((sr, wav.astype(np.float32))))
    x = torch.from_numpy(feats).float().unsqueeze(0)
    lengths = torch.tensor([x.shape[1]])

    golden = {"feats": x[0].numpy()}
    enc = model.encoder
    with torch.no_grad():
        stage = {}
        hooks = [enc.input_preprocessor.register_forward_hook(lambda m, i, o: stage.__setitem__("sub", o[0]))]
        for li, layer in enumerate(enc.layer_stack):
            hooks.append(layer.register_forward_hook(
                lambda m, i, o, li=li: stage.__setitem__(f"block{li}", o)))
        enc_out, _, enc_mask = enc(x, lengths)
        for h in hooks:
            h.remove()
        golden["subsampling"] = stage["sub"][0].numpy()
        for li in range(len(enc.layer_stack)):
            golden[f"encoder.block{li}"] = stage[f"block{li}"][0].numpy()
        golden["encoder_out"] = enc_out[0].numpy()
        golden["encoder_mask"] = enc_mask[0, 0].int().numpy().astype(np.int32)

        # Teacher-forced decoder logits for a fixed prefix (sos + tokens).
        dec = model.decoder
        prefix = [args.sos_id] + [5 + (7 * i) % (len(tokens) - 5) for i in range(PREFIX_LEN - 1)]
        ys = torch.tensor([prefix])
        tgt_mask = dec.ignored_target_position_is_0(ys, dec.pad_id)
        h = dec.tgt_word_emb(ys) * dec.scale + dec.positional_encoding(ys)
        for layer in dec.layer_stack:
            h = layer(h, enc_out, tgt_mask, enc_mask, cache=None)
        logits = dec.tgt_word_prj(dec.layer_norm_out(h))
        golden["decoder.prefix"] = np.array(prefix, dtype=np.int32)
        golden["decoder.logits"] = logits[0].numpy()

        results = {}
        for beam, nbest in ((cfg["beam"], cfg["nbest"]), (1, 1)):
            with TopkRecorder() as rec:
                hyps = model.transcribe(x, lengths, beam, nbest, 0, cfg["softmax_smoothing"],
                                        cfg["length_penalty"], cfg["eos_penalty"])
            final_scores = rec.calls[-1][0][0].tolist()  # after the length penalty, before negation
            results[f"beam{beam}"] = {
                "beam_size": beam, "nbest": nbest,
                "hyps": [{"tokens": [int(t) for t in hy["yseq"]], "score": s}
                         for hy, s in zip(hyps[0], final_scores)],
            }

        # Chunk attention masks: every block's output, the encoder output and the beam search
        # over it (FireRedASR's batch_beam_search, as transcribe calls it).
        for c in cfg.get("chunks", []):
            stage.clear()
            hooks = [layer.register_forward_hook(lambda m, i, o, li=li: stage.__setitem__(f"block{li}", o))
                     for li, layer in enumerate(enc.layer_stack)]
            c_out, _, c_mask = encode(enc, x, lengths, chunk=c)
            for h in hooks:
                h.remove()
            for li in range(len(enc.layer_stack)):
                golden[f"chunk{c}.encoder.block{li}"] = stage[f"block{li}"][0].numpy()
            golden[f"chunk{c}.encoder_out"] = c_out[0].numpy()
            with TopkRecorder() as rec:
                hyps = model.decoder.batch_beam_search(c_out, c_mask, cfg["beam"], cfg["nbest"], 0,
                                                       cfg["softmax_smoothing"], cfg["length_penalty"],
                                                       cfg["eos_penalty"])
            final_scores = rec.calls[-1][0][0].tolist()
            results[f"chunk{c}.beam{cfg['beam']}"] = {
                "beam_size": cfg["beam"], "nbest": cfg["nbest"], "chunk": c,
                "hyps": [{"tokens": [int(t) for t in hy["yseq"]], "score": s}
                         for hy, s in zip(hyps[0], final_scores)],
            }
    convert_fireredasr.write_safetensors(os.path.join(out, "golden.safetensors"),
                                         {k: np.ascontiguousarray(v) for k, v in golden.items()})
    meta = {
        "generator": "scripts/conformer/make_fixtures.py",
        "reference": "fireredasr==0.0.2 (FireRedAsrAed.transcribe / ConformerEncoder / TransformerDecoder)",
        "wav": f"../shared/data/an4/test/{cfg['wav']}.flac",
        "softmax_smoothing": cfg["softmax_smoothing"], "length_penalty": cfg["length_penalty"],
        "eos_penalty": cfg["eos_penalty"], "decode_max_len": 0,
        "results": results,
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(name, {k: [h["tokens"] for h in v["hyps"]] for k, v in results.items()})


def tokenizer_golden(spm_model, tokens):
    """Reference tokenizer outputs (FireRedASR's ChineseCharEnglishSpmTokenizer)."""
    from fireredasr.tokenizer.aed_tokenizer import ChineseCharEnglishSpmTokenizer

    d = os.path.join(OUT, "tokenizer")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "dict.txt"), "w", encoding="utf8") as f:
        for i, t in enumerate(tokens):
            f.write(f"{t} {i}\n")
    import shutil

    shutil.copyfile(spm_model, os.path.join(d, "train_bpe60.model"))
    tok = ChineseCharEnglishSpmTokenizer(os.path.join(d, "dict.txt"), os.path.join(d, "train_bpe60.model"))
    texts = ["ENTER TWO NINE EIGHT ONE", "erase u d b e five", "你好 world 世界", "语音识别 test ok。",
             "Hello, there! 测试?", "RUBOUT", "  spaced   out  words  ", "", "ZZZ QXJ"]
    cases = []
    for t in texts:
        pieces, ids = tok.tokenize(t)
        cases.append({"text": t, "pieces": pieces, "ids": ids, "detok": tok.detokenize(ids)})
    with open(os.path.join(d, "golden.json"), "w", encoding="utf8") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", action="append", default=[], help="regenerate only this fixture (repeatable)")
    o = p.parse_args()
    fbank = KaldifeatFbank(num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        spm_model, tokens = train_spm(tmp)
        if not o.only:
            tokenizer_golden(spm_model, tokens)
        for cfg in CONFIGS:
            if not o.only or cfg["name"] in o.only:
                make(cfg, tmp, spm_model, tokens, fbank)


if __name__ == "__main__":
    main()
