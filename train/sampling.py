"""Samplers for the joint model: Euler and UniPC (bh2, order 2, predictor-corrector, data prediction) on
the flow schedule, with classifier-free guidance and separate video and audio scales.

Everything is deterministic for given starting noise (use `noise_like` with a seed). Clean conditioning
(the first video frame for image-conditioned generation, the whole video for video-to-audio) is written
back into the video latent before each call and gets timestep 0 on its tokens.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from train.flow_matching import shifted

Velocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 50
    """Model evaluations per branch (Ovi: 50)."""
    shift: float = 5.0
    """Schedule shift towards noise (Ovi: 5)."""
    solver: str = "unipc"
    """'unipc' or 'euler'."""
    video_scale: float = 4.0
    """Guidance scale of the video velocity (1 turns guidance off)."""
    audio_scale: float = 3.0
    """Guidance scale of the audio velocity."""
    guide_image: bool = True
    """Guide over the given first frame as well (the unconditional branch does not see it)."""


S_MAX = 1.0 - 1.0 / 1000  # the noisiest training timestep (999 of 1000); at s = 1 the data term vanishes


def schedule(steps: int, shift: float) -> torch.Tensor:
    """steps + 1 noise levels from S_MAX (noise) down to 0 (data), float64."""
    return shifted(torch.linspace(S_MAX, 0.0, steps + 1, dtype=torch.float64), shift)


def noise_like(shape: tuple[int, ...], seed: int, device=None) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(device)


def guided(velocity: Velocity, cfg: SamplerConfig) -> Callable:
    """v = v_uncond + scale * (v_cond - v_uncond) per modality; scale 1 is the conditional call alone.
    The unconditional branch may see its own video input (`xv_u`, `sv_u`: without the given image)."""
    def v(xv, xa, sv, sa, xv_u=None, sv_u=None):
        cv, ca = velocity(xv, xa, sv, sa, True)
        if cfg.video_scale == 1.0 and cfg.audio_scale == 1.0:
            return cv, ca
        uv, ua = velocity(xv if xv_u is None else xv_u, xa, sv if sv_u is None else sv_u, sa, False)
        return uv + cfg.video_scale * (cv - uv), ua + cfg.audio_scale * (ca - ua)
    return v


def sample(velocity: Velocity, noise_video: torch.Tensor, noise_audio: torch.Tensor, cfg: SamplerConfig,
           clean_video: torch.Tensor | None = None, clean_frames: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """`velocity(xv, xa, s_video_frames, s_audio, conditional)`: s_video_frames is (B, F) per latent frame.
    `clean_frames` (F,) bool marks latent frames taken from `clean_video` as given."""
    v = guided(velocity, cfg)
    b, frames = noise_video.shape[0], noise_video.shape[2]
    mask = torch.zeros(frames, dtype=torch.bool) if clean_frames is None else clean_frames.cpu()
    keep = mask.view(1, 1, -1, 1, 1).to(noise_video.device)

    def x0_of(xv, xa, s):
        noisy_t = torch.full((b, frames), float(s) * 1000.0, device=xv.device)
        given = torch.where(keep, clean_video, xv) if clean_video is not None else xv
        s_frames = noisy_t.masked_fill(mask.to(xv.device), 0.0)
        # guidance over the image too: the unconditional branch gets the frame noised, not given
        vv, va = v(given, xa, s_frames, torch.full((b,), float(s) * 1000.0, device=xv.device),
                   xv if cfg.guide_image else None, noisy_t if cfg.guide_image else None)
        return [given - s * vv, xa - s * va]  # data prediction: x0 = x_s - s * v

    sigmas = schedule(cfg.steps, cfg.shift)
    xs = [noise_video.float(), noise_audio.float()]
    solver = unipc if cfg.solver == "unipc" else euler
    xv, xa = solver(x0_of, xs, sigmas)
    if clean_video is not None:
        xv = torch.where(keep, clean_video, xv)
    return xv, xa


def euler(x0_of, xs: list[torch.Tensor], sigmas: torch.Tensor) -> list[torch.Tensor]:
    for s, t in zip(sigmas[:-1].tolist(), sigmas[1:].tolist()):
        m = x0_of(*xs, s)
        xs = [x + (t - s) * (x - mm) / s for x, mm in zip(xs, m)]  # v = (x - x0) / s
    return xs


def _lam(s: float) -> float:
    return float(torch.log(torch.tensor(1.0 - s, dtype=torch.float64)) - torch.log(torch.tensor(s, dtype=torch.float64)))


def unipc(x0_of, xs: list[torch.Tensor], sigmas: torch.Tensor) -> list[torch.Tensor]:
    """UniPC-2 (B(h) = e^h - 1) with the UniC corrector, in data prediction, for alpha = 1 - s, sigma = s."""
    s_list = sigmas.tolist()
    history: list[tuple[float, list[torch.Tensor]]] = []  # (s, x0 predictions) of earlier steps
    prev_x, prev_order = None, 1
    for i, (s, t) in enumerate(zip(s_list[:-1], s_list[1:])):
        m = x0_of(*xs, s)
        if prev_x is not None:  # UniC: correct the last step with the prediction just made at its end
            xs = _unipc_update(prev_x, history, s, m, prev_order, corrector=True)
        history.append((s, m))
        if t == 0.0:  # the last step lands on the data prediction
            return m
        order = min(2, len(history))
        prev_x, prev_order = xs, order
        xs = _unipc_update(xs, history, t, None, order, corrector=False)
        history = history[-2:]
    return xs


def _unipc_update(x: list[torch.Tensor], history, t: float, m_t, order: int, corrector: bool) -> list[torch.Tensor]:
    """From x at history[-1]'s s to t (predictor), or the same step corrected with m_t (corrector)."""
    s0, m0 = history[-1]
    earlier = history[-2] if order == 2 and len(history) >= 2 else None
    lam_s0, lam_t = _lam(s0), _lam(t)
    h = lam_t - lam_s0
    hh = -h
    h_phi_1 = torch.expm1(torch.tensor(hh, dtype=torch.float64))
    b_h = h_phi_1
    alpha_t, sigma_t, sigma_s0 = 1.0 - t, t, s0
    ks = [1.0] if earlier is None else [(_lam(earlier[0]) - lam_s0) / h, 1.0]
    r = torch.tensor([[k ** p for k in ks] for p in range(len(ks))], dtype=torch.float64)
    b, h_phi_k, fact = [], h_phi_1 / hh - 1, 1.0
    for p in range(1, len(ks) + 1):
        b.append(h_phi_k * fact / b_h)
        fact *= p + 1
        h_phi_k = h_phi_k / hh - 1 / fact
    b = torch.stack(b)
    out = []
    for j, xj in enumerate(x):
        base = (sigma_t / sigma_s0) * xj - alpha_t * float(h_phi_1) * m0[j]
        d1 = [(earlier[1][j] - m0[j]) / ks[0]] if earlier is not None else []
        if corrector:
            rho = torch.linalg.solve(r, b) if len(ks) > 1 else torch.tensor([0.5], dtype=torch.float64)
            corr = sum(float(rho[k]) * d for k, d in enumerate(d1)) + float(rho[-1]) * (m_t[j] - m0[j])
            out.append(base - alpha_t * float(b_h) * corr)
        else:
            pred = 0.5 * d1[0] if d1 else 0.0
            out.append(base - alpha_t * float(b_h) * pred)
    return out


def model_velocity(model, cond, uncond, video_to_audio: bool = False) -> Velocity:
    """Adapter from the joint model to the samplers: per-frame video timesteps become per-token ones, and
    the unconditional branch runs with `uncond` (empty text, no reference voice)."""
    def velocity(xv, xa, s_frames, s_audio, conditional):
        tokens_per_frame = (xv.shape[3] // model.config.video_patch[1]) * (xv.shape[4] // model.config.video_patch[2])
        t_video = s_frames.repeat_interleave(tokens_per_frame, dim=1)
        with torch.no_grad():
            return model(xv, xa, t_video, s_audio, cond if conditional else uncond, video_to_audio=video_to_audio)
    return velocity
