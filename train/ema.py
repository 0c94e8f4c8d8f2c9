"""Exponential moving average of the trainable weights, sharded across ranks as the optimizer shards them.

Each rank keeps float32 EMA for exactly the part of every trainable parameter whose float32 master weights
its optimizer holds (a ZeRO-3 partition, a ZeRO-1/2 fragment of the flat partition), and updates it from
those master weights: the EMA follows the float32 weights, never their bf16 copies, whose changes at a
learning rate of 1e-5 mostly round away. It costs 4 bytes per parameter / world per rank.

A fragment is (start, values) in the parameter's flattened elements. Checkpoints store each rank's
fragments with their starts, so a run on another number of ranks, or `python -m train.export` on one CPU
process, reassembles them by overlap.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Callable

import torch
from safetensors import safe_open
from torch import nn

Fragment = Callable[[nn.Parameter], tuple[int, torch.Tensor]]


def shape_of(p: nn.Parameter) -> tuple[int, ...]:
    return tuple(getattr(p, "ds_shape", None) or p.shape)


class ShardedEMA:
    def __init__(self, model: nn.Module, decay: float, fragment: Fragment):
        """`fragment(p)`: (start, flat float32 view) of the master weights this rank's optimizer holds."""
        self.decay, self.fragment = decay, fragment
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.start, self.shadow = {}, {}
        for name, p in self.params.items():
            start, values = fragment(p)
            self.start[name], self.shadow[name] = start, values.detach().float().clone()

    @torch.no_grad()
    def update(self) -> None:
        for name, p in self.params.items():
            self.shadow[name].lerp_(self.fragment(p)[1].float(), 1.0 - self.decay)

    def fragments(self):
        """(name, start, values) of this rank's EMA."""
        for name in self.params:
            yield name, self.start[name], self.shadow[name]

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors and JSON metadata (starts and shapes) for this rank's checkpoint files."""
        tensors = {f"ema.{n}": v.detach().cpu().contiguous() for n, v in self.shadow.items()}
        meta = {"starts": dict(self.start), "shapes": {n: list(shape_of(p)) for n, p in self.params.items()}}
        return tensors, meta

    def load(self, state_dir: str) -> None:
        """Fill this rank's fragments from every rank file of a checkpoint, whatever world size wrote it."""
        filled = {n: 0 for n in self.params}
        for meta, path in saved_ranks(state_dir):
            with safe_open(path, "pt") as f:
                for name, start in meta["starts"].items():
                    if name not in self.shadow:
                        raise ValueError(f"the checkpoint's EMA has {name}, which this run does not train")
                    mine, length = self.start[name], self.shadow[name].numel()
                    piece = f.get_slice(f"ema.{name}")
                    lo, hi = max(mine, start), min(mine + length, start + piece.get_shape()[0])
                    if lo < hi:
                        self.shadow[name][lo - mine:hi - mine].copy_(piece[lo - start:hi - start])
                        filled[name] += hi - lo
        short = [n for n, v in self.shadow.items() if filled[n] != v.numel()]
        if short:
            raise ValueError(f"the checkpoint's EMA does not cover this rank's part of {short[:5]}: it trains other parameters")


def saved_ranks(state_dir: str) -> list[tuple[dict, str]]:
    """(EMA metadata, tensor file) of every rank that wrote `state_dir`."""
    out = []
    for path in sorted(glob.glob(os.path.join(state_dir, "rank*.json"))):
        with open(path, encoding="utf-8") as f:
            meta = json.load(f).get("ema")
        if meta is not None:
            out.append((meta, path[:-len(".json")] + ".safetensors"))
    return out


def assembled(state_dir: str, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """One whole EMA tensor from a checkpoint's rank files (for exports without the ranks that wrote it)."""
    numel = 1
    for s in shape:
        numel *= s
    out, filled = torch.empty(numel, dtype=torch.float32), 0
    for meta, path in saved_ranks(state_dir):
        if name in meta["starts"]:
            with safe_open(path, "pt") as f:
                piece = f.get_tensor(f"ema.{name}")
            start = meta["starts"][name]
            out[start:start + piece.numel()] = piece
            filled += piece.numel()
    if filled != numel:
        raise ValueError(f"{state_dir}: the EMA fragments of {name} cover {filled} of {numel} elements")
    return out.view(shape)
