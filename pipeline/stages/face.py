"""Stage 5: exactly one face track covering the clip, big enough and near frontal; a fixed crop for it.
The detector runs on keyframes (every `detect_every`-th frame); the main face is tracked between them."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline import media
from pipeline.checks.face_detectors import Detection, make_detector
from pipeline.checks.face_tracking import link_tracks, track
from pipeline.config import PipelineConfig
from pipeline.stages.base import Record, Resources, Stage, reject


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Rough yaw from 5 points: how far the nose sits from the eyes' midpoint, in half eye-distances."""
    le, re, nose = landmarks[0], landmarks[1], landmarks[2]
    half = max(1e-3, float(np.linalg.norm(re - le)) / 2)
    return float(np.degrees(np.arctan2(nose[0] - (le[0] + re[0]) / 2, half)))


def frame_share(face_box: list[float]) -> float:
    """The larger of the face box's width and height as a share of the frame's (the box normalised to it)."""
    return max(face_box[2] - face_box[0], face_box[3] - face_box[1])


class FaceStage(Stage):
    name = "face"
    section = "face"
    resources = Resources(cpus=1.0, memory_gb=1.0)

    def __init__(self, cfg: PipelineConfig):
        super().__init__(cfg)
        self.detector = None

    def setup(self) -> None:
        self.detector = make_detector(self.cfg.face_backend, self.run.models_dir, self.threads)

    def keyframe_detections(self, clip: Record) -> tuple[list[tuple[int, list[Detection]]], list[np.ndarray]]:
        """Detections on every `detect_every`-th frame of the clip (and its last), and every frame in grey for
        the tracker; one window of frames in memory at a time."""
        dec, n, step = clip.scratch.source.scratch.decoded, clip["num_frames"], self.cfg.detect_every
        reader = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames)
        keys = set(range(0, n, step)) | {n - 1}
        detections, grey = [], []
        for start, frames in reader.windows(clip["start_frame"], clip["start_frame"] + n, 32):
            first = start - clip["start_frame"]
            idx = [i for i in range(first, first + len(frames)) if i in keys]
            detections += list(zip(idx, self.detector.detect(frames[[i - first for i in idx]], self.cfg.face_score)))
            grey += [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        return detections, grey

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, src = self.cfg, c.scratch.source
        c["face_detector"] = self.detector.version or self.detector.name
        per_frame, grey = self.keyframe_detections(c)
        c["face_count"] = max((len(d) for _, d in per_frame), default=0)
        if c["face_count"] == 0:
            reject(c, self.name, "no_face", "no face detected in any sampled frame")
            return
        tracks = sorted(link_tracks(per_frame, cfg.track_iou), key=len, reverse=True)
        coverage = [len(t) / len(per_frame) for t in tracks]
        c["face_track_coverage"] = round(coverage[0], 4)
        c["other_face_coverage"] = round(coverage[1], 4) if len(tracks) > 1 else 0.0
        boxes, marks = track(grey, {k: (d.box, d.landmarks) for k, d in tracks[0].items()})
        scale = src["display_width"] / src["analysis_width"]  # analysis pixels -> source pixels
        w, h = (boxes[:, 2] - boxes[:, 0]) * scale, (boxes[:, 3] - boxes[:, 1]) * scale
        c["face_width_px"], c["face_height_px"] = round(float(np.median(w)), 1), round(float(np.median(h)), 1)
        c["face_score"] = round(float(np.median([d.score for d in tracks[0].values()])), 4)
        c["pose_yaw_deg"] = round(float(np.median([yaw_degrees(d.landmarks) for d in tracks[0].values()])), 2)
        aw, ah = src["analysis_width"], src["analysis_height"]
        med = np.median(boxes, 0)
        c["face_box"] = [round(float(v), 5) for v in med / [aw, ah, aw, ah]]
        c["crop_box"] = self.crop_box(boxes, aw, ah)
        c.scratch.track_boxes, c.scratch.track_landmarks = boxes, marks
        if c["other_face_coverage"] > cfg.max_other_face_coverage:
            reject(c, self.name, "face_count",
                   f"{len(tracks)} face tracks; the second covers {c['other_face_coverage']:.0%} of frames")
        elif c["face_track_coverage"] < cfg.min_track_coverage:
            reject(c, self.name, "face_track_coverage",
                   f"the face is found in {c['face_track_coverage']:.0%} of frames < {cfg.min_track_coverage:.0%}")
        elif frame_share(c["face_box"]) > cfg.max_face_frame_share:
            reject(c, self.name, "face_cut_off", f"the face box spans {frame_share(c['face_box']):.0%} of the frame "
                   f"> {cfg.max_face_frame_share:.0%}: part of the face lies outside the picture")
        elif c["face_width_px"] < cfg.min_face_width or c["face_height_px"] < cfg.min_face_height:
            reject(c, self.name, "face_too_small", f"face {c['face_width_px']:.0f}x{c['face_height_px']:.0f} px "
                   f"< {cfg.min_face_width}x{cfg.min_face_height} px")
        elif abs(c["pose_yaw_deg"]) > cfg.max_yaw_deg:
            reject(c, self.name, "pose", f"yaw {c['pose_yaw_deg']:.0f} deg beyond {cfg.max_yaw_deg:.0f}")

    def crop_box(self, boxes: np.ndarray, width: int, height: int) -> list[float]:
        """One square region for the whole clip, centred on the face, normalised to the frame."""
        cx = float(np.median((boxes[:, 0] + boxes[:, 2]) / 2))
        cy = float(np.median((boxes[:, 1] + boxes[:, 3]) / 2))
        side = self.cfg.crop_scale * float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
        side = min(side, width, height)
        x0 = min(max(0.0, cx - side / 2), width - side)
        y0 = min(max(0.0, cy - side / 2), height - side)
        return [round(x0 / width, 5), round(y0 / height, 5), round((x0 + side) / width, 5), round((y0 + side) / height, 5)]
