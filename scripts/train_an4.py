#!/usr/bin/env python3
"""Train hark's built-in `an4-conformer` (a small FireRedASR-AED) on AN4 with PyTorch on CPU.

The model is FireRedASR's own `FireRedAsrAed` (fireredasr/models/fireredasr_aed.py:
ConformerEncoder + TransformerDecoder) so that the result goes through the converter users use
(`scripts/convert_fireredasr.py`). FireRedASR ships only an inference path; the teacher-forced
training forward below is written here from its submodules. A CTC head on the encoder gives
joint CTC + attention training (ESPnet/WeNet style); it is saved beside the export
(averaged_with_ctc.pt) and shipped through `convert_fireredasr.py --ctc-checkpoint`.

Recipe (what is known to work on small data):
  * 80-bin Kaldi fbank (kaldi-native-fbank, 25/10 ms, povey window, dither 0, snip_edges) on
    int16-scale samples, as FireRedASR's KaldifeatFbank and hark compute it at inference;
    global CMVN from the training split, written as Kaldi cmvn.ark;
  * speed perturbation 0.9/1.0/1.1 (--speeds; resampling; features of every speed are computed
    once and cached), one speed drawn per utterance and epoch;
  * SpecAugment (2 frequency masks <= 27 bins; --time-masks masks of <= --max-time-mask frames,
    each <= 20% of the frames; the shipped model: 4 x <= 15 frames, shorter than a spelled
    letter, so a mask rarely erases a whole label);
  * SentencePiece BPE vocabulary on the upper-cased training text (FireRedASR's tokenizer;
    --vocab 150 makes AN4's frequent words single pieces, so the model cannot spell non-words
    such as "EIGHTHREE" for them, while letters and rare words are still spelled);
  * --init-from: start from another run's weights wherever names and shapes match (the shipped
    model fine-tunes a letter-vocabulary run's encoder and decoder layers with a new vocabulary;
    the embeddings and the CTC head start afresh);
  * optional feature-domain babble (--babble-prob: another training utterance mixed in at
    10-25 dB SNR in the mel power domain) and intermediate CTC (--inter-ctc-layer: the CTC head
    also scores inner encoder layers in training; inference is unchanged);
  * optional streaming (--causal-conv --dynamic-chunk, scripts/conformer/streaming.py): causal
    depthwise convolutions and WeNet U2's dynamic chunk attention masks, so the model also
    decodes chunk by chunk (dev is then scored at full context and with --eval-chunk frames);
  * loss = ctc_weight * CTC + (1 - ctc_weight) * label-smoothed (0.1) attention CE;
  * Adam(0.9, 0.98) with Noam warm-up / inverse-sqrt decay, gradient clipping;
  * a held-out dev split of train (never the test set) for model selection, written as
    <workdir>/dev/manifest.jsonl for `hark eval`; the checkpoints of the best N epochs by dev
    token accuracy are averaged at the end.

The run is wall-clock budgeted (--deadline HH:MM UTC): it stops starting new epochs when the next
one would end after the deadline, then averages and exports. --resume continues from
<workdir>/last.pt.

Usage (from the repository root):
  python3 scripts/train_an4.py --workdir /tmp/an4_train --deadline 17:00 [--resume]
  python3 scripts/train_an4.py --workdir /tmp/an4_train --export-only   # average + export again
  python3 scripts/train_an4.py --workdir /tmp/an4_train --export-only --average-until 40 \
      --export-dir /tmp/an4_cand40        # a candidate beside the run's own export
Then (the CTC head ships: hark decodes by CTC prefix beam search + attention rescoring):
  python3 scripts/convert_fireredasr.py /tmp/an4_train/export models/builtin/an4-conformer --dtype f16 \
      --ctc-checkpoint /tmp/an4_train/averaged_with_ctc.pt
"""

import argparse
import datetime as dt
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
for p in ("/tmp/fireredasr_pkg",):
    if os.path.isdir(p):
        sys.path.append(p)

sys.path.insert(0, os.path.join(HERE, "an4"))
sys.path.insert(0, HERE)

from an4_data import (SPECIALS, SPEEDS, babble, compute_feats, make_batches, pad_feats,  # noqa: E402
                      read_split, spec_augment, train_spm, write_cmvn, write_dev_manifest)
from an4_checkpoints import average_state_dicts, load_init, write_export  # noqa: E402
from conformer.streaming import causal_from_centred, draw_chunk, encode, make_causal  # noqa: E402
from fireredasr.data.asr_feat import CMVN  # noqa: E402
from fireredasr.models.fireredasr_aed import FireRedAsrAed  # noqa: E402
from fireredasr.tokenizer.aed_tokenizer import ChineseCharEnglishSpmTokenizer  # noqa: E402



def log(msg, fh=None):
    line = f"[{dt.datetime.utcnow().strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if fh is not None:
        fh.write(line + "\n")
        fh.flush()


# ----------------------------------------------------------------------------- model


class AedWithCtc(torch.nn.Module):
    """FireRedAsrAed + a CTC head (FireRedASR's checkpoint layout has none: it is exported
    separately in averaged_with_ctc.pt)."""

    def __init__(self, args):
        super().__init__()
        self.aed = FireRedAsrAed.from_args(args)
        if getattr(args, "causal_conv", False):
            make_causal(self.aed.encoder)
        self.ctc = torch.nn.Linear(args.d_model, args.odim)
        self.args = args
        # nn.Embedding's N(0, 1) init with the tied output projection gives logits of std
        # ~sqrt(d_model) at the start; N(0, 1/d_model) keeps the (sqrt(d_model)-scaled) input at
        # unit variance and the initial logits small.
        with torch.no_grad():
            self.aed.decoder.tgt_word_emb.weight.normal_(0.0, args.d_model ** -0.5)

    def forward(self, x, xlens, ys, ctc_weight, smoothing, return_enc=False, inter_layers=(), inter_weight=0.0,
                chunk=0):
        a = self.args
        inter = []
        hooks = []
        if inter_weight > 0 and self.training:
            # Intermediate CTC (Lee & Watanabe 2021): the same CTC head also scores the output of
            # inner encoder layers during training only; inference and the exported model are unchanged.
            hooks = [self.aed.encoder.layer_stack[i - 1].register_forward_hook(
                lambda _m, _i, out: inter.append(out)) for i in inter_layers if i]
        try:
            enc, enc_lens, enc_mask = encode(self.aed.encoder, x, xlens, chunk)
        finally:
            for hook in hooks:
                hook.remove()
        # CTC over the encoder output (blank = 0).
        ylens = torch.tensor([len(y) for y in ys])
        flat = torch.tensor([t for y in ys for t in y], dtype=torch.long)

        def ctc_loss(h):
            lp = F.log_softmax(self.ctc(h), dim=-1).transpose(0, 1)
            return F.ctc_loss(lp, flat, enc_lens.long(), ylens, blank=0, reduction="sum", zero_infinity=True)

        loss_ctc = ctc_loss(enc)
        if inter:
            inter_loss = sum(ctc_loss(h) for h in inter) / len(inter)
            loss_ctc = (1 - inter_weight) * loss_ctc + inter_weight * inter_loss
        # Teacher-forced decoder: input <sos> y (padded with pad_id), target y <eos> (-1 ignored).
        L = int(ylens.max()) + 1
        ys_in = torch.full((len(ys), L), a.pad_id, dtype=torch.long)
        ys_out = torch.full((len(ys), L), -1, dtype=torch.long)
        for i, y in enumerate(ys):
            ys_in[i, 0] = a.sos_id
            ys_in[i, 1:len(y) + 1] = torch.tensor(y)
            ys_out[i, :len(y)] = torch.tensor(y)
            ys_out[i, len(y)] = a.eos_id
        logits = self.decode_logits(ys_in, enc, enc_mask)
        loss_att = F.cross_entropy(logits.reshape(-1, a.odim), ys_out.reshape(-1), ignore_index=-1,
                                   label_smoothing=smoothing, reduction="sum")
        valid = ys_out != -1
        correct = ((logits.argmax(-1) == ys_out) & valid).sum().item()
        n = len(ys)
        loss = ctc_weight * loss_ctc / n + (1 - ctc_weight) * loss_att / n
        out = (loss, loss_ctc.item() / n, loss_att.item() / n, correct, int(valid.sum()))
        return out + ((enc, enc_lens, enc_mask),) if return_enc else out

    def decode_logits(self, ys_in, enc, enc_mask):
        dec = self.aed.decoder
        tgt_mask = dec.ignored_target_position_is_0(ys_in, dec.pad_id)
        h = dec.dropout(dec.tgt_word_emb(ys_in) * dec.scale + dec.positional_encoding(ys_in))
        for layer in dec.layer_stack:
            h = layer(h, enc, tgt_mask, enc_mask)
        return dec.tgt_word_prj(dec.layer_norm_out(h))


def ctc_greedy(logits, lens):
    out = []
    best = logits.argmax(-1)
    for b in range(best.shape[0]):
        prev, seq = -1, []
        for t in best[b, :int(lens[b])].tolist():
            if t != prev and t != 0:
                seq.append(t)
            prev = t
        out.append(seq)
    return out


def word_errors(ref, hyp):
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


# ----------------------------------------------------------------------------- main


def build_args(o, odim):
    return argparse.Namespace(
        idim=80, odim=odim, d_model=o.d_model, n_head=o.n_head, n_layers_enc=o.n_layers_enc,
        n_layers_dec=o.n_layers_dec, kernel_size=o.kernel_size, pe_maxlen=5000,
        sos_id=SPECIALS.index("<sos>"), eos_id=SPECIALS.index("<eos>"), pad_id=SPECIALS.index("<pad>"),
        residual_dropout=o.dropout, dropout_rate=o.dropout, causal_conv=o.causal_conv)


def evaluate(model, data, tok, batch=32, attention=True, chunk=0):
    """Dev: teacher-forced token accuracy / attention loss, CTC greedy WER, attention greedy WER
    (chunk > 0: with that chunk attention mask, in encoder frames)."""
    model.eval()
    errs_ctc = errs_att = words = correct = total = 0
    loss_att = 0.0
    with torch.no_grad():
        for i in range(0, len(data), batch):
            part = data[i:i + batch]
            x, xl = pad_feats([d["feat"] for d in part])
            ys = [d["ids"] for d in part]
            _, _, la, c, n, (enc, enc_lens, enc_mask) = model(x, xl, ys, 0.0, 0.0, return_enc=True, chunk=chunk)
            loss_att += la * len(part)
            correct += c
            total += n
            hyps_ctc = ctc_greedy(model.ctc(enc), enc_lens)
            hyps_att = None
            if attention:
                nb = model.aed.decoder.batch_beam_search(enc, enc_mask, 1, 1, 0, 1.0, 0.0, 1.0)
                hyps_att = [h[0]["yseq"].tolist() for h in nb]
            for j, d in enumerate(part):
                e, w = word_errors(d["text"], tok.detokenize(hyps_ctc[j]))
                errs_ctc += e
                words += w
                if hyps_att is not None:
                    errs_att += word_errors(d["text"], tok.detokenize(hyps_att[j]))[0]
    model.train()
    return dict(acc=correct / max(total, 1), loss_att=loss_att / len(data), wer_ctc=100.0 * errs_ctc / words,
                wer_att=100.0 * errs_att / words if attention else None)


def export(o, args, tok_files, logf):
    """Average the best --average epochs (dev accuracy) and write a FireRedASR checkpoint dir
    (under --export-dir, default the workdir). Returns (export dir, epochs, averaged state dict)."""
    hist_path = os.path.join(o.workdir, "history.json")
    with open(hist_path) as f:
        hist = json.load(f)
    if o.average_until:
        hist = [h for h in hist if h["epoch"] <= o.average_until]
    ranked = sorted(hist, key=lambda h: (-h["dev"]["acc"], h["dev"]["loss_att"]))
    chosen = sorted(h["epoch"] for h in ranked[:o.average])
    log(f"averaging epochs {chosen}", logf)
    avg = average_state_dicts([os.path.join(o.workdir, f"epoch{e}.pt") for e in chosen])
    out = write_export(o.export_dir or o.workdir, avg, args, tok_files, {"averaged_epochs.json": chosen})
    return out, chosen, avg


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "an4"))
    p.add_argument("--workdir", default="/tmp/an4_train")
    p.add_argument("--feat-cache", default="/tmp/an4_feats/train_sp.pt")
    p.add_argument("--deadline", default="14:15", help="wall-clock UTC HH:MM at which training must have ended")
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--export-only", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--subset", type=int, default=0, help="use only N training utterances (smoke test)")
    p.add_argument("--dev-fraction", type=float, default=0.05)
    p.add_argument("--vocab", type=int, default=30, help="SentencePiece BPE vocabulary size (30: letters, as ESPnet's AN4 recipe)")
    p.add_argument("--d-model", dest="d_model", type=int, default=96)
    p.add_argument("--n-head", dest="n_head", type=int, default=4)
    p.add_argument("--n-layers-enc", dest="n_layers_enc", type=int, default=6)
    p.add_argument("--n-layers-dec", dest="n_layers_dec", type=int, default=3)
    p.add_argument("--kernel-size", dest="kernel_size", type=int, default=15)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--ctc-weight", type=float, default=0.5)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=int, default=200, help="warm-up steps")
    p.add_argument("--max-frames", type=int, default=6000, help="padded input frames per batch")
    p.add_argument("--max-utts", type=int, default=32)
    p.add_argument("--freq-mask", type=int, default=27, help="SpecAugment: max bins per frequency mask (2 masks)")
    p.add_argument("--time-mask-ratio", type=float, default=0.2,
                   help="SpecAugment: max fraction of the frames per time mask (2 masks, each <= 40 frames)")
    p.add_argument("--time-masks", type=int, default=2, help="SpecAugment: number of time masks")
    p.add_argument("--max-time-mask", type=int, default=40, help="SpecAugment: max frames per time mask")
    p.add_argument("--init-from", default="",
                   help="initialise every parameter whose name and shape match from this state dict "
                        "(e.g. a previous run's averaged_with_ctc.pt: its encoder and decoder layers, when "
                        "only the vocabulary changes) or from a hark model directory (models/builtin/"
                        "an4-conformer: its f16 weights); ignored with --resume")
    p.add_argument("--average-until", type=int, default=0,
                   help="average only among epochs <= this one (0: all); an earlier stop chosen on dev")
    p.add_argument("--average", type=int, default=10, help="checkpoints averaged at the end")
    p.add_argument("--export-dir", default="",
                   help="write export/ and averaged_with_ctc.pt here instead of the workdir (so that "
                        "several --average-until candidates can sit side by side)")
    p.add_argument("--inter-ctc-layer", type=int, nargs="+", default=[0],
                   help="intermediate CTC: also score these encoder layers' outputs (1-based) with the CTC "
                        "head during training (0: off)")
    p.add_argument("--inter-ctc-weight", type=float, default=0.3,
                   help="share of the CTC loss given to the intermediate layers (their mean)")
    p.add_argument("--causal-conv", action="store_true",
                   help="causal depthwise convolutions (left padding only; for streaming, with --dynamic-chunk)")
    p.add_argument("--centred-init", action="store_true",
                   help="with --causal-conv: the --init-from model has centred convolutions; its depthwise "
                        "kernels start the causal ones with their future taps dropped")
    p.add_argument("--dynamic-chunk", action="store_true",
                   help="dynamic chunk attention masks (WeNet U2): per batch full context or a chunk of "
                        "1..--max-chunk encoder frames")
    p.add_argument("--max-chunk", type=int, default=25, help="largest dynamic chunk, encoder frames (40 ms)")
    p.add_argument("--eval-chunk", type=int, default=16,
                   help="with --dynamic-chunk, dev is also scored at this chunk size (16 = 640 ms)")
    p.add_argument("--speeds", type=float, nargs="+", default=list(SPEEDS),
                   help="speed perturbation factors (one drawn per utterance and epoch)")
    p.add_argument("--babble-prob", type=float, default=0.0,
                   help="probability of mixing another training utterance into an utterance (feature-domain "
                        "babble noise)")
    p.add_argument("--babble-snr", type=float, nargs=2, default=[10.0, 25.0], metavar=("LO", "HI"),
                   help="babble SNR range in dB")
    # One thread: on this shared 2-core machine two intra-op threads were 8x slower than one
    # while other jobs compiled (every op waits for the slower thread).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--log-every", type=int, default=10)
    o = p.parse_args()

    torch.set_num_threads(o.threads)
    os.makedirs(o.workdir, exist_ok=True)
    logf = open(os.path.join(o.workdir, "train.log"), "a")
    log(f"args: {vars(o)}", logf)
    random.seed(o.seed)
    np.random.seed(o.seed)
    torch.manual_seed(o.seed)

    # Data, split, vocabulary, CMVN (all deterministic from the seed).
    utts = read_split(os.path.join(o.data, "train"))
    if o.subset:
        utts = utts[:o.subset]
    ids = [u[0] for u in utts]
    split_rng = random.Random(o.seed)
    dev_ids = set(split_rng.sample(ids, max(1, int(round(o.dev_fraction * len(ids))))))
    train_utts = [u for u in utts if u[0] not in dev_ids]
    dev_utts = [u for u in utts if u[0] in dev_ids]
    with open(os.path.join(o.workdir, "dev_ids.txt"), "w") as f:
        f.write("\n".join(sorted(dev_ids)) + "\n")
    write_dev_manifest(os.path.join(o.workdir, "dev"), dev_utts)

    spm_prefix = os.path.join(o.workdir, f"train_bpe{o.vocab}")
    spm_model, tokens = train_spm([u[2] for u in train_utts], spm_prefix, o.vocab)
    dict_path = os.path.join(o.workdir, "dict.txt")
    with open(dict_path, "w", encoding="utf8") as f:
        for i, t in enumerate(tokens):
            f.write(f"{t} {i}\n")
    tok = ChineseCharEnglishSpmTokenizer(dict_path, spm_model)
    init_dict = os.path.join(o.init_from, "dict.txt") if o.init_from and os.path.isdir(o.init_from) else ""
    if init_dict and not o.resume:
        with open(init_dict, encoding="utf8") as a, open(dict_path, encoding="utf8") as b:
            if a.read() != b.read():
                raise SystemExit(f"{init_dict} differs from this run's vocabulary {dict_path}: the embeddings "
                                 "would not line up (use the same --vocab and training data)")

    speeds = sorted(set(o.speeds) | {1.0})
    feats = compute_feats(read_split(os.path.join(o.data, "train")), o.feat_cache, speeds)
    cmvn_path = os.path.join(o.workdir, "cmvn.ark")
    write_cmvn(cmvn_path, [feats[(u[0], 1.0)] for u in train_utts])
    cmvn = CMVN(cmvn_path)

    def item(u, s):
        t, tid = tok.tokenize(u[2])
        assert tok.dict.unkid not in tid, f"{u[0]}: <unk> in {t}"
        d = dict(id=u[0], text=u[2].upper(), ids=tid, feat=cmvn(feats[(u[0], s)]).astype(np.float32))
        if o.babble_prob > 0:
            d["raw"] = feats[(u[0], s)]
        return d

    train = {s: [item(u, s) for u in train_utts] for s in o.speeds}
    dev = [item(u, 1.0) for u in dev_utts]
    log(f"train {len(train_utts)} utts, dev {len(dev)} utts, vocab {len(tokens)}", logf)

    args = build_args(o, len(tokens))
    model = AedWithCtc(args)
    n_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("ctc."))
    log(f"model: {n_params / 1e6:.2f} M parameters (without the CTC head); args {vars(args)}", logf)
    tok_files = [spm_model, dict_path, cmvn_path]
    # The architecture flags a run was trained with; --export-only / --resume must repeat them
    # (a causal model exported as a centred one would convert and run, wrongly).
    arch = {k: getattr(o, k) for k in ("vocab", "d_model", "n_head", "n_layers_enc", "n_layers_dec",
                                       "kernel_size", "causal_conv")}
    arch_path = os.path.join(o.workdir, "architecture.json")
    if os.path.exists(arch_path):
        with open(arch_path) as f:
            trained = json.load(f)
        diff = {k: (v, arch.get(k)) for k, v in trained.items() if arch.get(k) != v}
        if diff:
            raise SystemExit(f"{o.workdir} was trained with other architecture flags (trained, now): {diff}")
    elif not o.export_only:
        with open(arch_path, "w") as f:
            json.dump(arch, f, indent=1)
    if o.export_only:
        out, _, _ = export(o, args, tok_files, logf)
        log(f"exported to {out}", logf)
        return

    if o.init_from and not o.resume:
        src = load_init(o.init_from)
        own = model.state_dict()
        if o.causal_conv and o.centred_init:
            src = {k: causal_from_centred(v) if k.endswith("depthwise_conv.weight") else v for k, v in src.items()}
        taken = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=False)
        skipped = sorted(k for k in own if k not in taken)
        log(f"initialised {len(taken)}/{len(own)} tensors from {o.init_from}; left random: {skipped}", logf)

    opt = torch.optim.Adam(model.parameters(), lr=o.lr, betas=(0.9, 0.98), eps=1e-9)
    step, start_epoch, hist = 0, 1, []
    last = os.path.join(o.workdir, "last.pt")
    if o.resume and os.path.exists(last):
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, start_epoch, hist = ck["step"], ck["epoch"] + 1, ck["hist"]
        random.setstate(ck["py_rng"])
        torch.set_rng_state(ck["torch_rng"])
        log(f"resumed from epoch {ck['epoch']} step {step}", logf)

    h, m = (int(v) for v in o.deadline.split(":"))
    now = dt.datetime.utcnow()
    deadline = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if deadline < now - dt.timedelta(hours=1):
        deadline += dt.timedelta(days=1)
    log(f"deadline {deadline.isoformat()} UTC", logf)

    rng = random.Random(o.seed * 1000 + start_epoch)
    epoch_times = []
    model.train()
    for epoch in range(start_epoch, o.max_epochs + 1):
        if epoch_times:
            est = max(epoch_times[-3:]) * 1.1
            if dt.datetime.utcnow() + dt.timedelta(seconds=est) > deadline:
                log(f"stopping before epoch {epoch}: next epoch (~{est:.0f}s) would pass the deadline", logf)
                break
        t0 = time.time()
        rng = random.Random(o.seed * 1000 + epoch)
        drawn = [rng.choice(o.speeds) for _ in train_utts]
        data = [train[s][i] for i, s in enumerate(drawn)]
        batches = make_batches([d["feat"].shape[0] for d in data], o.max_frames, o.max_utts, rng)
        tot, tot_ctc, tot_att, corr, ntok = 0.0, 0.0, 0.0, 0, 0
        for bi, b in enumerate(batches):
            step += 1
            lr = o.lr * min(step / o.warmup, math.sqrt(o.warmup / step))
            for g in opt.param_groups:
                g["lr"] = lr
            def feat(d):
                if o.babble_prob > 0 and rng.random() < o.babble_prob:
                    other = data[rng.randrange(len(data))]["raw"]
                    return cmvn(babble(d["raw"], other, rng, *o.babble_snr)).astype(np.float32)
                return d["feat"].copy()

            x, xl = pad_feats([spec_augment(feat(d), rng, max_f=o.freq_mask, n_time=o.time_masks,
                                            max_t=o.max_time_mask, max_t_ratio=o.time_mask_ratio) for d in (data[i] for i in b)])
            ys = [data[i]["ids"] for i in b]
            chunk = draw_chunk(rng, x.shape[1] // 4, o.max_chunk) if o.dynamic_chunk else 0
            loss, lc, la, c, n = model(x, xl, ys, o.ctc_weight, o.label_smoothing,
                                       inter_layers=o.inter_ctc_layer, inter_weight=o.inter_ctc_weight,
                                       chunk=chunk)
            opt.zero_grad()
            loss.backward()
            gn = torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            if torch.isfinite(gn):
                opt.step()
            tot += loss.item()
            tot_ctc += lc
            tot_att += la
            corr += c
            ntok += n
            if (bi + 1) % o.log_every == 0:
                log(f"epoch {epoch} batch {bi + 1}/{len(batches)} step {step} lr {lr:.2e} "
                    f"loss {tot / (bi + 1):.2f} ctc {tot_ctc / (bi + 1):.2f} att {tot_att / (bi + 1):.2f} "
                    f"acc {corr / max(ntok, 1):.3f} {time.time() - t0:.0f}s", logf)
        train_time = time.time() - t0
        dev_res = evaluate(model, dev, tok, attention=(epoch % 3 == 0 or epoch >= 25))
        if o.dynamic_chunk:
            dev_res["chunk"] = evaluate(model, dev, tok, attention=False, chunk=o.eval_chunk)
        torch.save(model.state_dict(), os.path.join(o.workdir, f"epoch{epoch}.pt"))
        hist.append(dict(epoch=epoch, step=step, train_loss=tot / len(batches), dev=dev_res, time=train_time))
        with open(os.path.join(o.workdir, "history.json"), "w") as f:
            json.dump(hist, f, indent=1)
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, epoch=epoch, hist=hist,
                        py_rng=random.getstate(), torch_rng=torch.get_rng_state()), last + ".tmp")
        os.replace(last + ".tmp", last)
        epoch_times.append(time.time() - t0)
        wa = "-" if dev_res["wer_att"] is None else f"{dev_res['wer_att']:.2f}"
        log(f"END epoch {epoch} train_loss {tot / len(batches):.3f} dev acc {dev_res['acc']:.4f} "
            f"loss_att {dev_res['loss_att']:.3f} WER ctc {dev_res['wer_ctc']:.2f} att {wa} "
            + (f"chunk {o.eval_chunk}: acc {dev_res['chunk']['acc']:.4f} WER ctc {dev_res['chunk']['wer_ctc']:.2f} "
               if o.dynamic_chunk else "")
            + f"({train_time:.0f}s train, {epoch_times[-1]:.0f}s total)", logf)

    out, chosen, avg = export(o, args, tok_files, logf)
    model.load_state_dict(avg)
    res = evaluate(model, dev, tok, attention=True)
    log(f"averaged {chosen}: dev acc {res['acc']:.4f} WER ctc {res['wer_ctc']:.2f} att {res['wer_att']:.2f}", logf)
    if o.dynamic_chunk:
        res = evaluate(model, dev, tok, attention=True, chunk=o.eval_chunk)
        log(f"averaged, chunk {o.eval_chunk}: dev acc {res['acc']:.4f} WER ctc {res['wer_ctc']:.2f} "
            f"att {res['wer_att']:.2f}", logf)
    log(f"exported to {out}", logf)


if __name__ == "__main__":
    main()
