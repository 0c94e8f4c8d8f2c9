"""Content fingerprints of a source that survive re-encoding, rescaling, a new container and an audio
codec's delay: a 64-bit difference hash of the picture twice a second, and the loudness of two voice bands
25 times a second. Two sources are the same recording when the pictures agree at the same instants and the
sound does not clearly differ (the loudness curves correlate within a fifth of a second of each other).

The picture decides; the sound only vetoes: the same picture under another voice, or under its own voice
shifted, is another recording. Loudness alone is weak evidence: any two utterances that start and stop
alike correlate (two synthetic sentences of one espeak voice: up to 0.8).

Only the first FINGERPRINT_S seconds are kept: a re-encode agrees everywhere, and the manifest row stays
small (about 5 KB) however long the source is."""
from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np

FINGERPRINT_S = 60.0
VIDEO_HZ = 2.0
AUDIO_HOP_S = 0.04
BANDS_HZ = (250.0, 1000.0, 4000.0)
MAX_LAG = 5  # hops: an audio codec's priming or a muxer's delay moves the sound by up to ~0.2 s
FLOOR_DB = 50.0  # quieter than the loudest moment by more than this is silence, whatever its codec noise
# Calibrated with benchmarks/near_duplicates.py on the 9 original recordings of ../shared/real_footage and
# 4 copies of each (mp4 at a third of the size, crf 35, 48 kb/s AAC; mkv at crf 34 with the sound delayed
# 0, 60 and 120 ms): copies differ from their original in <= 9.6% of picture bits and their loudness
# correlates at >= 0.86. The closest other file of each: the same picture under a shifted or another
# voice correlates at <= 0.35; other pictures differ in >= 36.5% of bits.
MAX_VIDEO_BIT_ERRORS = 0.15
MIN_LOUDNESS_CORRELATION = 0.6


def video_sample_frames(num_frames: int, fps: float) -> list[int]:
    """Indices of the frames hashed: VIDEO_HZ a second over the first FINGERPRINT_S seconds."""
    n = min(num_frames, int(FINGERPRINT_S * fps))
    return [i for i in (int(round(k * fps / VIDEO_HZ)) for k in range(int(n / fps * VIDEO_HZ) + 1)) if i < n]


class PictureHasher:
    """Difference hashes (is each of 8x8 cells brighter than its right neighbour) of the picture at the
    sample frames, each averaged over SPREAD frames either side so that a copy whose frames start a frame
    or two later hashes alike. Fed every frame once, in order, by whoever reads them."""

    SPREAD = 2

    def __init__(self, num_frames: int, fps: float):
        self.samples = video_sample_frames(num_frames, fps)
        self.sums = np.zeros((len(self.samples), 8, 9))
        self.last = self.samples[-1] + self.SPREAD if self.samples else -1

    def visit(self, i: int, frame: np.ndarray) -> None:
        k = int(np.searchsorted(self.samples, i - self.SPREAD))
        if i > self.last or k == len(self.samples) or self.samples[k] > i + self.SPREAD:
            return  # no sample frame near: most frames between two samples are not hashed at all
        grey = cv2.cvtColor(cv2.resize(frame, (9, 8), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        while k < len(self.samples) and self.samples[k] <= i + self.SPREAD:
            self.sums[k] += grey
            k += 1

    def hashes(self) -> np.ndarray:
        bits = (self.sums[:, :, 1:] > self.sums[:, :, :-1]).reshape(len(self.samples), 64)
        return np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)


def loudness_curve(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """(hops, bands) uint8: each band's level in half-dB steps over windows of two hops, floored."""
    pcm = pcm[: int(FINGERPRINT_S * sample_rate)]
    hop = int(AUDIO_HOP_S * sample_rate)
    if len(pcm) < 3 * hop:
        return np.zeros((0, len(BANDS_HZ) - 1), np.uint8)
    frames = np.lib.stride_tricks.sliding_window_view(pcm, 2 * hop)[::hop] * np.hanning(2 * hop)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    edges = np.searchsorted(np.fft.rfftfreq(2 * hop, 1.0 / sample_rate), BANDS_HZ)
    db = 10 * np.log10(np.stack([power[:, a:b].sum(1) for a, b in zip(edges[:-1], edges[1:])], 1) + 1e-10)
    db = np.maximum(db, db.max(0) - FLOOR_DB)
    return np.clip(np.round(2 * (db + 100)), 0, 255).astype(np.uint8)


@dataclass
class Fingerprint:
    duration_s: float
    video: np.ndarray  # uint64 per 1/VIDEO_HZ s
    audio: np.ndarray  # (hops, bands) uint8 per AUDIO_HOP_S

    def to_text(self) -> tuple[str, str]:
        """(video, audio) as base64 text for the manifest row."""
        return (base64.b64encode(self.video.astype(">u8").tobytes()).decode(),
                base64.b64encode(self.audio.astype(np.uint8).tobytes()).decode())

    @classmethod
    def from_text(cls, duration_s: float, video: str | None, audio: str | None) -> "Fingerprint":
        bands = len(BANDS_HZ) - 1
        return cls(duration_s, np.frombuffer(base64.b64decode(video or ""), ">u8").astype(np.uint64),
                   np.frombuffer(base64.b64decode(audio or ""), np.uint8).reshape(-1, bands))


def picture_bit_errors(a: np.ndarray, b: np.ndarray) -> float | None:
    """Share of differing hash bits over the common length; None when either has no picture."""
    n = min(len(a), len(b))
    if n == 0:
        return None
    return float(np.unpackbits(np.bitwise_xor(a[:n], b[:n]).view(np.uint8)).sum()) / (n * 64)


def loudness_correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Best mean (over bands) Pearson correlation of the two curves within MAX_LAG hops; None when there
    is nothing to compare (no sound, or a constant level)."""
    best = None
    for lag in range(-MAX_LAG, MAX_LAG + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n < 3 * MAX_LAG:
            continue
        x, y = x[:n].astype(np.float64), y[:n].astype(np.float64)
        r = [np.corrcoef(x[:, k], y[:, k])[0, 1] for k in range(x.shape[1]) if x[:, k].std() > 0 and y[:, k].std() > 0]
        if r and (best is None or np.mean(r) > best):
            best = float(np.mean(r))
    return best


def same_recording(a: Fingerprint, b: Fingerprint) -> tuple[bool, str]:
    """Both streams that the two carry agree (at least one stream compared) and the durations match."""
    if abs(a.duration_s - b.duration_s) > max(1.0, 0.02 * max(a.duration_s, b.duration_s)):
        return False, "durations differ"
    picture, sound = picture_bit_errors(a.video, b.video), loudness_correlation(a.audio, b.audio)
    if picture is None and sound is None:
        return False, "nothing to compare"
    if (picture is not None and picture > MAX_VIDEO_BIT_ERRORS) or (sound is not None and sound < MIN_LOUDNESS_CORRELATION):
        return False, "content differs"
    said = ([f"picture hash bits differ {picture:.0%}"] if picture is not None else []) + \
           ([f"voice loudness correlates {sound:.2f}"] if sound is not None else [])
    return True, ", ".join(said)
