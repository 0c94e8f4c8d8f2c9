"""Lip sync of a talking video as the field measures it, at 25 fps over the whole clip.

The face is detected on every other frame (RetinaFace, the pipeline's detector) and tracked in between; the
longest track is the speaker. With SyncNet's weights in the models folder: syncnet_python's offset, Sync-C
(median minus minimum distance over shifts) and Sync-D (minimum distance). Without them, the pipeline's
offline scorers, each under its own name and scale: the mouth-motion offset and confidence (0-2) and
Light-ASD's share of frames in which the face speaks. Offsets are in frames at 25 fps; audio heard late gives
a negative offset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.checks.lip_sync import MouthMotionScorer, SyncNetScorer, mouth_crops, syncnet_crops

FPS = 25.0
VSHIFT = 15  # frames searched either way (syncnet_python's default)
DETECT_EVERY = 2
FACE_SCORE = 0.5
TRACK_IOU = 0.5


@dataclass
class FaceTrack:
    boxes: np.ndarray  # (T, 4) analysis pixels
    landmarks: np.ndarray  # (T, 5, 2)
    coverage: float  # share of detection frames in which the main face was found
    faces: int  # most faces seen on one frame


def main_face(detector, frames: np.ndarray) -> FaceTrack | None:
    from pipeline.checks.face_tracking import link_tracks, track

    keys = sorted(set(range(0, len(frames), DETECT_EVERY)) | {len(frames) - 1})
    per_frame = list(zip(keys, detector.detect(frames[keys], FACE_SCORE)))
    tracks = sorted(link_tracks(per_frame, TRACK_IOU), key=len, reverse=True)
    if not tracks:
        return None
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    boxes, marks = track(grey, {k: (d.box, d.landmarks) for k, d in tracks[0].items()})
    return FaceTrack(boxes, marks, len(tracks[0]) / len(keys), max(len(d) for _, d in per_frame))


class LipSyncScorer:
    def __init__(self, models_dir: str, device: str = "cpu"):
        from model.light_asd import load_light_asd
        from model.syncnet import weights_path
        from pipeline.checks.asd_sync import LightASDScorer
        from pipeline.checks.face_detectors import RetinaFaceDetector

        self.detector = RetinaFaceDetector()
        self.motion = MouthMotionScorer()
        self.asd = LightASDScorer(load_light_asd(device=device), device)
        self.syncnet = None
        if os.path.isfile(weights_path(models_dir)):
            from model.syncnet import load_syncnet

            self.syncnet = SyncNetScorer(load_syncnet(models_dir, device), device)

    @property
    def scorer(self) -> str:
        return "syncnet_v2" if self.syncnet is not None else "mouth_motion"

    def __call__(self, frames: np.ndarray, pcm: np.ndarray, sample_rate: int) -> dict:
        """Scores of one clip: frames (T, H, W, 3) RGB at 25 fps, pcm 16 kHz mono from the same instant."""
        from pipeline.checks.asd_sync import asd_faces
        from pipeline.checks.face_tracking import smooth_boxes

        n = min(len(frames), int(len(pcm) * FPS / sample_rate))  # where both streams still run
        frames, pcm = frames[:n], pcm[:int(round(n * sample_rate / FPS))]
        face = main_face(self.detector, frames)
        if face is None:
            return {"error": "no face found"}
        out = {"face_coverage": round(face.coverage, 4), "faces_max": face.faces, "sync_scorer": self.scorer}
        m = self.motion.score(mouth_crops(frames, face.landmarks), pcm, sample_rate, FPS, VSHIFT)
        out.update(motion_offset=m.offset, motion_conf=round(m.confidence, 4))
        crops = syncnet_crops(frames, smooth_boxes(face.boxes))
        v, a = self.asd.embed(asd_faces(crops), pcm)
        out["asd_speaking"] = round(self.asd.speaking_share(v, a), 4)
        if self.syncnet is not None:
            s = self.syncnet.score(crops, pcm, VSHIFT)
            out.update(syncnet_offset=s.offset, sync_c=round(s.confidence, 4), sync_d=round(s.min_dist, 4))
        out["offset"] = out["syncnet_offset"] if self.syncnet is not None else m.offset
        return out
