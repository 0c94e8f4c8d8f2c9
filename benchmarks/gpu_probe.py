"""What one H100 says about the trainer, in one script of under 8 minutes:

(a) SDPA kernels at the joint attention's sizes (15,161 and 27,437 tokens, 24 heads of 128), with and without
    a padding mask, forward and forward+backward: which backends take each input, and how fast;
(b) four full-size joint blocks fed exactly as the trainer feeds them (train/tasks.py builds the inputs from
    a batch of the paper's shapes): ms per block, peak memory with and without activation checkpointing, and
    a profiler split of the time into matmul, attention and element-wise kernels;
(c) the trainer itself through DeepSpeed on this GPU: ZeRO-2 for 16 steps (samples/s, MFU, peak memory), then
    ZeRO-3 saving, resuming (the optimizer state's fingerprint before and after) and exporting (the smoke run
    leaves the timed ZeRO-2 run out).

    python benchmarks/gpu_probe.py                 # on a CUDA machine
    python benchmarks/gpu_probe.py --cpu-smoke     # the same code paths at the debug size on a CPU (a test runs it)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from benchmarks.train_step import write_shard  # noqa: E402
from model.audio_norm import AudioNorm  # noqa: E402
from model.unitalking import PRESETS, UniTalking  # noqa: E402
from train.activation_checkpoint import apply_activation_checkpointing  # noqa: E402
from train.config import TaskConfig  # noqa: E402
from train.tasks import build, losses  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}


@dataclasses.dataclass
class Probe:
    device: torch.device
    dtype: torch.dtype
    preset: str
    tokens: tuple[int, ...]  # joint attention lengths for (a)
    latent: tuple[int, int, int]  # (frames, height, width) of the video latent for (b)
    audio: int
    text_dim: int
    shard_size: int  # pixels of the trainer's synthetic clips for (c)
    shard_frames: int
    steps: int  # timed ZeRO-2 steps of (c); 0 leaves that run out

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def timed_ms(probe: Probe, fn, repeats: int = 3) -> float:
    fn()
    probe.sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    probe.sync()
    return (time.perf_counter() - t0) / repeats * 1000


def sdpa_table(probe: Probe) -> None:
    print("(a) SDPA at the joint attention's sizes, ms forward / forward+backward ('-': the kernel refuses the input)")
    heads, d = 24, 128
    for length in probe.tokens:
        g = torch.Generator(device=probe.device).manual_seed(0)
        q, k, v = (torch.randn(1, heads, length, d, device=probe.device, dtype=probe.dtype, generator=g).requires_grad_()
                   for _ in range(3))
        mask = torch.ones(1, 1, 1, length, dtype=torch.bool, device=probe.device)
        mask[..., -16:] = False  # padded audio tokens, as a stage-1 batch has them
        for masked in (False, True):
            cells = []
            for name, backend in BACKENDS.items():
                if name == "math" and probe.device.type == "cuda" and length > 8192:
                    cells.append(f"{name} skipped ({length}^2 scores)")
                    continue
                try:
                    with sdpa_kernel(backend):
                        fwd = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask if masked else None)
                        f_ms = timed_ms(probe, fwd)
                        fb_ms = timed_ms(probe, lambda: fwd().sum().backward())
                    cells.append(f"{name} {f_ms:.1f}/{fb_ms:.1f}")
                except RuntimeError:
                    cells.append(f"{name} -")
            print(f"  {length:6d} tokens {'masked  ' if masked else 'unmasked'}: " + ", ".join(cells))


def trainer_inputs(probe: Probe, model: UniTalking):
    """One micro-batch as the trainer builds it (TR2AV: every path of the block runs)."""
    f, h, w = probe.latent
    batch = {"video": torch.randn(1, 48, f, h, w), "audio": torch.randn(1, 20, probe.audio),
             "audio_mask": torch.ones(1, probe.audio, dtype=torch.bool), "text": torch.randn(1, 100, probe.text_dim),
             "ref_voice": torch.randn(1, 20, 125), "ref_mask": torch.ones(1, 125, dtype=torch.bool),
             "has_ref": torch.tensor([True]), "fps": 24.0}
    fwd = build(batch, TaskConfig(drop_ref=0.0), AudioNorm([0.0] * 20, [1.0] * 20), torch.Generator().manual_seed(0),
                probe.device, "tr2av")
    fwd.video, fwd.audio = fwd.video.to(probe.dtype), fwd.audio.to(probe.dtype)
    return fwd


def kernel_class(name: str) -> str:
    n = name.lower()
    if any(s in n for s in ("flash", "fmha", "attention", "sdpa", "cudnn_sdp")):
        return "attention"
    if any(s in n for s in ("gemm", "cutlass", "xmma", "matmul", "aten::mm", "aten::addmm", "aten::bmm", "nvjet")):
        return "matmul"
    return "element-wise"


def blocks_table(probe: Probe) -> None:
    layers = 4
    cfg = dataclasses.replace(PRESETS[probe.preset], layers=layers)
    torch.manual_seed(0)
    model = UniTalking(cfg).to(probe.device, probe.dtype)
    fwd = trainer_inputs(probe, model)
    tokens = fwd.tokens
    print(f"(b) {layers} joint blocks ({probe.preset}), {tokens} tokens fed as the trainer feeds them "
          f"(attention mask: {'none' if fwd.model_inputs()[6] is None else 'yes'})")

    def step():
        pv, pa = model(*fwd.model_inputs())
        losses(fwd, pv, pa, TaskConfig())[0].backward()
        model.zero_grad(set_to_none=True)

    for ckpt in (False, True):
        if ckpt:
            apply_activation_checkpointing(model)
        if probe.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        ms = timed_ms(probe, step)
        peak = torch.cuda.max_memory_allocated() / 2 ** 30 if probe.device.type == "cuda" else float("nan")
        print(f"  checkpointing {'on ' if ckpt else 'off'}: {ms / layers:.1f} ms per block (forward+backward, "
              f"embeddings and heads included), peak memory {peak:.1f} GiB")
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if probe.device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        step()
        probe.sync()
    split: dict[str, float] = {}
    for e in prof.key_averages():
        if probe.device.type == "cuda":
            us = getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        else:
            us = e.self_cpu_time_total if e.key.startswith("aten::") else 0
        split[kernel_class(e.key)] = split.get(kernel_class(e.key), 0.0) + us
    total = sum(split.values()) or 1.0
    print("  time split: " + ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(split.items())))


def launch(probe: Probe, shards: str, run: str, zero: int, steps: int, *extra: str) -> list[dict]:
    cmd = [os.path.join(os.path.dirname(sys.executable), "deepspeed"), "--num_gpus", "1", "train/run.py",
           "--config", "train/configs/stage2_paper.yaml", "--model.preset", probe.preset, "--model.layers", "4",
           "--model.video_dit", "", "--model.audio_init", "", "--data.dirs", shards, "--data.val_dirs", "",
           "--data.workers", "2", "--parallel.zero_stage", str(zero), "--parallel.micro_batches", "1",
           "--train.steps", str(steps), "--train.sample_every", "0", "--train.run_dir", run,
           "--optim.warmup_steps", "1", "--data.audio_stats_shards", "1", *extra]
    env = dict(os.environ)
    if probe.device.type == "cpu":
        cmd += ["--parallel.bf16", "false"]
        env["DS_ACCELERATOR"] = "cpu"
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def trainer_table(probe: Probe) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bucket = os.path.join(tmp, "shards", f"{probe.shard_size}x{probe.shard_size}x{probe.shard_frames}")
        os.makedirs(bucket)
        write_shard(os.path.join(bucket, "000000.tar"), 4, probe.shard_size, probe.shard_frames, probe.text_dim)
        shards = os.path.join(tmp, "shards")
        print(f"(c) trainer, {probe.preset} x 4 blocks, {probe.shard_size}x{probe.shard_size}x{probe.shard_frames}")
        if probe.steps:  # the timed ZeRO-2 run means something on a GPU only; the smoke leaves it out
            rows = launch(probe, shards, os.path.join(tmp, "z2"), 2, probe.steps, "--train.save_every", "1000000",
                          "--train.export_kinds", "ema")
            timed = [r for r in rows if "throughput/samples_per_s" in r and r["step"] > 2]
            mean = lambda k: sum(r.get(k, float("nan")) for r in timed) / max(1, len(timed))
            peak = max((r.get("memory/peak_gib", float("nan")) for r in timed), default=float("nan"))
            print(f"  ZeRO-2 {len(timed)} steps timed: {mean('throughput/samples_per_s'):.3f} samples/s, "
                  f"{mean('throughput/tokens_per_s'):.0f} tokens/s, MFU {mean('throughput/mfu'):.3f}, peak {peak:.1f} GiB")
        z3 = os.path.join(tmp, "z3")
        t0 = time.perf_counter()
        saved = launch(probe, shards, z3, 3, 2, "--train.save_every", "2", "--train.export_every", "0")
        first = time.perf_counter() - t0
        resumed = launch(probe, shards, z3, 3, 3, "--train.save_every", "1000000")
        at = lambda rows, prefix: {k.split("/", 1)[1]: v for r in rows if r["step"] == 2 for k, v in r.items()
                                   if k.startswith(prefix)}
        same = at(saved, "checkpoint/") == at(resumed, "resume/") and at(saved, "checkpoint/")
        export = next((r for r in resumed if "export/peak_extra_mib" in r), {})
        print(f"  ZeRO-3: 2 steps, save and export in {first:.0f} s; resumed with the optimizer state "
              f"{'intact' if same else 'CHANGED'}; export peak extra host memory {export.get('export/peak_extra_mib', float('nan')):.1f} "
              f"MiB (largest tensor {export.get('export/largest_tensor_mib', float('nan')):.1f} MiB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu-smoke", action="store_true", help="debug sizes on the CPU: checks the paths, measures nothing")
    a = p.parse_args()
    if a.cpu_smoke:
        probe = Probe(torch.device("cpu"), torch.float32, "debug", (256, 512), (3, 8, 8), 15, 32, 128, 9, 0)
    elif not torch.cuda.is_available():
        sys.exit("no CUDA device: run with --cpu-smoke")
    else:
        probe = Probe(torch.device("cuda"), torch.bfloat16, "paper", (15_161, 27_437), (31, 44, 44), 157, 4096, 704, 121, 16)
        print(torch.cuda.get_device_name(), "torch", torch.__version__)
    sdpa_table(probe)
    blocks_table(probe)
    trainer_table(probe)


if __name__ == "__main__":
    main()
