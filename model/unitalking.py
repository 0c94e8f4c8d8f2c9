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
from model.dit_stream import ReferenceKV, Stream
from model.joint_block import BlockInputs, JointBlock
from model.rope import Rotation, audio_angles, video_angles


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
    # twice the debug width: a video token (48 channels x 2 x 2 patch = 192 numbers) is not squeezed into
    # 64; for the toy experiments (benchmarks/lip_sync_learning.py), on the debug text encoder's states
    "toy": UniTalkingConfig(dim=128, ffn_dim=256, heads=4, layers=2, text_dim=32, text_len=16),
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
        video = (self.video.blocks, self.video_ref) if c.video_stream else ([None] * c.layers, [None] * c.layers)
        self.blocks = nn.ModuleList(JointBlock(vb, ab, vr, ar, c.cross_modal) for vb, ab, vr, ar
                                    in zip(video[0], self.audio.blocks, video[1], self.audio_ref))
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
        frame), in [0, 1000]. `video=None` runs the audio stream alone (stage 1). With `video_to_audio`, video
        tokens never attend to audio tokens. `audio_mask` (B, La) marks real audio tokens of padded batches
        (None when all are real). The residual streams and the heads' inputs stay float32 whatever the
        weights' dtype (as Wan keeps them)."""
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
        for block in self.blocks:
            xv, xa = block(xv, xa, inp)
        out_a = self.audio.unpatchify(self.audio.head(xa, ea), (la,))
        return (None if video is None else self.video.unpatchify(self.video.head(xv, ev), grid)), out_a


def load_video_stream(model: UniTalking, state: dict[str, torch.Tensor]) -> None:
    """The official Wan2.2-TI2V-5B DiT state dict into the video stream, strictly."""
    model.video.load_state_dict(state, strict=True)
