"""Clips are cut from the source's own span (one x264 generation after it): frame k of a clip must be
analysis frame start + k of the one full decode, at any source frame rate, with or without a seek."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from pipeline import media


def make_source(path: str, rate: str) -> None:
    """ffmpeg's testsrc2 (a moving picture with a frame counter: no two frames alike) with a tone."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={rate}",
                    "-f", "lavfi", "-i", "sine=f=440", "-t", "5", "-c:v", "libx264", "-g", "50", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", path], check=True)


@pytest.mark.parametrize("rate", ["25", "30000/1001", "24"])
def test_a_clip_is_the_analysis_frames_it_was_judged_on(tmp_path, rate):
    src, fps, n = str(tmp_path / "src.mp4"), 24.0, 41
    make_source(src, rate)
    decoded = media.decode(src, str(tmp_path), fps, 16000, (160, 120))
    frames = media.FrameReader(decoded.frames_path, (160, 120), decoded.num_frames).read(0, decoded.num_frames)
    for start in (0, 7, 50):
        out = str(tmp_path / f"clip{start}.mp4")
        media.cut_clip(src, np.zeros(int(n / fps * 16000), np.float32), 16000, start, n, fps, (160, 120), 18, out)
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", out, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
        clip = np.frombuffer(raw, np.uint8).reshape(-1, 120, 160, 3).astype(np.float32)
        assert len(clip) == n
        for k in range(n):
            err = {o: np.abs(clip[k] - frames[start + k + o]).mean() for o in (0, -1, 1) if 0 <= start + k + o < len(frames)}
            assert min(err, key=err.get) == 0, (start, k, err)
