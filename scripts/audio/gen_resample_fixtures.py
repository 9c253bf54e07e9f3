#!/usr/bin/env python3
"""Generate audio/tests/fixtures/resample/: the same 0.3 s of AN4 speech at 8, 22.05,
44.1 and 48 kHz, mono and stereo, as FLAC, MP3 and OGG/Vorbis, plus 16 kHz references.

- src.flac (16 kHz mono, 16-bit): 0.3 s cut from ../shared/data/an4/test/an391-mjwl-b.flac.
- r{rate}_{mono,stereo}.flac: sox `rate -v` (very high quality) from src; the stereo right
  channel is the left one scaled by 0.5 (so the downmix is 0.75 x left, not a copy).
- r{rate}_{ch}.mp3 / .ogg: ffmpeg (libmp3lame 128k / libvorbis q5) from the FLAC.
- ref/r{rate}_{ch}_{fmt}.flac: the reference 16 kHz signal (16-bit FLAC, quantisation
  noise ~80 dB under the speech): the file
  decoded by ffmpeg (gapless, float), downmixed by mean, resampled by sox `rate -v`.
  For FLAC the same as WAV (the test writes WAVs at 8/16/24/32-bit int and f32 from the
  decoded FLAC, so only the FLAC is stored).

The Rust test decodes each file with hark, resamples with rubato, and checks the SNR
against the reference in the passband (below 0.9 x the lower Nyquist) >= 60 dB.
Also ulaw.wav (G.711 mu-law, read through symphonia) and aac.m4a (AAC-LC in MP4) at 16 kHz.

Usage: python3 scripts/audio/gen_resample_fixtures.py [--other-only] (from the repo root;
needs ../shared, sox, ffmpeg)
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "..", "shared", "data", "an4", "test", "an391-mjwl-b.flac")
OUT = os.path.join(ROOT, "audio", "tests", "fixtures", "resample")
RATES = [8000, 22050, 44100, 48000]


def run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def sox_rate(x, rate_in, rate_out, tmp):
    a, b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
    sf.write(a, x, rate_in, subtype="FLOAT")
    run("sox", a, "-e", "floating-point", "-b", "32", b, "rate", "-v", str(rate_out))
    y, r = sf.read(b, dtype="float32")
    assert r == rate_out
    return y


def ffmpeg_decode(path, tmp):
    out = os.path.join(tmp, "dec.wav")
    run("ffmpeg", "-y", "-v", "error", "-i", path, "-c:a", "pcm_f32le", out)
    y, r = sf.read(out, dtype="float32", always_2d=True)
    return y, r


def main():
    os.makedirs(os.path.join(OUT, "ref"), exist_ok=True)
    x, sr = sf.read(SRC, dtype="float32")
    assert sr == 16000
    start = int(0.55 * sr)
    x = x[start : start + int(0.3 * sr)]
    x = 0.5 * x / np.abs(x).max()
    sf.write(os.path.join(OUT, "src.flac"), x, sr, subtype="PCM_16")
    with tempfile.TemporaryDirectory() as tmp:
        for rate in RATES:
            y = sox_rate(x, sr, rate, tmp) if rate != sr else x
            for ch in ["mono", "stereo"]:
                data = y if ch == "mono" else np.stack([y, 0.5 * y], axis=1)
                base = os.path.join(OUT, f"r{rate}_{ch}")
                sf.write(base + ".flac", data, rate, subtype="PCM_16")
                run("ffmpeg", "-y", "-v", "error", "-i", base + ".flac", "-c:a", "libmp3lame", "-b:a", "128k", base + ".mp3")
                run("ffmpeg", "-y", "-v", "error", "-i", base + ".flac", "-c:a", "libvorbis", "-q:a", "5", base + ".ogg")
                for fmt in ["flac", "mp3", "ogg"]:
                    dec, r = ffmpeg_decode(f"{base}.{fmt}", tmp)
                    mono = dec.mean(axis=1)
                    ref = sox_rate(mono, r, 16000, tmp) if r != 16000 else mono
                    sf.write(os.path.join(OUT, "ref", f"r{rate}_{ch}_{fmt}.flac"), ref, 16000, subtype="PCM_16")
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(OUT) for f in fs)
    print("wrote", OUT, total, "bytes")




def other_codecs():
    """Codecs hound does not read (G.711 mu-law WAV -> symphonia fallback) and AAC in
    MP4, each at 16 kHz mono, with their ffmpeg decodes as 16-bit FLAC references."""
    src = os.path.join(OUT, "src.flac")
    ulaw = os.path.join(OUT, "ulaw.wav")
    m4a = os.path.join(OUT, "aac.m4a")
    run("sox", src, "-e", "u-law", ulaw)
    run("ffmpeg", "-y", "-v", "error", "-i", src, "-c:a", "aac", "-b:a", "64k", m4a)
    with tempfile.TemporaryDirectory() as tmp:
        for path, name in [(ulaw, "ulaw"), (m4a, "aac")]:
            dec, r = ffmpeg_decode(path, tmp)
            assert r == 16000
            sf.write(os.path.join(OUT, "ref", f"{name}.flac"), dec.mean(axis=1), 16000, subtype="PCM_16")


if __name__ == "__main__":
    if "--other-only" not in sys.argv:
        main()
    other_codecs()
