#!/usr/bin/env python3
"""Generate audio/tests/fixtures/knf_fbank.json: fbank options Kaldi's reference files do
not cover (window types, 80/128 bins, no DC removal/pre-emphasis, energy floor, high-freq
offset), computed by kaldi-native-fbank (a C++ port of Kaldi's feature code) on
../shared/data/kaldi-fbank-reference/test.wav (int16 scale, dither 0). Every 10th frame is
stored to keep the fixture small.

Usage: python3 scripts/audio/gen_knf_fbank_fixture.py (from the repo root; needs ../shared)
"""
import json
import os

import kaldi_native_fbank as knf
import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAV = os.path.join(ROOT, "..", "shared", "data", "kaldi-fbank-reference", "test.wav")
OUT = os.path.join(ROOT, "audio", "tests", "fixtures", "knf_fbank.json")

CASES = [
    {"name": "hamming_80", "window_type": "hamming", "num_bins": 80},
    {"name": "hanning_128", "window_type": "hanning", "num_bins": 128, "low_freq": 40.0},
    {"name": "rectangular_40_raw", "window_type": "rectangular", "num_bins": 40,
     "remove_dc_offset": False, "preemph_coeff": 0.0},
    {"name": "blackman_23_energy_floor", "window_type": "blackman", "num_bins": 23,
     "use_energy": True, "energy_floor": 1e9, "high_freq": -400.0},
    {"name": "povey_80_no_snip_no_pow2", "window_type": "povey", "num_bins": 80,
     "snip_edges": False, "round_to_power_of_two": False},
]


def main():
    x, sr = sf.read(WAV, dtype="int16")
    x = x.astype(np.float32)
    entries = []
    for c in CASES:
        o = knf.FbankOptions()
        o.frame_opts.dither = 0.0
        o.frame_opts.window_type = c["window_type"]
        o.frame_opts.snip_edges = c.get("snip_edges", True)
        o.frame_opts.remove_dc_offset = c.get("remove_dc_offset", True)
        o.frame_opts.preemph_coeff = c.get("preemph_coeff", 0.97)
        o.frame_opts.round_to_power_of_two = c.get("round_to_power_of_two", True)
        o.mel_opts.num_bins = c["num_bins"]
        o.mel_opts.low_freq = c.get("low_freq", 20.0)
        o.mel_opts.high_freq = c.get("high_freq", 0.0)
        o.use_energy = c.get("use_energy", False)
        o.energy_floor = c.get("energy_floor", 0.0)
        f = knf.OnlineFbank(o)
        f.accept_waveform(sr, x.tolist())
        f.input_finished()
        n = f.num_frames_ready
        idx = list(range(0, n, 10))
        entries.append(dict(c, n_frames=n, frames=idx,
                            values=[[float(f"{v:.7g}") for v in f.get_frame(i)] for i in idx]))
    with open(OUT, "w") as fh:
        json.dump({"generator": "scripts/audio/gen_knf_fbank_fixture.py", "entries": entries}, fh)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
