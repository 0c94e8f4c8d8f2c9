"""From a batch of latents to one training forward: the task, noised inputs, conditions with dropout for
classifier-free guidance, targets and the loss weights of the tokens that are generated.

Stage 1 (audio pre-training): text-to-speech, with a reference voice on a share of the steps. Stage 2
(joint): T2AV; TV2A (video given clean, timestep 0, video tokens never see audio); TI2AV (first latent
frame given clean with timestep 0 on its tokens); TR2AV (reference voice). One task per micro-batch.
Given (clean) tokens and padding carry zero loss weight.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from diffusion.flow_matching import FlowMatchingConfig, add_noise, masked_mse, sample_s, velocity_target
from model.audio_norm import AudioNorm
from model.unitalking import Conditioning
from train.config import TaskConfig

STAGE2_TASKS = ("t2av", "tv2a", "ti2av", "tr2av")


@dataclass
class Forward:
    """Model inputs of one micro-batch and what its loss compares."""
    task: str
    video: torch.Tensor | None  # (B, 48, F, H, W) noisy, given frames clean
    audio: torch.Tensor  # (B, 20, La) noisy
    t_video: torch.Tensor | None  # (B, F) timesteps per latent frame in [0, 1000]
    t_audio: torch.Tensor  # (B,)
    cond: Conditioning
    video_to_audio: bool
    audio_mask: torch.Tensor  # (B, La)
    audio_padded: bool  # some audio token is padding (decided on the host: an all-true mask goes unused)
    tokens: int  # real (not padding) tokens of the batch, both modalities
    fps: float
    target_video: torch.Tensor | None
    target_audio: torch.Tensor
    weight_video: torch.Tensor | None  # (B, 1, F, 1, 1): 1 on generated frames
    weight_audio: torch.Tensor  # (B, 1, La): 1 on real tokens

    def model_inputs(self) -> tuple:
        """No attention mask unless some token is padding: a mask rules out the flash kernel."""
        return (self.video, self.audio, self.t_video, self.t_audio, self.cond, self.video_to_audio,
                self.audio_mask if self.audio_padded else None, self.fps)


def pick_task(cfg: TaskConfig, g: torch.Generator) -> str:
    """Drawn from a generator every rank seeds alike: all ranks run the same task in a step, so their
    graphs (and ZeRO's gradient buckets) match."""
    if cfg.stage == 1:
        return "tts_ref" if torch.rand((), generator=g) < cfg.stage1_ref else "tts"
    shares = torch.tensor([cfg.t2av, cfg.tv2a, cfg.ti2av, cfg.tr2av], dtype=torch.float64)
    return STAGE2_TASKS[int(torch.multinomial(shares, 1, generator=g))]


def task_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 64 + micro)


def build(batch: dict, cfg: TaskConfig, norm: AudioNorm, g: torch.Generator, device, task: str | None = None,
          patch: tuple[int, int, int] = (1, 2, 2), fixed_s: float | None = None) -> Forward:
    """Everything random here is drawn from `g` (this rank's), in a fixed order, so a resumed run draws
    alike. `fixed_s` (validation): T2AV or TTS at that noise level, posterior mean, nothing dropped."""
    if fixed_s is not None:
        cfg = dataclasses.replace(cfg, drop_text=0.0, drop_ref=0.0, drop_image=0.0)
        task = "tts" if cfg.stage == 1 else "t2av"
    b = batch["audio"].shape[0]
    audio = batch["audio"]
    posterior_noise = torch.randn(audio.shape, generator=g)  # drawn either way: later draws stay aligned
    if cfg.audio_posterior and "audio_logvar" in batch and fixed_s is None:  # a posterior sample, as MMAudio trains
        audio = audio + torch.exp(0.5 * batch["audio_logvar"]) * posterior_noise
    x0a = norm.normalize(audio) * batch["audio_mask"][:, None]
    x0v = batch.get("video") if cfg.stage == 2 else None
    la = x0a.shape[2]
    lv = 0 if x0v is None else (x0v.shape[2] // patch[0]) * (x0v.shape[3] // patch[1]) * (x0v.shape[4] // patch[2])
    fm = FlowMatchingConfig(logit_std=cfg.logit_std, shared_timesteps=cfg.shared_timesteps)
    s_v, s_a = sample_s(b, lv + la, fm, g)
    if fixed_s is not None:
        s_v, s_a = torch.full((b,), fixed_s), torch.full((b,), fixed_s)
    eps_a = torch.randn(x0a.shape, generator=g)
    drop = torch.rand(b, 3, generator=g)  # text, reference, image
    text = batch["text"] * (drop[:, 0] >= cfg.drop_text).float()[:, None, None]
    # the reference path always runs (closed where unused) so every rank's graph uses every parameter
    if "ref_voice" in batch:
        ref, ref_mask, has_ref = norm.normalize(batch["ref_voice"]), batch["ref_mask"], batch["has_ref"]
    else:
        ref, ref_mask, has_ref = torch.zeros(b, x0a.shape[1], 1), torch.ones(b, 1, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)
    use_ref = has_ref & (drop[:, 1] >= cfg.drop_ref) & (task in ("tts_ref", "tr2av"))
    cond = Conditioning(text=text, ref_voice=ref, has_ref=use_ref, ref_mask=None if bool(ref_mask.all()) else ref_mask)
    audio_mask = batch["audio_mask"]
    out = dict(task=task, audio=add_noise(x0a, eps_a, s_a), t_audio=s_a * 1000, cond=cond,
               video_to_audio=task == "tv2a", audio_mask=audio_mask, audio_padded=not bool(audio_mask.all()),
               tokens=int(audio_mask.sum()) + b * lv,
               fps=batch["fps"],
               target_audio=velocity_target(x0a, eps_a), weight_audio=audio_mask[:, None].float(),
               video=None, t_video=None, target_video=None, weight_video=None)
    if x0v is not None:
        eps_v = torch.randn(x0v.shape, generator=g)
        frames = x0v.shape[2]
        given = torch.zeros(b, frames, dtype=torch.bool)
        if task == "tv2a":
            given[:] = True
        elif task == "ti2av":
            given[:, 0] = drop[:, 2] >= cfg.drop_image
        xv = torch.where(given[:, None, :, None, None], x0v, add_noise(x0v, eps_v, s_v))
        t_frames = (s_v[:, None] * 1000).expand(b, frames).masked_fill(given, 0.0)
        out.update(video=xv, t_video=t_frames.contiguous(),
                   target_video=velocity_target(x0v, eps_v), weight_video=(~given).float()[:, None, :, None, None])
    fwd = Forward(**out)
    return to_device(fwd, device)


def to_device(fwd: Forward, device) -> Forward:
    move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t
    c = fwd.cond
    fwd.cond = Conditioning(text=move(c.text), ref_voice=move(c.ref_voice), has_ref=move(c.has_ref),
                            ref_mask=move(c.ref_mask))
    for name in ("video", "audio", "t_video", "t_audio", "audio_mask", "target_video", "target_audio",
                 "weight_video", "weight_audio"):
        setattr(fwd, name, move(getattr(fwd, name)))
    return fwd


def losses(fwd: Forward, pred_video: torch.Tensor | None, pred_audio: torch.Tensor, cfg: TaskConfig
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted total, and the per-modality losses over generated tokens (for logging)."""
    parts = {"audio": masked_mse(pred_audio, fwd.target_audio, fwd.weight_audio)}
    total = cfg.audio_weight * parts["audio"]
    if pred_video is not None and bool(fwd.weight_video.any()):
        parts["video"] = masked_mse(pred_video, fwd.target_video, fwd.weight_video)
        total = total + cfg.video_weight * parts["video"]
    elif pred_video is not None:  # TV2A: no video loss, but the video head stays in the graph (zero gradient)
        total = total + 0.0 * pred_video.float().mean()
    return total, {k: v.detach() for k, v in parts.items()}
