"""`benchmarks/gpu_probe.py --cpu-smoke`: the probe's three parts run their code paths at the debug size on
the CPU (SDPA kernels, the blocks fed as the trainer feeds them with a profiler split, and the trainer through
DeepSpeed: ZeRO-2 steps, ZeRO-3 save, resume and export). What it measures only means something on a GPU."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.integration
def test_gpu_probe_cpu_smoke_runs_every_part():
    proc = subprocess.run([sys.executable, os.path.join("benchmarks", "gpu_probe.py"), "--cpu-smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    rows = [line for line in out.splitlines() if " tokens " in line and "masked" in line]
    assert len(rows) == 4 and all(re.search(r"\d+\.\d/\d+\.\d", r) for r in rows)  # some kernel timed on each input
    assert "attention mask: none" in out  # an unpadded batch reaches attention without a mask
    assert re.search(r"matmul [1-9]\d*%", out)  # the profiler saw matrix multiplies take time
    assert "resumed with the optimizer state intact" in out  # fingerprints equal before the save and after

