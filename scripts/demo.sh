#!/usr/bin/env bash
# The main job on the built-in sample corpus: install, write the corpus, build latent shards on a local
# Ray cluster, print what was accepted and rejected and where the outputs are. No official weights can be
# downloaded here, so latents come from small seeded random weights (--debug-models; the manifests say
# so) at a 256x256 bucket that a CPU encodes quickly; real runs use the defaults (704x704, Wan2.2 VAE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m sample_corpus.build demo/corpus --clean
.venv/bin/python pipeline/build_shards.py --input demo/corpus --output demo/out --models-dir models \
  --debug-models --buckets 256x256 "$@"
echo "expected outcome of each sample: demo/corpus/labels.json"
