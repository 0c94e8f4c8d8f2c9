"""Exponential moving average of the trainable weights, sharded across ranks.

Each rank keeps float32 EMA for its slice of every trainable parameter: flat indices
[rank * n, (rank + 1) * n) with n = ceil(numel / world). That is exactly the local partition ZeRO-3 holds
(`param.ds_tensor`), so under ZeRO-3 the EMA reads the partition directly and never gathers; under ZeRO-2
(full parameters on every rank) it slices them. Either way the EMA costs 4 bytes per parameter / world
per rank, and `full_state` all-gathers the slices when exporting.
"""
from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_slice(p: nn.Parameter, rank: int, world: int) -> torch.Tensor:
    """This rank's flat slice of a parameter, zero-padded to ceil(numel / world) elements."""
    part = getattr(p, "ds_tensor", None)
    if part is not None:  # ZeRO-3: the partition this rank owns
        return part.detach().view(-1).float()
    n = math.ceil(p.numel() / world)
    flat = p.detach().reshape(-1)[rank * n:(rank + 1) * n].float()
    return torch.nn.functional.pad(flat, (0, n - flat.numel()))


def numel_of(p: nn.Parameter) -> int:
    return getattr(p, "ds_numel", None) or p.numel()


def shape_of(p: nn.Parameter) -> torch.Size:
    return getattr(p, "ds_shape", None) or p.shape


class ShardedEMA:
    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.rank, self.world = _world()
        self.params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        self.shadow = {n: local_slice(p, self.rank, self.world).clone() for n, p in self.params.items()}

    @torch.no_grad()
    def update(self) -> None:
        for name, p in self.params.items():
            self.shadow[name].lerp_(local_slice(p, self.rank, self.world), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """This rank's slices (for its checkpoint file)."""
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise ValueError(f"EMA state does not match the trainable parameters: {sorted(missing)[:5]}")
        for k, v in state.items():
            if v.shape != self.shadow[k].shape:
                raise ValueError(f"EMA slice {k} has shape {tuple(v.shape)}, expected {tuple(self.shadow[k].shape)}: "
                                 "resume with the same number of ranks")
            self.shadow[k].copy_(v)

    def full_state(self) -> dict[str, torch.Tensor]:
        """Whole EMA tensors (every rank must call; all ranks get them)."""
        out = {}
        for name, p in self.params.items():
            mine = self.shadow[name]
            if self.world > 1:
                parts = [torch.empty_like(mine) for _ in range(self.world)]
                dist.all_gather(parts, mine)
                mine = torch.cat(parts)
            out[name] = mine[:numel_of(p)].reshape(shape_of(p)).clone()
        return out
