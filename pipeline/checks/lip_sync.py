"""Lip-sync scorers: SyncNet (official definition of offset, Sync-C and Sync-D) and a model-free one.

Both return a distance for every shift in [-vshift, vshift] and read it the way syncnet_python does:
offset = vshift - argmin (audio heard late gives a negative offset), confidence = median - min,
min distance = Sync-D.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SyncScore:
    offset: int  # frames at `fps`
    confidence: float
    min_dist: float
    fps: float
    scorer: str


def read_distances(mean_dist: np.ndarray, vshift: int, fps: float, scorer: str) -> SyncScore:
    idx = int(np.argmin(mean_dist))
    # torch.median (not numpy's) is the lower middle value, which is what syncnet_python takes
    median = float(torch.median(torch.from_numpy(np.asarray(mean_dist, np.float32))))
    return SyncScore(vshift - idx, median - float(mean_dist[idx]), float(mean_dist[idx]), fps, scorer)


def shifted_distances(video_feat: torch.Tensor, audio_feat: torch.Tensor, vshift: int) -> torch.Tensor:
    """(N, 2*vshift+1): distance of video feature i to audio feature i + k - vshift (zero-padded)."""
    padded = F.pad(audio_feat, (0, 0, vshift, vshift))
    win = 2 * vshift + 1
    return torch.stack([F.pairwise_distance(video_feat[[i]].repeat(win, 1), padded[i:i + win])
                        for i in range(len(video_feat))])


def syncnet_crops(frames: np.ndarray, boxes: np.ndarray, crop_scale: float = 0.4) -> np.ndarray:
    """224x224 BGR face crops the way syncnet_python's pipeline cuts them (box padded, mouth-weighted)."""
    out = np.empty((len(frames), 224, 224, 3), np.uint8)
    for i, (frame, b) in enumerate(zip(frames, boxes)):
        bs = max(b[2] - b[0], b[3] - b[1]) / 2
        bp = int(bs * (1 + 2 * crop_scale))
        padded = cv2.copyMakeBorder(frame, bp, bp, bp, bp, cv2.BORDER_CONSTANT, value=(110, 110, 110))
        mx, my = (b[0] + b[2]) / 2 + bp, (b[1] + b[3]) / 2 + bp
        crop = padded[int(my - bs):int(my + bs * (1 + 2 * crop_scale)),
                      int(mx - bs * (1 + crop_scale)):int(mx + bs * (1 + crop_scale))]
        out[i] = cv2.resize(crop, (224, 224))[:, :, ::-1]
    return out


def syncnet_mfcc(pcm16k: np.ndarray) -> np.ndarray:
    """(13, M) MFCC at 100 Hz, python_speech_features defaults on int16-scaled samples as SyncNet saw them."""
    import python_speech_features

    return python_speech_features.mfcc(pcm16k.astype(np.float64) * 32768.0, 16000).T


class SyncNetScorer:
    """SyncNet on 25 fps crops: 5-frame windows against 20 MFCC frames (4 per video frame)."""

    FPS = 25.0

    def __init__(self, net, device: str = "cpu", batch_size: int = 64):
        self.net, self.device, self.batch_size = net, device, batch_size

    @torch.no_grad()
    def score(self, crops_25fps: np.ndarray, pcm16k: np.ndarray, vshift: int) -> SyncScore:
        mfcc = syncnet_mfcc(pcm16k)
        min_length = min(len(crops_25fps), len(pcm16k) // 640)
        last = min_length - 5
        if last <= 2 * vshift:
            raise ValueError(f"clip too short for SyncNet: {min_length} frames at 25 fps")
        video = torch.from_numpy(crops_25fps).float().permute(3, 0, 1, 2)  # C T H W
        audio = torch.from_numpy(mfcc).float()[None]  # 1 13 M
        v_feat, a_feat = [], []
        for s in range(0, last, self.batch_size):
            idx = range(s, min(last, s + self.batch_size))
            v_feat.append(self.net.embed_lips(torch.stack([video[:, i:i + 5] for i in idx]).to(self.device)).cpu())
            a_feat.append(self.net.embed_audio(torch.stack([audio[:, :, 4 * i:4 * i + 20] for i in idx]).to(self.device)).cpu())
        dists = shifted_distances(torch.cat(v_feat), torch.cat(a_feat), vshift)
        return read_distances(dists.mean(0).numpy(), vshift, self.FPS, "syncnet_v2")


def mouth_crops(frames: np.ndarray, landmarks: np.ndarray, size: tuple[int, int] = (32, 24)) -> np.ndarray:
    """(T, h, w) grey mouth regions placed by the mouth-corner landmarks of each frame."""
    out = np.empty((len(frames), size[1], size[0]), np.float32)
    for i, (frame, lm) in enumerate(zip(frames, landmarks)):
        (lx, ly), (rx, ry) = lm[3], lm[4]
        w = max(4.0, float(np.hypot(rx - lx, ry - ly)))
        cx, cy = (lx + rx) / 2, (ly + ry) / 2
        x0, x1 = int(max(0, cx - 0.6 * w)), int(min(frame.shape[1], cx + 0.6 * w))
        y0, y1 = int(max(0, cy - 0.35 * w)), int(min(frame.shape[0], cy + 0.65 * w))
        region = frame[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
        out[i] = cv2.resize(cv2.cvtColor(region, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)
    return out


def speech_loudness(pcm: np.ndarray, sample_rate: int, fps: float, n: int) -> np.ndarray:
    """(n,) log RMS per video frame of the 300-3000 Hz band, where the voice's formants (and the mouth's
    shape) live; log because loudness, like mouth opening, grows by ratios. Measured on recorded speakers
    (benchmarks/real_footage.py), this band and the log moved in-sync offsets from -1..+4 to -1..+1."""
    from scipy.signal import butter, sosfiltfilt

    voice = sosfiltfilt(butter(4, [300, 3000], btype="band", fs=sample_rate, output="sos"), pcm.astype(np.float64))
    hop = sample_rate / fps
    rms = [np.sqrt(np.mean(voice[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12) for i in range(n)]
    return np.log(np.asarray(rms) + 1e-3)


def _zscore(x: np.ndarray) -> np.ndarray:
    x = x - np.polyval(np.polyfit(np.arange(len(x)), x, 1), np.arange(len(x)))  # remove slow lighting drift
    return (x - x.mean()) / (x.std() + 1e-8)


class MouthMotionScorer:
    """Model-free: how dark the mouth region gets (an open mouth shows its cavity) against the speech
    loudness, correlated at every shift; distance = 1 - Pearson correlation, so confidence (median - min
    distance) is the peak correlation's lead over the median shift's, on a 0-2 scale."""

    def score(self, mouths: np.ndarray, pcm: np.ndarray, sample_rate: int, fps: float, vshift: int) -> SyncScore:
        n = len(mouths)
        opening = _zscore(-mouths.reshape(n, -1).mean(1))
        loud = _zscore(speech_loudness(pcm, sample_rate, fps, n))
        dists = np.empty(2 * vshift + 1)
        for idx in range(2 * vshift + 1):
            k = idx - vshift  # video frame t against audio frame t + k
            v, a = (opening[:n - k], loud[k:]) if k >= 0 else (opening[-k:], loud[:n + k])
            r = np.corrcoef(v, a)[0, 1] if v.std() > 1e-6 and a.std() > 1e-6 else 0.0
            dists[idx] = 1.0 - r
        return read_distances(dists, vshift, fps, "mouth_motion")
