"""FLOPs of the joint model per training sample (forward + backward = 3x forward), for MFU reporting.

Counts every matrix multiply (2 FLOPs per multiply-add): embeddings, timestep projections (once per
latent frame of video and once per sample of audio, as the model computes them),
joint self-attention, text and reference-voice cross-attention, FFNs and heads. Norms, rotary and
elementwise work are left out (they are not matmul work a tensor core does)."""
from __future__ import annotations

import math

from model.dit_stream import FREQ_DIM
from model.unitalking import UniTalkingConfig


def _sizes(c: UniTalkingConfig, video_latent: tuple[int, int, int, int], audio_tokens: int) -> tuple[int, int]:
    _, f, h, w = video_latent
    pt, ph, pw = c.video_patch
    return (f // pt) * (h // ph) * (w // pw), audio_tokens


def attention_flops(c: UniTalkingConfig, video_latent: tuple[int, int, int, int], audio_tokens: int,
                    ref_tokens: int = 0, video_to_audio: bool = False) -> int:
    """Scores and weighted sums of self- and cross-attention (QK^T and AV), all blocks."""
    lv, la = _sizes(c, video_latent, audio_tokens)
    tokens, d = lv + la, c.dim
    pairs = lv * lv + la * tokens if video_to_audio else tokens * tokens
    return c.layers * 2 * 2 * d * (pairs + tokens * c.text_len + tokens * ref_tokens)


def linear_flops(c: UniTalkingConfig, video_latent: tuple[int, int, int, int], audio_tokens: int,
                 ref_tokens: int = 0, video_time_groups: int | None = None) -> int:
    """Every projection: embeddings, timestep MLPs, attention projections, FFNs, heads. `video_time_groups`:
    distinct video timesteps per sample (None: one per latent frame, as the trainer passes them)."""
    lv, la = _sizes(c, video_latent, audio_tokens)
    tokens, lt, d = lv + la, c.text_len, c.dim
    patch = 2 * lv * d * c.video_channels * math.prod(c.video_patch) + 2 * la * d * c.audio_channels
    embed = 2 * patch  # patch embeddings in, heads out
    groups = (video_latent[1] // c.video_patch[0] if video_time_groups is None else video_time_groups) if lv else 0
    time = 2 * (groups + 1) * (FREQ_DIM * d + d * d + d * 6 * d)
    text = 2 * 2 * lt * (c.text_dim * d + d * d)  # text embedding of both streams
    ref = 2 * ref_tokens * c.audio_channels * d
    per_block = 2 * tokens * (4 * d * d + 2 * d * d + 2 * d * c.ffn_dim)  # self q k v o, cross q o, FFN
    per_block += 2 * 2 * 2 * lt * d * d + 2 * 2 * 2 * ref_tokens * d * d  # k, v of text and reference, two streams
    return embed + time + text + ref + c.layers * per_block


def forward_flops(c: UniTalkingConfig, video_latent: tuple[int, int, int, int], audio_tokens: int,
                  ref_tokens: int = 0, video_to_audio: bool = False, video_time_groups: int | None = None) -> int:
    """video_latent: (C, F, H, W) of the latent; audio_tokens: audio latent length."""
    return (linear_flops(c, video_latent, audio_tokens, ref_tokens, video_time_groups)
            + attention_flops(c, video_latent, audio_tokens, ref_tokens, video_to_audio))


def training_flops(c: UniTalkingConfig, video_latent: tuple[int, int, int, int], audio_tokens: int,
                   ref_tokens: int = 0, video_to_audio: bool = False) -> int:
    return 3 * forward_flops(c, video_latent, audio_tokens, ref_tokens, video_to_audio)
