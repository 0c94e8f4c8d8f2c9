"""Stage-2 training throughput of the real trainer (`deepspeed train/run.py`) on one GPU: the full-size joint
block design (dim 3072, 24 heads, FFN 14336) at reduced depth, bf16, ZeRO-2, activation checkpointing, on
shards of random latents with the paper's shapes (704x704x121 video, 5.04 s audio, 4 s reference voice).
Prints samples/s, tokens/s, peak memory and MFU (FLOPs from model/flops.py) over the steps after warm-up.

    python benchmarks/train_step.py --layers 4 --steps 30            # on a CUDA machine
    python benchmarks/train_step.py --preset debug --cpu --steps 6    # a smoke run of the same path on a CPU
    python benchmarks/train_step.py --roofline                        # on a CPU: the roofline ratio

--roofline times forward and backward of the joint model at a width that fits a CPU (float32, in this
process) and prints their FLOP/s (FLOPs from model/flops.py; backward = 2x forward) over the FLOP/s of a
large float32 matmul measured in the same run.
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
import time

import numpy as np

from generate.sample import audio_tokens

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


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def roofline(repeats: int = 5) -> None:
    import torch

    from model.flops import forward_flops
    from model.unitalking import Conditioning, UniTalking, UniTalkingConfig

    n = 2048
    x, y = torch.randn(n, n), torch.randn(n, n)
    peak = 2 * n ** 3 / timed(lambda: x @ y, repeats)
    c = UniTalkingConfig(dim=512, ffn_dim=2048, heads=8, layers=2, text_dim=64, text_len=32)
    model = UniTalking(c).train()
    video, audio_len, ref_len = torch.randn(1, 48, 13, 16, 16), audio_tokens(49 / 24), 125  # 256x256, 49 frames
    audio = torch.randn(1, 20, audio_len)
    cond = Conditioning(text=torch.randn(1, 20, c.text_dim), ref_voice=torch.randn(1, 20, ref_len))
    t = torch.tensor([500.0])
    fwd_flops = forward_flops(c, tuple(video.shape[1:]), audio_len, ref_len)
    forward = lambda: model(video, audio, t, t, cond)

    def backward() -> float:
        v, a = forward()
        loss = v.square().mean() + a.square().mean()
        t0 = time.perf_counter()
        loss.backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    t_fwd = timed(forward, repeats)
    backward()
    t_bwd = statistics.median(backward() for _ in range(repeats))
    print(f"CPU, {torch.get_num_threads()} threads: float32 {n}x{n} matmul {peak / 1e9:.1f} GFLOP/s")
    print(f"joint model dim {c.dim}, {c.layers} blocks, 256x256x49 + {audio_len} audio tokens: "
          f"{fwd_flops / 1e9:.2f} GFLOP forward")
    for name, flops, sec in (("forward", fwd_flops, t_fwd), ("backward", 2 * fwd_flops, t_bwd)):
        print(f"  {name:8s} {sec * 1e3:7.1f} ms  {flops / sec / 1e9:6.1f} GFLOP/s  roofline ratio {flops / sec / peak:.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="paper")
    p.add_argument("--layers", type=int, default=4, help="joint blocks (the paper has 30)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5, help="steps left out of the averages")
    p.add_argument("--size", type=int, default=704)
    p.add_argument("--frames", type=int, default=121)
    p.add_argument("--cpu", action="store_true", help="DeepSpeed's CPU accelerator (gloo, float32)")
    p.add_argument("--roofline", action="store_true", help="CPU: model FLOP/s over a large matmul's, no trainer")
    a = p.parse_args()
    if a.roofline:
        roofline()
        return
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
