"""GE2E speaker encoder (Wan, Wang et al. 2018) as Resemblyzer trained it, laid out so its `pretrained.pt` loads
strictly: 40 mel bands every 10 ms -> 3-layer LSTM (256) -> linear + ReLU -> L2-normalised 256-d voice embedding.

The weights ship inside the `resemblyzer` wheel on PyPI (so evaluation runs offline); `python -m model.loading.fetch
--only speaker_ge2e` copies them into a models folder. Similarity of two voices is the cosine of their
embeddings: Resemblyzer's embeddings are non-negative, so it lies in [0, 1], a scale of its own, not the
WavLM-TDNN speaker similarity papers report.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model.packaged import packaged_file

SAMPLE_RATE = 16000
HOP = 160  # 10 ms
PARTIAL_FRAMES = 160  # 1.6 s per partial utterance
PARTIALS_PER_S = 1.3  # Resemblyzer's rate of partials over an utterance
MIN_COVERAGE = 0.75  # a last partial shorter than this share of PARTIAL_FRAMES is dropped
TARGET_DBFS = -30.0  # quiet speech is raised to this loudness (never lowered), as Resemblyzer does
RELPATH = "speaker/ge2e_resemblyzer.pt"


class GE2E(nn.Module):
    def __init__(self, mels: int = 40, hidden: int = 256, layers: int = 3, dim: int = 256):
        super().__init__()
        self.lstm = nn.LSTM(mels, hidden, layers, batch_first=True)
        self.linear = nn.Linear(hidden, dim)
        # the loss's learned scale and bias: part of the official state dict, unused for embeddings
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, frames, mels) -> (B, dim) unit vectors."""
        _, (hidden, _) = self.lstm(mels)
        raw = torch.relu(self.linear(hidden[-1]))
        return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @torch.no_grad()
    def embed(self, wav: np.ndarray) -> np.ndarray:
        """(dim,) embedding of a 16 kHz utterance: the normalised mean of its overlapping 1.6 s partials."""
        wav = prepare(wav)
        starts = partial_starts(len(wav))
        need = (starts[-1] + PARTIAL_FRAMES) * HOP
        wav = np.pad(wav, (0, max(0, need - len(wav))))
        mel = mel_frames(wav, self.lstm.input_size)  # (frames, mels)
        parts = torch.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])
        mean = self(parts.to(self.linear.weight.device)).mean(0)
        return (mean / mean.norm()).cpu().numpy()


def mel_frames(wav: np.ndarray, mels: int) -> torch.Tensor:
    """(frames, mels): librosa's melspectrogram as Resemblyzer called it (25 ms Hann window, power 2, Slaney
    mel scale and norm, no log)."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=400, hop_length=HOP, n_mels=mels,
                                               norm="slaney", mel_scale="slaney", pad_mode="reflect")
    return mel(torch.from_numpy(wav).float()).T


def partial_starts(samples: int) -> list[int]:
    """First mel frame of each partial utterance, covering the whole utterance (at least one)."""
    frames = int(np.ceil((samples + 1) / HOP))
    step = int(round(SAMPLE_RATE / PARTIALS_PER_S / HOP))
    starts = list(range(0, max(1, frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    return starts[:-1] if coverage < MIN_COVERAGE and len(starts) > 1 else starts


def prepare(wav: np.ndarray, window_s: float = 0.03, floor_db: float = 40.0) -> np.ndarray:
    """Raised to -30 dBFS if quieter, and without its pauses: 30 ms windows more than `floor_db` below the
    loudest are dropped (Resemblyzer drops them with a WebRTC VAD, which needs a compiler to install)."""
    wav = np.asarray(wav, np.float32)
    power = float(np.mean(wav.astype(np.float64) ** 2)) if len(wav) else 0.0
    if power <= 0:
        return wav
    gain_db = TARGET_DBFS - 10 * np.log10(power)
    if gain_db > 0:
        wav = wav * np.float32(10 ** (gain_db / 20))
    n = int(window_s * SAMPLE_RATE)
    windows = wav[:len(wav) // n * n].reshape(-1, n)
    if len(windows) < 2:
        return wav
    db = 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, 1) + 1e-12)
    smooth = np.convolve(db, np.ones(8) / 8, mode="same")  # as Resemblyzer smooths its VAD over 8 windows
    keep = smooth > db.max() - floor_db
    return windows[keep].reshape(-1) if keep.any() else wav


def weights_file(models_dir: str | None) -> str | None:
    """The models folder's copy, else the one inside the installed resemblyzer wheel, else None."""
    return packaged_file(models_dir, RELPATH, "resemblyzer", "pretrained.pt")


def load_ge2e(models_dir: str | None = None, device: str = "cpu") -> GE2E:
    """The official weights, loaded strictly (the file is a training checkpoint: weights under `model_state`)."""
    path = weights_file(models_dir)
    if path is None:
        raise FileNotFoundError(f"GE2E speaker encoder weights not found in {models_dir}/{RELPATH} nor in a "
                                f"resemblyzer package (pip install --no-deps resemblyzer, or python -m model.loading.fetch "
                                f"--only speaker_ge2e)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = GE2E()
    net.load_state_dict(state.get("model_state", state), strict=True)
    return net.eval().to(device)


def speaker_similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
