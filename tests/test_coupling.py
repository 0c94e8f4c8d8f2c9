"""Issue 12's science check, the measurement itself: with the streams unable to attend to each other the
coupling gap is exactly zero whatever the weights; with joint attention and the same weights it is not."""
from __future__ import annotations

import dataclasses
import math
import os

import torch


def test_gap_is_zero_for_the_ablation_and_finite_with_joint_attention(corpus_run):
    from model.audio_norm import AudioNorm
    from model.unitalking import PRESETS, UniTalking
    from train.audio_stats import compute
    from train.coupling import coupling_gaps, held_out

    shards = [os.path.join(corpus_run["out"], "shards")]
    batch = held_out(shards, 4)
    assert batch["video"].shape[0] >= 2
    stats = compute(shards)
    norm = AudioNorm(stats["mean"], stats["std"])
    torch.manual_seed(0)
    joint = UniTalking(dataclasses.replace(PRESETS["debug"], cross_modal=True)).eval()
    with torch.no_grad():  # random everywhere: the zero-initialised output heads would make every gap 0
        for p in joint.parameters():
            p.normal_(0.0, 0.05)
    apart = UniTalking(dataclasses.replace(PRESETS["debug"], cross_modal=False)).eval()
    apart.load_state_dict(joint.state_dict())

    ablation = coupling_gaps(apart, batch, norm, seeds=2)
    assert all(g == 0.0 for m in ("video", "audio") for g in ablation[m].per_seed), ablation
    coupled = coupling_gaps(joint, batch, norm, seeds=2)
    for m in ("video", "audio"):  # random weights couple the streams weakly, but never not at all
        assert all(math.isfinite(g) and g != 0.0 for g in coupled[m].per_seed), coupled
