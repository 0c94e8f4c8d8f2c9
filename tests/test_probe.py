"""The in-process probe (PyAV) gives the manifest the same facts as ffprobe, on every file of the sample
corpus (its broken, rotated, variable-rate, late-starting and picture-only inputs included) and of the real
footage; what PyAV cannot read goes to ffprobe, whose words the manifest keeps."""
from __future__ import annotations

import glob
import os

import pytest

from pipeline import media


def both_ways(path: str):
    out = []
    for in_process in (True, False):
        try:
            out.append(media.probe(path, in_process=in_process))
        except media.ProbeError as e:
            out.append(("ProbeError", e.reason, e.detail))
    return out


def assert_same(path: str) -> None:
    ours, theirs = both_ways(path)
    if isinstance(theirs, tuple):
        assert ours == theirs, path
        return
    assert isinstance(ours, dict), (path, ours)
    assert ours.keys() == theirs.keys(), (path, ours.keys() ^ theirs.keys())
    for k, v in theirs.items():
        assert ours[k] == (pytest.approx(v, abs=2e-6) if isinstance(v, float) else v), (path, k, ours[k], v)


@pytest.mark.integration  # building the corpus takes half a minute
def test_same_facts_as_ffprobe_on_the_sample_corpus(corpus):
    folder, _ = corpus
    files = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True) if os.path.isfile(p))
    assert any("rotated_90" in p for p in files) and len(files) > 10
    for path in files:
        assert_same(path)
    assert media.probe(next(p for p in files if "rotated_90" in p))["rotation"] == -90


def test_same_facts_as_ffprobe_on_real_footage(footage):
    files = sorted(glob.glob(os.path.join(footage, "**", "*.mp4"), recursive=True))
    assert len(files) >= 70
    for path in files:
        assert_same(path)
