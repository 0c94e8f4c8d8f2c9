"""Stage 3: scene cuts, speech regions (VAD), then clip windows that never cross a cut."""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from pipeline import media
from pipeline.checks import fingerprint
from pipeline.checks.vad import SpeechDetector
from pipeline.config import PipelineConfig
from pipeline.stages.base import Record, Resources, Stage, clip_id, reject
from pipeline.stages.worker_state import new_clip

THUMB = (64, 36)  # thumbnails compared for cuts: small enough to be cheap, big enough to see a new shot


def scene_change_scores(reader: media.FrameReader, window: int = 64,
                        visit: Callable[[int, np.ndarray], None] = lambda i, frame: None) -> np.ndarray:
    """Mean absolute HSV difference between each frame and the one before it (score[0] = 0); `visit` sees
    every frame of this one pass over them."""
    scores, prev = np.zeros(reader.num_frames, np.float32), None
    for start, frames in reader.windows(0, reader.num_frames, window):
        for i, f in enumerate(frames):
            visit(start + i, f)
            hsv = cv2.cvtColor(cv2.resize(f, THUMB, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2HSV).astype(np.int16)
            if prev is not None:
                scores[start + i] = np.abs(hsv - prev).mean()
            prev = hsv
    return scores


def scenes_from_scores(scores: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """[start, stop) frame ranges between cuts."""
    cuts = [int(i) for i in np.flatnonzero(scores > threshold)]
    bounds = [0] + cuts + [len(scores)]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def place_windows(scene: tuple[int, int], length: int, margin: int, speech: list[tuple[int, int]]) -> list[int]:
    """Start frames of non-overlapping windows inside a scene: each starts where speech is under way or
    next begins (else where the previous window ended), and none reaches past the scene's margin."""
    lo, hi = scene[0] + margin, scene[1] - margin
    starts, pos = [], lo
    while pos + length <= hi:
        talking = any(a <= pos < b for a, b in speech)
        onsets = [a for a, _ in speech if a >= pos]
        start = pos if talking or not onsets else min(onsets[0], hi - length)
        starts.append(start)
        pos = start + length
    return starts


class SegmentStage(Stage):
    name = "segment"
    section = "segment"
    resources = Resources(cpus=1.0, memory_gb=1.0)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.vad = None

    def setup(self) -> None:
        self.vad = SpeechDetector(self.cfg.vad_onset, self.cfg.vad_offset)

    def process(self, records: list[Record]) -> None:
        run = self.run
        for r in records:
            cfg, dec = self.cfg, r.scratch.decoded
            reader = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames)
            pictures = fingerprint.PictureHasher(dec.num_frames, run.fps)
            scenes = scenes_from_scores(scene_change_scores(reader, visit=pictures.visit), cfg.scene_threshold)
            r.scratch.pcm = pcm = media.read_pcm(dec.audio_path)
            r["video_fingerprint"], r["audio_fingerprint"] = fingerprint.Fingerprint(
                dec.num_frames / run.fps, pictures.hashes(), fingerprint.loudness_curve(pcm, run.sample_rate)).to_text()
            heard = int(len(pcm) * run.fps / run.sample_rate)  # frames the audio covers: clips stay inside it
            margin = int(round(cfg.edge_margin_s * run.fps))  # kept from scene cuts, not from the audio's end
            scenes = [(a, min(b, heard + margin)) for a, b in scenes if a < heard]
            r.scratch.speech = speech = self.vad.regions(pcm, run.sample_rate)
            r["scene_cuts_s"] = [round(a / run.fps, 4) for a, _ in scenes[1:]]
            r["speech_seconds"] = round(sum(b - a for a, b in speech), 3)
            speech_frames = [(max(0, int(np.floor((a - 0.1) * run.fps))), int(np.ceil(b * run.fps))) for a, b in speech]
            clips = []
            for k, scene in enumerate(scenes):
                for start in place_windows(scene, run.clip_frames, margin, speech_frames):
                    clips.append(new_clip(r, {
                        "clip_id": clip_id(r["source_id"], start, run.clip_frames, run.fps),
                        "source_id": r["source_id"], "source_path": r["source_path"], "scene_index": k,
                        "start_frame": start, "num_frames": run.clip_frames, "fps": run.fps,
                        "start_s": round(start / run.fps, 6), "end_s": round((start + run.clip_frames) / run.fps, 6),
                        "status": "candidate",
                    }))
            r.scratch.clips = clips
            if not clips:
                longest = max((b - a for a, b in scenes), default=0) / run.fps
                short_audio = f"; the audio ends at {heard / run.fps:.2f} s" if heard < dec.num_frames - run.fps else ""
                reject(r, self.name, "no_window",
                       f"no scene holds a {run.clip_seconds:.2f} s clip (longest {longest:.2f} s{short_audio})")
