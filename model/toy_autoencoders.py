"""Decodable toy latents: linear autoencoders fitted by PCA, in the official latent layouts, so a small model
trained on a CPU can be looked at and listened to (the debug VAEs are random and cannot decode).

Video, Wan's layout: the first frame alone, then blocks of 4 frames, each cut into `spatial` x `spatial`
cells (8 here, not Wan2.2's 16: the toy crops are small). A cell's latent is the PCA of its block's mean
picture (`still_channels`) next to the PCA of how its 4 frames depart from that mean (`motion_channels`),
each channel scaled to unit variance on the fitting clips as Wan's statistics scale its latents.
(B, 3, 1+4k, H, W) in [-1, 1] <-> (B, still + motion, 1+k, H/s, W/s).

Audio, MMAudio's layout: 20 channels at 31.25 Hz from the project's 80-band log-mel (62.5 Hz); a latent
frame is the PCA of two mel frames. (B, 80, 2L) <-> (B, 20, L). `GriffinLim` turns a mel back into sound.

Both are plain `nn.Module`s whose state is buffers, saved as safetensors with their config beside them and
loaded strictly, as the real VAEs are.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from model.mel import LogMel, MelConfig

CONFIG_FILE, VIDEO_FILE, AUDIO_FILE = "toy.json", "toy_video.safetensors", "toy_audio.safetensors"
LOGVAR = -30.0  # a linear encoder is deterministic: the smallest log-variance the VAEs report


@dataclass(frozen=True)
class ToyConfig:
    spatial: int = 8
    """Pixels per latent cell side (Wan2.2: 16; small crops want 8)."""
    temporal: int = 4
    """Frames per latent frame after the first (Wan: 4)."""
    still_channels: int = 32
    """Channels holding a cell's mean picture over its frames."""
    motion_channels: int = 16
    """Channels holding the motion inside a cell's frames (the mouth, in a talking portrait)."""
    audio_channels: int = 20
    """Audio latent channels (MMAudio: 20)."""
    mels: int = 80
    """Mel bands of the project's front end."""

    @property
    def bucket_multiple(self) -> int:
        """Pixels per transformer token side: a cell times the transformer's 2x2 patch."""
        return 2 * self.spatial

    @property
    def video_channels(self) -> int:
        return self.still_channels + self.motion_channels

    @property
    def still_dim(self) -> int:
        return 3 * self.spatial ** 2

    @property
    def motion_dim(self) -> int:
        return self.temporal * self.still_dim


class ToyVideoAE(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.config = c
        self.register_buffer("still_mean", torch.zeros(c.still_dim))
        self.register_buffer("still_basis", torch.zeros(c.still_channels, c.still_dim))
        self.register_buffer("motion_basis", torch.zeros(c.motion_channels, c.motion_dim))
        self.register_buffer("latent_std", torch.ones(c.video_channels))

    def blocks(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, 1+4k, H, W) -> (B, 1+k, H/s, W/s, 4, 3*s*s): the first frame repeated to a whole block."""
        t = video.shape[2]
        if (t - 1) % self.config.temporal:
            raise ValueError(f"the toy video autoencoder takes 1 + {self.config.temporal}k frames, got {t}")
        x = torch.cat([video[:, :, :1].expand(-1, -1, self.config.temporal - 1, -1, -1), video], 2)
        s = self.config.spatial
        return rearrange(x, "b c (f t) (h p) (w q) -> b f h w t (c p q)", t=self.config.temporal, p=s, q=s)

    def encode(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 1+4k, H, W) in [-1, 1] -> normalised latent and log-variance, each (B, C, 1+k, H/s, W/s)."""
        x = self.blocks(video.float())
        still = x.mean(4)
        z = torch.cat([(still - self.still_mean) @ self.still_basis.T,
                       (x - still.unsqueeze(4)).flatten(4) @ self.motion_basis.T], -1) / self.latent_std
        z = rearrange(z, "b f h w c -> b c f h w").to(video.dtype)
        return z, torch.full_like(z, LOGVAR)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent (B, C, 1+k, h, w) -> video (B, 3, 1+4k, H, W) clamped to [-1, 1]."""
        c, s = self.config, self.config.spatial
        z = rearrange(z.float(), "b c f h w -> b f h w c") * self.latent_std
        still = z[..., :c.still_channels] @ self.still_basis + self.still_mean
        motion = (z[..., c.still_channels:] @ self.motion_basis).unflatten(-1, (c.temporal, c.still_dim))
        x = rearrange(still.unsqueeze(4) + motion, "b f h w t (c p q) -> b c (f t) (h p) (w q)", p=s, q=s)
        return x[:, :, c.temporal - 1:].clamp(-1.0, 1.0)


class ToyAudioAE(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.config = c
        self.register_buffer("mel_mean", torch.zeros(2 * c.mels))
        self.register_buffer("basis", torch.zeros(c.audio_channels, 2 * c.mels))
        self.register_buffer("latent_std", torch.ones(c.audio_channels))

    def encode(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 80, T) log-mel -> latent and log-variance, each (B, 20, T // 2)."""
        pairs = rearrange(mel[..., : mel.shape[-1] // 2 * 2].float(), "b m (l two) -> b l (two m)", two=2)
        z = ((pairs - self.mel_mean) @ self.basis.T / self.latent_std).transpose(1, 2)
        return z, torch.full_like(z, LOGVAR)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, 20, L) -> (B, 80, 2L) log-mel."""
        pairs = (z.float().transpose(1, 2) * self.latent_std) @ self.basis + self.mel_mean
        return rearrange(pairs, "b l (two m) -> b m (l two)", two=2)


class GriffinLim(nn.Module):
    """Log-mel -> waveform: the mel filters inverted by least squares, then Griffin-Lim phase recovery. The
    toy stand-in for BigVGAN: (B, 80, T) -> (B, 1, 256 T), aligned with the front end's frames."""

    def __init__(self, iterations: int = 48, config: MelConfig = MelConfig()):
        super().__init__()
        self.config, self.iterations = config, iterations
        basis = LogMel(config).mel_basis
        self.register_buffer("inverse", torch.linalg.pinv(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)

    @torch.no_grad()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        c = self.config
        magnitude = (self.inverse @ torch.pow(10.0, mel.float())).clamp(min=0.0)  # (B, freqs, T)
        stft = lambda x: torch.stft(x, c.n_fft, c.hop, window=self.window, center=True, return_complex=True)
        length = (magnitude.shape[-1] - 1) * c.hop
        istft = lambda s: torch.istft(s, c.n_fft, c.hop, window=self.window, center=True, length=length)
        phase = torch.exp(2j * torch.pi * torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(0)))
        wave = istft(magnitude * phase.to(magnitude.device))
        for _ in range(self.iterations):
            spec = stft(wave)
            wave = istft(magnitude * spec / spec.abs().clamp(min=1e-8))
        # the front end's frame i is centred on sample 256 i + 128: shift to match, pad to 256 T samples
        wave = F.pad(wave, (c.hop // 2, c.hop * magnitude.shape[-1] - length - c.hop // 2))
        return wave.clamp(-1.0, 1.0).unsqueeze(1)


def save(fit_dir: str, config: ToyConfig, video: ToyVideoAE, audio: ToyAudioAE, report: dict) -> str:
    from safetensors.torch import save_file

    os.makedirs(fit_dir, exist_ok=True)
    save_file({k: v.contiguous() for k, v in video.state_dict().items()}, os.path.join(fit_dir, VIDEO_FILE))
    save_file({k: v.contiguous() for k, v in audio.state_dict().items()}, os.path.join(fit_dir, AUDIO_FILE))
    with open(os.path.join(fit_dir, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"config": asdict(config), "report": report}, f, indent=2)
    return fit_dir


def read_config(fit_dir: str) -> ToyConfig:
    path = os.path.join(fit_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no toy autoencoders in {fit_dir} (fit them with: python -m pipeline.fit_toy_autoencoders)")
    with open(path, encoding="utf-8") as f:
        return ToyConfig(**json.load(f)["config"])


def toy_multiple(fit_dir: str) -> int | None:
    """The bucket multiple the toy autoencoders in `fit_dir` need; None without them (the VAE's own)."""
    return read_config(fit_dir).bucket_multiple if fit_dir else None


def load_toy_video(fit_dir: str) -> ToyVideoAE:
    from model.checkpoints import load_strict

    return load_strict(ToyVideoAE(read_config(fit_dir)), fit_dir, VIDEO_FILE).eval()


def load_toy_audio(fit_dir: str) -> ToyAudioAE:
    from model.checkpoints import load_strict

    return load_strict(ToyAudioAE(read_config(fit_dir)), fit_dir, AUDIO_FILE).eval()


def version(fit_dir: str) -> str:
    """A name that changes with the fitted weights: 'toy-pca:' and the first bytes of their sha256."""
    import hashlib

    h = hashlib.sha256()
    for name in (CONFIG_FILE, VIDEO_FILE, AUDIO_FILE):
        with open(os.path.join(fit_dir, name), "rb") as f:
            h.update(f.read())
    return "toy-pca:" + h.hexdigest()[:12]
