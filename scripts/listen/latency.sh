#!/usr/bin/env bash
# Latency figures of `hark listen` over an AN4 recording replayed at real time.
#
# Joins the first N AN4 test utterances (../shared) with 1 s pauses into one WAV, streams
# it through `hark listen --input ... --no-tui --stats` at real time (the live ring-buffer
# path) and prints the pipeline's figures: median/p95 final latency (from the arrival of
# the audio holding the last voiced frame to the emission of the final text), partial
# refresh interval, final real-time factor, CPU use of the process (percent of one core,
# model load excluded), dropped audio (overruns). The load average is printed first:
# figures taken while the machine is busy are "under load".
#
# usage: scripts/listen/latency.sh [N=10] [HARK=target/release/hark] [extra hark listen flags...]
#   e.g. scripts/listen/latency.sh 20 target/release/hark --model an4-conformer
#        scripts/listen/latency.sh 10 target/release/hark --full-audio-ctx   # Whisper's 30 s encoder, for comparison
# Whisper decodes encode the utterance only (silence-padded audio context). With Whisper
# the text so far is final after --final-pause-ms (default 250) of silence (once the
# utterance holds --final-min-ms, default 1500, of audio) while the utterance stays open
# until --hangover-ms (default 400), so the final latency is about the pause plus the
# decode (the hangover for short utterances); --final-pause-ms 0 emits finals only at the
# hangover, which then bounds the latency. Conformer-AED models with a CTC head take
# --final-pause-ms too (off by default for them: it costs accuracy on AN4).
# Each final line counts once (an utterance continued after a pause gives several).
set -euo pipefail
N=${1:-10}
HARK=${2:-target/release/hark}
shift $(( $# > 2 ? 2 : $# )) || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
AN4="$ROOT/../shared/data/an4/test"
[ -d "$AN4" ] || { echo "skipping: ../shared not found" >&2; exit 0; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
python3 - "$AN4" "$N" "$TMP/joined.wav" <<'PY'
import glob, sys
import numpy as np, soundfile as sf
d, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
parts = [np.zeros(8000)]
for f in sorted(glob.glob(d + "/*.flac"))[:n]:
    x, sr = sf.read(f)
    assert sr == 16000
    parts += [x, np.zeros(16000)]
sig = np.concatenate(parts)
sf.write(out, sig.astype(np.float32), 16000, subtype="PCM_16")
print(f"{n} utterances, {len(sig)/16000:.1f} s", file=sys.stderr)
PY
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
"$HARK" listen --input "$TMP/joined.wav" --no-tui --stats --output "$TMP/t.txt" "$@"
