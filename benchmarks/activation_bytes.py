"""Bytes of activations one full-size joint block keeps for its backward pass, per token: measured with
saved-tensor hooks on the real block (dim 3072, FFN 14336, 24 heads), in bf16, on the CPU. SDPA is pinned
to the flash kernel (PyTorch has one for CPUs too), which keeps O(tokens) per attention as the GPU kernels
do. Tensors the block saves that are parameters, or the text and reference-voice contexts every block
shares, are not activations of the block and are left out. Two token counts give the cost per token (the
slope) and per block (the intercept: the block's own projections of the text and the reference).

    python benchmarks/activation_bytes.py
"""
from __future__ import annotations

import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402

from model.unitalking import PRESETS, Conditioning, UniTalking  # noqa: E402


def saved_bytes(model: UniTalking, frames: int, side: int, audio: int) -> tuple[int, int]:
    """(bytes the joint blocks keep for backward, tokens) of one sample, bf16, batch 1."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}
    g = torch.Generator().manual_seed(0)
    bf = dict(dtype=torch.bfloat16)
    video = torch.randn(1, 48, frames, side, side, generator=g).to(**bf)
    cond = Conditioning(text=torch.randn(1, 512, 4096, generator=g).to(**bf),
                        ref_voice=torch.randn(1, 20, 125, generator=g).to(**bf))

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    block = model.blocks[0]
    forward = block.forward

    def recorded(*args):
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            return forward(*args)

    block.forward = recorded
    try:
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            model(video, torch.randn(1, 20, audio, generator=g).to(**bf), torch.tensor([[500.0] * frames]),
                  torch.tensor([500.0]), cond)
    finally:
        del block.forward
    tokens = frames * (side // 2) ** 2 + audio
    return sum(seen.values()), tokens


def measure() -> dict[str, float]:
    """bytes per token per joint block, and per block independent of the tokens (text/reference K, V)."""
    one = dataclasses.replace(PRESETS["paper"], layers=1)
    torch.manual_seed(0)
    model = UniTalking(one).to(torch.bfloat16)
    model.requires_grad_(True)
    small = saved_bytes(model, 2, 8, 16)
    large = saved_bytes(model, 4, 16, 64)
    per_token = (large[0] - small[0]) / (large[1] - small[1])
    return {"per_token": per_token, "per_block": small[0] - per_token * small[1],
            "residual_per_token": 4 * one.dim}  # what a checkpointed block keeps of a token: its float32 input


def main() -> None:
    m = measure()
    print(f"one full-size joint block, bf16: {m['per_token'] / 1024:.1f} KiB per token kept for backward, plus "
          f"{m['per_block'] / 2 ** 20:.1f} MiB per block; checkpointed: {m['residual_per_token'] / 1024:.1f} KiB per "
          f"token (the block's float32 input)")


if __name__ == "__main__":
    main()
