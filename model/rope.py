"""Rotary positions of the joint model.

Each head's channels split into a temporal part and two spatial parts (Wan's split: d - 4(d//6), 2(d//6),
2(d//6)). Video tokens rotate all three by (latent frame, row, column). Audio tokens rotate only the
temporal part, by their index scaled into video latent frames (video frames / audio tokens over the same
clip, about 31/157), so an audio token and a video token of the same instant turn by the same angle.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

THETA = 10000.0


def head_split(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to (time, height, width)."""
    s = 2 * (head_dim // 6)
    return head_dim - 2 * s, s, s


def angles(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) float positions -> (N, dim // 2) rotation angles (float64 so long clips stay exact)."""
    inv_freq = 1.0 / THETA ** (torch.arange(0, dim, 2, dtype=torch.float64, device=positions.device) / dim)
    return torch.outer(positions.to(torch.float64), inv_freq)


def video_angles(frames: int, height: int, width: int, head_dim: int, device=None) -> torch.Tensor:
    """(frames*height*width, head_dim // 2) angles of a (f h w)-ordered token grid."""
    dt, dh, dw = head_split(head_dim)
    ar = lambda n: torch.arange(n, dtype=torch.float64, device=device)
    t = angles(ar(frames), dt)[:, None, None].expand(frames, height, width, -1)
    h = angles(ar(height), dh)[None, :, None].expand(frames, height, width, -1)
    w = angles(ar(width), dw)[None, None, :].expand(frames, height, width, -1)
    return torch.cat([t, h, w], -1).reshape(frames * height * width, -1)


def audio_angles(tokens: int, scale: float, head_dim: int, device=None) -> torch.Tensor:
    """(tokens, head_dim // 2) angles: the temporal part turns with position * scale, the rest stays."""
    dt, dh, dw = head_split(head_dim)
    t = angles(torch.arange(tokens, dtype=torch.float64, device=device) * scale, dt)
    return torch.cat([t, t.new_zeros(tokens, (dh + dw) // 2)], -1)


@dataclass(frozen=True)
class Rotation:
    """cos and sin of a token sequence's angles, float32 (1, L, 1, head_dim // 2): made once per forward
    and read by every attention of every block (angles in float64 first, so long clips stay exact)."""
    cos: torch.Tensor
    sin: torch.Tensor

    @classmethod
    def of(cls, theta: torch.Tensor) -> "Rotation":
        theta = theta[None, :, None]
        return cls(torch.cos(theta).float(), torch.sin(theta).float())


def apply_rope(x: torch.Tensor, rot: Rotation) -> torch.Tensor:
    """Rotate channel pairs of x (B, L, heads, head_dim), in float32 real arithmetic (Wan2.2 multiplies
    complex128 numbers: the same rotation, rounded once to float32 instead of to float64)."""
    pairs = x.float().unflatten(-1, (-1, 2))
    a, b = pairs[..., 0], pairs[..., 1]
    out = torch.stack([a * rot.cos - b * rot.sin, a * rot.sin + b * rot.cos], -1)
    return out.flatten(-2).to(x.dtype)
