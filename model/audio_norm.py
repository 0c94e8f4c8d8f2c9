"""Per-channel normalisation of the audio VAE's latents, so audio reaches the transformer at unit scale as
the video latents do (Wan's statistics normalise those; MMAudio's VAE has none). `python -m
train.audio_stats` measures the statistics; exports carry them."""
from __future__ import annotations

import json

import torch


class AudioNorm:
    def __init__(self, mean: list[float], std: list[float]):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) raw VAE latent -> unit scale."""
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.std.to(x.device) + self.mean.to(x.device)

    @classmethod
    def load(cls, path: str) -> "AudioNorm":
        with open(path, encoding="utf-8") as f:
            stats = json.load(f)
        return cls(stats["mean"], stats["std"])
