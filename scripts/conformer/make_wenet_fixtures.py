#!/usr/bin/env python3
"""Golden fixtures for hark's WeNet/ESPnet conformer path, produced by ESPnet's own classes.

Reference code: PyPI `espnet` (espnet2.asr.encoder.conformer_encoder.ConformerEncoder,
espnet2.asr.decoder.transformer_decoder.TransformerDecoder, espnet2.asr.ctc.CTC), installed
or unpacked with `pip download espnet --no-deps` (needs `typeguard`). WeNet itself is not on
PyPI; its modules share ESPnet's state-dict layout, and its one numerical difference, the
relative-position attention WITHOUT rel_shift over positions 0..T-1
(wenet/transformer/attention.py, wenet/transformer/embedding.py), is obtained here from
ESPnet's classes by replacing `rel_shift` with the identity and the 2T-1 position table with
the plain sinusoidal table (config "wenet_*"). WeNet's decoding (CTC prefix beam search and
attention rescoring, wenet/transformer/search.py) is re-implemented in ctc_search.py from its
description; hypotheses are scored with ESPnet's decoder.

For each config: build a small random-weight model (weights rounded to f16-representable
values; BatchNorm with random running statistics), save it as a WeNet experiment directory
(final.pt = state_dict with encoder.global_cmvn buffers, train.yaml, global_cmvn JSON,
units.txt, bpe.model), convert it with scripts/convert_wenet.py into
models/tests/fixtures/conformer_wenet/<name>/, run the reference on an AN4 test file and
write golden.safetensors (features, subsampling output, every block, encoder output, decoder
logits of a fixed prefix, CTC log-probabilities) and golden.json (CTC prefix n-best and
attention-rescoring scores).

Run from the repository root:  PYTHONPATH=/tmp/espnet_pkg python3 scripts/conformer/make_wenet_fixtures.py
"""

import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
for p in ("/tmp/espnet_pkg", "/tmp/fireredasr_pkg"):
    if os.path.isdir(p):
        sys.path.append(p)

import convert_wenet  # noqa: E402
from conformer.ctc_search import attention_rescoring, best, ctc_prefix_beam_search  # noqa: E402
from convert_fireredasr import write_safetensors  # noqa: E402
from espnet2.asr.ctc import CTC  # noqa: E402
from espnet2.asr.decoder.transformer_decoder import TransformerDecoder  # noqa: E402
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder  # noqa: E402
from espnet.nets.pytorch_backend.transformer.embedding import PositionalEncoding  # noqa: E402
from fireredasr.data.asr_feat import KaldifeatFbank  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "data", "an4")
OUT = os.path.join(ROOT, "models", "tests", "fixtures", "conformer_wenet")

CONFIGS = [
    # WeNet: BatchNorm conv module, no rel_shift, x4 subsampling, odd kernel 15, Swish.
    dict(name="wenet_bn_k15", flavour="wenet", input_layer="conv2d", heads=4, enc_blocks=2, dec_blocks=2,
         kernel=15, activation="swish", wav="an392-mjwl-b", beam=4, ctc_weight=0.1),
    # ESPnet latest rel_pos (rel_shift over 2T-1 positions), x6 subsampling, kernel 7, ReLU.
    dict(name="espnet_latest_sub6_k7", flavour="latest", input_layer="conv2d6", heads=2, enc_blocks=2,
         dec_blocks=1, kernel=7, activation="relu", wav="an402-mdms2-b", beam=3, ctc_weight=0.1),
    # ESPnet legacy rel_pos (reversed table + old rel_shift), x8 subsampling, kernel 31.
    dict(name="espnet_legacy_sub8_k31", flavour="legacy", input_layer="conv2d8", heads=4, enc_blocks=1,
         dec_blocks=1, kernel=31, activation="swish", wav="an392-mjwl-b", beam=3, ctc_weight=0.1),
]
D_MODEL = 16
LINEAR_UNITS = 32
PREFIX_LEN = 6


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
    prefix = os.path.join(tmp, "bpe")
    spm.SentencePieceTrainer.train(
        input=txt, model_prefix=prefix, vocab_size=40, model_type="bpe", character_coverage=1.0,
        bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2, normalization_rule_name="identity")
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) != "<unk>"]
    return prefix + ".model", ["<blank>", "<unk>"] + pieces + ["<sos/eos>"]


def cmvn_json(fbank):
    names = sorted(f for f in os.listdir(os.path.join(SHARED, "train")) if f.endswith(".flac"))[:8]
    feats = []
    for n in names:
        wav, sr = sf.read(os.path.join(SHARED, "train", n), dtype="int16")
        feats.append(fbank((sr, wav.astype(np.float32))))
    x = np.concatenate(feats).astype(np.float64)
    return {"mean_stat": x.sum(0).tolist(), "var_stat": (x * x).sum(0).tolist(), "frame_num": int(x.shape[0])}


def randomize(modules, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in modules:
            for k, v in m.state_dict().items():
                if not v.is_floating_point() or k.endswith(".pe"):
                    continue
                if k.endswith("running_mean"):
                    new = 0.2 * torch.randn(v.shape, generator=g)
                elif k.endswith("running_var"):
                    new = 0.5 + torch.rand(v.shape, generator=g)
                elif "norm" in k and k.endswith(".weight"):
                    new = 1.0 + 0.2 * torch.randn(v.shape, generator=g)
                elif k.endswith(".bias") or "pos_bias" in k:
                    new = 0.1 * torch.randn(v.shape, generator=g)
                elif k.endswith("embed.0.weight"):
                    new = torch.randn(v.shape, generator=g)
                else:
                    fan_in = int(np.prod(v.shape[1:])) if v.dim() > 1 else v.shape[0]
                    new = torch.randn(v.shape, generator=g) / np.sqrt(max(fan_in, 1))
                v.copy_(new.half().float())


class WenetRelPos(torch.nn.Module):
    """WeNet's RelPositionalEncoding: x·√d and the plain table for positions 0..T-1."""

    def __init__(self, d):
        super().__init__()
        self.xscale = math.sqrt(d)
        self.table = PositionalEncoding(d, 0.0, 5000)

    def forward(self, x):
        return x * self.xscale, self.table.pe[:, : x.size(1)]


def make_wenet(enc):
    """Turns an ESPnet 'latest' rel_pos encoder into WeNet's no-rel_shift variant."""
    d = enc.output_size()
    embed = enc.embed
    if isinstance(embed.out, torch.nn.Sequential):
        embed.out[1] = WenetRelPos(d)
    else:
        embed.pos_enc = WenetRelPos(d)
    for layer in enc.encoders:
        layer.self_attn.rel_shift = lambda x: x


def espnet_decoder_score(decoder, enc_out, sos, eos):
    """score_fn for ctc_search.attention_rescoring with ESPnet's decoder."""

    def score(hyp):
        ys = torch.tensor([[sos] + hyp])
        logits, _ = decoder(enc_out, torch.tensor([enc_out.size(1)]), ys, torch.tensor([ys.size(1)]))
        lp = torch.log_softmax(logits, dim=-1)[0].numpy()
        total = 0.0
        for j, w in enumerate(hyp):
            total += float(lp[j][w])
        return total + float(lp[len(hyp)][eos])

    return score


def make(cfg, tmp, spm_model, units, fbank, cmvn):
    name = cfg["name"]
    src = os.path.join(tmp, name)
    os.makedirs(src, exist_ok=True)
    vocab = len(units)
    enc_conf = dict(output_size=D_MODEL, attention_heads=cfg["heads"], linear_units=LINEAR_UNITS,
                    num_blocks=cfg["enc_blocks"], dropout_rate=0.0, positional_dropout_rate=0.0,
                    attention_dropout_rate=0.0, input_layer=cfg["input_layer"], normalize_before=True,
                    macaron_style=True, use_cnn_module=True, cnn_module_kernel=cfg["kernel"],
                    activation_type=cfg["activation"], pos_enc_layer_type="rel_pos",
                    selfattention_layer_type="rel_selfattn")
    espnet_conf = dict(enc_conf, rel_pos_type="legacy" if cfg["flavour"] == "legacy" else "latest")
    torch.manual_seed(0)
    enc = ConformerEncoder(80, **espnet_conf)
    dec = TransformerDecoder(vocab, D_MODEL, attention_heads=cfg["heads"], linear_units=LINEAR_UNITS,
                             num_blocks=cfg["dec_blocks"], dropout_rate=0.0, positional_dropout_rate=0.0,
                             self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0)
    ctc = CTC(vocab, D_MODEL)
    if cfg["flavour"] == "wenet":
        make_wenet(enc)
    randomize([enc, dec, ctc], seed=len(name))
    for m in (enc, dec, ctc):
        m.eval()

    # WeNet experiment directory.
    mean = np.asarray(cmvn["mean_stat"]) / cmvn["frame_num"]
    var = np.maximum(np.asarray(cmvn["var_stat"]) / cmvn["frame_num"] - mean * mean, 1e-20)
    cm_mean = torch.from_numpy(mean).float()
    cm_istd = torch.from_numpy(1.0 / np.sqrt(var)).float()
    sd = {}
    sd["encoder.global_cmvn.mean"] = cm_mean
    sd["encoder.global_cmvn.istd"] = cm_istd
    sd.update({"encoder." + k: v for k, v in enc.state_dict().items()})
    sd.update({"decoder." + k: v for k, v in dec.state_dict().items()})
    sd.update({"ctc." + k: v for k, v in ctc.state_dict().items()})
    torch.save(sd, os.path.join(src, "final.pt"))
    yaml_enc = espnet_conf if cfg["flavour"] != "wenet" else dict(enc_conf, norm_eps=1e-12)
    import yaml

    with open(os.path.join(src, "train.yaml"), "w") as f:
        yaml.safe_dump({
            "input_dim": 80, "output_dim": vocab, "encoder": "conformer", "encoder_conf": yaml_enc,
            "decoder": "transformer",
            "decoder_conf": dict(attention_heads=cfg["heads"], linear_units=LINEAR_UNITS,
                                 num_blocks=cfg["dec_blocks"], dropout_rate=0.0, positional_dropout_rate=0.0,
                                 self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0),
            "model_conf": {"ctc_weight": cfg["ctc_weight"], "lsm_weight": 0.1},
            "tokenizer_conf": {"bpe_path": "bpe.model"},
            "cmvn_file": "global_cmvn", "is_json_cmvn": True,
        }, f)
    with open(os.path.join(src, "global_cmvn"), "w") as f:
        json.dump(cmvn, f)
    with open(os.path.join(src, "units.txt"), "w", encoding="utf8") as f:
        for i, t in enumerate(units):
            f.write(f"{t} {i}\n")
    shutil.copyfile(spm_model, os.path.join(src, "bpe.model"))

    out = os.path.join(OUT, name)
    if os.path.isdir(out):
        shutil.rmtree(out)
    convert_wenet.convert(src, out, dtype="f16")

    wav, sr = sf.read(os.path.join(SHARED, "test", cfg["wav"] + ".flac"), dtype="int16")
    feats = fbank((sr, wav.astype(np.float32)))
    x = (torch.from_numpy(feats).float() - cm_mean) * cm_istd
    x = x.unsqueeze(0)
    golden = {"feats": x[0].numpy()}
    sos = eos = vocab - 1
    with torch.no_grad():
        stage = {}
        out_lin = enc.embed.out[0] if isinstance(enc.embed.out, torch.nn.Sequential) else enc.embed.out
        hooks = [out_lin.register_forward_hook(lambda m, i, o: stage.__setitem__("sub", o))]
        for li, layer in enumerate(enc.encoders):
            def hook(m, i, o, li=li):
                y = o[0]
                stage[f"block{li}"] = y[0] if isinstance(y, tuple) else y
            hooks.append(layer.register_forward_hook(hook))
        enc_out, olens, _ = enc(x, torch.tensor([x.shape[1]]))
        for h in hooks:
            h.remove()
        golden["subsampling"] = stage["sub"][0].numpy()
        for li in range(len(enc.encoders)):
            golden[f"encoder.block{li}"] = stage[f"block{li}"][0].numpy()
        golden["encoder_out"] = enc_out[0].numpy()

        prefix = [sos] + [2 + (7 * i) % (vocab - 3) for i in range(PREFIX_LEN - 1)]
        logits, _ = dec(enc_out, olens, torch.tensor([prefix]), torch.tensor([len(prefix)]))
        golden["decoder.prefix"] = np.array(prefix, dtype=np.int32)
        golden["decoder.logits"] = logits[0].numpy()

        logp = ctc.log_softmax(enc_out)[0]
        golden["ctc.log_probs"] = logp.numpy()
        nbest = ctc_prefix_beam_search(logp, cfg["beam"])
        rescored = attention_rescoring(espnet_decoder_score(dec, enc_out, sos, eos), nbest, cfg["ctc_weight"])
    write_safetensors(os.path.join(out, "golden.safetensors"),
                      {k: np.ascontiguousarray(v) for k, v in golden.items()})
    top = best(rescored)
    meta = {
        "generator": "scripts/conformer/make_wenet_fixtures.py",
        "reference": "espnet 202511 (espnet2 ConformerEncoder / TransformerDecoder / CTC); WeNet search.py semantics",
        "flavour": cfg["flavour"],
        "wav": f"../shared/data/an4/test/{cfg['wav']}.flac",
        "beam": cfg["beam"],
        "ctc_weight": cfg["ctc_weight"],
        "ctc_nbest": [{"tokens": h, "score": s} for h, s in nbest],
        "rescored": [{"tokens": h, "score": s} for h, s in rescored],
        "best": rescored[top][0],
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(name, "T", enc_out.shape[1], "ctc nbest", [h for h, _ in nbest], "best", meta["best"])


def main():
    fbank = KaldifeatFbank(num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        spm_model, units = train_spm(tmp)
        cmvn = cmvn_json(fbank)
        for cfg in CONFIGS:
            make(cfg, tmp, spm_model, units, fbank, cmvn)


if __name__ == "__main__":
    main()
