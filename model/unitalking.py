"""UniTalking's joint audio-video transformer: a video stream (Wan2.2-TI2V-5B, loads its DiT strictly
under the prefix `video.`) and an audio stream of the same block design over the 20-channel audio latent.
In every block the two streams' tokens meet in one self-attention; text and the reference voice enter by
cross-attention (separate key/value projections, outputs summed).

forward: video latent (B, 48, F, H, W), audio latent (B, 20, La), per-token or per-sample timesteps,
text states (B, Lt, 4096), optional reference voice latent (B, 20, Lr) -> velocities of both latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.dit_stream import ReferenceKV, Stream, attend
from model.rope import apply_rope, audio_angles, video_angles


@dataclass(frozen=True)
class UniTalkingConfig:
    dim: int = 3072
    """Width of both streams."""
    ffn_dim: int = 14336
    """FFN hidden width."""
    heads: int = 24
    """Attention heads (head width dim / heads)."""
    layers: int = 30
    """Joint blocks."""
    video_channels: int = 48
    """Video latent channels (Wan2.2 VAE)."""
    audio_channels: int = 20
    """Audio latent channels (MMAudio 16 kHz VAE)."""
    video_patch: tuple[int, int, int] = (1, 2, 2)
    """Video patch (t, h, w)."""
    text_dim: int = 4096
    """umT5 hidden width."""
    text_len: int = 512
    """Text states are zero-padded to this length, as Wan2.x does."""


PRESETS = {
    "paper": UniTalkingConfig(),
    "debug": UniTalkingConfig(dim=64, ffn_dim=128, heads=4, layers=2, text_dim=32, text_len=16),
}


@dataclass
class Conditioning:
    text: torch.Tensor  # (B, Lt, text_dim), unpadded entries zero
    ref_voice: torch.Tensor | None = None  # (B, 20, Lr) audio latent of the reference voice
    has_ref: torch.Tensor | None = None  # (B,) bool: which samples have a reference voice


class UniTalking(nn.Module):
    def __init__(self, config: UniTalkingConfig = PRESETS["paper"]):
        super().__init__()
        c = self.config = config
        self.video = Stream(c.video_channels, c.dim, c.ffn_dim, c.heads, c.layers, c.video_patch, c.text_dim)
        self.audio = Stream(c.audio_channels, c.dim, c.ffn_dim, c.heads, c.layers, (1,), c.text_dim)
        self.ref_voice_embedding = nn.Conv1d(c.audio_channels, c.dim, 1)
        self.video_ref = nn.ModuleList(ReferenceKV(c.dim, c.heads) for _ in range(c.layers))
        self.audio_ref = nn.ModuleList(ReferenceKV(c.dim, c.heads) for _ in range(c.layers))

    def forward(self, video: torch.Tensor, audio: torch.Tensor, t_video: torch.Tensor, t_audio: torch.Tensor,
                cond: Conditioning, video_to_audio: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """t_video / t_audio: (B,) per sample or (B, tokens) per token, in [0, 1000]. With
        `video_to_audio`, video tokens never attend to audio tokens (audio cannot influence video)."""
        c = self.config
        xv, grid = self.video.embed(video)  # (B, Lv, dim), (F, H, W)
        xa, (la,) = self.audio.embed(audio)  # (B, La, dim)
        ev, ev0 = self.video.time(t_video.expand(-1, xv.shape[1]) if t_video.dim() == 2 else t_video[:, None].expand(-1, xv.shape[1]))
        ea, ea0 = self.audio.time(t_audio.expand(-1, la) if t_audio.dim() == 2 else t_audio[:, None].expand(-1, la))
        text = nn.functional.pad(cond.text, (0, 0, 0, c.text_len - cond.text.shape[1]))
        ctx_v, ctx_a = self.video.text_embedding(text), self.audio.text_embedding(text)
        ref = None
        if cond.ref_voice is not None:
            ref = self.ref_voice_embedding(cond.ref_voice).transpose(1, 2)  # (B, Lr, dim)
            keep = cond.has_ref if cond.has_ref is not None else torch.ones(len(ref), dtype=torch.bool, device=ref.device)
            ref_gate = keep.to(xv.dtype)[:, None, None]
        head_dim = c.dim // c.heads
        rope_v = video_angles(*grid, head_dim, device=xv.device)
        rope_a = audio_angles(la, grid[0] / la, head_dim, device=xv.device)
        for i in range(c.layers):
            vb, ab = self.video.blocks[i], self.audio.blocks[i]
            mv, ma = vb.modulations(ev0), ab.modulations(ea0)
            hv = (vb.norm1(xv).float() * (1 + mv[1]) + mv[0]).type_as(xv)
            ha = (ab.norm1(xa).float() * (1 + ma[1]) + ma[0]).type_as(xa)
            qv, (kv, vv) = apply_rope(vb.self_attn.query(hv), rope_v), vb.self_attn.key_value(hv)
            qa, (ka, va) = apply_rope(ab.self_attn.query(ha), rope_a), ab.self_attn.key_value(ha)
            kv, ka = apply_rope(kv, rope_v), apply_rope(ka, rope_a)
            if video_to_audio:  # video sees only video; audio sees both
                out_v = attend(qv, kv, vv)
                out_a = attend(qa, torch.cat([kv, ka], 1), torch.cat([vv, va], 1))
            else:
                out = attend(torch.cat([qv, qa], 1), torch.cat([kv, ka], 1), torch.cat([vv, va], 1))
                out_v, out_a = out[:, :xv.shape[1]], out[:, xv.shape[1]:]
            xv = xv + (vb.self_attn.o(out_v).float() * mv[2]).type_as(xv)
            xa = xa + (ab.self_attn.o(out_a).float() * ma[2]).type_as(xa)
            xv = xv + self.cross(vb, self.video_ref[i], xv, ctx_v, ref, ref_gate if ref is not None else None)
            xa = xa + self.cross(ab, self.audio_ref[i], xa, ctx_a, ref, ref_gate if ref is not None else None)
            xv = xv + (vb.ffn((vb.norm2(xv).float() * (1 + mv[4]) + mv[3]).type_as(xv)).float() * mv[5]).type_as(xv)
            xa = xa + (ab.ffn((ab.norm2(xa).float() * (1 + ma[4]) + ma[3]).type_as(xa)).float() * ma[5]).type_as(xa)
        return (self.video.unpatchify(self.video.head(xv, ev), grid),
                self.audio.unpatchify(self.audio.head(xa, ea), (la,)))

    @staticmethod
    def cross(block, ref_kv: nn.Module, x: torch.Tensor, ctx: torch.Tensor, ref: torch.Tensor | None,
              ref_gate: torch.Tensor | None) -> torch.Tensor:
        """Text cross-attention plus reference-voice cross-attention (same queries, own keys/values)."""
        attn = block.cross_attn
        q = attn.query(block.norm3(x))
        out = attend(q, *attn.key_value(ctx))
        if ref is not None:
            out = out + attend(q, *ref_kv(ref)) * ref_gate
        return attn.o(out)


def load_video_stream(model: UniTalking, state: dict[str, torch.Tensor]) -> None:
    """The official Wan2.2-TI2V-5B DiT state dict into the video stream, strictly."""
    model.video.load_state_dict(state, strict=True)
