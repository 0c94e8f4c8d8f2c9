"""Issue 27's experiment at its smallest (benchmarks/lip_sync_learning.py): a toy corpus of two real faces and
two voices through the pipeline, toy autoencoders fitted on its training sentences, the debug model trained
a few steps with and without joint attention, generated mouths scored with the evaluator's offline scorer.
What it can assert at this size is the measurement itself: the instrument (the ground truth through the toy
autoencoders) finds each shift where it was put, and the ablation's coupling gaps are exactly zero."""
from __future__ import annotations

import json
import os

import pytest


@pytest.fixture(scope="session")
def lip_sync_run(models_dir, tmp_path_factory) -> dict:
    from benchmarks.lip_sync_learning import main

    work = str(tmp_path_factory.mktemp("lip_sync"))
    main(["--work", work, "--models-dir", models_dir, "--faces", "2", "--voices", "2", "--sentences", "3",
          "--heldout", "1", "--steps", "6", "--cases", "4", "--seeds", "1", "--sample-steps", "4"])
    with open(os.path.join(work, "results.json"), encoding="utf-8") as f:
        return json.load(f)


def test_the_instrument_finds_every_shift(lip_sync_run):
    truth = lip_sync_run["summary"]["ground truth / a2v"]
    assert truth["no_face"] == 0
    assert truth["follows"] >= 0.9, truth
    assert all(share >= 0.75 for share in truth["by_k"].values()), truth


def test_the_ablation_cannot_couple(lip_sync_run):
    gaps = lip_sync_run["gaps"]["ablation"]
    assert gaps["video"]["gap"] == 0.0 and gaps["region"]["gap"] == 0.0 and gaps["audio"]["gap"] == 0.0, gaps


def test_the_toy_autoencoders_keep_the_mouth(lip_sync_run):
    """What the toy space can show: the mouth comes back recognisably (held-out sentences, same faces)."""
    fit = lip_sync_run["autoencoders"]
    assert fit["held_out"]["mouth_psnr_db"] > 22 and fit["held_out"]["mel_l1_log10"] < 0.3, fit
