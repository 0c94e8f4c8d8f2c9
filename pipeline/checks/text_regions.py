"""Burnt-in text: PP-OCRv4's text-region detector (a DB network) from the rapidocr-onnxruntime wheel, which
ships its ONNX weights; only detection runs (no recognition: where text is, not what it says).

Input: the frame as BGR, scaled to multiples of 32, normalised with ImageNet's mean and std. Output: a text
probability map at the input's size; regions above 0.3 whose mean probability exceeds 0.5 are text boxes,
grown by DB's unclip ratio (1.6: area x ratio / perimeter on every side), as PaddleOCR post-processes it.
"""
from __future__ import annotations

import cv2
import numpy as np

from model.packaged import packaged_file

DET_FILE = "ch_PP-OCRv4_det_infer.onnx"
RELPATH = f"ocr/{DET_FILE}"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
PIXEL_THRESHOLD, BOX_THRESHOLD, UNCLIP_RATIO = 0.3, 0.5, 1.6


def weights_file(models_dir: str | None) -> str:
    """models_dir/ocr/ copy first, else the one inside the installed rapidocr-onnxruntime wheel."""
    path = packaged_file(models_dir, RELPATH, "rapidocr_onnxruntime", f"models/{DET_FILE}")
    if path is None:
        raise FileNotFoundError(f"text detector {DET_FILE} not found in {models_dir}/ocr/ nor in a rapidocr-onnxruntime "
                                f"package (pip install --no-deps rapidocr-onnxruntime, or python -m model.loading.fetch --only ocr_det)")
    return path


class TextDetector:
    def __init__(self, models_dir: str | None = None, threads: int = 1, long_side: int = 448):
        from pipeline.checks.face_detectors import onnx_session

        self.session = onnx_session(weights_file(models_dir), threads)
        self.input = self.session.get_inputs()[0].name
        self.long_side = long_side

    def boxes(self, rgb: np.ndarray) -> np.ndarray:
        """(N, 4) x0 y0 x1 y1 text boxes in the frame's pixels."""
        h, w = rgb.shape[:2]
        scale = min(1.0, self.long_side / max(h, w))
        th, tw = max(32, int(round(h * scale / 32)) * 32), max(32, int(round(w * scale / 32)) * 32)
        img = cv2.resize(rgb[:, :, ::-1], (tw, th)).astype(np.float32) / 255.0
        x = ((img - MEAN) / STD).transpose(2, 0, 1)[None]
        prob = self.session.run(None, {self.input: np.ascontiguousarray(x)})[0][0, 0]
        return text_boxes(prob, w / tw, h / th)


def text_boxes(prob: np.ndarray, sx: float, sy: float) -> np.ndarray:
    mask = (prob > PIXEL_THRESHOLD).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for cnt in contours:
        x, y, bw, bh = cv2.boundingRect(cnt)
        if min(bw, bh) < 3:
            continue
        region = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(region, [cnt - [x, y]], 1)
        if prob[y:y + bh, x:x + bw][region > 0].mean() < BOX_THRESHOLD:
            continue
        grow = bw * bh * UNCLIP_RATIO / (2 * (bw + bh))
        out.append([(x - grow) * sx, (y - grow) * sy, (x + bw + grow) * sx, (y + bh + grow) * sy])
    return np.array(out, np.float32).reshape(-1, 4)
