"""Stage 7: whisperx transcript with language, segments and timed words.

Word times come from whisperx's wav2vec2 aligner when `models_dir/align/<language>/` holds one, else from
Whisper's own cross-attention timestamps; `word_timing_source` records which."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from model.loading.offline_models import whisper_dir
from pipeline.config import PipelineConfig
from pipeline.stages.base import Record, Resources, Stage, reject
from pipeline.stages.worker_state import clip_pcm

WINDOW_S = 30.0  # what Whisper's encoder hears at once
SEGMENT_TIME_STEP_S = 0.02  # Whisper's timestamp resolution


def pack_windows(clips: list[Record]) -> list[list[Record]]:
    """Clips (sorted by start) in runs whose span, first start to last end, fits one Whisper window."""
    windows: list[list[Record]] = []
    for c in clips:
        if windows and c["end_s"] - windows[-1][0]["start_s"] <= WINDOW_S:
            windows[-1].append(c)
        else:
            windows.append([c])
    return windows


@dataclass
class ClipSegment:
    """A Whisper segment cut to one clip: the words whose middle lies in the clip, and their text."""
    start: float
    end: float
    text: str
    words: list
    avg_logprob: float


def clip_segments(segments: list, c: Record) -> list[ClipSegment]:
    """The parts of a window's segments that belong to clip `c`: a word belongs to the clip that holds its
    middle, a segment without words to each clip it overlaps by more than Whisper's 20 ms time step; a
    segment whose words all belong to `c` is kept as Whisper gave it."""
    lo, hi = c["start_s"], c["end_s"]
    out = []
    for s in segments:
        words = [w for w in (s.words or []) if lo <= (w.start + w.end) / 2 < hi]
        if s.words and len(words) == len(s.words):
            out.append(s)
        elif s.words:
            if not words:
                continue
            text = "".join(w.word for w in words).strip()
            out.append(ClipSegment(max(s.start, words[0].start), min(s.end, words[-1].end), text, words, s.avg_logprob))
        elif min(s.end, hi) - max(s.start, lo) > SEGMENT_TIME_STEP_S:
            out.append(ClipSegment(max(s.start, lo), min(s.end, hi), s.text.strip(), [], s.avg_logprob))
    return out


class TranscribeStage(Stage):
    name = "transcribe"
    section = "transcribe"
    resources = Resources(cpus=1.0, gpus=0.0, memory_gb=2.0)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.whisper = None
        self.aligners: dict[str, tuple] = {}

    def setup(self) -> None:
        import torch
        from faster_whisper import BatchedInferencePipeline
        from whisperx.asr import WhisperModel

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        nltk_dir = os.path.join(self.run.models_dir, "nltk_data")
        if os.path.isdir(nltk_dir):  # whisperx's aligner needs punkt_tab; never let NLTK go online for it
            import nltk

            nltk.data.path.insert(0, nltk_dir)
        path = whisper_dir(self.run.models_dir)
        # whisperx's Whisper (CTranslate2); VAD already ran in the segment stage, so its pipeline's own
        # VAD model is not loaded a second time
        self.whisper = WhisperModel(path, device=self.device, compute_type="int8" if self.device == "cpu" else "float16",
                                    cpu_threads=self.threads)
        self.batched = BatchedInferencePipeline(self.whisper)
        self.batch_size = self.cfg.whisper_batch_size or (8 if self.device == "cuda" else 2)
        self.model_version = f"whisper:{os.path.basename(path)}"

    def aligner(self, language: str):
        """whisperx's aligner for a language, if its wav2vec2 model is in the models folder."""
        if language not in self.aligners:
            path = os.path.join(self.run.models_dir, "align", language)
            if os.path.isdir(path):
                import whisperx

                self.aligners[language] = whisperx.load_align_model(language, self.device, model_name=path)
            else:
                self.aligners[language] = None
        return self.aligners[language]

    def process(self, records: list[Record]) -> None:
        by_source: dict[int, list[Record]] = {}
        for c in records:
            by_source.setdefault(id(c.scratch.source), []).append(c)
        for clips in by_source.values():
            self.transcribe_source(clips)

    def transcribe_source(self, clips: list[Record]) -> None:
        """One batched Whisper call for all clips of a source. Whisper hears 30 s at a time whatever it is
        given (a 3 s clip costs its encoder what 30 s do), so neighbouring clips share a window: each
        window's words go to the clip that holds their middle."""
        given = [c for c in clips if c.scratch.provided_transcript]
        clips = sorted((c for c in clips if not c.scratch.provided_transcript), key=lambda c: c["start_s"])
        for c in given:
            self.record_provided(c)
        if not clips:
            return
        cfg, pcm = self.cfg, clips[0].scratch.source.scratch.pcm
        windows = pack_windows(clips)
        spans = [{"start": w[0]["start_s"], "end": w[-1]["end_s"]} for w in windows]
        segments, info = self.batched.transcribe(
            pcm, language=cfg.language or None, clip_timestamps=spans, batch_size=self.batch_size,
            word_timestamps=True, beam_size=5)
        segments = list(segments)
        # window times come back rounded to Whisper's 20 ms steps: a segment belongs to the window it overlaps most
        overlap = lambda s, w: min(s.end, w["end"]) - max(s.start, w["start"])
        owner = [max(range(len(spans)), key=lambda k: overlap(s, spans[k])) for s in segments]
        for k, window in enumerate(windows):
            heard = [s for s, o in zip(segments, owner) if o == k]
            for c in window:
                self.record(c, clip_segments(heard, c), info.language, float(info.language_probability))
        for c in clips:
            doubted = max(c["language_prob"], c.get("transcript_conf") or 0.0) < cfg.min_language_prob
            if c["status"] != "rejected" and not cfg.language and doubted:
                guesses = ", ".join(f"{lang} {p:.2f}" for lang, p in (info.all_language_probs or [])[:3])
                reject(c, self.name, "language_uncertain", f"Whisper is unsure of the language ({guesses}) and "
                       f"of the words (mean probability {c.get('transcript_conf') or 0.0:.2f}) < "
                       f"{cfg.min_language_prob}; --language forces one")

    def record(self, c: Record, segments: list, language: str, language_prob: float) -> None:
        cfg = self.cfg
        pcm = clip_pcm(c, self.run.sample_rate)
        duration, t0 = len(pcm) / self.run.sample_rate, c["start_s"]
        speech = [(max(0.0, a - t0), min(duration, b - t0)) for a, b in c.scratch.source.scratch.speech
                  if b > t0 and a < c["end_s"]]
        c["language"], c["language_prob"] = language, round(language_prob, 4)
        text = " ".join(s.text.strip() for s in segments).strip()
        words = [{"word": w.word.strip(), "start": w.start - t0, "end": w.end - t0, "prob": w.probability}
                 for s in segments for w in (s.words or [])]
        seg_rows = [{"start": s.start - t0, "end": s.end - t0, "text": s.text.strip()} for s in segments]
        source = "whisper"
        aligner = self.aligner(language) if text else None
        if aligner is not None:
            import whisperx

            model, meta = aligner
            aligned = whisperx.align([dict(r) for r in seg_rows], model, meta, pcm, self.device)
            words = [{"word": w["word"], "start": w.get("start"), "end": w.get("end"), "prob": w.get("score")}
                     for w in aligned["word_segments"]]
            source = f"whisperx_align:{language}"
        for row in words + seg_rows:  # times are relative to the clip and kept inside it
            for k in ("start", "end"):
                row[k] = None if row[k] is None else round(float(min(max(row[k], 0.0), duration)), 3)
        for w in words:
            w["prob"] = None if w["prob"] is None else round(float(w["prob"]), 4)
        speech_s = max(sum(b - a for a, b in speech), 1e-3)
        probs = [w["prob"] for w in words if w["prob"] is not None]
        c.update(transcript=text, words_json=json.dumps(words, ensure_ascii=False), num_words=len(words),
                 segments_json=json.dumps(seg_rows, ensure_ascii=False),
                 words_per_s=round(len(words) / speech_s, 3), word_timing_source=source,
                 transcript_conf=round(float(np.mean(probs or [0.0])), 4),
                 transcript_avg_logprob=round(float(np.mean([s.avg_logprob for s in segments] or [-10.0])), 4),
                 transcriber=self.model_version)
        if not words:
            reject(c, self.name, "empty_transcript", "Whisper heard no words")
        elif not cfg.min_words_per_s <= c["words_per_s"] <= cfg.max_words_per_s:
            reject(c, self.name, "speech_rate", f"{c['words_per_s']:.2f} words/s of speech outside "
                   f"[{cfg.min_words_per_s}, {cfg.max_words_per_s}]")

    def record_provided(self, c: Record) -> None:
        """A transcript that came with the recording: kept as given, without word times."""
        text = c.scratch.provided_transcript.strip()
        n = len(text.split())
        c.update(transcript=text, words_json="[]", segments_json="[]", num_words=n, language=self.cfg.language or None,
                 words_per_s=round(n / max(c["speech_ratio"] * (c["end_s"] - c["start_s"]), 1e-3), 3),
                 word_timing_source="provided", transcriber="provided")
        if not self.cfg.min_words_per_s <= c["words_per_s"] <= self.cfg.max_words_per_s:
            reject(c, self.name, "speech_rate", f"{c['words_per_s']:.2f} words/s of speech outside "
                   f"[{self.cfg.min_words_per_s}, {self.cfg.max_words_per_s}]")
