"""Forward + backward of one full-size joint block (not a test; needs a CUDA GPU).

    python benchmarks/joint_block.py [--steps 10] [--peak-tflops 989]

A 121-frame 704x704 clip (31 x 44 x 44 latent -> 15004 video tokens) with 5.04 s of audio (157 tokens),
512 text tokens and 125 reference-voice tokens, in bf16, fed exactly as the trainer feeds them (train/tasks.py
builds the inputs: per-frame timesteps, no attention mask for an unpadded clip). Prints time per step, peak
memory, and the MFU the block's counted FLOPs imply against the GPU's dense bf16 peak (H100 SXM: 989 TFLOP/s).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from benchmarks.gpu_probe import Probe, trainer_inputs  # noqa: E402
from model.flops import forward_flops  # noqa: E402
from model.unitalking import PRESETS, UniTalking  # noqa: E402
from train.config import TaskConfig  # noqa: E402
from train.tasks import losses  # noqa: E402

LATENT, AUDIO, REF = (48, 31, 44, 44), 157, 125


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=989.0)
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return
    one = dataclasses.replace(PRESETS["paper"], layers=1)
    model = UniTalking(one).to("cuda", torch.bfloat16)
    block_flops = 3 * (forward_flops(one, LATENT, AUDIO, REF) - forward_flops(dataclasses.replace(one, layers=0), LATENT, AUDIO, REF))
    probe = Probe(torch.device("cuda"), torch.bfloat16, "paper", (), LATENT[1:], AUDIO, 4096, 704, 121, 0)
    fwd = trainer_inputs(probe, model)

    def step():
        pv, pa = model(*fwd.model_inputs())
        losses(fwd, pv, pa, TaskConfig())[0].backward()

    step()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / a.steps
    # the measured step also holds the embeddings and heads; the MFU below counts the block's FLOPs only
    print(f"{torch.cuda.get_device_name()}: one joint block, {LATENT} video latent + {AUDIO} audio tokens, bf16")
    print(f"  forward+backward {dt * 1000:.1f} ms, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"  block FLOPs {block_flops / 1e12:.2f} TFLOP -> {block_flops / dt / 1e12:.0f} TFLOP/s, "
          f"MFU {block_flops / dt / (a.peak_tflops * 1e12):.1%} of {a.peak_tflops:.0f}")


if __name__ == "__main__":
    main()
