"""MMAudio's 16 kHz log-mel front end: n_fft 1024, hop 256, Hann window 1024, 80 Slaney mels up to 8 kHz,
reflect padding of (n_fft - hop) / 2 on both sides and no centring, log10 of the clamped magnitude.

(B, samples) in [-1, 1] -> (B, 80, samples // 256) (5.04 s = 80640 samples -> 315 frames).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 16000
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    clip: float = 1e-5


def hz_to_slaney_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear below 1 kHz (3 mels per 200 Hz), logarithmic above."""
    f = np.asarray(f, np.float64)
    linear = f / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(f >= 1000.0, log_part, linear)


def slaney_mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, np.float64)
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), m * (200.0 / 3))


def mel_filterbank(c: MelConfig) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular filters, area-normalised (Slaney)."""
    freqs = np.linspace(0, c.sample_rate / 2, c.n_fft // 2 + 1)
    edges = slaney_mel_to_hz(np.linspace(hz_to_slaney_mel(c.fmin), hz_to_slaney_mel(c.fmax), c.n_mels + 2))
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return (weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]).astype(np.float32)


class LogMel(nn.Module):
    def __init__(self, config: MelConfig = MelConfig()):
        super().__init__()
        self.config = config
        self.register_buffer("mel_basis", torch.from_numpy(mel_filterbank(config)), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        c = self.config
        pad = (c.n_fft - c.hop) // 2
        x = F.pad(wav.clamp(-1.0, 1.0).float().unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        spec = torch.stft(x, c.n_fft, hop_length=c.hop, win_length=c.n_fft, window=self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        magnitude = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)  # (B, freqs, frames)
        return torch.log10(torch.clamp(self.mel_basis @ magnitude, min=c.clip))
