"""AN4 recipe data: split manifests, speed perturbation, cached Kaldi fbank features, global CMVN,
the SentencePiece vocabulary, SpecAugment, feature-domain babble and length-bucketed batches
(scripts/train_an4.py's data side; FireRedASR's package is needed only to compute features)."""

import json
import os
import time

import numpy as np
import torch

SPECIALS = ["<blank>", "<unk>", "<pad>", "<sos>", "<eos>"]
SPEEDS = (0.9, 1.0, 1.1)


def read_split(d):
    utts = []
    with open(os.path.join(d, "manifest.jsonl")) as f:
        for line in f:
            m = json.loads(line)
            utts.append((m["id"], os.path.join(d, m["audio_filepath"]), m["text"].strip()))
    return utts


def write_dev_manifest(d, utts):
    """<workdir>/dev/manifest.jsonl: the held-out split as a JSONL manifest, so
    `hark eval <workdir>/dev --model M --normalizer upper` gives the dev WER a model was chosen on."""
    import soundfile as sf

    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "manifest.jsonl"), "w") as f:
        for uid, path, text in sorted(utts):
            path = os.path.abspath(path)
            f.write(json.dumps(dict(id=uid, audio_filepath=path, duration=round(sf.info(path).duration, 3),
                                    text=text)) + "\n")


def speed_perturb(wav, speed):
    """Speed (tempo + pitch) perturbation by resampling, as sox `speed` does."""
    if speed == 1.0:
        return wav
    from scipy.signal import resample_poly

    from fractions import Fraction

    f = Fraction(speed).limit_denominator(100)  # 0.9 -> 9/10: 10 output samples per 9 input
    return resample_poly(wav.astype(np.float64), f.denominator, f.numerator)


def compute_feats(utts, cache_path, speeds):
    """{(utt_id, speed): fbank float32 (T, 80)} for every utterance and speed, cached on disk (a
    cache missing some speeds is completed and saved again)."""
    feats = torch.load(cache_path, weights_only=False) if os.path.exists(cache_path) else {}
    missing = [(u, s) for u in utts for s in speeds if (u[0], s) not in feats]
    if not missing:
        return feats
    import soundfile as sf
    from fireredasr.data.asr_feat import KaldifeatFbank

    fbank = KaldifeatFbank(num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    t0 = time.time()
    for i, (uid, path, _) in enumerate(utts):
        todo = [s for s in speeds if (uid, s) not in feats]
        if not todo:
            continue
        wav, sr = sf.read(path, dtype="int16")
        assert sr == 16000, f"{path}: sample rate {sr}"
        for s in todo:
            w = speed_perturb(wav.astype(np.float32), s).astype(np.float32)
            feats[(uid, s)] = fbank((sr, w)).astype(np.float32)
        if i % 200 == 0:
            print(f"  feats {i}/{len(utts)} {time.time() - t0:.0f}s", flush=True)
    os.makedirs(os.path.dirname(cache_path), exist_ok=True)
    torch.save(feats, cache_path)
    return feats


def write_cmvn(path, mats):
    import kaldiio

    x = np.concatenate(mats).astype(np.float64)
    stats = np.zeros((2, x.shape[1] + 1))
    stats[0, :-1] = x.sum(0)
    stats[1, :-1] = (x * x).sum(0)
    stats[0, -1] = x.shape[0]
    kaldiio.save_mat(path, stats)


def train_spm(texts, prefix, vocab_size):
    import sentencepiece as spm

    txt = prefix + ".txt"
    with open(txt, "w") as f:
        f.write("\n".join(t.upper() for t in texts) + "\n")
    spm.SentencePieceTrainer.train(
        input=txt, model_prefix=prefix, vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
        bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2, hard_vocab_limit=False,
        normalization_rule_name="identity")
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if sp.id_to_piece(i) != "<unk>"]
    return prefix + ".model", SPECIALS + pieces


def spec_augment(x, rng, n_freq=2, max_f=27, n_time=2, max_t=40, max_t_ratio=0.2):
    """In-place SpecAugment on one (T, D) normalised feature matrix (masked values = 0 = mean)."""
    T, D = x.shape
    for _ in range(n_freq):
        f = rng.randint(0, max_f)
        f0 = rng.randint(0, D - f)
        x[:, f0:f0 + f] = 0.0
    tmax = min(max_t, int(max_t_ratio * T))
    for _ in range(n_time):
        if tmax < 1:
            break
        t = rng.randint(0, tmax)
        t0 = rng.randint(0, T - t)
        x[t0:t0 + t, :] = 0.0
    return x


def babble(x, other, rng, snr_lo, snr_hi):
    """Mix another utterance into a raw log-mel fbank matrix at a random SNR, in the mel power
    domain (log(exp(x) + g exp(n)), the expected mixture of two independent signals): feature-
    domain babble noise, no waveform or FFT needed. `other` is tiled/cropped to x's length."""
    T = x.shape[0]
    n = np.tile(other, (T // other.shape[0] + 1, 1))
    o0 = rng.randint(0, n.shape[0] - T)
    n = n[o0:o0 + T]
    px, pn = np.exp(x.astype(np.float64)), np.exp(n.astype(np.float64))
    snr = rng.uniform(snr_lo, snr_hi)
    g = px.mean() / max(pn.mean(), 1e-30) * 10.0 ** (-snr / 10.0)
    return np.log(px + g * pn).astype(np.float32)


def make_batches(lengths, max_frames, max_utts, rng):
    """Length-sorted buckets of up to max_frames padded frames; batch order shuffled."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, cur, cur_max = [], [], 0
    for i in order:
        m = max(cur_max, lengths[i])
        if cur and (m * (len(cur) + 1) > max_frames or len(cur) >= max_utts):
            batches.append(cur)
            cur, m = [], lengths[i]
        cur.append(i)
        cur_max = m
    if cur:
        batches.append(cur)
    rng.shuffle(batches)
    return batches


def pad_feats(mats):
    lens = torch.tensor([m.shape[0] for m in mats])
    x = torch.zeros(len(mats), int(lens.max()), mats[0].shape[1])
    for i, m in enumerate(mats):
        x[i, :m.shape[0]] = torch.from_numpy(m)
    return x, lens
