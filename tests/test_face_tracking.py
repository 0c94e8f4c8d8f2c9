"""The face tracker between keyframe detections follows a real face along a known curved path (a photograph
moved and scaled frame by frame), where joining the keyframes by straight lines cannot; on recorded
speakers it is checked against the detector run on every frame in tests/test_real_footage.py."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.checks.face_detectors import RetinaFaceDetector
from pipeline.checks.face_tracking import apply, track

SIZE, FRAMES, EVERY = 448, 41, 10


def path_transform(t: int) -> np.ndarray:
    """Frame t's similarity transform of the photograph: a loop of 50 px and a 12% breathing scale."""
    phase = 2 * np.pi * t / (FRAMES - 1)
    scale, dx, dy = 1.0 + 0.12 * np.sin(phase), 50 * np.sin(phase), 25 * np.sin(2 * phase)
    centre = SIZE / 2
    return np.array([[scale, 0, centre * (1 - scale) + dx], [0, scale, centre * (1 - scale) + dy]], np.float32)


def moving_photo() -> list[np.ndarray]:
    from skimage import data  # a real photograph of a face, shipped inside the scikit-image wheel

    photo = cv2.resize(data.astronaut(), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return [cv2.warpAffine(photo, path_transform(t), (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT) for t in range(FRAMES)]


def test_tracking_follows_a_curved_path_between_keyframes():
    frames = moving_photo()
    found = RetinaFaceDetector().detect(np.stack(frames[:1]), 0.5)[0]
    assert len(found) == 1, "the photograph's face must be found to place the truth"
    # the truth: frame 0's detection carried by the known motion (frame 0's transform is the identity)
    box0, marks0 = found[0].box, found[0].landmarks
    corners0 = box0.reshape(2, 2)
    truth_boxes = np.stack([apply(path_transform(t), corners0).reshape(4) for t in range(FRAMES)])
    truth_marks = np.stack([apply(path_transform(t), marks0) for t in range(FRAMES)])
    keys = sorted(set(range(0, FRAMES, EVERY)) | {FRAMES - 1})
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    boxes, marks = track(grey, {k: (truth_boxes[k], truth_marks[k]) for k in keys})

    between = np.setdiff1d(np.arange(FRAMES), keys)
    width = float(box0[2] - box0[0])
    tracked = np.abs(boxes - truth_boxes)[between].max() / width
    t = np.arange(FRAMES)
    straight = np.stack([np.interp(t, keys, truth_boxes[keys, j]) for j in range(4)], 1)
    joined = np.abs(straight - truth_boxes)[between].max() / width
    assert tracked < 0.03, f"tracked boxes miss the truth by up to {tracked:.1%} of the face width"
    assert joined > 3 * tracked, f"straight lines between keyframes miss by {joined:.1%}, tracking by {tracked:.1%}"
    assert np.abs(marks - truth_marks)[between].max() < 0.03 * width
