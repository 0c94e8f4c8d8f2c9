"""`benchmarks/gpu_probe.py --cpu-smoke`: the probe's three parts run their code paths at the debug size on
the CPU (SDPA kernels, the blocks fed as the trainer feeds them with a profiler split, and the trainer through
DeepSpeed: ZeRO-2 steps, ZeRO-3 save, resume and export). What it measures only means something on a GPU."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_gpu_probe_cpu_smoke_runs_every_part():
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "gpu_probe.py"), "--cpu-smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "(a) SDPA" in out and "512 tokens masked" in out
    assert "attention mask: none" in out  # an unpadded batch reaches attention without a mask
    assert "checkpointing on" in out and "time split: " in out and "matmul" in out
    assert "(c) trainer" in out and "resumed with the optimizer state intact" in out

