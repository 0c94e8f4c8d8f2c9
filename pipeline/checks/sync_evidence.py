"""Offline lip-sync evidence: how well the moving mouth follows the audio at every shift, from four
measurements summed as z-scores over the shifts.

1. mouth opening (face-mesh inner-lip gap, `lip_landmarks.py`) against the voice band's log loudness;
2. mouth opening against spectral flux (how fast the spectrum changes: onsets of syllables);
3. how dark the mouth region gets (an open mouth shows its cavity) against the loudness;
4. Light-ASD's mean speaking logit of the face track against the shifted audio.

Every shift compares the clip's own frames with audio read from the source around the clip (`pad`
frames either side), so each shift sees all the clip's frames rather than a shrinking overlap. On the
labelled recordings (benchmarks/real_footage.py, 49-frame clips) each measurement alone put 50-67% of
in-sync clips within 3 frames of zero; the sum, 73%; the sum plus the mean over the source's other clips
(the offset of a recording is one number), 88-90%, with 95% of 0.4 s shifts and voice swaps outside.

Shifts follow SyncNet's sign in what is returned: the offset is negative when the audio is heard late.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.checks.lip_sync import speech_loudness

SOURCE_WEIGHT = 3.0  # the source's mean curve against the clip's own (chosen on the labelled recordings)


@dataclass
class SyncReading:
    offset: int  # frames at the clip's rate; negative: audio late (SyncNet's sign)
    confidence: float  # peak minus median of the summed z-scores


def spectral_flux(pcm: np.ndarray, sample_rate: int, fps: float, n: int) -> np.ndarray:
    """(n,) rise of the log spectrum (80-4000 Hz) per video frame: syllable onsets."""
    from scipy.signal import stft

    freqs, times, spec = stft(pcm.astype(np.float64), sample_rate, nperseg=512, noverlap=512 - sample_rate // 100)
    logs = np.log(np.abs(spec[(freqs > 80) & (freqs < 4000)]) + 1e-4)
    rise = np.concatenate([[0.0], np.maximum(np.diff(logs, axis=1), 0).sum(0)])
    frame = np.clip((times * fps).astype(int), 0, n - 1)
    total, count = np.zeros(n), np.zeros(n)
    np.add.at(total, frame, rise)
    np.add.at(count, frame, 1)
    return total / np.maximum(count, 1)


def shift_correlations(video: np.ndarray, audio: np.ndarray, pad: int) -> np.ndarray:
    """(2 pad + 1,) Pearson correlation of video (n,) with audio[pad + k : pad + k + n] for k in -pad..pad;
    audio (n + 2 pad,) is the clip's feature with `pad` frames of the source either side."""
    n = len(video)
    windows = np.lib.stride_tricks.sliding_window_view(audio, n)[:2 * pad + 1]
    v = video - video.mean()
    w = windows - windows.mean(1, keepdims=True)
    denom = np.sqrt((v ** 2).sum() * (w ** 2).sum(1))
    return np.where(denom > 1e-12, (w @ v) / np.maximum(denom, 1e-12), 0.0)


def zscore(curve: np.ndarray) -> np.ndarray:
    curve = np.nan_to_num(np.asarray(curve, np.float64))
    return (curve - curve.mean()) / (curve.std() + 1e-8)


def to_grid(curve: np.ndarray, fps_from: float, fps_to: float, pad_to: int) -> np.ndarray:
    """A curve over shifts at one frame rate, read at the shifts of another (by time)."""
    pad_from = (len(curve) - 1) // 2
    return np.interp(np.arange(-pad_to, pad_to + 1) / fps_to, np.arange(-pad_from, pad_from + 1) / fps_from, curve)


def evidence_parts(opening: np.ndarray, darkness: np.ndarray, pcm_context: np.ndarray, sample_rate: int,
                   fps: float, pad: int) -> dict[str, np.ndarray]:
    """Each kind of evidence from the picture and the sound alone: a (2 pad + 1,) curve over audio shifts k
    (video frame t with audio frame t + k). opening, darkness: (n,) per video frame; pcm_context: the clip's
    audio with `pad` frames either side."""
    n = len(opening)
    loud = speech_loudness(pcm_context, sample_rate, fps, n + 2 * pad)
    flux = spectral_flux(pcm_context, sample_rate, fps, n + 2 * pad)
    return {"opening x loudness": shift_correlations(zscore(opening), loud, pad),
            "opening x flux": shift_correlations(zscore(opening), flux, pad),
            "darkness x loudness": shift_correlations(zscore(-darkness), loud, pad)}


def evidence_curve(opening: np.ndarray, darkness: np.ndarray, pcm_context: np.ndarray, sample_rate: int,
                   fps: float, pad: int, asd_curve: np.ndarray | None = None) -> np.ndarray:
    """(2 pad + 1,) the parts' z-scores summed, with Light-ASD's mean speaking logit over the same shifts
    (`asd_curve`; None where it is not run)."""
    parts = list(evidence_parts(opening, darkness, pcm_context, sample_rate, fps, pad).values())
    if asd_curve is not None:
        parts.append(asd_curve)
    return sum(zscore(p) for p in parts)


def pool_source(curves: list[np.ndarray]) -> list[np.ndarray]:
    """Each clip's curve plus the mean of its source's (a recording's offset is one number): a clip whose
    own evidence is weak borrows the rest's."""
    if len(curves) < 2:
        return list(curves)
    mean = np.mean(curves, 0)
    return [c + SOURCE_WEIGHT * mean for c in curves]


def read_curve(curve: np.ndarray) -> SyncReading:
    pad = (len(curve) - 1) // 2
    best = int(np.argmax(curve))
    return SyncReading(offset=pad - best, confidence=float(curve[best] - np.median(curve)))
