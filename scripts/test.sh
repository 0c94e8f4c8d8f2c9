#!/usr/bin/env bash
# Install, then run the whole test suite (real ffmpeg, a local Ray cluster, whisperx on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest "$@"
