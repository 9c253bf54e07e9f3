#!/usr/bin/env python3
"""Summarise the `gemm` criterion benches (engine/benches/gemm.rs) as a Markdown table.

Usage: python3 scripts/kernels/gemm_table.py [CRITERION_DIR]
(default: $CARGO_TARGET_DIR/criterion or target/criterion).

Per layer/M/dtype: GFLOP/s single-thread and on 2 threads (2·M·n·k / mean time), the
fraction of the f32 FMA peak (theoretical: cores × clock × 32 FLOP/cycle on Zen4, whose two
256-bit FMA pipes execute 16 f32 FMAs per cycle, and measured by `machine/fma_peak_*`), and
for M = 1 the weight-streaming rate in GB/s against `machine/read_bw`.
"""
import json
import os
import re
import sys
from collections import defaultdict

DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "i8": 1}


def load(root):
    res = {}
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            b = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            e = json.load(f)
        res[(b["group_id"], b["function_id"])] = (e["mean"]["point_estimate"], b.get("throughput") or {})
    return res


def clock_ghz():
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(l.split(":")[1]) for l in f if l.startswith("cpu MHz")]
        return max(mhz) / 1000.0, len(mhz)
    except OSError:
        return float("nan"), 1


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    res = load(root)
    ghz, cpus = clock_ghz()
    peak_core = ghz * 32.0
    rate = {k: (tp.get("Elements") or tp.get("Bytes") or 0) / ns for k, (ns, tp) in res.items()}
    meas_peak = max(rate.get(("machine", "fma_peak_avx512"), 0.0), rate.get(("machine", "fma_peak_avx2"), 0.0))
    bw = rate.get(("machine", "read_bw"), float("nan"))
    print(f"Clock {ghz:.2f} GHz (/proc/cpuinfo), {cpus} cores: theoretical f32 peak {peak_core:.1f} GFLOP/s per core, "
          f"{peak_core * cpus:.1f} for {cpus}; measured FMA loop {meas_peak:.1f} GFLOP/s (1 thread); "
          f"streaming read {bw:.2f} GB/s (1 thread).\n")
    rows = defaultdict(dict)
    for (group, func), r in rate.items():
        m = re.match(r"linear/([^/]+)/(\S+) (\d+)x(\d+)/m(\d+)", group)
        if not m:
            continue
        model, layer, n, k, mm = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
        rows[(model, layer, n, k, mm)][func] = r
    print("GFLOP/s, 1 thread / 2 threads. M=1: (weight GB/s, 1 thread). M>1: (1-thread share of the theoretical "
          "f32 peak | of the measured FMA-loop rate, which absorbs CPU contention).\n")
    print("| model | layer (n×k) | M | f32 | f16 | bf16 | int8 |")
    print("|---|---|---|---|---|---|---|")
    order = {"whisper-tiny": 0, "whisper-base": 1, "fireredasr-aed-l": 2}
    lorder = {"attn": 0, "fc1": 1, "fc2": 2, "vocab": 3}
    for key in sorted(rows, key=lambda t: (order.get(t[0], 9), lorder.get(t[1], 9), t[4])):
        model, layer, n, k, mm = key
        cells = []
        for d in ["f32", "f16", "bf16", "i8"]:
            one, two = rows[key].get(d), rows[key].get(d + "_2t")
            if one is None:
                cells.append("–")
                continue
            c = f"{one:.1f} / {two:.1f}" if two else f"{one:.1f}"
            if mm == 1:
                c += f" ({one / 2 * DTYPE_BYTES[d]:.1f} GB/s)"
            else:
                c += f" ({100 * one / peak_core:.0f}% | {100 * one / meas_peak:.0f}%)" if meas_peak else f" ({100 * one / peak_core:.0f}%)"
            cells.append(c)
        print(f"| {model} | {layer} {n}×{k} | {mm} | " + " | ".join(cells) + " |")


    cross = defaultdict(dict)
    for (group, func), r in rate.items():
        m = re.match(r"crossover/(\d+x\d+)/m(\d+)", group)
        if m:
            cross[(m.group(1), int(m.group(2)))][func] = r
    if cross:
        print("\nCrossover (GFLOP/s, 1 thread): linear kernels (dot-form tiles up to m = 256, gemm crate above) "
              "vs the gemm crate directly.\n")
        print("| weights | m | f32 | f16 | f32 via gemm crate |")
        print("|---|---|---|---|---|")
        for key in sorted(cross):
            d = cross[key]
            cells = [f"{d[f]:.1f}" if f in d else "–" for f in ["f32", "f16", "f32_gemm_crate"]]
            print(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
