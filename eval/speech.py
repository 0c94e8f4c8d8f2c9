"""The speech of a clip: WER of its Whisper transcript against a reference text, speaker similarity to a
reference voice, loudness and the share of silence.

WER is scored the way Whisper's authors and the TTS papers after them score it: both texts pass Whisper's
English normaliser first (lower case, punctuation dropped, numbers as digits, contractions and titles spelled
out), then jiwer counts word edits. Its British-to-American spelling table is not shipped with transformers,
so "colour" and "color" still differ.
"""
from __future__ import annotations

import numpy as np

from pipeline.checks.loudness import mean_volume_db

SAMPLE_RATE = 16000
WINDOW_S = 30.0  # Whisper hears 30 s at a time
SILENCE_BELOW_PEAK_DB = 35.0  # a 20 ms window this far under the clip's loudest counts as silence


def normalize(text: str) -> str:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    return EnglishTextNormalizer({})(text or "")


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate after normalisation; NaN when the reference has no words."""
    import jiwer

    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref.split():
        return float("nan")
    return float(jiwer.wer(ref, hyp)) if hyp.split() else 1.0


def silence_share(pcm: np.ndarray, window_s: float = 0.02) -> float:
    """Share of 20 ms windows more than SILENCE_BELOW_PEAK_DB under the loudest (all of it when digital silence)."""
    n = int(window_s * SAMPLE_RATE)
    windows = pcm[:len(pcm) // n * n].reshape(-1, n).astype(np.float64)
    if not len(windows):
        return 1.0
    db = 10 * np.log10(np.mean(windows ** 2, 1) + 1e-12)
    if db.max() <= -110:
        return 1.0
    return float(np.mean(db < db.max() - SILENCE_BELOW_PEAK_DB))


def loudness(pcm: np.ndarray) -> dict:
    peak = float(np.max(np.abs(pcm))) if len(pcm) else 0.0
    return {"loudness_db": round(mean_volume_db(pcm), 2),
            "peak_db": round(20 * np.log10(peak), 2) if peak > 0 else -120.0,
            "silence_share": round(silence_share(pcm), 4)}


class Transcriber:
    """Whisper (CTranslate2, from the pipeline's models folder), one batched call per clip."""

    def __init__(self, models_dir: str, language: str | None, threads: int = 0):
        import torch
        from faster_whisper import BatchedInferencePipeline
        from whisperx.asr import WhisperModel

        from model.loading.offline_models import whisper_dir

        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = WhisperModel(whisper_dir(models_dir), device=device,
                             compute_type="int8" if device == "cpu" else "float16", cpu_threads=threads)
        self.pipeline, self.language = BatchedInferencePipeline(model), language or None

    def __call__(self, pcm: np.ndarray) -> tuple[str, str]:
        """(text, language) of 16 kHz audio, heard in 30 s windows."""
        seconds = len(pcm) / SAMPLE_RATE
        if seconds < 0.1:
            return "", self.language or ""
        spans = [{"start": s, "end": min(seconds, s + WINDOW_S)} for s in np.arange(0.0, seconds, WINDOW_S)]
        segments, info = self.pipeline.transcribe(pcm, language=self.language, clip_timestamps=spans, batch_size=2,
                                                  beam_size=5)
        return " ".join(s.text.strip() for s in segments).strip(), info.language


class SpeakerScorer:
    """Cosine similarity of GE2E voice embeddings (model/speaker_encoder.py), 0-1 on its own scale."""

    name = "ge2e"

    def __init__(self, models_dir: str):
        from model.speaker_encoder import load_ge2e

        self.net = load_ge2e(models_dir)
        self.cache: dict[int, np.ndarray] = {}

    def __call__(self, pcm: np.ndarray, reference: np.ndarray) -> float:
        from model.speaker_encoder import speaker_similarity

        key = hash(reference.tobytes())
        if key not in self.cache:
            self.cache[key] = self.net.embed(reference)
        return round(speaker_similarity(self.net.embed(pcm), self.cache[key]), 4)
