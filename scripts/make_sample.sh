#!/usr/bin/env bash
# Regenerates samples/hello.wav, the short recording the README's first command
# transcribes. Made by the project itself with espeak-ng (GPL-3 program; its output
# is ours), resampled to 16 kHz mono 16-bit with sox.
#   apt-get install espeak-ng sox
set -euo pipefail
cd "$(dirname "$0")/.."
text="Hello, and welcome to hark. This recording was made to test speech recognition on your own computer."
tmp=$(mktemp --suffix=.wav)
trap 'rm -f "$tmp"' EXIT
espeak-ng -v en-us -s 150 -w "$tmp" "$text"
sox "$tmp" -r 16000 -c 1 -b 16 samples/hello.wav
echo "$text" > samples/hello.txt
soxi samples/hello.wav
