"""Issue 5 acceptance 1: the audit's HTML report of the corpus run renders in headless Chromium; a
screenshot is taken and the funnel and at least one loaded thumbnail are there."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000"]


def chromium(*args: str, profile: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed (scripts/install.sh installs it)")
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def test_html_report_renders_with_funnel_and_thumbnails(corpus_run, tmp_path):
    import cv2

    page = tmp_path / "audit.html"
    proc = subprocess.run([sys.executable, "-m", "manifests", "audit", corpus_run["out"], "--html", str(page)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "funnel" in proc.stdout and "rejections" in proc.stdout and "slowest stages" in proc.stdout
    dom = chromium("--dump-dom", page.as_uri(), profile=str(tmp_path / "p1")).stdout
    assert 'id="funnel"' in dom and "candidates" in dom and "<svg" in dom
    # the data filters' scores (issue 13) have their distributions
    for label in ("speech SNR (dB)", "face motion (grey levels)", "face sharpness (Laplacian var.)"):
        assert label in dom, label
    loaded = re.search(r'data-thumbs-loaded="(\d+)"', dom)
    assert loaded and int(loaded.group(1)) >= 1, "no thumbnail image loaded in the browser"
    assert "rejected at sync: sync_offset" in dom and "accepted (" in dom
    shot = tmp_path / "shot.png"
    chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri(), profile=str(tmp_path / "p2"))
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1600, 1280)
    assert np.std(image) > 20  # not a blank page: text, bars and photos


def test_the_funnel_follows_every_clip_stage_in_the_order_the_worker_runs_them():
    """The audit counts clips still in after each stage; a stage missing from its list would go uncounted."""
    from manifests.audit import CLIP_STAGES as FUNNEL
    from pipeline.run.source_worker import CLIP_STAGES

    assert FUNNEL == tuple(s.name for s in CLIP_STAGES) + ("encode",)
