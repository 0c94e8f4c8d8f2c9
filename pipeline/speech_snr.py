"""Speech-to-noise ratio of a clip without a clean reference.

The noise floor is what the quietest 20 ms windows of the clip hold (its 10th percentile of window power):
in clean speech those are the pauses between words, which sit at the room's floor; under a music bed or a
noisy room the pauses fill up. The speech level is the mean power of the windows inside the VAD's speech
regions. SNR = 10 log10((speech - floor) / floor). Rumble below 80 Hz (handling noise, mains hum's
fundamental) is filtered out first, as it carries no speech.
"""
from __future__ import annotations

import numpy as np

WINDOW_S = 0.02
FLOOR_QUANTILE = 0.10
MAX_SNR_DB = 60.0  # digital silence between words would give infinity


def window_power(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """(W,) mean power of consecutive 20 ms windows of the high-passed signal."""
    from scipy.signal import butter, sosfilt

    x = sosfilt(butter(2, 80, btype="high", fs=sample_rate, output="sos"), pcm.astype(np.float64))
    n = int(WINDOW_S * sample_rate)
    w = x[:len(x) // n * n].reshape(-1, n)
    return np.mean(w ** 2, axis=1)


def speech_snr_db(pcm: np.ndarray, sample_rate: int, speech: list[tuple[float, float]]) -> float:
    """SNR in dB of a clip's audio; `speech` are the VAD's regions in seconds from the clip's start."""
    power = window_power(pcm, sample_rate)
    if len(power) < 5 or power.max() <= 0:
        return 0.0
    t = (np.arange(len(power)) + 0.5) * WINDOW_S
    inside = np.any([(t >= a) & (t < b) for a, b in speech], axis=0) if speech else np.ones(len(power), bool)
    floor = float(np.quantile(power, FLOOR_QUANTILE))
    level = float(power[inside].mean()) if inside.any() else float(power.mean())
    if floor <= level * 10 ** (-MAX_SNR_DB / 10):
        return MAX_SNR_DB
    return float(np.clip(10 * np.log10(max(level - floor, 1e-20) / floor), -MAX_SNR_DB, MAX_SNR_DB))
