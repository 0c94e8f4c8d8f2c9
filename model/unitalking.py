"""UniTalking's joint audio-video transformer: a video stream (Wan2.2-TI2V-5B, loads its DiT strictly
under the prefix `video.`) and an audio stream of the same block design over the 20-channel audio latent.
In every block the two streams' tokens meet in one self-attention; text and the reference voice enter by
cross-attention (separate key/value projections, outputs summed).

forward: video latent (B, 48, F, H, W) or None (audio alone), audio latent (B, 20, La), timesteps per
sample or per latent frame, text states (B, Lt, 4096), optional reference voice latent (B, 20, Lr) -> velocities
of both latents.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model import init
from model.dit_stream import Modulation, ReferenceKV, Stream, attend, gated, modulate
from model.rope import Rotation, apply_rope, audio_angles, video_angles


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
    fps: float = 24.0
    """Video frame rate when a batch does not give its own (audio positions are scaled by it)."""
    video_stride: int = 4
    """Video frames per latent frame (Wan VAE temporal compression)."""
    audio_token_hz: float = 31.25
    """Audio latent tokens per second (MMAudio 16 kHz: 16000 / hop 256 / 2)."""
    cross_modal: bool = True
    """Joint self-attention over both streams' tokens. False is an ablation: each stream attends only to
    itself, so neither modality can inform the other (train/coupling.py measures exactly zero coupling)."""
    video_stream: bool = True
    """Build the video stream (and its reference projections). Stage 1 trains the audio side alone and
    builds none of the 5.6B video-side parameters; its export loads into a stage-2 model by name."""


PRESETS = {
    "paper": UniTalkingConfig(),
    "debug": UniTalkingConfig(dim=64, ffn_dim=128, heads=4, layers=2, text_dim=32, text_len=16),
    # large enough that a tensor (ffn: 4M elements) stands out of a process's memory noise, small enough
    # for a CPU; reads the debug text encoder's states
    "mid": UniTalkingConfig(dim=1024, ffn_dim=4096, heads=8, layers=2, text_dim=32, text_len=16),
}


@dataclass
class Conditioning:
    text: torch.Tensor  # (B, Lt, text_dim), unpadded entries zero
    ref_voice: torch.Tensor | None = None  # (B, 20, Lr) audio latent of the reference voice
    has_ref: torch.Tensor | None = None  # (B,) bool: which samples have a reference voice
    ref_mask: torch.Tensor | None = None  # (B, Lr) bool: real reference tokens (None: all of them)


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
    ref_mask: torch.Tensor | None = None  # (B, Lr)
    audio_mask: torch.Tensor | None = None  # (B, La) real (not padding) audio tokens
    video_to_audio: bool = False


def token_groups(t: torch.Tensor, tokens: int) -> torch.Tensor:
    """(B,) per sample or (B, G) per group of tokens -> (B, G) with G dividing `tokens`: G equal runs of
    consecutive tokens share a timestep (video: G latent frames in (f h w) token order; G = tokens is per
    token, as Wan2.2 passes it)."""
    t = t[:, None] if t.dim() == 1 else t
    if tokens % t.shape[1]:
        raise ValueError(f"{t.shape[1]} timesteps per sample do not divide {tokens} tokens into equal groups")
    return t


class UniTalking(nn.Module):
    def __init__(self, config: UniTalkingConfig = PRESETS["paper"], seed: int | None = None):
        """`seed` fixes the initial weights (see model/init.py); None takes it from torch's global RNG."""
        super().__init__()
        c = self.config = config
        if c.video_stream:
            self.video = Stream(c.video_channels, c.dim, c.ffn_dim, c.heads, c.layers, c.video_patch, c.text_dim)
        self.audio = Stream(c.audio_channels, c.dim, c.ffn_dim, c.heads, c.layers, (1,), c.text_dim)
        self.ref_voice_embedding = nn.Conv1d(c.audio_channels, c.dim, 1)
        if c.video_stream:
            self.video_ref = nn.ModuleList(ReferenceKV(c.dim, c.heads) for _ in range(c.layers))
        self.audio_ref = nn.ModuleList(ReferenceKV(c.dim, c.heads) for _ in range(c.layers))
        if not any(hasattr(p, "ds_tensor") for p in self.parameters()):  # ZeRO-3 initialises partition-wise
            init.run(self.init_units(), seed)

    def init_units(self) -> list[init.Unit]:
        """Wan's scheme for both streams (the video stream is then overwritten by the pretrained DiT); the
        reference-voice path starts closed (zero gates), so step 0 behaves as the pretrained video stream."""
        def embedding(m: nn.Module, g: torch.Generator) -> None:
            init.xavier_uniform(m.weight, g)
            nn.init.zeros_(m.bias)

        video = self.config.video_stream
        units = [*(self.video.init_units() if video else []), *self.audio.init_units(), (self.ref_voice_embedding, embedding)]
        for ref in (*(self.video_ref if video else []), *self.audio_ref):
            units += ref.init_units()
        return units

    def rotary(self, grid: tuple[int, int, int] | None, audio_tokens: int, fps: float | None = None,
               device=None) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Angles of the video grid and of the audio tokens. Video latent frame k stands for frame
        k * video_stride; audio token j for second j / audio_token_hz; audio positions are those seconds
        in video latent frames at `fps`, so tokens of one instant turn alike at any clip length."""
        c = self.config
        head_dim = c.dim // c.heads
        scale = (fps or c.fps) / c.video_stride / c.audio_token_hz
        rope_a = audio_angles(audio_tokens, scale, head_dim, device=device)
        return (video_angles(*grid, head_dim, device=device) if grid is not None else None), rope_a

    def forward(self, video: torch.Tensor | None, audio: torch.Tensor, t_video: torch.Tensor | None,
                t_audio: torch.Tensor, cond: Conditioning, video_to_audio: bool = False,
                audio_mask: torch.Tensor | None = None, fps: float | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """t_video / t_audio: (B,) per sample, or (B, G) for G equal runs of tokens (t_video per latent
        frame), in [0, 1000]. `video=None` runs the
        audio stream alone (stage 1). With `video_to_audio`, video tokens never attend to audio tokens.
        `audio_mask` (B, La) marks real audio tokens of padded batches (None when all are real). The residual streams and the heads'
        inputs stay float32 whatever the weights' dtype (as Wan keeps them)."""
        c = self.config
        dtype = self.audio.patch_embedding.weight.dtype
        xa, (la,) = self.audio.embed(audio.to(dtype))  # (B, La, dim)
        xa = xa.float()
        ea, ea0 = self.audio.time(token_groups(t_audio, la))
        text = nn.functional.pad(cond.text.to(dtype), (0, 0, 0, c.text_len - cond.text.shape[1]))
        inp = BlockInputs(ea0=ea0, ctx_a=self.audio.text_embedding(text), rope_a=None, audio_mask=audio_mask,
                          video_to_audio=video_to_audio)
        grid = xv = None
        if video is not None and not c.video_stream:
            raise ValueError("this model has no video stream (an audio-only, stage-1 build): pass video=None")
        if video is not None:
            xv, grid = self.video.embed(video.to(dtype))  # (B, Lv, dim), (F, H, W)
            xv = xv.float()
            ev, inp.ev0 = self.video.time(token_groups(t_video, xv.shape[1]))
            inp.ctx_v = self.video.text_embedding(text)
        rope_v, rope_a = self.rotary(grid, la, fps, device=xa.device)
        inp.rope_v, inp.rope_a = (None if rope_v is None else Rotation.of(rope_v)), Rotation.of(rope_a)
        if cond.ref_voice is not None:
            inp.ref = self.ref_voice_embedding(cond.ref_voice.to(dtype)).transpose(1, 2)  # (B, Lr, dim)
            inp.keep_ref = cond.has_ref if cond.has_ref is not None else torch.ones(len(xa), dtype=torch.bool,
                                                                                     device=xa.device)
            inp.ref_mask = cond.ref_mask
        for i in range(c.layers):
            xv, xa = self.joint_block(i, xv, xa, inp)
        out_a = self.audio.unpatchify(self.audio.head(xa, ea), (la,))
        return (None if video is None else self.video.unpatchify(self.video.head(xv, ev), grid)), out_a

    def joint_block(self, i: int, xv: torch.Tensor | None, xa: torch.Tensor, inp: BlockInputs
                    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Block i of both streams: joint self-attention, then each stream's cross-attention and FFN."""
        ab = self.audio.blocks[i]
        dtype = ab.self_attn.q.weight.dtype
        ma = ab.modulations(inp.ea0)
        ha = modulate(ab.norm1(xa), ma.shift_attn, ma.scale_attn).to(dtype)
        qa, (ka, va) = apply_rope(ab.self_attn.query(ha), inp.rope_a), ab.self_attn.key_value(ha)
        ka = apply_rope(ka, inp.rope_a)
        if xv is None:
            return None, self.stream_tail(ab, self.audio_ref[i], xa, ma, attend(qa, ka, va, inp.audio_mask),
                                          inp.ctx_a, inp)
        vb = self.video.blocks[i]
        mv = vb.modulations(inp.ev0)
        hv = modulate(vb.norm1(xv), mv.shift_attn, mv.scale_attn).to(dtype)
        qv, (kv, vv) = apply_rope(vb.self_attn.query(hv), inp.rope_v), vb.self_attn.key_value(hv)
        kv = apply_rope(kv, inp.rope_v)
        keys = None if inp.audio_mask is None else torch.cat([inp.audio_mask.new_ones(xv.shape[:2]), inp.audio_mask], 1)
        if not self.config.cross_modal:  # the ablation: two streams side by side
            out_v, out_a = attend(qv, kv, vv), attend(qa, ka, va, inp.audio_mask)
        elif inp.video_to_audio:  # video sees only video; audio sees both
            out_v = attend(qv, kv, vv)
            out_a = attend(qa, torch.cat([kv, ka], 1), torch.cat([vv, va], 1), keys)
        else:
            out = attend(torch.cat([qv, qa], 1), torch.cat([kv, ka], 1), torch.cat([vv, va], 1), keys)
            out_v, out_a = out[:, :xv.shape[1]], out[:, xv.shape[1]:]
        xv = self.stream_tail(vb, self.video_ref[i], xv, mv, out_v, inp.ctx_v, inp)
        xa = self.stream_tail(ab, self.audio_ref[i], xa, ma, out_a, inp.ctx_a, inp)
        return xv, xa

    @staticmethod
    def stream_tail(block, ref_kv: ReferenceKV, x: torch.Tensor, m: Modulation, attn_out: torch.Tensor,
                    ctx: torch.Tensor, inp: BlockInputs) -> torch.Tensor:
        """Residual of the self-attention output, text (+ reference voice) cross-attention, gated FFN; x float32."""
        dtype = block.ffn[0].weight.dtype
        x = gated(x, block.self_attn.o(attn_out), m.gate_attn)
        attn = block.cross_attn
        q = attn.query(block.norm3(x).to(dtype))
        out = attend(q, *attn.key_value(ctx))
        if inp.ref is not None:
            out = out + ref_kv(q, inp.ref, inp.keep_ref, inp.ref_mask)
        x = x + attn.o(out).float()
        return gated(x, block.ffn(modulate(block.norm2(x), m.shift_ffn, m.scale_ffn).to(dtype)), m.gate_ffn)


def load_video_stream(model: UniTalking, state: dict[str, torch.Tensor]) -> None:
    """The official Wan2.2-TI2V-5B DiT state dict into the video stream, strictly."""
    model.video.load_state_dict(state, strict=True)
