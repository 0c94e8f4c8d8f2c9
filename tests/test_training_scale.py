"""Issue 24 acceptance on the session's training runs (tests/training_runs.py): stage 2 normalises audio with
stage 1's statistics and refuses others; exports stream one tensor at a time and equal a gather of the
same weights; `python -m train.export` rebuilds them from a checkpoint on one process; a checkpoint written
by 2 ranks resumes on 1 and one written by 1 on 2 (under torchrun) with optimizer state and EMA intact."""
from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tests.training_runs import export, metrics


def logged(run_dir: str, step: int, prefix: str) -> dict[str, float]:
    out = {}
    for r in metrics(run_dir):
        if r["step"] == step:
            out.update({k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)})
    return out


def stats_of(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def test_stage2_normalises_audio_with_the_statistics_stage1_trained_on(runs):
    from model.checkpoints import export_metadata
    from train.audio_stats import compute

    stage1 = stats_of(os.path.join(runs["stage1_z2"], "audio_stats.json"))
    for run in ("stage2_z2", "stage2_z3", "stage2_resumed"):
        mine = stats_of(os.path.join(runs[run], "audio_stats.json"))
        assert (mine["mean"], mine["std"]) == (stage1["mean"], stage1["std"]), run
        carried = json.loads(export_metadata(os.path.join(runs[run], "export", "ema"))["audio_stats"])
        assert carried == {"mean": stage1["mean"], "std": stage1["std"]}
    # stage 1 estimated them on two ranks, each reading its share of the sampled shards: the same sums as
    # one process reading every shard
    whole = compute([runs["shards"]])
    assert stage1["tokens"] == whole["tokens"]
    assert stage1["mean"] == pytest.approx(whole["mean"], rel=1e-12, abs=1e-12)
    assert stage1["std"] == pytest.approx(whole["std"], rel=1e-12, abs=1e-12)


def test_mismatched_audio_statistics_stop_stage2_before_its_first_step(runs):
    proc = runs["mismatch"]
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "disagrees with the statistics stage 1 trained on" in said
    assert runs["other_stats"] in said and os.path.join(runs["stage1_z2"], "export", "ema") in said
    steps = [r["step"] for r in metrics(os.path.join(runs["root"], "mismatch"))] \
        if os.path.exists(os.path.join(runs["root"], "mismatch", "metrics.jsonl")) else []
    assert not any(s >= 1 for s in steps)


def test_the_export_equals_a_gather_of_the_same_weights_and_the_command_rebuilds_it(runs, tmp_path):
    from model.checkpoints import EXPORT_INDEX
    from train.distributed import checkpoint_weights

    run = runs["stage2_z3"]  # every parameter partitioned across two ranks
    weights, ema = export(run, "weights"), export(run, "ema")
    gathered = {k: v.contiguous() for k, v in checkpoint_weights(os.path.join(run, "checkpoints"), "step00000020").items()}
    assert set(weights) == set(gathered) == set(ema)
    assert all(torch.equal(weights[k], gathered[k]) for k in weights)
    assert sum(not torch.equal(ema[k], weights[k]) for k in ema) > 0.9 * len(ema)  # the EMA lags the weights
    index = stats_of(os.path.join(run, "export", "ema", EXPORT_INDEX))
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 1  # sharded: export_shard_gb is a few hundred kB here
    proc = subprocess.run([sys.executable, "-m", "train.export", os.path.join(run, "checkpoints", "step00000020"),
                           str(tmp_path), "--kinds", "ema,weights", "--dtype", "fp32", "--shard-gb", "0.0002"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for kind in ("ema", "weights"):
        names = sorted(os.listdir(os.path.join(run, "export", kind)))
        assert names == sorted(os.listdir(tmp_path / kind))
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(run, "export", kind), tmp_path / kind, names, shallow=False)
        assert not mismatch and not errors, (kind, mismatch, errors)


def test_export_memory_stays_within_one_tensor(runs):
    run = runs["mid"]
    m = logged(run, 0, "export/")
    total_mib = sum(v.numel() * v.element_size() for v in export(run, "ema").values()) / 2 ** 20
    assert export(run, "ema")["audio.blocks.0.ffn.0.weight"].dtype == torch.bfloat16  # bf16 by default
    bound = 1.1 * m["largest_tensor_mib"]
    assert bound < total_mib / 5  # a gather of the whole model would break the bound many times over
    assert m["peak_extra_mib"] <= bound, m


def test_a_checkpoint_resumes_on_another_world_size_with_optimizer_state_and_ema(runs):
    saved = logged(runs["stage2_z3"], 10, "checkpoint/")  # 2 ranks wrote it
    on_one = logged(runs["on_one"], 10, "resume/")
    assert all(saved[k] > 0 for k in ("master_abs_sum", "exp_avg_abs_sum", "exp_avg_sq_sum", "ema_abs_sum"))
    assert on_one == pytest.approx(saved, rel=1e-12)
    assert "written by 2 ranks with other data streams" in runs["on_one_log"]
    assert "data streams restarted at step 10" in runs["on_one_log"]
    checkpoints = set(os.listdir(os.path.join(runs["on_one"], "checkpoints")))
    assert {"step00000011", "step00000012", "step00000010_universal"} <= checkpoints  # 11: by the clock
    on_two = logged(runs["on_two"], 12, "resume/")  # 1 rank wrote it, 2 read it (torchrun)
    assert on_two == pytest.approx(logged(runs["on_one"], 12, "checkpoint/"), rel=1e-12)
    assert "written by 1 ranks" in runs["on_two_log"]
    for kind in ("ema", "weights"):
        a, b = export(runs["on_one"], kind), export(runs["on_two"], kind)
        assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
