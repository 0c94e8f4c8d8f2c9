"""Wan causal video VAE: Wan2.2 (48 channels, 16x16 spatial via a 2x2 patchify, 4x temporal) and
Wan2.1 (16 channels, 8x8, 4x). Frames come as 1 + 4k; latents as 1 + k.

encode: video (B, 3, 1+4k, H, W) in [-1, 1] -> normalised mean and log-variance (B, z, 1+k, H/s, W/s)
decode: normalised latent -> video in [-1, 1]
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange
from torch import nn

from model.wan_vae_blocks import (AttentionBlock, AvgDown3D, CausalConv3d, DupUp3D, Resample, ResidualBlock,
                                  RMSNorm, reset_stream)

STATS_FILE = os.path.join(os.path.dirname(__file__), "wan_latent_stats.json")


WEIGHT_FILES = {"2.2": "wan2.2/Wan2.2_VAE.pth", "2.1": "wan2.1/Wan2.1_VAE.pth"}


@dataclass(frozen=True)
class WanVAEConfig:
    version: str = "2.2"
    """'2.2' (shortcut blocks, 2x2 patchify) or '2.1'."""
    dim: int = 160
    """Encoder base width."""
    dec_dim: int = 256
    """Decoder base width."""
    z_dim: int = 48
    """Latent channels."""
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    """Width multiplier per level."""
    num_res_blocks: int = 2
    """Residual blocks per encoder level (the decoder has one more)."""
    temporal_down: tuple[bool, ...] = (False, True, True)
    """Which downsampling levels also halve time (reversed for the decoder)."""
    stats_key: str = field(default="wan2.2_vae")
    """Entry of the latent mean/std file."""

    @property
    def patch(self) -> int:
        return 2 if self.version == "2.2" else 1

    @property
    def spatial_factor(self) -> int:
        return self.patch * 2 ** (len(self.dim_mult) - 1)


WAN22 = WanVAEConfig()
WAN21 = WanVAEConfig(version="2.1", dim=96, dec_dim=96, z_dim=16, stats_key="wan2.1_vae")


class Encoder(nn.Module):
    def __init__(self, c: WanVAEConfig):
        super().__init__()
        dims = [c.dim * m for m in (1,) + c.dim_mult]
        self.conv1 = CausalConv3d(3 * c.patch ** 2, dims[0], 3, padding=1)
        levels = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(c.dim_mult) - 1
            temporal = not last and c.temporal_down[i]
            mode = "down3d" if temporal else "down2d"
            if c.version == "2.2":
                levels.append(DownLevel(cin, cout, c.num_res_blocks, None if last else mode, temporal))
            else:
                levels += [ResidualBlock(cin if k == 0 else cout, cout) for k in range(c.num_res_blocks)]
                levels += [] if last else [Resample(cout, mode)]
        self.downsamples = nn.Sequential(*levels)
        self.middle = nn.Sequential(ResidualBlock(dims[-1], dims[-1]), AttentionBlock(dims[-1]),
                                    ResidualBlock(dims[-1], dims[-1]))
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], c.z_dim * 2, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.middle(self.downsamples(self.conv1(x))))


class DownLevel(nn.Module):
    """Wan2.2: residual blocks and a downsample, plus a parameter-free averaging shortcut."""

    def __init__(self, cin: int, cout: int, blocks: int, mode: str | None, temporal: bool):
        super().__init__()
        self.avg_shortcut = AvgDown3D(cin, cout, 2 if temporal else 1, 2 if mode else 1)
        layers = [ResidualBlock(cin if k == 0 else cout, cout) for k in range(blocks)]
        self.downsamples = nn.Sequential(*layers, *([Resample(cout, mode)] if mode else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsamples(x) + self.avg_shortcut(x)


class UpLevel(nn.Module):
    """Wan2.2: residual blocks and an upsample, plus a parameter-free duplicating shortcut."""

    def __init__(self, cin: int, cout: int, blocks: int, mode: str | None, temporal: bool):
        super().__init__()
        self.avg_shortcut = DupUp3D(cin, cout, 2 if temporal else 1, 2) if mode else None
        layers = [ResidualBlock(cin if k == 0 else cout, cout) for k in range(blocks)]
        self.upsamples = nn.Sequential(*layers, *([Resample(cout, mode, up_out_dim=cout)] if mode else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.upsamples(x)
        return out if self.avg_shortcut is None else out + self.avg_shortcut(x)


class Decoder(nn.Module):
    def __init__(self, c: WanVAEConfig):
        super().__init__()
        dims = [c.dec_dim * m for m in (c.dim_mult[-1],) + c.dim_mult[::-1]]
        temporal_up = c.temporal_down[::-1]
        self.conv1 = CausalConv3d(c.z_dim, dims[0], 3, padding=1)
        self.middle = nn.Sequential(ResidualBlock(dims[0], dims[0]), AttentionBlock(dims[0]),
                                    ResidualBlock(dims[0], dims[0]))
        levels = []
        for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
            last = i == len(c.dim_mult) - 1
            temporal = not last and temporal_up[i]
            mode = None if last else ("up3d" if temporal else "up2d")
            if c.version == "2.2":
                levels.append(UpLevel(cin, cout, c.num_res_blocks + 1, mode, temporal))
            else:  # Wan2.1's upsample convs halve the width, so every level after the first starts narrower
                cin = cin // 2 if i > 0 else cin
                levels += [ResidualBlock(cin if k == 0 else cout, cout) for k in range(c.num_res_blocks + 1)]
                levels += [Resample(cout, mode, up_out_dim=cout // 2)] if mode else []
        self.upsamples = nn.Sequential(*levels)
        self.head = nn.Sequential(RMSNorm(dims[-1]), nn.SiLU(), CausalConv3d(dims[-1], 3 * c.patch ** 2, 3, padding=1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.upsamples(self.middle(self.conv1(z))))


class WanVAE(nn.Module):
    def __init__(self, config: WanVAEConfig = WAN22):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.conv1 = CausalConv3d(config.z_dim * 2, config.z_dim * 2, 1)
        self.conv2 = CausalConv3d(config.z_dim, config.z_dim, 1)
        self.decoder = Decoder(config)
        mean, std = latent_stats(config)
        self.register_buffer("latent_mean", mean.view(1, -1, 1, 1, 1), persistent=False)
        self.register_buffer("latent_inv_std", (1.0 / std).view(1, -1, 1, 1, 1), persistent=False)

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 1+4k, H, W) -> normalised mean and raw log-variance, each (B, z, 1+k, H/s, W/s)."""
        t = video.shape[2]
        if (t - 1) % 4:
            raise ValueError(f"the Wan VAE takes 1 + 4k frames, got {t}")
        p = self.config.patch
        x = rearrange(video, "b c t (h q) (w r) -> b (c r q) t h w", q=p, r=p) if p > 1 else video
        reset_stream(self.encoder, True)
        try:
            chunks = [x[:, :, :1]] + [x[:, :, i:i + 4] for i in range(1, t, 4)]
            out = torch.cat([self.encoder(chunk) for chunk in chunks], 2)
        finally:
            reset_stream(self.encoder, False)
        mu, logvar = self.conv1(out).chunk(2, dim=1)
        return (mu - self.latent_mean.to(mu.dtype)) * self.latent_inv_std.to(mu.dtype), logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent (B, z, 1+k, h, w) -> video (B, 3, 1+4k, H, W) clamped to [-1, 1]."""
        z = z / self.latent_inv_std.to(z.dtype) + self.latent_mean.to(z.dtype)
        x = self.conv2(z)
        reset_stream(self.decoder, True)
        try:
            out = torch.cat([self.decoder(x[:, :, i:i + 1]) for i in range(x.shape[2])], 2)
        finally:
            reset_stream(self.decoder, False)
        p = self.config.patch
        if p > 1:
            out = rearrange(out, "b (c r q) t h w -> b c t (h q) (w r)", q=p, r=p)
        return out.clamp(-1.0, 1.0)


def latent_stats(config: WanVAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The official per-channel latent mean and std (a tiny config takes the first z_dim of them)."""
    with open(STATS_FILE) as f:
        stats = json.load(f)[config.stats_key]
    mean, std = torch.tensor(stats["latent_mean"]), torch.tensor(stats["latent_std"])
    reps = -(-config.z_dim // len(mean))
    return mean.repeat(reps)[: config.z_dim], std.repeat(reps)[: config.z_dim]


def load_wan_vae(models_dir: str, config: WanVAEConfig = WAN22) -> WanVAE:
    """The official checkpoint (models_dir/wan2.x/Wan2.x_VAE.pth), loaded strictly."""
    from model.checkpoints import load_strict

    return load_strict(WanVAE(config), models_dir, WEIGHT_FILES[config.version]).eval()


def to_video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(N, T, H, W, 3) uint8 -> (N, 3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)
