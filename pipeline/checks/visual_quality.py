"""Picture measurements of a clip, from its analysis frames: does anything move, and is the face sharp.

- still_frame_share: share of consecutive frame pairs whose mean absolute grey difference (whole frame at a
  quarter of the analysis size) is below STILL_LEVEL grey levels. A photo with a voice-over, a frozen stream
  or a slideshow is still in most pairs; a talking head moves (head, lips, blinks) between every pair.
- face_motion: median over pairs of the mean absolute grey difference inside the face box: a talking face
  moves even where the rest of the frame holds still.
- mouth_motion: the same over the mouth region placed by the mouth-corner landmarks (32x24 grey): a face
  whose head holds still still speaks (and a stream with every other frame repeated keeps a face median of
  almost 0, but not a mouth one).
- face_sharpness: median over a few frames of the variance of the Laplacian of the face crop resized to
  128x128 grey, so that it does not depend on the face's size. Blur, upscaling from a low resolution and
  heavy compression all remove the fine detail it measures.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.checks.lip_sync import mouth_crops

STILL_LEVEL = 0.5  # grey levels (0-255): below this a pair of frames differs by coding noise only
FACE_SIDE = 128  # px the face crop is resized to for sharpness
SHARPNESS_FRAMES = 5


@dataclass
class Motion:
    still_frame_share: float
    face_motion: float
    mouth_motion: float


class MotionMeter:
    """Fed the clip's frames window by window (never all at once), with the face box of each frame."""

    def __init__(self):
        self.prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.frame_diffs: list[float] = []
        self.face_diffs: list[float] = []
        self.mouth_diffs: list[float] = []

    def add(self, frame: np.ndarray, box: np.ndarray, landmarks: np.ndarray) -> None:
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.int16)
        small = cv2.resize(grey, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
        mouth = mouth_crops(frame[None], landmarks[None])[0]
        if self.prev is not None:
            prev_grey, prev_small, prev_mouth = self.prev
            self.frame_diffs.append(float(np.abs(small - prev_small).mean()))
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            x0, y0 = max(0, x0), max(0, y0)
            face = np.abs(grey[y0:y1, x0:x1] - prev_grey[y0:y1, x0:x1])
            self.face_diffs.append(float(face.mean()) if face.size else 0.0)
            self.mouth_diffs.append(float(np.abs(mouth - prev_mouth).mean()))
        self.prev = (grey, small, mouth)

    def result(self) -> Motion:
        if not self.frame_diffs:
            return Motion(1.0, 0.0, 0.0)
        return Motion(float(np.mean(np.asarray(self.frame_diffs) < STILL_LEVEL)), float(np.median(self.face_diffs)),
                      float(np.median(self.mouth_diffs)))


def sharpness_frames(num_frames: int) -> set[int]:
    """The frames face_sharpness reads: up to SHARPNESS_FRAMES spread evenly over the clip."""
    return set(np.linspace(0, num_frames - 1, min(SHARPNESS_FRAMES, num_frames)).round().astype(int).tolist())


def face_sharpness(frame: np.ndarray, box: np.ndarray) -> float | None:
    """Laplacian variance of one frame's face crop, resized to 128x128 grey; None if the box is off the frame."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = frame[max(0, y0):y1, max(0, x0):x1]
    if crop.size == 0:
        return None
    grey = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY), (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey.astype(np.float32), cv2.CV_32F).var())
