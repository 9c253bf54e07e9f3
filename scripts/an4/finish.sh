#!/usr/bin/env bash
# Convert the exported AN4 checkpoint into the shipped hark model directory and evaluate it:
# hark eval at f32 / f16 / int8 on the AN4 test set, the PyTorch reference decode, and parity.
#
# Usage (from the repository root, after scripts/train_an4.py has exported):
#   scripts/an4/finish.sh [WORKDIR=/tmp/an4_train] [HARK=path/to/release/hark] [OUT=/tmp/an4_eval]
# The hark binary must be built from this tree after the model files were written (the model is
# embedded with include_bytes!). HARK_HOME is pointed at a fresh directory so the built-in model
# is installed from the binary.
set -euo pipefail
WORK=${1:-/tmp/an4_train}
HARK=${2:-${CARGO_TARGET_DIR:-target}/release/hark}
OUT=${3:-/tmp/an4_eval}
MODEL=models/builtin/an4-conformer
TEST=../shared/data/an4/test
mkdir -p "$OUT"

if [ "${SKIP_CONVERT:-0}" != 1 ]; then
  python3 scripts/convert_fireredasr.py "$WORK/export" "$MODEL" --dtype f16 \
    --ctc-checkpoint "$WORK/averaged_with_ctc.pt"
fi

export HARK_HOME="$OUT/home"
for p in f16 f32 int8; do
  /usr/bin/time -v "$HARK" eval "$TEST" --model an4-conformer --normalizer upper --precision "$p" \
    --threads "${THREADS:-1}" --report "$OUT/hark_$p.json" > "$OUT/hark_$p.txt" 2> "$OUT/hark_$p.time"
  echo "== $p"; cat "$OUT/hark_$p.txt"
done

# The shipped model has a CTC head, so hark decodes by CTC prefix beam search + attention
# rescoring; the reference decodes the same way with the same head (once, compared with all three).
python3 scripts/an4/ref_decode.py "$WORK/export" --out "$OUT/ref_test.txt" \
  --hark "$OUT/hark_f32.json" --hark "$OUT/hark_f16.json" --hark "$OUT/hark_int8.json" \
  --ctc-checkpoint "$WORK/averaged_with_ctc.pt" | tee "$OUT/parity.txt"
