"""The training runs the trainer's tests read: one session fixture (`runs`, registered in conftest) launches
every job once, on the corpus run's shards, as a user launches them (`deepspeed` or `torchrun`, two CPU
ranks on gloo)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEEPSPEED = os.path.join(os.path.dirname(sys.executable), "deepspeed")


TORCHRUN = os.path.join(os.path.dirname(sys.executable), "torchrun")
ALL_PARTITIONED = ("--parallel.zero_stage", "3", "--parallel.zero3_persistence_threshold", "0")


def launch_args(recipe: str, run_dir: str, shards: str, port: int, *overrides: str, ranks: int = 2,
                launcher: str = "deepspeed") -> list[str]:
    start = ([DEEPSPEED, "--num_gpus", str(ranks), "--master_port", str(port)] if launcher == "deepspeed" else
             [TORCHRUN, "--nproc_per_node", str(ranks), "--master_port", str(port)])
    return [*start, "train/run.py", "--config", f"train/configs/{recipe}.yaml", "--data.dirs", shards,
            "--data.val_dirs", shards, "--train.run_dir", run_dir, *overrides]


def train(recipe: str, run_dir: str, shards: str, port: int, *overrides: str, ranks: int = 2,
          launcher: str = "deepspeed", check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(launch_args(recipe, run_dir, shards, port, *overrides, ranks=ranks, launcher=launcher),
                          cwd=REPO, capture_output=True, text=True, env=dict(os.environ, DS_ACCELERATOR="cpu"),
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def continue_from(source_run: str, tag: str, run_dir: str) -> str:
    """A new run folder holding one checkpoint of another run (and the statistics it trained with)."""
    os.makedirs(os.path.join(run_dir, "checkpoints"))
    shutil.copytree(os.path.join(source_run, "checkpoints", tag), os.path.join(run_dir, "checkpoints", tag))
    with open(os.path.join(run_dir, "checkpoints", "latest"), "w") as f:
        f.write(tag)
    shutil.copy(os.path.join(source_run, "audio_stats.json"), run_dir)
    return run_dir


def train_killed_at_step_10(recipe: str, run_dir: str, shards: str, port: int, audio_init: str) -> int:
    """Start the run, SIGKILL the launcher and every rank once checkpoint 10 is complete; returns the last
    step the killed run logged."""
    proc = subprocess.Popen(launch_args(recipe, run_dir, shards, port, "--model.audio_init", audio_init), cwd=REPO,
                            start_new_session=True,
                            env=dict(os.environ, DS_ACCELERATOR="cpu"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    latest, deadline = os.path.join(run_dir, "checkpoints", "latest"), time.time() + 300
    while not (os.path.isfile(latest) and open(latest).read().strip() == "step00000010"):
        assert proc.poll() is None and time.time() < deadline, "run ended before checkpoint 10"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return max(r["step"] for r in metrics(run_dir))


def metrics(run_dir: str) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def losses(run_dir: str, key: str = "loss/total") -> dict[int, float]:
    """The last value logged for each step (a resumed run logs steps after the checkpoint again)."""
    return {r["step"]: r[key] for r in metrics(run_dir) if key in r}


def export(run_dir: str, kind: str = "ema") -> dict[str, torch.Tensor]:
    from model.checkpoints import read_safetensors_shards

    return read_safetensors_shards(os.path.join(run_dir, "export", kind))


@pytest.fixture(scope="session")
def runs(corpus_run, tmp_path_factory) -> dict:
    shards = os.path.join(corpus_run["out"], "shards")
    root = tmp_path_factory.mktemp("training")
    out = {"shards": shards, "root": root}
    no_sample = ("--train.sample_every", "0")
    for name, recipe, port, extra in (
            ("stage1_z2", "stage1_debug", 29511, no_sample),
            ("stage1_z3", "stage1_debug", 29512, (*ALL_PARTITIONED, "--model.activation_checkpointing", "true", *no_sample)),
            ("stage2_z2", "stage2_debug", 29513, ()),
            ("stage2_z3", "stage2_debug", 29514, (*ALL_PARTITIONED, "--model.activation_checkpointing", "true",
                                                  "--train.export_every", "10", "--train.export_kinds", "ema,weights",
                                                  "--train.export_shard_gb", "0.0002",
                                                  *no_sample))):
        if recipe == "stage2_debug":
            extra = ("--model.audio_init", out["stage1_z2"], *extra)
        out[name] = str(root / name)
        out[f"{name}_log"] = train(recipe, out[name], shards, port, *extra).stdout
    killed = str(root / "s2killed")
    out["killed_at"] = train_killed_at_step_10("stage2_debug", killed, shards, 29515, out["stage1_z2"])
    out["exported_before_kill"] = os.path.exists(os.path.join(killed, "export"))
    out["stage2_resumed"] = killed
    train("stage2_debug", killed, shards, 29516, "--model.audio_init", out["stage1_z2"])
    # another world size: the ZeRO-3 run's checkpoint 10 (2 ranks) on 1 rank for two steps, checkpointing by
    # the clock too; that run's step-12 checkpoint (1 rank) on 2 ranks under torchrun, exporting at once
    partitioned = (*ALL_PARTITIONED, "--model.activation_checkpointing", "true", "--model.audio_init", out["stage1_z2"],
                   "--train.export_kinds", "ema,weights", *no_sample)
    out["on_one"] = continue_from(out["stage2_z3"], "step00000010", str(root / "on_one"))
    out["on_one_log"] = train("stage2_debug", out["on_one"], shards, 29517, *partitioned, "--train.steps", "12",
                              "--train.save_every_minutes", "0.00001", ranks=1).stdout
    out["on_two"] = continue_from(out["on_one"], "step00000012", str(root / "on_two"))
    out["on_two_log"] = train("stage2_debug", out["on_two"], shards, 29518, *partitioned, "--train.steps", "12",
                              launcher="torchrun").stdout
    # stage 2 told to normalise audio otherwise than stage 1 did
    other = root / "other_stats.json"
    stats = json.loads(open(os.path.join(out["stage1_z2"], "audio_stats.json")).read())
    other.write_text(json.dumps(dict(stats, mean=[m + 0.5 for m in stats["mean"]])))
    out["mismatch"] = train("stage2_debug", str(root / "mismatch"), shards, 29519, "--model.audio_init",
                            out["stage1_z2"], "--data.audio_stats", str(other), check=False)
    out["other_stats"] = str(other)
    # memory: the mid-size preset (a 12 MiB tensor stands out of the noise), every parameter partitioned,
    # started and exported in bf16 without a step
    out["mid"] = str(root / "mid")
    train("stage2_debug", out["mid"], shards, 29520, *ALL_PARTITIONED, "--model.preset", "mid", "--train.steps", "0",
          "--train.export_dtype", "bf16", "--train.export_kinds", "ema,weights", "--data.val_dirs", "", *no_sample)
    return out


