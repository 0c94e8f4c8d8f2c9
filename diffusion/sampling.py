"""Samplers for the joint model: Euler and UniPC (bh2, order 2, predictor-corrector, data prediction) on
the flow schedule, with classifier-free guidance and separate video and audio scales.

Everything is deterministic for given starting noise (use `noise_like` with a seed). Clean conditioning
(the first video frame for image-conditioned generation, the whole video for video-to-audio) is written
back into the video latent before each call and gets timestep 0 on its tokens, in the conditional and the
unconditional branch alike (as Wan2.2's TI2V inference does). The model sees integer timesteps, as Wan
passes them; the update itself uses the exact noise level. Without a video (stage 1) only audio is sampled.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from diffusion.flow_matching import shifted
from model.unitalking import Conditioning

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


S_MAX = 1.0 - 1.0 / 1000  # the noisiest training timestep (999 of 1000); at s = 1 the data term vanishes


def schedule(steps: int, shift: float) -> torch.Tensor:
    """steps + 1 noise levels from S_MAX (noise) down to 0 (data), float64."""
    return shifted(torch.linspace(S_MAX, 0.0, steps + 1, dtype=torch.float64), shift)


def noise_like(shape: tuple[int, ...], seed: int, device=None) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32).to(device)


def guided(velocity: Velocity, cfg: SamplerConfig) -> Callable:
    """v = v_uncond + scale * (v_cond - v_uncond) per modality; scale 1 is the conditional call alone."""
    def v(xv, xa, sv, sa):
        cv, ca = velocity(xv, xa, sv, sa, True)
        if cfg.video_scale == 1.0 and cfg.audio_scale == 1.0:
            return cv, ca
        uv, ua = velocity(xv, xa, sv, sa, False)
        return (None if xv is None else uv + cfg.video_scale * (cv - uv)), ua + cfg.audio_scale * (ca - ua)
    return v


def model_timestep(s: float) -> float:
    """Noise level -> the integer model timestep Wan's schedulers pass (int64 of s * 1000)."""
    return float(int(s * 1000))


def sample(velocity: Velocity, noise_video: torch.Tensor | None, noise_audio: torch.Tensor, cfg: SamplerConfig,
           clean_video: torch.Tensor | None = None, clean_frames: torch.Tensor | None = None,
           clean_audio: torch.Tensor | None = None) -> tuple[torch.Tensor | None, torch.Tensor]:
    """`velocity(xv, xa, t_video_frames, t_audio, conditional)`: t_video_frames is (B, F) per latent frame.
    `clean_frames` (F,) bool marks latent frames taken from `clean_video` as given. `clean_audio` gives the
    whole audio latent (timestep 0 on its tokens): video generated to given speech. `noise_video=None`
    samples audio alone."""
    v = guided(velocity, cfg)
    b = noise_audio.shape[0]
    frames = 0 if noise_video is None else noise_video.shape[2]
    mask = torch.zeros(frames, dtype=torch.bool) if clean_frames is None else clean_frames.cpu()
    keep = None if noise_video is None else mask.view(1, 1, -1, 1, 1).to(noise_video.device)

    def x0_of(*xs_and_s):
        *xs, s = xs_and_s
        xa, t = xs[-1], model_timestep(s)
        t_audio = torch.full((b,), t, device=xa.device)
        if clean_audio is not None:
            xa, t_audio = clean_audio, torch.zeros_like(t_audio)
        if noise_video is None:
            return [xa - s * v(None, xa, None, t_audio)[1]]  # data prediction: x0 = x_s - s * v
        xv = xs[0]
        given = torch.where(keep, clean_video, xv) if clean_video is not None else xv
        t_frames = torch.full((b, frames), t, device=xv.device).masked_fill(mask.to(xv.device), 0.0)
        vv, va = v(given, xa, t_frames, t_audio)
        return [given - s * vv, xa - s * va]

    sigmas = schedule(cfg.steps, cfg.shift)
    xs = ([] if noise_video is None else [noise_video.float()]) + [noise_audio.float()]
    solver = unipc if cfg.solver == "unipc" else euler
    xs = solver(x0_of, xs, sigmas)
    if noise_video is None:
        return None, xs[0]
    xv, xa = xs
    if clean_video is not None:
        xv = torch.where(keep, clean_video, xv)
    return xv, (xa if clean_audio is None else clean_audio)


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


def unconditional(cond: Conditioning, negative_text: torch.Tensor | None = None) -> Conditioning:
    """The unconditional branch's conditioning: the negative prompt's text states when given (else no
    text), and no reference voice."""
    text = negative_text if negative_text is not None else cond.text.new_zeros(cond.text.shape[0], 0, cond.text.shape[2])
    return Conditioning(text=text.expand(cond.text.shape[0], -1, -1))


def model_velocity(model, cond: Conditioning, uncond: Conditioning, video_to_audio: bool = False,
                   fps: float | None = None) -> Velocity:
    """Adapter from the joint model to the samplers: the unconditional branch runs with `uncond` (see
    `unconditional`)."""
    def velocity(xv, xa, t_frames, t_audio, conditional):
        with torch.no_grad():
            vv, va = model(xv, xa, t_frames, t_audio, cond if conditional else uncond,
                           video_to_audio=video_to_audio, fps=fps)
        return (None if vv is None else vv.float()), va.float()
    return velocity
