"""One stream of the joint transformer, in Wan2.x's block design and parameter names (so the official
Wan2.2-TI2V-5B DiT loads strictly into the video stream). The joint forward lives in `unitalking.py` and
`joint_block.py`; these modules only hold parameters and the per-stream pieces of computation.

Shapes: tokens (B, L, dim); heads (B, L, heads, head_dim). Timesteps and modulation come per group of
tokens, G equal runs of consecutive tokens sharing one timestep (a video latent frame, a whole audio clip):
a modulation table is (B, G, 6, dim) and broadcasts over its group's L / G tokens, which costs what a
per-sample table costs where Wan2.2 builds (B, L, 6, dim) per token.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from model import init

FREQ_DIM = 256  # sinusoidal timestep features
# the kernels attention may use on a GPU: never the math fallback, which materialises the score matrix
GPU_ATTENTION = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 (affine weights too, whatever their storage dtype)."""

    def __init__(self, dim: int, affine: bool = False, eps: float = 1e-6):
        super().__init__(dim, eps=eps, elementwise_affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = None if self.weight is None else self.weight.float()
        b = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).type_as(x)


class Float32Linear(nn.Linear):
    """A linear layer computed in float32 whatever its weights are stored in: Wan2.2 runs its time
    embedding, time projection and output head under float32 autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.float(), self.weight.float(), None if self.bias is None else self.bias.float())


@dataclass
class Modulation:
    """A block's six modulation vectors, each (B, G, 1, dim) float32: one per group of tokens."""
    shift_attn: torch.Tensor
    scale_attn: torch.Tensor
    gate_attn: torch.Tensor
    shift_ffn: torch.Tensor
    scale_ffn: torch.Tensor
    gate_ffn: torch.Tensor


def grouped(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, L, dim) -> (B, G, L / G, dim): a view in which (B, G, 1, dim) modulation broadcasts."""
    b, length, d = x.shape
    return x.view(b, groups, length // groups, d)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 + scale) + shift with one (shift, scale) per token group; x (B, L, dim) float32."""
    return (grouped(x, shift.shape[1]) * (1 + scale) + shift).flatten(1, 2)


def gated(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """The residual x + y * gate, y taken to float32 (the residual stream stays float32, as Wan keeps it)."""
    return x + (grouped(y.float(), gate.shape[1]) * gate).flatten(1, 2)


class Attention(nn.Module):
    """Projections of Wan's attention (q, k, v, o with RMS-normalised q and k over the full width)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, dim) -> (B, L, heads, head_dim)
        return x.unflatten(-1, (self.heads, -1))

    def query(self, x: torch.Tensor) -> torch.Tensor:
        return self.split(self.norm_q(self.q(x)))

    def key_value(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.norm_k(self.k(x))), self.split(self.v(x))


class ReferenceKV(nn.Module):
    """Separate key/value projections through which a block's cross-attention reads the reference voice.
    Its output passes a per-channel gate that starts at zero, so a pretrained stream is unchanged at step 0."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_k = RMSNorm(dim)
        self.gate = nn.Parameter(torch.zeros(dim))

    def forward(self, q: torch.Tensor, ref: torch.Tensor, keep: torch.Tensor,
                ref_mask: torch.Tensor | None = None) -> torch.Tensor:
        """q (B, Lq, heads, d), ref (B, Lr, dim), keep (B,) -> gated (B, Lq, dim); ref_mask (B, Lr) marks real tokens."""
        k = self.norm_k(self.k(ref)).unflatten(-1, (self.heads, -1))
        v = self.v(ref).unflatten(-1, (self.heads, -1))
        out = attend(q, k, v, ref_mask)
        return out * (self.gate * keep.to(out.dtype)[:, None, None])

    def init_units(self) -> list[init.Unit]:
        return [(self.k, init.xavier_linear), (self.v, init.xavier_linear), (self, lambda m, g: nn.init.zeros_(m.gate)),
                (self.norm_k, init.norm)]


class Block(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, heads: int):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm3 = LayerNorm(dim, affine=True)
        self.cross_attn = Attention(dim, heads)
        self.norm2 = LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.empty(1, 6, dim))  # drawn by init.modulation

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, G, 6, dim) timestep projection -> the block's six modulation vectors, each (B, G, 1, dim)
        float32, in `Modulation`'s order. This is all a Block's own call computes: its table is read inside
        it (where ZeRO-3 fetches it); the block's computation is model/joint_block.py's."""
        return tuple((self.modulation.float() + e.float()).chunk(6, dim=2))


class Head(nn.Module):
    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = LayerNorm(dim)
        self.head = Float32Linear(dim, out_dim)
        self.modulation = nn.Parameter(torch.empty(1, 2, dim))  # drawn by init.modulation

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x (B, L, dim) residual stream and e (B, G, dim) per token group, float32 -> (B, L, out) float32."""
        shift, scale = (self.modulation.float() + e.float()[:, :, None]).chunk(2, dim=2)
        return self.head(modulate(self.norm(x.float()), shift, scale))


def timestep_features(t: torch.Tensor, dim: int = FREQ_DIM) -> torch.Tensor:
    """(...,) timesteps in [0, 1000] -> (..., dim) cos/sin features (float64 as Wan computes them)."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    x = t.to(torch.float64)[..., None] * freqs
    return torch.cat([torch.cos(x), torch.sin(x)], -1)


class Stream(nn.Module):
    """Embeddings, blocks and head of one modality. `patch` is (t, h, w) for video, (t,) for audio."""

    def __init__(self, in_dim: int, dim: int, ffn_dim: int, heads: int, layers: int, patch: tuple[int, ...],
                 text_dim: int = 4096):
        super().__init__()
        self.patch, self.in_dim = patch, in_dim
        conv = nn.Conv3d if len(patch) == 3 else nn.Conv1d
        self.patch_embedding = conv(in_dim, dim, kernel_size=patch, stride=patch)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(Float32Linear(FREQ_DIM, dim), nn.SiLU(), Float32Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), Float32Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(Block(dim, ffn_dim, heads) for _ in range(layers))
        self.head = Head(dim, in_dim * math.prod(patch))

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """(B, C, *grid) latent -> (B, L, dim) tokens and the token grid."""
        x = self.patch_embedding(x)
        return x.flatten(2).transpose(1, 2), tuple(x.shape[2:])

    def time(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, G) timesteps of G token groups -> e (B, G, dim) for the head, e0 (B, G, 6, dim) for the
        blocks, float32."""
        e = self.time_embedding(timestep_features(t).float())
        return e, self.time_projection(e).unflatten(-1, (6, -1))

    def init_units(self) -> list[init.Unit]:
        """Wan's initialisation, module by module: xavier-uniform linears with zero bias, xavier patch
        embedding over its flattened kernel, N(0, 0.02) text and time embeddings, N(0, 1/dim) modulation
        tables and a zero output head."""
        embeddings = {id(m) for m in (*self.text_embedding.modules(), *self.time_embedding.modules())}
        units: list[init.Unit] = []
        for m in self.modules():
            if isinstance(m, nn.Linear):
                units.append((m, init.normal_linear if id(m) in embeddings else init.xavier_linear))
        units += [(self.patch_embedding, init.patch_conv), *((b, init.modulation) for b in self.blocks),
                  (self.head, init.modulation), (self.head.head, init.zero_weight)]
        units += [(m, init.norm) for m in self.modules() if isinstance(m, (RMSNorm, LayerNorm)) and m.weight is not None]
        return units

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
        """(B, L, C * prod(patch)) -> (B, C, *grid * patch)."""
        b, p = x.shape[0], self.patch
        x = x.reshape(b, *grid, *p, self.in_dim)
        if len(p) == 3:
            x = torch.einsum("bfhwpqrc->bcfphqwr", x)
        else:
            x = torch.einsum("blpc->bclp", x)
        return x.reshape(b, self.in_dim, *[g * q for g, q in zip(grid, p)])


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, Lq, heads, d) x (B, Lk, heads, d) -> (B, Lq, heads * d) with torch's SDPA; key_mask (B, Lk) bool
    keeps padding keys out. Give None when every key is real: a mask rules out the flash kernel. On a GPU
    only the fused kernels may run (an input none of them takes is an error, not a slow fallback)."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    args = (q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    if q.is_cuda:
        with sdpa_kernel(GPU_ATTENTION):
            out = F.scaled_dot_product_attention(*args, attn_mask=mask)
    else:
        out = F.scaled_dot_product_attention(*args, attn_mask=mask)
    return out.transpose(1, 2).flatten(2)
