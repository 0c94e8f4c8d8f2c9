"""Content fingerprints of a source that survive re-encoding, rescaling and a new container: a 64-bit
difference hash of the picture twice a second and a 16-bit spectral-shape word of the voice band four
times a second. Two sources are the same recording when both agree at the same instants.

Only the first FINGERPRINT_S seconds are kept: a re-encode agrees everywhere, and the manifest row stays
small (about 2 KB of hex) however long the source is."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FINGERPRINT_S = 120.0
VIDEO_HZ = 2.0
AUDIO_HOP_S, AUDIO_WINDOW_S = 0.25, 0.5
BANDS_HZ = np.geomspace(300.0, 3000.0, 18)  # 17 bands -> 16 band-difference bits per window
# Calibrated with benchmarks/near_duplicates.py. On ../shared/real_footage, re-encodes at a third of the
# size, crf 35 and 48 kb/s AAC differ from their original in at most 8.2% of picture bits and 5.9% of voice
# bits; the same picture with a shifted or another voice in >= 46% of voice bits; the same voice over
# another picture in >= 50% of picture bits. On the sample corpus, one synthetic face saying one sentence
# in two espeak voices differs in 24.5% of voice bits.
MAX_VIDEO_BIT_ERRORS = 0.15
MAX_AUDIO_BIT_ERRORS = 0.15


def dhash(frame: np.ndarray) -> int:
    """64-bit difference hash of an RGB frame: is each of 8x8 cells brighter than its right neighbour."""
    grey = cv2.cvtColor(cv2.resize(frame, (9, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY).astype(np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def video_sample_frames(num_frames: int, fps: float) -> list[int]:
    """Indices of the frames hashed: VIDEO_HZ a second over the first FINGERPRINT_S seconds."""
    n = min(num_frames, int(FINGERPRINT_S * fps))
    return [int(round(k * fps / VIDEO_HZ)) for k in range(int(n / fps * VIDEO_HZ)) if round(k * fps / VIDEO_HZ) < n]


def audio_words(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """uint16 per AUDIO_HOP_S: signs of the change over time of adjacent band-energy differences
    (the Haitsma-Kalker construction with long windows, so an encoder delay of tens of ms does not matter)."""
    pcm = pcm[: int(FINGERPRINT_S * sample_rate)]
    win, hop = int(AUDIO_WINDOW_S * sample_rate), int(AUDIO_HOP_S * sample_rate)
    if len(pcm) < win + hop:
        return np.zeros(0, np.uint16)
    starts = np.arange(0, len(pcm) - win + 1, hop)
    frames = np.stack([pcm[s:s + win] for s in starts]) * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(win, 1.0 / sample_rate)
    edges = np.searchsorted(freqs, BANDS_HZ)
    energy = np.log(np.stack([power[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1) + 1e-10)
    shape = energy[:, :-1] - energy[:, 1:]  # (windows, 16)
    bits = (shape[1:] - shape[:-1]) > 0
    return np.packbits(bits, axis=1).view(">u2")[:, 0].astype(np.uint16)


@dataclass
class Fingerprint:
    duration_s: float
    video: np.ndarray  # uint64 per 1/VIDEO_HZ s
    audio: np.ndarray  # uint16 per AUDIO_HOP_S

    def to_hex(self) -> tuple[str, str]:
        return self.video.astype(">u8").tobytes().hex(), self.audio.astype(">u2").tobytes().hex()

    @classmethod
    def from_hex(cls, duration_s: float, video: str | None, audio: str | None) -> "Fingerprint":
        return cls(duration_s, np.frombuffer(bytes.fromhex(video or ""), ">u8").astype(np.uint64),
                   np.frombuffer(bytes.fromhex(audio or ""), ">u2").astype(np.uint16))


def bit_error_rate(a: np.ndarray, b: np.ndarray, bits: int) -> float | None:
    """Share of differing bits over the common length; None when either is empty."""
    n = min(len(a), len(b))
    if n == 0:
        return None
    x = np.bitwise_xor(a[:n].astype(np.uint64), b[:n].astype(np.uint64))
    return float(np.unpackbits(x.view(np.uint8)).sum()) / (n * bits)


def same_recording(a: Fingerprint, b: Fingerprint) -> tuple[bool, str]:
    """Both streams that the two carry agree (at least one stream compared) and the durations match."""
    if abs(a.duration_s - b.duration_s) > max(1.0, 0.02 * max(a.duration_s, b.duration_s)):
        return False, "durations differ"
    video = bit_error_rate(a.video, b.video, 64)
    audio = bit_error_rate(a.audio, b.audio, 16)
    if (video is None and audio is None) or (video or 0) > MAX_VIDEO_BIT_ERRORS or (audio or 0) > MAX_AUDIO_BIT_ERRORS:
        return False, "content differs"
    said = [f"{name} bits differ {v:.0%}" for name, v in (("picture", video), ("voice", audio)) if v is not None]
    return True, ", ".join(said)
