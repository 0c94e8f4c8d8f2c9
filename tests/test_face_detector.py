"""The RetinaFace backend runs the wheel's network and its own decoding steps, but lays out the input and
decodes the candidate anchors itself (for speed): it must find exactly the faces the wheel's
`detect_faces` finds, on a real photograph at several sizes and placements and at a low threshold, where
many overlapping candidates reach non-maximum suppression."""
from __future__ import annotations

import cv2
import numpy as np
import pytest


@pytest.mark.parametrize("min_score", [0.5, 0.05])
def test_detections_equal_the_wheels_own(min_score):
    import retinaface
    from retinaface.weights import WEIGHTS
    from skimage import data  # a real photograph of a face, shipped inside the scikit-image wheel

    from pipeline.checks.face_detectors import RetinaFaceDetector, onnx_session

    detector = RetinaFaceDetector()
    retinaface.ONNX_SESSION = onnx_session(WEIGHTS, 1)
    photo = data.astronaut()
    found = 0
    for size, shift in [((448, 448), 0), ((448, 252), 40), ((320, 240), -30), ((200, 360), 10)]:
        frame = np.ascontiguousarray(np.roll(cv2.resize(photo, size, interpolation=cv2.INTER_AREA), shift, axis=1))
        ours = detector.detect_one(frame, min_score)
        assert ours == retinaface.detect_faces(frame[None], score_threshold=min_score)[0], (size, shift)
        found += len(ours)
    assert found >= 4  # the face is found at every size
