"""MMAudio's 16 kHz mel VAE: 80-band log-mel at 62.5 Hz <-> 20-channel latent at 31.25 Hz.

Magnitude-preserving 1-D convolutions (EDM2 style: each output filter is forced to unit norm, scaled by
1/sqrt(fan-in)), pixel-normalised residual blocks, one temporal halving. State-dict names follow the
official checkpoint as saved (raw weights; the normalisation is applied in `forward`).

encode: mel (B, 80, 2L+1) -> mean, logvar (B, 20, L);  decode: (B, 20, L) -> mel (B, 80, 2L)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

CLIP_ACT = 256.0
WEIGHT_FILE = "mmaudio/v1-16.pth"


def pixel_norm(x: torch.Tensor, dim: int | tuple = 1, eps: float = 1e-4) -> torch.Tensor:
    """x / (eps + RMS over `dim`)."""
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = eps + norm * math.sqrt(norm.numel() / x.numel())
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / 0.596  # keeps unit variance for unit-variance input


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.3) -> torch.Tensor:
    return a.lerp(b, t) / math.sqrt((1 - t) ** 2 + t ** 2)


class MPConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel))

    def forward(self, x: torch.Tensor, gain: torch.Tensor | float = 1.0) -> torch.Tensor:
        w = pixel_norm(self.weight.float(), dim=(1, 2)) / math.sqrt(self.weight[0].numel())
        w = w.to(x.dtype) * gain
        return F.conv1d(x, w, padding=w.shape[-1] // 2)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = MPConv1d(cin, cout, 3)
        self.conv2 = MPConv1d(cout, cout, 3)
        if cin != cout:
            self.nin_shortcut = MPConv1d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(x)
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        return mp_sum(self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x, h)


class Attention(nn.Module):
    """One head over time; q, k, v interleaved in the projection's channels and pixel-normalised."""

    def __init__(self, dim: int):
        super().__init__()
        self.qkv = MPConv1d(dim, dim * 3, 1)
        self.proj_out = MPConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = pixel_norm(rearrange(self.qkv(x), "b (c three) l -> b c three l", three=3), dim=1)
        q, k, v = (rearrange(t, "b c l -> b 1 l c") for t in qkv.unbind(2))
        h = rearrange(F.scaled_dot_product_attention(q, k, v), "b 1 l c -> b c l")
        return mp_sum(x, self.proj_out(h))


class Down(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1, self.conv2 = MPConv1d(dim, dim, 1), MPConv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.avg_pool1d(self.conv1(x), 2, 2))


class Up(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv = MPConv1d(dim, dim, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"))


def level(blocks: list[nn.Module], resample: nn.Module | None, name: str) -> nn.Module:
    m = nn.Module()
    m.block = nn.ModuleList(blocks)
    m.attn = nn.ModuleList()
    if resample is not None:
        setattr(m, name, resample)
    return m


def middle(dim: int) -> nn.Module:
    m = nn.Module()
    m.block_1, m.attn_1, m.block_2 = ResBlock(dim, dim), Attention(dim), ResBlock(dim, dim)
    return m


@dataclass(frozen=True)
class AudioVAEConfig:
    mels: int = 80
    """Input mel bands."""
    latent: int = 20
    """Latent channels."""
    dim: int = 384
    """Base width."""
    mult: tuple[int, ...] = (1, 2, 4)
    """Width multiplier per level; level 0 halves time."""
    blocks: int = 2
    """Residual blocks per encoder level (decoder: one more)."""


class Encoder(nn.Module):
    def __init__(self, c: AudioVAEConfig):
        super().__init__()
        self.conv_in = MPConv1d(c.mels, c.dim, 3)
        widths = [c.dim * m for m in (1,) + c.mult]
        self.down = nn.ModuleList(
            level([ResBlock(widths[i] if k == 0 else widths[i + 1], widths[i + 1]) for k in range(c.blocks)],
                  Down(widths[i + 1]) if i == 0 else None, "downsample") for i in range(len(c.mult)))
        self.mid = middle(widths[-1])
        self.conv_out = MPConv1d(widths[-1], 2 * c.latent, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for lvl in self.down:
            for block in lvl.block:
                h = block(h).clamp(-CLIP_ACT, CLIP_ACT)
            if hasattr(lvl, "downsample"):
                h = lvl.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h))).clamp(-CLIP_ACT, CLIP_ACT)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class Decoder(nn.Module):
    def __init__(self, c: AudioVAEConfig):
        super().__init__()
        widths = [c.dim * m for m in c.mult]
        self.conv_in = MPConv1d(c.latent, widths[-1], 3)
        self.mid = middle(widths[-1])
        ups = []
        for i in range(len(c.mult)):  # up[i] runs from the deepest level down, up[1] doubles time
            cin = widths[i + 1] if i + 1 < len(widths) else widths[-1]
            ups.append(level([ResBlock(cin if k == 0 else widths[i], widths[i]) for k in range(c.blocks + 1)],
                             Up(widths[i]) if i == 1 else None, "upsample"))
        self.up = nn.ModuleList(ups)
        self.conv_out = MPConv1d(widths[0], c.mels, 3)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z)))).clamp(-CLIP_ACT, CLIP_ACT)
        for lvl in reversed(self.up):
            for block in lvl.block:
                h = block(h).clamp(-CLIP_ACT, CLIP_ACT)
            if hasattr(lvl, "upsample"):
                h = lvl.upsample(h)
        return self.conv_out(mp_silu(h), gain=self.learnable_gain + 1)


class AudioVAE(nn.Module):
    def __init__(self, config: AudioVAEConfig = AudioVAEConfig()):
        super().__init__()
        self.config = config
        # per-band statistics of the training mels; the official values arrive with the checkpoint
        self.register_buffer("data_mean", torch.zeros(1, config.mels, 1))
        self.register_buffer("data_std", torch.ones(1, config.mels, 1))
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        moments = self.encoder((mel - self.data_mean) / self.data_std)
        mean, logvar = moments.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z) * self.data_std + self.data_mean


def load_audio_vae(models_dir: str, config: AudioVAEConfig = AudioVAEConfig()) -> AudioVAE:
    from model.checkpoints import load_strict

    return load_strict(AudioVAE(config), models_dir, WEIGHT_FILE).eval()
