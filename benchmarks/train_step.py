"""Stage-2 training throughput of the real trainer (`deepspeed train/run.py`) on one GPU: the full-size joint
block design (dim 3072, 24 heads, FFN 14336) at reduced depth, bf16, ZeRO-2, activation checkpointing, on
shards of random latents with the paper's shapes (704x704x121 video, 5.04 s audio, 4 s reference voice).
Prints samples/s, tokens/s, peak memory and MFU (FLOPs from model/flops.py) over the steps after warm-up.

    python benchmarks/train_step.py --layers 4 --steps 30            # on a CUDA machine
    python benchmarks/train_step.py --preset debug --cpu --steps 6    # a smoke run of the same path on a CPU
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile

import numpy as np

from train.sample import audio_tokens

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a.astype(np.float16))
    return buf.getvalue()


def write_shard(path: str, samples: int, size: int, frames: int, text_dim: int) -> None:
    """Random latents in the pipeline's sample layout (json + one .npy per tensor)."""
    rng = np.random.default_rng(0)
    f, s = (frames - 1) // 4 + 1, size // 16
    audio = audio_tokens(frames / 24)
    with tarfile.open(path, "w") as tar:
        for i in range(samples):
            members = {"json": json.dumps({"fps": 24.0}).encode(),
                       "video_mean.npy": npy(rng.standard_normal((48, f, s, s))),
                       "audio_mean.npy": npy(rng.standard_normal((20, audio))),
                       "audio_logvar.npy": npy(np.full((20, audio), -6.0)),
                       "text.npy": npy(rng.standard_normal((40, text_dim))),
                       "ref_voice.npy": npy(rng.standard_normal((20, 125)))}
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{i:08d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--layers", type=int, default=4, help="joint blocks (the paper has 30)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the averages")
    p.add_argument("--size", type=int, default=704)
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--cpu", action="store_true", help="DeepSpeed's CPU accelerator (gloo, float32)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bucket = os.path.join(tmp, "shards", f"{a.size}x{a.size}x{a.frames}")
        os.makedirs(bucket)
        write_shard(os.path.join(bucket, "000000.tar"), 8, a.size, a.frames, 4096 if a.preset == "paper" else 32)
        run = os.path.join(tmp, "run")
        cmd = [os.path.join(os.path.dirname(sys.executable), "deepspeed"), "--num_gpus", "1", "train/run.py",
               "--config", "train/configs/stage2_paper.yaml", "--model.preset", a.preset, "--model.layers", str(a.layers),
               "--model.video_dit", "", "--model.audio_init", "", "--data.dirs", os.path.join(tmp, "shards"),
               "--data.val_dirs", "", "--data.workers", "2", "--parallel.zero_stage", "2", "--parallel.micro_batches", "1",
               "--train.steps", str(a.steps), "--train.save_every", str(10 ** 9), "--train.sample_every", "0",
               "--train.run_dir", run, "--optim.warmup_steps", "1"]
        if a.cpu:
            cmd += ["--parallel.bf16", "false", "--data.tokens_per_batch", "100000", "--data.max_batch", "1"]
        env = dict(os.environ, DS_ACCELERATOR="cpu") if a.cpu else dict(os.environ)
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
        with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
            rows = [r for r in map(json.loads, f) if "loss/total" in r and r["step"] > a.warmup]
    mean = lambda k: statistics.mean(r[k] for r in rows) if rows and k in rows[0] else float("nan")
    print(f"{a.preset} blocks x {a.layers}, {a.size}x{a.size}x{a.frames} + audio, {len(rows)} steps measured")
    print(f"samples/s {mean('throughput/samples_per_s'):.3f}   tokens/s {mean('throughput/tokens_per_s'):.0f}   "
          f"peak memory {max((r.get('memory/peak_gib', float('nan')) for r in rows), default=float('nan')):.1f} GiB   "
          f"MFU {mean('throughput/mfu'):.3f}")


if __name__ == "__main__":
    main()
