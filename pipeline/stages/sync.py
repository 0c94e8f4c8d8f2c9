"""Stage 6: lip sync. SyncNet decides when its official weights are in the models folder; otherwise the
model-free mouth-motion scorer does. Low confidence is checked first: without it the offset means nothing."""
from __future__ import annotations

import os

import numpy as np

from pipeline import media
from pipeline.config import PipelineConfig
from pipeline.lip_sync import MouthMotionScorer, SyncNetScorer, mouth_crops, syncnet_crops
from pipeline.stages.audio import clip_pcm
from pipeline.stages.base import Record, Resources, Stage, reject


class SyncStage(Stage):
    name = "sync"
    resources = Resources(cpus=1.0, memory_gb=1.5)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.syncnet = None
        self.motion = MouthMotionScorer()

    def setup(self) -> None:
        from model.syncnet import load_syncnet, weights_path

        if os.path.isfile(weights_path(self.cfg.models_dir)):
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            self.syncnet = SyncNetScorer(load_syncnet(self.cfg.models_dir, device), device)

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, dec = self.cfg, c["_source"]["_decoded"]
        frames = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames).read(
            c["start_frame"], c["num_frames"])
        pcm = clip_pcm(c, cfg.sample_rate)
        if self.syncnet is not None:
            t25 = np.arange(int(len(frames) * SyncNetScorer.FPS / cfg.fps))
            pick = np.minimum(np.round(t25 * cfg.fps / SyncNetScorer.FPS).astype(int), len(frames) - 1)
            crops = syncnet_crops(frames[pick], c["_track_boxes"][pick])
            s = self.syncnet.score(crops, pcm, cfg.sync_vshift)
            min_conf = cfg.min_sync_conf
        else:
            s = self.motion.score(mouth_crops(frames, c["_track_landmarks"]), pcm, cfg.sample_rate, cfg.fps,
                                  cfg.sync_vshift)
            min_conf = cfg.min_motion_sync_conf
        c.update(sync_scorer=s.scorer, sync_offset_frames=s.offset, sync_fps=s.fps,
                 sync_offset_s=round(s.offset / s.fps, 4), sync_conf=round(s.confidence, 4),
                 sync_min_dist=round(s.min_dist, 4))
        if s.confidence < min_conf:
            reject(c, self.name, "sync_confidence", f"{s.scorer} confidence {s.confidence:.2f} < {min_conf}")
        elif abs(s.offset) > cfg.max_sync_offset:
            reject(c, self.name, "sync_offset",
                   f"{s.scorer} offset {s.offset:+d} frames at {s.fps:g} fps beyond +-{cfg.max_sync_offset}")
