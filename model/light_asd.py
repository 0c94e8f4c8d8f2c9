"""Light-ASD (Liao et al., CVPR 2023, MIT licence): active-speaker detection from a grey face track and
its MFCCs, laid out so the official checkpoint (`pretrain_AVA_CVPR.model`) loads strictly.

Faces: (B, T, 112, 112) grey 0-255 at 25 fps. Audio: (B, 4T, 13) MFCC at 100 Hz (4 per video frame).
Each stream is a stack of split (spatial then temporal) convolutions to (B, T, 128); their sum runs
through a forward GRU and a backward GRU; a linear layer gives per-frame speaking logits (B, T).
State-dict names follow the official `ASD` wrapper: `model.*` for the network, `lossAV.FC` for the
audio-visual head and `lossV.FC` for the visual-only head used in training.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

WEIGHT_FILE = "pretrain_AVA_CVPR.model"
SHIPPED_DIR = os.path.join(os.path.dirname(__file__), "weights", "light_asd")  # MIT: weights ship with us
FACE_MEAN, FACE_STD = 0.4161, 0.1688  # grey-level statistics the network was trained with (0-1 scale)


def _bn(kind: type[nn.Module], channels: int) -> nn.Module:
    return kind(channels, momentum=0.01, eps=0.001)


class AudioBlock(nn.Module):
    """Two branches (3 and 5 wide): frequency conv then time conv; summed, then a 1x1 conv."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        conv = lambda i, o, k, p: nn.Conv2d(i, o, k, padding=p, bias=False)
        self.m_3, self.bn_m_3 = conv(cin, cout, (3, 1), (1, 0)), _bn(nn.BatchNorm2d, cout)
        self.t_3, self.bn_t_3 = conv(cout, cout, (1, 3), (0, 1)), _bn(nn.BatchNorm2d, cout)
        self.m_5, self.bn_m_5 = conv(cin, cout, (5, 1), (2, 0)), _bn(nn.BatchNorm2d, cout)
        self.t_5, self.bn_t_5 = conv(cout, cout, (1, 5), (0, 2)), _bn(nn.BatchNorm2d, cout)
        self.last, self.bn_last = conv(cout, cout, 1, 0), _bn(nn.BatchNorm2d, cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, freq, time)
        r = self.relu
        x3 = r(self.bn_t_3(self.t_3(r(self.bn_m_3(self.m_3(x))))))
        x5 = r(self.bn_t_5(self.t_5(r(self.bn_m_5(self.m_5(x))))))
        return r(self.bn_last(self.last(x3 + x5)))


def temporal_conv(conv: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    """A (k, 1, 1) Conv3d computed as a Conv2d over (time, pixels): the same weights and sums, but PyTorch's
    CPU Conv3d has no fast path (a 3 s clip's faces: 0.8 s through the encoder with it, 0.6 s without)."""
    b, c, t, h, w = x.shape  # (B, C, T, H, W)
    y = F.conv2d(x.reshape(b, c, t, h * w), conv.weight[..., 0], stride=(conv.stride[0], 1), padding=(conv.padding[0], 0))
    return y.reshape(b, -1, y.shape[2], h, w)


class VisualBlock(nn.Module):
    """Two branches (3 and 5 wide): spatial conv (stride 2 when `down`) then temporal conv; summed, 1x1x1."""

    def __init__(self, cin: int, cout: int, down: bool = False):
        super().__init__()
        s = (1, 2, 2) if down else 1
        conv = lambda i, o, k, p, st=1: nn.Conv3d(i, o, k, stride=st, padding=p, bias=False)
        self.s_3, self.bn_s_3 = conv(cin, cout, (1, 3, 3), (0, 1, 1), s), _bn(nn.BatchNorm3d, cout)
        self.t_3, self.bn_t_3 = conv(cout, cout, (3, 1, 1), (1, 0, 0)), _bn(nn.BatchNorm3d, cout)
        self.s_5, self.bn_s_5 = conv(cin, cout, (1, 5, 5), (0, 2, 2), s), _bn(nn.BatchNorm3d, cout)
        self.t_5, self.bn_t_5 = conv(cout, cout, (5, 1, 1), (2, 0, 0)), _bn(nn.BatchNorm3d, cout)
        self.last, self.bn_last = conv(cout, cout, 1, 0), _bn(nn.BatchNorm3d, cout)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W)
        r = self.relu
        x3 = r(self.bn_t_3(temporal_conv(self.t_3, r(self.bn_s_3(self.s_3(x))))))
        x5 = r(self.bn_t_5(temporal_conv(self.t_5, r(self.bn_s_5(self.s_5(x))))))
        return r(self.bn_last(self.last(x3 + x5)))


class VisualEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1, self.block2, self.block3 = VisualBlock(1, 32, down=True), VisualBlock(32, 64), VisualBlock(64, 128)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, 112, 112) -> (B, T, 128): 56 -> 28 -> 14 pixels, then a spatial max."""
        x = self.block3(self.pool(self.block2(self.pool(self.block1(x)))))
        return x.amax(dim=(3, 4)).transpose(1, 2)


class AudioEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1, self.block2, self.block3 = AudioBlock(1, 32), AudioBlock(32, 64), AudioBlock(64, 128)
        self.pool = nn.MaxPool2d((1, 3), (1, 2), (0, 1))  # halves time only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 13, 4T) -> (B, T, 128): time 4T -> 2T -> T, then the mean over MFCC bins."""
        x = self.block3(self.pool(self.block2(self.pool(self.block1(x)))))
        return x.mean(dim=2).transpose(1, 2)


class BiGRU(nn.Module):
    """A forward GRU, then a GRU over the reversed sequence (GELU after each)."""

    def __init__(self, dim: int = 128):
        super().__init__()
        self.gru_forward = nn.GRU(dim, dim, batch_first=True)
        self.gru_backward = nn.GRU(dim, dim, batch_first=True)
        self.gelu = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gelu(self.gru_forward(x)[0])
        return self.gelu(self.gru_backward(x.flip(1))[0].flip(1))


class AVNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.visualEncoder = VisualEncoder()
        self.audioEncoder = AudioEncoder()
        self.GRU = BiGRU(128)


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.FC = nn.Linear(128, 2)


class LightASD(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = AVNet()
        self.lossAV = Head()
        self.lossV = Head()

    def embed_faces(self, faces: torch.Tensor) -> torch.Tensor:
        """(B, T, 112, 112) grey 0-255 -> (B, T, 128)."""
        x = (faces.float()[:, None] / 255 - FACE_MEAN) / FACE_STD
        return self.model.visualEncoder(x)

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 4T, 13) -> (B, T, 128)."""
        return self.model.audioEncoder(mfcc.float()[:, None].transpose(2, 3))

    def speaking_logits(self, face_embed: torch.Tensor, audio_embed: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) each -> (B, T) logit that the face is speaking the audio (> 0: speaking)."""
        logits = self.lossAV.FC(self.model.GRU(face_embed + audio_embed))
        return logits[..., 1] - logits[..., 0]


def load_light_asd(path: str | None = None, device: str = "cpu") -> LightASD:
    """The official AVA-trained checkpoint, strictly: the copy shipped in this package unless `path`."""
    from model.checkpoints import load_strict

    path = path or os.path.join(SHIPPED_DIR, WEIGHT_FILE)
    return load_strict(LightASD(), os.path.dirname(path), os.path.basename(path)).eval().to(device)
