"""Stage 6: lip sync (and, with Light-ASD, active speaker). SyncNet decides real runs; Light-ASD is the
offline learned scorer chosen with --sync-scorer light_asd; the model-free mouth-motion scorer serves debug
runs on the synthetic corpus. Low confidence is checked first: without it the offset means nothing."""
from __future__ import annotations

import os

import numpy as np

from pipeline import media
from pipeline.config import PipelineConfig
from pipeline.lip_sync import MouthMotionScorer, SyncNetScorer, mouth_crops, syncnet_crops
from pipeline.stages.audio import clip_pcm
from pipeline.stages.base import Record, Resources, Stage, reject


def resolve_scorer(cfg: PipelineConfig) -> str:
    """The scorer a run uses: the one asked for, else SyncNet (debug runs without its weights: mouth motion)."""
    from model.syncnet import weights_path

    if cfg.sync_scorer != "auto":
        return cfg.sync_scorer
    if cfg.debug_models and not os.path.isfile(weights_path(cfg.models_dir)):
        return "mouth_motion"
    return "syncnet"


def speech_mask(c: Record, frames: int, fps: float) -> np.ndarray:
    """(frames,) bool: which frames (at `fps`, from the clip's start) lie inside the source's speech regions."""
    t = c["start_s"] + (np.arange(frames) + 0.5) / fps
    return np.any([(t >= a) & (t < b) for a, b in c["_source"]["_speech"]] or [np.zeros(frames, bool)], axis=0)


class SyncStage(Stage):
    name = "sync"
    resources = Resources(cpus=1.0, memory_gb=1.5)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.syncnet = self.asd = None
        self.motion = MouthMotionScorer()

    def setup(self) -> None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
        scorer = resolve_scorer(self.cfg)
        if scorer == "syncnet":
            from model.syncnet import load_syncnet

            self.syncnet = SyncNetScorer(load_syncnet(self.cfg.models_dir, device), device)
        elif scorer == "light_asd":
            from model.light_asd import load_light_asd
            from pipeline.asd_sync import LightASDScorer

            self.asd = LightASDScorer(load_light_asd(device=device), device)

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, dec = self.cfg, c["_source"]["_decoded"]
        frames = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames).read(
            c["start_frame"], c["num_frames"])
        pcm = clip_pcm(c, cfg.sample_rate)
        if self.syncnet is not None or self.asd is not None:
            t25 = np.arange(int(len(frames) * SyncNetScorer.FPS / cfg.fps))
            pick = np.minimum(np.round(t25 * cfg.fps / SyncNetScorer.FPS).astype(int), len(frames) - 1)
            crops = syncnet_crops(frames[pick], smooth_boxes(c["_track_boxes"])[pick])
        if self.asd is not None:
            self.measure_asd(c, crops, pcm)
            return
        if self.syncnet is not None:
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

    def measure_asd(self, c: Record, crops: np.ndarray, pcm: np.ndarray) -> None:
        """Light-ASD: offset from the face-dependent part of the speaking score; then the active-speaker share."""
        from pipeline.asd_sync import FPS, asd_faces

        cfg = self.cfg
        s = self.asd.score(asd_faces(crops), pcm, cfg.sync_vshift, speech_mask(c, len(crops), FPS))
        c.update(sync_scorer="light_asd", sync_offset_frames=s.offset, sync_fps=FPS,
                 sync_offset_s=round(s.offset / FPS, 4), sync_conf=None, sync_min_dist=None,
                 asd_speaking=round(s.speaking, 4), asd_sync_gain=round(s.gain, 4))
        if abs(s.offset) > cfg.max_sync_offset:
            reject(c, self.name, "sync_offset",
                   f"light_asd offset {s.offset:+d} frames at {FPS:g} fps beyond +-{cfg.max_sync_offset}")
        elif s.speaking < cfg.min_asd_speaking:
            reject(c, self.name, "not_speaking", f"the tracked face speaks in {s.speaking:.0%} of the speech "
                   f"< {cfg.min_asd_speaking:.0%} (an off-screen or dubbed voice)")


def smooth_boxes(boxes: np.ndarray, kernel: int = 13) -> np.ndarray:
    """Median-filtered face boxes (as syncnet_python and Light-ASD smooth their tracks before cropping)."""
    from scipy.signal import medfilt

    if len(boxes) < kernel:
        return boxes
    return np.stack([medfilt(boxes[:, j].astype(np.float64), kernel) for j in range(boxes.shape[1])], 1)
