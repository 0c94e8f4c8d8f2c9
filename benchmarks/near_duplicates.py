"""Calibrate the near-duplicate fingerprints: every video of DIR against a re-encode of itself (smaller,
heavier compression, new audio codec) and against every other video of DIR.

    python benchmarks/near_duplicates.py ../shared/real_footage/videos

Prints the picture and voice bit-error rates of the re-encodes (must stay under the thresholds) and of the
closest other pair (must stay over at least one of them), and the decision for each."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import fingerprint as fp  # noqa: E402

FPS, RATE, WIDTH, HEIGHT = 24.0, 16000, 128, 96


def fingerprint_of(path: str) -> fp.Fingerprint:
    """Decode small frames and 16 kHz audio with ffmpeg, as the decode stage would, and fingerprint them."""
    common = ["ffmpeg", "-nostdin", "-v", "error", "-i", path]
    raw = subprocess.run(common + ["-vf", f"fps={FPS},scale={WIDTH}:{HEIGHT}", "-f", "rawvideo", "-pix_fmt", "rgb24",
                                   "-"], capture_output=True, check=True).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, HEIGHT, WIDTH, 3)
    pcm = np.frombuffer(subprocess.run(common + ["-vn", "-af", f"aresample={RATE}:async=1:first_pts=0", "-ac", "1",
                                                 "-f", "s16le", "-"],
                                       capture_output=True, check=True).stdout, "<i2").astype(np.float32) / 32768
    video = np.array([fp.dhash(frames[i]) for i in fp.video_sample_frames(len(frames), FPS)], np.uint64)
    return fp.Fingerprint(len(frames) / FPS, video, fp.audio_words(pcm, RATE))


def reencode(path: str, out: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path, "-vf", "scale=trunc(iw/6)*2:-2", "-c:v", "libx264",
                    "-crf", "35", "-c:a", "aac", "-b:a", "48k", out], check=True)


def rates(a: fp.Fingerprint, b: fp.Fingerprint) -> tuple[float, float]:
    return fp.bit_error_rate(a.video, b.video, 64), fp.bit_error_rate(a.audio, b.audio, 16)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    a = p.parse_args()
    names = sorted(n for n in os.listdir(a.dir) if n.endswith(".mp4"))
    prints = {}
    for n in names:
        try:
            prints[n] = fingerprint_of(os.path.join(a.dir, n))
        except (subprocess.CalledProcessError, ValueError):
            print(f"{n}: no picture or voice to fingerprint, left out")
    names = [n for n in names if n in prints and len(prints[n].video) and len(prints[n].audio)]
    print(f"{'file':40s} {'re-encode pic':>13s} {'voice':>6s} {'same':>5s}   closest other file (pic, voice, same)")
    worst_copy, fooled = 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            copy = os.path.join(tmp, "copy.mp4")
            reencode(os.path.join(a.dir, n), copy)
            c = fingerprint_of(copy)
            v, au = rates(prints[n], c)
            same, _ = fp.same_recording(prints[n], c)
            worst_copy = max(worst_copy, v, au)
            others = [(rates(prints[n], prints[m]), m) for m in names if m != n]
            (ov, oa), m = min(others, key=lambda x: x[0][0] + x[0][1])
            other_same, _ = fp.same_recording(prints[n], prints[m])
            fooled += other_same
            print(f"{n:40s} {v:13.3f} {au:6.3f} {str(same):>5s}   {m} ({ov:.3f}, {oa:.3f}, {other_same})")
    print(f"\n{len(names)} files; worst re-encode bit-error rate {worst_copy:.3f}; "
          f"files whose closest other file counts as the same recording: {fooled}")


if __name__ == "__main__":
    main()
