#!/usr/bin/env bash
# The main job on the built-in sample corpus: install, write the corpus, build shards on a local Ray
# cluster, print what was accepted and rejected and where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pipeline.sample_corpus demo/corpus --clean
.venv/bin/python pipeline/build_shards.py --input demo/corpus --output demo/out --models-dir models "$@"
echo "expected outcome of each sample: demo/corpus/labels.json"
