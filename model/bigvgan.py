"""BigVGAN vocoder as MMAudio uses it at 16 kHz: 80-band log-mel (62.5 Hz) -> waveform (x256 upsampling).

Anti-aliased SnakeBeta activations (2x up, activation, 2x down with Kaiser-windowed sinc filters) inside
multi-dilation residual blocks; weight norm kept as torch parametrizations so the official generator
state dict loads strictly (older `weight_g`/`weight_v` names are mapped by torch's weight_norm hook).

mel (B, 80, T) -> wav (B, 1, 256 T) in [-1, 1]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

WEIGHT_FILE = "mmaudio/best_netG.pt"


@dataclass(frozen=True)
class VocoderConfig:
    mels: int = 80
    """Input mel bands."""
    width: int = 1536
    """Channels after the input conv; each upsampling stage halves them."""
    up_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    """Upsampling factor per stage (their product is the mel hop, 256)."""
    up_kernels: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    """Transposed-conv kernel per stage."""
    res_kernels: tuple[int, ...] = (3, 7, 11)
    """Kernel of each parallel residual block in a stage."""
    res_dilations: tuple[int, ...] = (1, 3, 5)
    """Dilations inside each residual block."""


def kaiser_sinc(cutoff: float, half_width: float, size: int) -> torch.Tensor:
    """(1, 1, size) low-pass filter: sinc at `cutoff` (of the sample rate) under a Kaiser window whose
    beta follows Kaiser's design rule for a transition band of `half_width`."""
    half = size // 2
    attenuation = 2.285 * (half - 1) * math.pi * 4 * half_width + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(size, periodic=False, beta=beta)
    t = torch.arange(-half, half) + 0.5 if size % 2 == 0 else torch.arange(size) - half
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return (taps / taps.sum()).view(1, 1, size)


class UpSample2x(nn.Module):
    def __init__(self, size: int = 12):
        super().__init__()
        self.pad = size // 2 - 1
        self.crop = self.pad * 2 + (size - 2) // 2
        self.register_buffer("filter", kaiser_sinc(0.25, 0.3, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        y = 2 * F.conv_transpose1d(x, self.filter.expand(x.shape[1], -1, -1), stride=2, groups=x.shape[1])
        return y[..., self.crop:-self.crop]


class LowPass2x(nn.Module):
    def __init__(self, size: int = 12):
        super().__init__()
        self.pads = (size // 2 - 1, size // 2)
        self.register_buffer("filter", kaiser_sinc(0.25, 0.3, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, self.pads, mode="replicate")
        return F.conv1d(x, self.filter.expand(x.shape[1], -1, -1), stride=2, groups=x.shape[1])


class DownSample2x(nn.Module):
    def __init__(self):
        super().__init__()
        self.lowpass = LowPass2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class SnakeBeta(nn.Module):
    """x + sin^2(a x) / b, with per-channel a and b stored as logs."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.alpha.exp()[None, :, None], self.beta.exp()[None, :, None]
        return x + torch.sin(x * a) ** 2 / (b + 1e-9)


class AntiAliasedSnake(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.act = SnakeBeta(channels)
        self.upsample = UpSample2x()
        self.downsample = DownSample2x()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


class AMPBlock(nn.Module):
    def __init__(self, ch: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        conv = lambda d: weight_norm(nn.Conv1d(ch, ch, kernel, dilation=d, padding=(kernel * d - d) // 2))
        self.convs1 = nn.ModuleList(conv(d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(1) for _ in dilations)
        self.activations = nn.ModuleList(AntiAliasedSnake(ch) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            x = x + c2(self.activations[2 * k + 1](c1(self.activations[2 * k](x))))
        return x


class BigVGAN(nn.Module):
    def __init__(self, c: VocoderConfig = VocoderConfig()):
        super().__init__()
        self.config = c
        self.conv_pre = weight_norm(nn.Conv1d(c.mels, c.width, 7, padding=3))
        self.ups = nn.ModuleList(
            nn.ModuleList([weight_norm(nn.ConvTranspose1d(c.width >> i, c.width >> (i + 1), k, u, padding=(k - u) // 2))])
            for i, (u, k) in enumerate(zip(c.up_rates, c.up_kernels)))
        self.resblocks = nn.ModuleList(AMPBlock(c.width >> (i + 1), k, c.res_dilations)
                                       for i in range(len(c.up_rates)) for k in c.res_kernels)
        out_ch = c.width >> len(c.up_rates)
        self.activation_post = AntiAliasedSnake(out_ch)
        self.conv_post = weight_norm(nn.Conv1d(out_ch, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n = len(self.config.res_kernels)
        for i, (up,) in enumerate(self.ups):
            x = up(x)
            x = sum(self.resblocks[i * n + j](x) for j in range(n)) / n
        return torch.tanh(self.conv_post(self.activation_post(x)))


def load_vocoder(models_dir: str, config: VocoderConfig = VocoderConfig()) -> BigVGAN:
    """The official 16 kHz generator (the checkpoint's 'generator' entry), loaded strictly."""
    from model.checkpoints import load_strict

    return load_strict(BigVGAN(config), models_dir, WEIGHT_FILE, entry="generator").eval()
