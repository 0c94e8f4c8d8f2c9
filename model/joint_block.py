"""One joint block: block i of both streams, as flux's DoubleStreamBlock is one block of its two streams.
The video and audio tokens meet in one self-attention; then each stream has its text (+ reference voice)
cross-attention and its gated FFN, modulated per token group.

A JointBlock owns no parameters. Its four parts keep their Wan names in their streams (`video.blocks.i`,
`audio.blocks.i`, `video_ref.i`, `audio_ref.i`), so the official DiT state dict loads into `video` as it is,
and the block refers to them without registering them. What runs a block is one module call, so activation
checkpointing, `torch.compile` and ZeRO-3's parameter fetches all work on `model.blocks[i]` from outside.

Shapes: x (B, L, dim) float32 residual stream; heads (B, L, heads, head_dim).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.dit_stream import Block, Modulation, ReferenceKV, attend, gated, modulate
from model.rope import Rotation, apply_rope


@dataclass
class BlockInputs:
    """What every joint block reads, computed once per forward."""
    ea0: torch.Tensor  # (B, Ga, 6, dim) audio time projection per token group (1 per sample), float32
    ctx_a: torch.Tensor  # (B, text_len, dim) text context of the audio stream
    rope_a: Rotation | None  # (1, La, 1, head_dim // 2)
    ev0: torch.Tensor | None = None  # (B, Gv, 6, dim) per latent frame (or sample); None without video
    ctx_v: torch.Tensor | None = None
    rope_v: Rotation | None = None
    ref: torch.Tensor | None = None  # (B, Lr, dim) embedded reference voice
    keep_ref: torch.Tensor | None = None  # (B,) which samples use it
    ref_mask: torch.Tensor | None = None  # (B, Lr); None: every reference token is real
    audio_mask: torch.Tensor | None = None  # (B, La) real (not padding) audio tokens; None: all real
    video_to_audio: bool = False


class JointBlock(nn.Module):
    def __init__(self, video: Block | None, audio: Block, video_ref: ReferenceKV | None, audio_ref: ReferenceKV,
                 cross_modal: bool = True):
        super().__init__()
        self.cross_modal = cross_modal
        for name, part in (("video", video), ("audio", audio), ("video_ref", video_ref), ("audio_ref", audio_ref)):
            object.__setattr__(self, name, part)  # referred to, not registered: the streams own them

    def forward(self, xv: torch.Tensor | None, xa: torch.Tensor, inp: BlockInputs
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        ab = self.audio
        dtype = ab.self_attn.q.weight.dtype
        ma = Modulation(*ab(inp.ea0))
        ha = modulate(ab.norm1(xa), ma.shift_attn, ma.scale_attn).to(dtype)
        qa, (ka, va) = apply_rope(ab.self_attn.query(ha), inp.rope_a), ab.self_attn.key_value(ha)
        ka = apply_rope(ka, inp.rope_a)
        if xv is None:
            return None, self.stream_tail(ab, self.audio_ref, xa, ma, attend(qa, ka, va, inp.audio_mask), inp.ctx_a, inp)
        vb = self.video
        mv = Modulation(*vb(inp.ev0))
        hv = modulate(vb.norm1(xv), mv.shift_attn, mv.scale_attn).to(dtype)
        qv, (kv, vv) = apply_rope(vb.self_attn.query(hv), inp.rope_v), vb.self_attn.key_value(hv)
        kv = apply_rope(kv, inp.rope_v)
        keys = None if inp.audio_mask is None else torch.cat([inp.audio_mask.new_ones(xv.shape[:2]), inp.audio_mask], 1)
        if not self.cross_modal:  # the ablation: two streams side by side
            out_v, out_a = attend(qv, kv, vv), attend(qa, ka, va, inp.audio_mask)
        elif inp.video_to_audio:  # video sees only video; audio sees both
            out_v = attend(qv, kv, vv)
            out_a = attend(qa, torch.cat([kv, ka], 1), torch.cat([vv, va], 1), keys)
        else:
            out = attend(torch.cat([qv, qa], 1), torch.cat([kv, ka], 1), torch.cat([vv, va], 1), keys)
            out_v, out_a = out[:, :xv.shape[1]], out[:, xv.shape[1]:]
        xv = self.stream_tail(vb, self.video_ref, xv, mv, out_v, inp.ctx_v, inp)
        xa = self.stream_tail(ab, self.audio_ref, xa, ma, out_a, inp.ctx_a, inp)
        return xv, xa

    @staticmethod
    def stream_tail(block: Block, ref_kv: ReferenceKV, x: torch.Tensor, m: Modulation, attn_out: torch.Tensor,
                    ctx: torch.Tensor, inp: BlockInputs) -> torch.Tensor:
        """Residual of the self-attention output, text (+ reference voice) cross-attention, gated FFN."""
        dtype = block.ffn[0].weight.dtype
        x = gated(x, block.self_attn.o(attn_out), m.gate_attn)
        attn = block.cross_attn
        q = attn.query(block.norm3(x).to(dtype))
        out = attend(q, *attn.key_value(ctx))
        if inp.ref is not None:
            out = out + ref_kv(q, inp.ref, inp.keep_ref, inp.ref_mask)
        x = x + attn.o(out).float()
        return gated(x, block.ffn(modulate(block.norm2(x), m.shift_ffn, m.scale_ffn).to(dtype)), m.gate_ffn)
