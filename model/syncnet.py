"""SyncNet (Chung & Zisserman 2016), laid out so the official `syncnet_v2.model` loads strictly.

Lip stream: 5 face crops (B, 3, 5, 224, 224) at 25 fps, raw 0-255 BGR -> (B, 1024).
Audio stream: 20 MFCC frames (B, 1, 13, 20) at 100 Hz -> (B, 1024).
The Sequential indices below fix the state-dict names (`netcnnaud.0.weight`, ...).
"""
from __future__ import annotations

import os

import torch
from torch import nn

EMBED_DIM = 1024


def _conv_bn(conv: nn.Module, channels: int, bn: type[nn.Module]) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=True)]


def audio_trunk() -> nn.Sequential:
    """(B, 1, 13, 20) MFCC -> (B, 512, 1, 1)."""
    c2 = lambda i, o, k=(3, 3), p=(1, 1): _conv_bn(nn.Conv2d(i, o, k, padding=p), o, nn.BatchNorm2d)
    return nn.Sequential(
        *c2(1, 64), nn.MaxPool2d(1, 1),  # 0-3
        *c2(64, 192), nn.MaxPool2d(3, (1, 2)),  # 4-7: (11, 9)
        *c2(192, 384),  # 8-10
        *c2(384, 256),  # 11-13
        *c2(256, 256), nn.MaxPool2d(3, 2),  # 14-17: (5, 4)
        *c2(256, 512, (5, 4), (0, 0)),  # 18-20: (1, 1)
    )


def lip_trunk() -> nn.Sequential:
    """(B, 3, 5, 224, 224) frames -> (B, 512, 1, 1, 1)."""
    c3 = lambda i, o, k, s=1, p=0: _conv_bn(nn.Conv3d(i, o, k, stride=s, padding=p), o, nn.BatchNorm3d)
    return nn.Sequential(
        *c3(3, 96, (5, 7, 7), (1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 0-3: 109 -> 54
        *c3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),  # 4-7: 13
        *c3(256, 256, (1, 3, 3), 1, (0, 1, 1)),  # 8-10
        *c3(256, 256, (1, 3, 3), 1, (0, 1, 1)),  # 11-13
        *c3(256, 256, (1, 3, 3), 1, (0, 1, 1)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),  # 14-17: 6
        *c3(256, 512, (1, 6, 6)),  # 18-20: 1
    )


def head(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, dim))


class SyncNet(nn.Module):
    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.netcnnaud = audio_trunk()
        self.netfcaud = head(embed_dim)
        self.netfclip = head(embed_dim)
        self.netcnnlip = lip_trunk()

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def embed_lips(self, frames: torch.Tensor) -> torch.Tensor:
        return self.netfclip(self.netcnnlip(frames).flatten(1))


WEIGHTS_FILE = "syncnet_v2.model"
RELPATH = f"syncnet/{WEIGHTS_FILE}"


def weights_path(models_dir: str) -> str:
    return os.path.join(models_dir, RELPATH)


def load_syncnet(models_dir: str, device: str = "cpu") -> SyncNet:
    """The official weights (syncnet_python's syncnet_v2.model), loaded strictly."""
    from model.checkpoints import load_strict

    return load_strict(SyncNet(), models_dir, RELPATH).eval().to(device)


def save_debug_weights(models_dir: str, seed: int = 0) -> str:
    """Seeded random weights in the official file format, for tests and the offline demo."""
    from model.checkpoints import save_debug_weights as save

    return save(SyncNet(), models_dir, RELPATH, seed)
