"""Stage 7: whisperx transcript with language, segments and timed words.

Word times come from whisperx's wav2vec2 aligner when `models_dir/align/<language>/` holds one, else from
Whisper's own cross-attention timestamps; `word_timing_source` records which."""
from __future__ import annotations

import json
import os

import numpy as np

from model.loading.offline_models import whisper_dir
from pipeline.config import PipelineConfig
from pipeline.stages.base import Record, Resources, Stage, reject
from pipeline.stages.whisper_windows import Piece, clip_segments, hand_back, lay_out, pack_pieces, pack_windows
from pipeline.stages.worker_state import clip_pcm

class TranscribeStage(Stage):
    name = "transcribe"
    section = "transcribe"
    resources = Resources(cpus=1.0, gpus=0.0, memory_gb=2.0)
    across_sources = True  # short sources share Whisper windows

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
        """Clips of one source or (a worker's group of short sources) of several; with a language named,
        the sources share Whisper windows (whisper_windows.py), else each source's clips are heard alone."""
        by_source: dict[int, list[Record]] = {}
        for c in records:
            if c.scratch.provided_transcript:
                self.record_provided(c)
            else:
                by_source.setdefault(id(c.scratch.source), []).append(c)
        sources = [sorted(clips, key=lambda c: c["start_s"]) for clips in by_source.values()]
        for group in ([sources] if self.cfg.language else [[s] for s in sources]):
            self.transcribe_pieces([Piece(w, w[0].scratch.source.scratch.pcm, self.run.sample_rate)
                                    for clips in group for w in pack_windows(clips)])

    def transcribe_pieces(self, pieces: list[Piece]) -> None:
        """One batched Whisper call for every piece; a piece whose words it cannot trust after sharing a
        window is heard again alone. Each window's words go to the clip that holds their middle."""
        info, segments, places = self.hear(pack_pieces(pieces, share=len(pieces) > 1))
        again = hand_back(segments, places)
        again += [p for p in pieces if p.shared_with > 1 and p not in again and not self.plausible(p)]
        if again:
            _, segments, places = self.hear(pack_pieces(again, share=False))
            hand_back(segments, places)
        for p in pieces:
            for c in p.clips:
                self.record(c, clip_segments(p.segments, c), info.language, float(info.language_probability))
                c["whisper_window_pieces"] = p.shared_with
        cfg = self.cfg
        for c in (c for p in pieces for c in p.clips):
            doubted = max(c["language_prob"], c.get("transcript_conf") or 0.0) < cfg.min_language_prob
            if c["status"] != "rejected" and not cfg.language and doubted:
                guesses = ", ".join(f"{lang} {p:.2f}" for lang, p in (info.all_language_probs or [])[:3])
                reject(c, self.name, "language_uncertain", f"Whisper is unsure of the language ({guesses}) and "
                       f"of the words (mean probability {c.get('transcript_conf') or 0.0:.2f}) < "
                       f"{cfg.min_language_prob}; --language forces one")

    def hear(self, windows: list[list[Piece]]):
        """(Whisper's info, its segments, where each piece lies in what it heard)."""
        audio, spans, places = lay_out(windows, self.run.sample_rate)
        segments, info = self.batched.transcribe(
            audio, language=self.cfg.language or None, clip_timestamps=spans, batch_size=self.batch_size,
            word_timestamps=True, beam_size=5)
        return info, list(segments), places

    def plausible(self, p: Piece) -> bool:
        """Whether each clip of a piece heard in a shared window got a speech rate the filters accept: one
        that did not is heard again alone before it is rejected for it. Whisper now and then drops a phrase
        it has just heard from another piece (the same voice in two sources of a group), or runs words of
        one piece into the next."""
        cfg = self.cfg
        return all(cfg.min_words_per_s <= sum(len(s.words or []) for s in clip_segments(p.segments, c)) /
                   max(self.speech_seconds(c), 1e-3) <= cfg.max_words_per_s for c in p.clips)

    def speech_seconds(self, c: Record) -> float:
        """Seconds of VAD speech inside the clip."""
        duration, t0 = len(clip_pcm(c, self.run.sample_rate)) / self.run.sample_rate, c["start_s"]
        return sum(min(duration, b - t0) - max(0.0, a - t0) for a, b in c.scratch.source.scratch.speech
                   if b > t0 and a < c["end_s"])

    def record(self, c: Record, segments: list, language: str, language_prob: float) -> None:
        cfg = self.cfg
        pcm = clip_pcm(c, self.run.sample_rate)
        duration, t0 = len(pcm) / self.run.sample_rate, c["start_s"]
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
        speech_s = max(self.speech_seconds(c), 1e-3)
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
