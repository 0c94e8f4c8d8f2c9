"""Initial weights drawn on the CPU from one seeded generator, unit by unit.

Every random initial value comes from here and never from torch's global RNG or a parameter's device: a
plain build, a build partitioned by ZeRO-3 (DeepSpeed's `zero.Init` draws its own defaults while the
modules are built, differently from one release to the next) and a build on a GPU then hold the same
numbers for one seed. A unit is (module, initialiser); ZeRO-3 gathers one unit's weights at a time.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch
from torch import nn

Initialiser = Callable[[nn.Module, torch.Generator], None]
Unit = tuple[nn.Module, Initialiser]


def generator(seed: int | None) -> torch.Generator:
    """The CPU generator of one build; unseeded builds take their seed from torch's global RNG, so
    `torch.manual_seed` governs them as it does any module."""
    if seed is None:
        seed = int(torch.randint(0, 2 ** 62, (), device="cpu"))
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def no_default_init():
    """Modules built inside skip PyTorch's default initialisation (their weights are left as allocated):
    where the units will draw every value anyway (ZeRO-3's partitioned build), the defaults are not drawn
    first for nothing."""
    classes = (nn.Linear, nn.modules.conv._ConvNd, nn.LayerNorm)
    saved = [c.reset_parameters for c in classes]
    try:
        for c in classes:
            c.reset_parameters = lambda self: None
        yield
    finally:
        for c, method in zip(classes, saved):
            c.reset_parameters = method


def run(units: list[Unit], seed: int | None) -> None:
    g = generator(seed)
    with torch.no_grad():
        for module, init in units:
            init(module, g)


def drawn(p: torch.Tensor, fill: Callable[[torch.Tensor, torch.Generator], None], g: torch.Generator) -> None:
    """Fill a float32 CPU tensor of p's shape with `fill`, then copy it into p (any device or dtype); a
    meta tensor (a build for names and shapes only) draws nothing."""
    if p.is_meta:
        return
    t = torch.empty(p.shape, dtype=torch.float32, device="cpu")
    fill(t, g)
    p.copy_(t)


def xavier_uniform(p: torch.Tensor, g: torch.Generator) -> None:
    """Xavier-uniform over the tensor flattened to (out, rest), as Wan initialises linears and its patch conv."""
    drawn(p, lambda t, g: nn.init.xavier_uniform_(t.flatten(1), generator=g), g)


def normal(p: torch.Tensor, std: float, g: torch.Generator) -> None:
    drawn(p, lambda t, g: nn.init.normal_(t, std=std, generator=g), g)


def fan_in_uniform(p: torch.Tensor, fan_in: int, g: torch.Generator) -> None:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for a convolution's bias."""
    bound = 1 / math.sqrt(fan_in)
    drawn(p, lambda t, g: nn.init.uniform_(t, -bound, bound, generator=g), g)


def xavier_linear(m: nn.Linear, g: torch.Generator) -> None:
    xavier_uniform(m.weight, g)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def normal_linear(m: nn.Linear, g: torch.Generator) -> None:
    normal(m.weight, 0.02, g)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def patch_conv(m: nn.Conv1d | nn.Conv3d, g: torch.Generator) -> None:
    """Xavier over the flattened kernel; the bias keeps PyTorch's default law (Wan leaves it so)."""
    xavier_uniform(m.weight, g)
    if m.bias is not None:
        fan_in_uniform(m.bias, m.weight[0].numel(), g)


def modulation(m: nn.Module, g: torch.Generator) -> None:
    """A block's or head's learned modulation table: N(0, 1/dim), as Wan draws it."""
    normal(m.modulation, m.modulation.shape[-1] ** -0.5, g)


def zero_weight(m: nn.Module, g: torch.Generator) -> None:
    nn.init.zeros_(m.weight)


def norm(m: nn.Module, g: torch.Generator) -> None:
    """A norm's affine weights: ones (and zero bias), as constructed; listed so that a model materialised
    from the meta device gets every value from its units."""
    nn.init.ones_(m.weight)
    if getattr(m, "bias", None) is not None:
        nn.init.zeros_(m.bias)
