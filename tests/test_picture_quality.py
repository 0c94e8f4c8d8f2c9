"""BRISQUE (pipeline/checks/picture_quality.py) on recorded frames: it agrees with the brisque package that ships its
regression, and it rises when a real frame is blurred, blocked by JPEG or upscaled."""
from __future__ import annotations

import io
import os
import pickle
import subprocess

import cv2
import numpy as np
import pytest

from pipeline.checks.picture_quality import Brisque, _PlainData
from tests.conftest import REAL_FOOTAGE

real = pytest.mark.skipif(not REAL_FOOTAGE, reason="REAL_FOOTAGE does not name the real-footage folder")


def first_frame(path: str, size: int) -> np.ndarray:
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-vf", f"scale={size}:{size}",
                          "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(size, size, 3)


@pytest.fixture(scope="module")
def brisque():
    return Brisque()


# The brisque package's own score of these frames (brisque 0.2.0 with libsvm and scikit-image, run once
# outside the repository; its float64 features against the float32 ones here)
REFERENCE = [("face_2.mp4", 448, 47.745), ("lrs2_00004.mp4", 160, 21.896)]


@real
@pytest.mark.parametrize("name,size,expected", REFERENCE)
def test_brisque_agrees_with_the_package_that_ships_its_regression(footage, brisque, name, size, expected):
    got = brisque.score(first_frame(os.path.join(footage, "videos", name), size))
    assert abs(got - expected) < 0.05, got


@real
@pytest.mark.parametrize("name", ["face_2.mp4", "face_3.mp4", "lrs2_00001.mp4"])
def test_brisque_rises_when_a_recorded_frame_loses_detail(footage, brisque, name):
    frame = first_frame(os.path.join(footage, "videos", name), 448 if name.startswith("face") else 160)
    h, w = frame.shape[:2]
    blurred = cv2.GaussianBlur(frame, (0, 0), w / 100)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 5])
    blocked = cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED)
    upscaled = cv2.resize(cv2.resize(frame, (w // 4, h // 4), interpolation=cv2.INTER_AREA), (w, h),
                          interpolation=cv2.INTER_CUBIC)
    original = brisque.score(frame)
    for case, picture in (("blurred", blurred), ("blocked", blocked), ("upscaled", upscaled)):
        assert brisque.score(picture) > original + 5, (case, brisque.score(picture), original)


def test_the_scaling_file_reader_builds_no_objects():
    """The wheel's scaling file is a pickle: lists and numbers are read, anything naming a class is refused."""
    assert _PlainData(io.BytesIO(pickle.dumps({"min_": [0.5, -1.0]}))).load() == {"min_": [0.5, -1.0]}
    with pytest.raises(pickle.UnpicklingError, match="only lists, dicts and numbers"):
        _PlainData(io.BytesIO(pickle.dumps(np.zeros(3)))).load()
