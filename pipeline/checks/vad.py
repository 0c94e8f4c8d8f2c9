"""Where a recording speaks, and how much of a span that covers: whisperx's pyannote voice-activity model, binarised with whisperx's hysteresis
(a region opens above `onset`, closes below `offset`; regions and gaps under 0.1 s are merged away)."""
from __future__ import annotations

import numpy as np

MIN_SECONDS = 0.1  # shorter audio holds no region worth a model call


class SpeechDetector:
    def __init__(self, onset: float, offset: float, device: str = "cpu"):
        from whisperx.vads.pyannote import Binarize, load_vad_model

        self.model = load_vad_model(device, vad_onset=onset, vad_offset=offset)
        self.binarize = Binarize(onset=onset, offset=offset, min_duration_on=0.1, min_duration_off=0.1)

    def regions(self, pcm: np.ndarray, sample_rate: int) -> list[tuple[float, float]]:
        """(start, end) seconds of speech in mono float audio."""
        import torch

        if len(pcm) < sample_rate * MIN_SECONDS:
            return []
        scores = self.model({"waveform": torch.from_numpy(pcm)[None], "sample_rate": sample_rate})
        return [(float(s.start), float(s.end)) for s in self.binarize(scores).get_timeline()]


def overlap_ratio(regions: list[tuple[float, float]], start: float, end: float) -> float:
    """The share of [start, end) that the regions (seconds, not overlapping each other) cover."""
    covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in regions)
    return covered / (end - start)
