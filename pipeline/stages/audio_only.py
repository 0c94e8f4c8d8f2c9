"""Stages for `build_shards.py --audio-only`: speech recordings (wav, flac, mp3, ...) become audio-only
samples for stage-1 audio pre-training. A recording is decoded once to 16 kHz mono and cut at pauses
into chunks of speech; a transcript beside it (same name, .txt) is used when it covers the whole
recording (a single chunk), otherwise Whisper transcribes each chunk."""
from __future__ import annotations

import os
import subprocess

from pipeline import media, scratch
from pipeline.checks.vad import SpeechDetector
from pipeline.stages.base import Record, Resources, Stage, clip_id, reject
from pipeline.stages.worker_state import new_clip

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".aac"}


class AudioDecodeStage(Stage):
    name = "decode"
    resources = Resources(cpus=1.0, memory_gb=0.5)

    def process(self, records: list[Record]) -> None:
        for r in records:
            workdir = scratch.make_dir("decode", self.run.scratch_dir)
            r.scratch.workdir = workdir
            pcm_path = os.path.join(workdir, "audio.s16")
            cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", r.scratch.path, "-map", "0:a:0", "-ac", "1",
                   "-ar", str(self.run.sample_rate), "-f", "s16le", pcm_path]
            proc = subprocess.run(cmd, capture_output=True)
            r["decode_passes"] = r.get("decode_passes", 0) + 1
            r.scratch.pcm = media.read_pcm(pcm_path)
            r["decoded_seconds"] = len(r.scratch.pcm) / self.run.sample_rate
            if r["duration_s"] - r["decoded_seconds"] > 1.0:
                err = [ln for ln in media.ffmpeg_log(proc.stderr, r.scratch.path) if ln][:1] or ["no decoder error"]
                reject(r, self.name, "truncated",
                       f"decoded {r['decoded_seconds']:.2f} s of {r['duration_s']:.2f} s ({err[0][:200]})")


def chunk_speech(regions: list[tuple[float, float]], max_s: float, min_s: float, pad_s: float,
                 total_s: float) -> list[tuple[float, float]]:
    """Greedy chunks of consecutive speech regions, each at most `max_s` long (a longer region is split)."""
    chunks: list[tuple[float, float]] = []
    for a, b in regions:
        a, b = max(0.0, a - pad_s), min(total_s, b + pad_s)
        while b - a > max_s:
            chunks.append((a, a + max_s))
            a += max_s
        if chunks and b - chunks[-1][0] <= max_s and a - chunks[-1][1] < 1.0:
            chunks[-1] = (chunks[-1][0], b)
        else:
            chunks.append((a, b))
    return [(a, b) for a, b in chunks if b - a >= min_s]


class AudioChunkStage(Stage):
    """VAD over the whole recording, then chunks of speech as the candidate samples."""

    name = "segment"
    section = "segment"
    resources = Resources(cpus=1.0, memory_gb=1.0)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.vad = None

    def setup(self) -> None:
        self.vad = SpeechDetector(self.cfg.vad_onset, self.cfg.vad_offset)

    def process(self, records: list[Record]) -> None:
        cfg = self.cfg
        for r in records:
            r.scratch.speech = speech = self.vad.regions(r.scratch.pcm, self.run.sample_rate)
            r["speech_seconds"] = round(sum(b - a for a, b in speech), 3)
            total = len(r.scratch.pcm) / self.run.sample_rate
            chunks = chunk_speech(speech, cfg.max_audio_s, 1.0, 0.1, total)
            sidecar = os.path.splitext(r.scratch.path)[0] + ".txt"
            provided = open(sidecar, encoding="utf-8").read().strip() if os.path.isfile(sidecar) else None
            r.scratch.clips = []
            for k, (a, b) in enumerate(chunks):
                start, n = int(round(a * self.run.sample_rate)), int(round((b - a) * self.run.sample_rate))
                r.scratch.clips.append(new_clip(r, {
                    "clip_id": clip_id(r["source_id"], start, n, float(self.run.sample_rate)),
                    "source_id": r["source_id"], "source_path": r["source_path"], "scene_index": 0,
                    "start_frame": start, "num_frames": n, "fps": float(self.run.sample_rate),
                    "start_s": round(a, 6), "end_s": round(b, 6), "status": "candidate"}))
                r.scratch.clips[-1].scratch.provided_transcript = provided if len(chunks) == 1 else None
            if not chunks:
                reject(r, self.name, "no_speech", "VAD found no speech chunk of at least 1 s")
