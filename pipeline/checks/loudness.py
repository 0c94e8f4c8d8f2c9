"""Loudness of a stretch of audio, as ffmpeg's volumedetect reports it."""
from __future__ import annotations

import numpy as np

SILENCE_FLOOR_DB = -120.0  # digital silence is reported as this instead of -inf


def mean_volume_db(pcm: np.ndarray) -> float:
    """Mean power in dBFS, as ffmpeg's volumedetect reports mean_volume."""
    power = float(np.mean(pcm.astype(np.float64) ** 2)) if len(pcm) else 0.0
    return max(SILENCE_FLOOR_DB, 10.0 * np.log10(power)) if power > 0 else SILENCE_FLOOR_DB
