"""A face's box and landmarks on every frame from detections on a few (keyframes).

Between two detections of the same face, the head's motion is measured by pyramidal Lucas-Kanade optical
flow over a grid of points inside the face box, frame to frame, and summarised as one similarity transform
(shift, rotation, scale) per step, fitted robustly so that the lips' own movement does not drag the box.
Each frame gets the keyframe boxes and landmarks carried forward from the detection before it and backward
from the detection after it, blended by distance, so tracking drift never outlives one keyframe interval.
Landmarks move with the head (rigidly), so between keyframes the mouth corners keep their place on the
face; the model-free mouth-motion scorer reads them frame by frame and, with 4 or more frames between
detections, changed decisions on recorded footage (hence `detect_every` 2; the learned scorers read
median-smoothed boxes). A single frame between two detections sits halfway between them: on the recorded
speakers of ../shared/real_footage, tracked or halfway it lay as close to the detector's own box on that
frame (0.4-2.3% of the face width either way).

Also here: linking keyframe detections into tracks by overlap (`link_tracks`), and the median smoothing of
a track's boxes that the learned scorers crop with (`smooth_boxes`).
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.checks.face_detectors import Detection

GRID = 7  # points per side of the grid tracked inside the face box
LK = dict(winSize=(15, 15), maxLevel=2, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))
MAX_FB_ERROR = 1.0  # pixels a point may miss its start when tracked forward, then back


def grid_points(box: np.ndarray) -> np.ndarray:
    """(GRID*GRID, 2) float32 points over the inner 80% of a box x0 y0 x1 y1."""
    x0, y0, x1, y1 = box
    xs = np.linspace(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0), GRID)
    ys = np.linspace(y0 + 0.1 * (y1 - y0), y1 - 0.1 * (y1 - y0), GRID)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2).astype(np.float32)


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """A 2x3 transform applied to (N, 2) points."""
    return points @ m[:, :2].T + m[:, 2]


def box_after(m: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The axis-aligned box of the same size ratio after a similarity transform: centre moved, sides scaled."""
    centre = apply(m, np.array([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]], np.float32))[0]
    scale = float(np.hypot(m[0, 0], m[1, 0]))
    half = np.array([box[2] - box[0], box[3] - box[1]], np.float32) * scale / 2
    return np.concatenate([centre - half, centre + half])


def step_transform(a: np.ndarray, b: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The similarity transform taking the face in grey frame `a` (inside `box`) to grey frame `b`;
    identity when too few points track both ways (a cut, a blur, a hand in front). Flow is computed on the
    box and a margin only (its pyramids cost what the whole frame's would times the area's share)."""
    margin = 0.25 * max(box[2] - box[0], box[3] - box[1]) + 2 * LK["winSize"][0]
    x0, y0 = int(max(0, box[0] - margin)), int(max(0, box[1] - margin))
    x1, y1 = int(min(a.shape[1], box[2] + margin)), int(min(a.shape[0], box[3] + margin))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return np.eye(2, 3, dtype=np.float32)
    ra, rb, origin = a[y0:y1, x0:x1], b[y0:y1, x0:x1], np.array([x0, y0], np.float32)
    p0 = grid_points(box) - origin
    p1, ok1, _ = cv2.calcOpticalFlowPyrLK(ra, rb, p0, None, **LK)
    back, ok2, _ = cv2.calcOpticalFlowPyrLK(rb, ra, p1, None, **LK)
    good = (ok1[:, 0] == 1) & (ok2[:, 0] == 1) & (np.linalg.norm(back - p0, axis=1) < MAX_FB_ERROR)
    if good.sum() >= 6:
        m, _ = cv2.estimateAffinePartial2D(p0[good] + origin, p1[good] + origin, method=cv2.LMEDS)
        if m is not None:
            return m.astype(np.float32)
    return np.eye(2, 3, dtype=np.float32)


def carried(grey: list[np.ndarray], frames: range, box: np.ndarray, marks: np.ndarray) -> tuple[list, list]:
    """Box and landmarks of `frames[0]` carried along `frames` (forward or backward), one step at a time."""
    boxes, lms = [box], [marks]
    for i, j in zip(frames, frames[1:]):
        m = step_transform(grey[i], grey[j], boxes[-1])
        boxes.append(box_after(m, boxes[-1]))
        lms.append(apply(m, lms[-1]))
    return boxes, lms


def track(grey: list[np.ndarray], keys: dict[int, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (T, 4) and landmarks (T, 5, 2) on every frame of `grey` (T frames, (H, W) uint8) from the
    detections `keys` {frame: (box (4,), landmarks (5, 2))} of one face; carried past the first and last."""
    n = len(grey)
    boxes, marks = np.zeros((n, 4), np.float32), np.zeros((n, 5, 2), np.float32)
    order = sorted(keys)
    for k in order:
        boxes[k], marks[k] = keys[k]
    for k0, k1 in zip(order, order[1:]):
        if k1 - k0 == 2:  # one frame between: on recorded speakers tracking it measured the same as halfway
            boxes[k0 + 1], marks[k0 + 1] = (boxes[k0] + boxes[k1]) / 2, (marks[k0] + marks[k1]) / 2
        if k1 - k0 <= 2:
            continue
        fb, fm = carried(grey, range(k0, k1), *keys[k0])
        bb, bm = carried(grey, range(k1, k0, -1), *keys[k1])
        for step in range(1, k1 - k0):
            w = step / (k1 - k0)  # weight of the later detection
            boxes[k0 + step] = (1 - w) * fb[step] + w * bb[k1 - k0 - step]
            marks[k0 + step] = (1 - w) * fm[step] + w * bm[k1 - k0 - step]
    head, tail = order[0], order[-1]
    if head > 0:
        hb, hm = carried(grey, range(head, -1, -1), *keys[head])
        boxes[:head], marks[:head] = np.stack(hb[1:][::-1]), np.stack(hm[1:][::-1])
    if tail < n - 1:
        tb, tm = carried(grey, range(tail, n), *keys[tail])
        boxes[tail + 1:], marks[tail + 1:] = np.stack(tb[1:]), np.stack(tm[1:])
    return boxes, marks


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def link_tracks(per_frame: list[tuple[int, list[Detection]]], min_iou: float) -> list[dict[int, Detection]]:
    """Greedy IoU linking: a detection joins the track whose latest box overlaps it most."""
    tracks: list[dict[int, Detection]] = []
    for frame, dets in per_frame:
        taken: set[int] = set()
        for d in sorted(dets, key=lambda d: -d.score):
            best, best_iou = None, min_iou
            for k, t in enumerate(tracks):
                last = t[max(t)]
                overlap = iou(last.box, d.box)
                if k not in taken and frame not in t and overlap >= best_iou:
                    best, best_iou = k, overlap
            if best is None:
                tracks.append({frame: d})
                taken.add(len(tracks) - 1)
            else:
                tracks[best][frame] = d
                taken.add(best)
    return tracks


def smooth_boxes(boxes: np.ndarray, kernel: int = 13) -> np.ndarray:
    """Median-filtered face boxes (as syncnet_python and Light-ASD smooth their tracks before cropping)."""
    from scipy.signal import medfilt

    if len(boxes) < kernel:
        return boxes
    return np.stack([medfilt(boxes[:, j].astype(np.float64), kernel) for j in range(boxes.shape[1])], 1)
