#!/usr/bin/env python3
"""Transcribe every file of a directory with `hark transcribe --device cpu` and
`--device gpu` and list every file whose transcripts differ.

Both runs use the same hark binary, model, beam and thread count; each writes one .txt
per input under a temporary (or --keep) directory, so the comparison is per file and
an interrupted run can be inspected. The report gives, per device, the wall time of the
whole run (model load included) and per file, and the number of identical transcripts.
Timings mean something only on an otherwise idle machine: the load average is printed.
On a software Vulkan device (lavapipe) the GPU kernels run on the same CPU cores as
hark's thread pool, whose idle workers spin for a while: `--threads 1` then makes the GPU
run faster (tiny.en window, old scalar kernels: 70 s instead of 124 s on 2 cores; with the
vec4 kernels a window takes ~8 s there). Whole AN4 test set, tiny.en, beam 5, `--jobs 2
--threads 1`: 130/130 transcripts identical with the GPU encoder (CPU 212 s, GPU 1680 s
wall, under load) and 130/130 with encoder and decoder on the GPU; an4-conformer with
encoder and decoder on the GPU: 130/130 (d 96 model: GPU 30 s wall under load; d 144: 48 s).

`--jobs N` splits the file list across N concurrent hark processes per device (file i to
process i mod N; each process loads the model once), e.g. to use both cores on lavapipe
with `--threads 1`; stderr of each goes to <out>/<device>/job<i>.log.

Usage:
    scripts/gpu/compare_cpu_gpu.py --hark target/release/hark --model an4-conformer \
        [--data ../shared/data/an4/test] [--limit N] [--beam 5] [--jobs 2] [--threads 1] \
        [--json out.json] [--keep DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AUDIO = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".mp4"}


def run(hark, model, files, device, out_dir, beam, threads, jobs):
    """Transcribes `files` with `jobs` concurrent hark processes (file i goes to process
    i mod jobs), each writing one .txt per input into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    t0 = time.monotonic()
    for j in range(jobs):
        part = files[j::jobs]
        if not part:
            continue
        cmd = [str(hark), "transcribe", *map(str, part), "--model", model,
               "--device", device, "--beam", str(beam), "--format", "txt",
               "--output-dir", str(out_dir), "--overwrite"]
        if threads:
            cmd += ["--threads", str(threads)]
        log = open(out_dir / f"job{j}.log", "w")
        procs.append((cmd, log, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)))
    for cmd, log, proc in procs:
        rc = proc.wait()
        log.close()
        if rc != 0:
            tail = Path(log.name).read_text()[-4000:]
            sys.exit(f"{' '.join(cmd[:2])} ... --device {device} failed ({rc}):\n{tail}")
    wall = time.monotonic() - t0
    texts = {}
    for f in files:
        p = out_dir / (f.stem + ".txt")
        texts[f.name] = p.read_text().strip() if p.is_file() else None
    return wall, texts


def main():
    repo = Path(__file__).resolve().parents[2]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hark", type=Path, default=repo / "target/release/hark")
    ap.add_argument("--model", default="an4-conformer")
    ap.add_argument("--data", type=Path, default=repo.parent / "shared/data/an4/test")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="--threads of each hark process")
    ap.add_argument("--jobs", type=int, default=1,
                    help="split the files across N concurrent hark processes per device")
    ap.add_argument("--keep", type=Path, default=None, help="write transcripts here")
    ap.add_argument("--json", type=Path, default=None, help="write the report as JSON")
    ap.add_argument("--explain", type=Path, default=None,
                    help="the explain_divergence example binary (Whisper models): run it on "
                         "every differing file and add its analysis to the report")
    args = ap.parse_args()

    if not args.data.is_dir():
        sys.exit(f"skipping: {args.data} not found")
    files = sorted(p for p in args.data.iterdir() if p.suffix.lower() in AUDIO)
    if args.limit:
        files = files[: args.limit]
    if not files:
        sys.exit(f"no audio files in {args.data}")
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"{len(files)} files from {args.data}, model {args.model}, beam {args.beam}, "
          f"{args.jobs} job(s), load average {' '.join(load)}", flush=True)

    base = args.keep or Path(tempfile.mkdtemp(prefix="hark-cpu-gpu-"))
    report = {"model": args.model, "files": len(files), "beam": args.beam,
              "jobs": args.jobs, "threads": args.threads, "load_average": load, "runs": {}}
    texts = {}
    for device in ("cpu", "gpu"):
        wall, texts[device] = run(args.hark, args.model, files, device, base / device,
                                  args.beam, args.threads, max(1, args.jobs))
        report["runs"][device] = {"wall_s": wall, "per_file_s": wall / len(files)}
        print(f"{device}: {wall:.1f} s wall, {wall / len(files):.2f} s per file "
              f"(model load included)", flush=True)

    diffs = []
    for f in files:
        a, b = texts["cpu"][f.name], texts["gpu"][f.name]
        if a != b:
            diffs.append({"file": f.name, "cpu": a, "gpu": b})
    same = len(files) - len(diffs)
    print(f"identical transcripts: {same}/{len(files)}")
    for d in diffs:
        print(f"  {d['file']}:\n    cpu: {d['cpu']!r}\n    gpu: {d['gpu']!r}")
    report["identical"] = same
    report["differences"] = diffs
    if args.explain and diffs:
        model_dir = Path(args.model)
        if not model_dir.is_dir():
            home = Path(os.environ.get("HARK_HOME", Path.home() / ".cache/hark"))
            model_dir = home / "models" / args.model
        by_name = {f.name: f for f in files}
        cmd = [str(args.explain), str(model_dir), *(str(by_name[d["file"]]) for d in diffs)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        print(proc.stdout)
        if proc.returncode != 0:
            print(f"explain_divergence failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        report["explanation"] = proc.stdout
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
