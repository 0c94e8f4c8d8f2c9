"""Building blocks of the Wan causal video VAE (Wan2.1 and Wan2.2), named so official weights load strictly.

Video is processed in causal chunks (1 frame, then 4 at a time). Each block keeps its own streaming
state (the last input frames of the previous chunk); `reset_stream` clears it before and after a pass.
Shapes: (B, C, T, H, W).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

CONTEXT_FRAMES = 2  # a temporal kernel of 3 needs the two frames before a chunk


class CausalConv3d(nn.Conv3d):
    """Conv3d padded on the past side only. While streaming, the previous chunk's last input frames
    stand in for that padding, so chunk after chunk equals one pass over the whole video."""

    def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
        super().__init__(cin, cout, kernel, stride=stride, padding=0)
        p = (padding,) * 3 if isinstance(padding, int) else tuple(padding)
        self.time_pad, self.space_pad = 2 * p[0], (p[2], p[2], p[1], p[1])
        self.streaming, self.context = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_t = self.time_pad
        if self.streaming:
            prev = self.context
            keep = x[:, :, -CONTEXT_FRAMES:]
            if keep.shape[2] < CONTEXT_FRAMES and prev is not None:
                keep = torch.cat([prev[:, :, -1:], keep], 2)
            self.context = keep.detach()
            if prev is not None and pad_t > 0:
                x = torch.cat([prev.to(x.dtype), x], 2)
                pad_t -= prev.shape[2]
        return super().forward(F.pad(x, self.space_pad + (pad_t, 0)))


class RMSNorm(nn.Module):
    """L2-normalise over channels, times sqrt(C) and a learned gain."""

    def __init__(self, dim: int, images: bool = False):
        super().__init__()
        self.scale = dim ** 0.5
        self.gamma = nn.Parameter(torch.ones(dim, *((1, 1) if images else (1, 1, 1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * self.scale * self.gamma


class NearestUp2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # float32 because bf16 nearest is not everywhere
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").type_as(x)


def per_frame(fn, x: torch.Tensor) -> torch.Tensor:
    t = x.shape[2]
    return rearrange(fn(rearrange(x, "b c t h w -> (b t) c h w")), "(b t) c h w -> b c t h w", t=t)


class Resample(nn.Module):
    """2x spatial up/down sampling per frame, with a causal 2x in time for the '3d' modes."""

    def __init__(self, dim: int, mode: str, up_out_dim: int | None = None):
        super().__init__()
        self.mode = mode
        if mode in ("up2d", "up3d"):
            self.resample = nn.Sequential(NearestUp2x(), nn.Conv2d(dim, up_out_dim or dim, 3, padding=1))
        else:
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "up3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "down3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))
        self.seen, self.last = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "up3d":
            if self.seen:  # the first chunk is a single frame and stays one
                x = rearrange(self.time_conv(x), "b (two c) t h w -> b c (t two) h w", two=2)
            self.seen = True
        x = per_frame(self.resample, x)
        if self.mode == "down3d":
            last, self.last = self.last, x[:, :, -1:].detach()
            if last is not None:  # chunk of 4 -> 2: the previous chunk's last frame leads in
                x = self.time_conv(torch.cat([last.to(x.dtype), x], 2))
        return x


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(cin), nn.SiLU(), CausalConv3d(cin, cout, 3, padding=1),
            RMSNorm(cout), nn.SiLU(), nn.Dropout(0.0), CausalConv3d(cout, cout, 3, padding=1))
        self.shortcut = CausalConv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, images=True)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def attend(f: torch.Tensor) -> torch.Tensor:  # (N, C, H, W)
            h, w = f.shape[-2:]
            q, k, v = rearrange(self.to_qkv(self.norm(f)), "n (three c) h w -> three n 1 (h w) c", three=3)
            out = F.scaled_dot_product_attention(q, k, v)
            return self.proj(rearrange(out, "n 1 (h w) c -> n c h w", h=h, w=w))

        return x + per_frame(attend, x)


class AvgDown3D(nn.Module):
    """Parameter-free shortcut: fold (t, h, w) blocks into channels, then average channel groups."""

    def __init__(self, cin: int, cout: int, factor_t: int, factor_s: int):
        super().__init__()
        self.cout, self.ft, self.fs = cout, factor_t, factor_s
        self.group = cin * factor_t * factor_s * factor_s // cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, 0, (self.ft - x.shape[2] % self.ft) % self.ft, 0))
        x = rearrange(x, "b c (t ft) (h fh) (w fw) -> b (c ft fh fw) t h w", ft=self.ft, fh=self.fs, fw=self.fs)
        return rearrange(x, "b (o g) t h w -> b o g t h w", o=self.cout).mean(2)


class DupUp3D(nn.Module):
    """Parameter-free shortcut: repeat channels, then unfold them into (t, h, w) blocks."""

    def __init__(self, cin: int, cout: int, factor_t: int, factor_s: int):
        super().__init__()
        self.cout, self.ft, self.fs = cout, factor_t, factor_s
        self.repeats = cout * factor_t * factor_s * factor_s // cin
        self.seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.repeat_interleave(self.repeats, dim=1)
        x = rearrange(x, "b (c ft fh fw) t h w -> b c (t ft) (h fh) (w fw)", ft=self.ft, fh=self.fs, fw=self.fs)
        first, self.seen = not self.seen, True
        return x[:, :, self.ft - 1:] if first else x  # the first chunk is one frame


def reset_stream(module: nn.Module, streaming: bool) -> None:
    """Clear every block's streaming state and switch streaming on or off."""
    for m in module.modules():
        if isinstance(m, CausalConv3d):
            m.streaming, m.context = streaming, None
        elif isinstance(m, Resample):
            m.seen, m.last = False, None
        elif isinstance(m, DupUp3D):
            m.seen = False
