"""Fitting the toy autoencoders (model/toy_autoencoders.py): principal components of video cells and mel
frame pairs, accumulated clip by clip (second moments in float64), and how well they reconstruct."""
from __future__ import annotations

import numpy as np
import torch

from model.toy_autoencoders import ToyAudioAE, ToyConfig, ToyVideoAE
from model.wan_vae import to_video_tensor


class Moments:
    """Running sum and outer-product sum of row vectors: mean and covariance without keeping the rows."""

    def __init__(self, dim: int):
        self.n, self.sum, self.outer = 0, torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dim, dtype=torch.float64)

    def add(self, rows: torch.Tensor) -> None:
        rows = rows.reshape(-1, rows.shape[-1]).double()
        self.n += rows.shape[0]
        self.sum += rows.sum(0)
        self.outer += rows.T @ rows

    def mean(self) -> torch.Tensor:
        return self.sum / max(self.n, 1)

    def components(self, count: int, centred: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The `count` leading principal directions (count, dim) and their variances."""
        mean = self.mean() if centred else torch.zeros_like(self.sum)
        cov = self.outer / max(self.n, 1) - torch.outer(mean, mean)
        values, vectors = torch.linalg.eigh(cov)
        order = torch.argsort(values, descending=True)[:count]
        return vectors[:, order].T.float(), values[order].clamp(min=1e-12).float()


def fit_video(clips, config: ToyConfig = ToyConfig()) -> ToyVideoAE:
    """`clips`: an iterable of (T, H, W, 3) uint8 crops, T = 1 + 4k."""
    ae = ToyVideoAE(config)
    still, motion = Moments(config.still_dim), Moments(config.motion_dim)
    for frames in clips:
        x = ae.blocks(to_video_tensor(frames[None]))
        mean = x.mean(4)
        still.add(mean)
        motion.add((x - mean.unsqueeze(4)).flatten(4))
    ae.still_mean.copy_(still.mean().float())
    basis_s, var_s = still.components(config.still_channels)
    basis_m, var_m = motion.components(config.motion_channels, centred=False)  # a block's motion sums to zero
    ae.still_basis.copy_(basis_s)
    ae.motion_basis.copy_(basis_m)
    ae.latent_std.copy_(torch.cat([var_s, var_m]).sqrt())
    return ae


def fit_audio(mels, config: ToyConfig = ToyConfig()) -> ToyAudioAE:
    """`mels`: an iterable of (80, T) log-mels from the project's front end."""
    ae = ToyAudioAE(config)
    pairs = Moments(2 * config.mels)
    for mel in mels:
        m = torch.as_tensor(mel)[:, : mel.shape[-1] // 2 * 2]
        pairs.add(m.T.reshape(-1, 2 * config.mels))
    ae.mel_mean.copy_(pairs.mean().float())
    basis, var = pairs.components(config.audio_channels)
    ae.basis.copy_(basis)
    ae.latent_std.copy_(var.sqrt())
    return ae


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pictures, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


@torch.no_grad()
def round_trip_video(ae: ToyVideoAE, frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same through the autoencoder."""
    x = ae.decode(ae.encode(to_video_tensor(frames[None]))[0])[0]
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 3, 0).numpy()


@torch.no_grad()
def mel_distance(ae: ToyAudioAE, mel: np.ndarray) -> float:
    """Mean absolute log10-mel difference after a round trip (1.0 is a factor of 10 in magnitude)."""
    m = torch.as_tensor(mel)[None, :, : mel.shape[-1] // 2 * 2].float()
    return float((ae.decode(ae.encode(m)[0]) - m).abs().mean())
