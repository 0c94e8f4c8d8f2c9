"""Scene cuts on recorded footage: the pipeline's HSV detector against PySceneDetect's ContentDetector and
AdaptiveDetector, each fed the same decoded frames (no second decode), at their default thresholds (the
HSV detector at the pipeline's --scene-threshold), and ContentDetector on 128 px copies of the frames.

    python benchmarks/scene_cuts.py ../shared/real_footage [--work /tmp/cuts]

Cases with a known cut: recordings of different people joined end to end (a hard cut between shots), and a
jump cut inside one recording (its first 2 s, then from 3 s on: same person, same background). Cases
without a cut: every original recording. The stage recording (short_hamilton_clip) has cuts of its own,
not labelled: each detector's cut times are printed for it. A detection within 2 frames of a cut is a hit.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

FPS = 24.0
SIZE = 448
TOLERANCE = 2
ORIGINALS = ("face_2", "face_3", "face_5", "lrs2_00001", "lrs2_00004", "lrs2_00009", "lrs2_00022")
JOINS = (("face_2", "face_3"), ("face_3", "face_5"), ("face_5", "lrs2_00001"), ("lrs2_00001", "lrs2_00004"),
         ("lrs2_00004", "lrs2_00009"), ("lrs2_00009", "lrs2_00022"))


def frames_of(path: str, start: float = 0.0, end: float | None = None) -> np.ndarray:
    """RGB frames at 24 fps, padded to 448x448 (as the analysis decode sees any source)."""
    vf = f"fps={FPS},scale={SIZE}:{SIZE}:force_original_aspect_ratio=decrease,pad={SIZE}:{SIZE}:(ow-iw)/2:(oh-ih)/2"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", str(start), *(["-to", str(end)] if end else []), "-i", path,
           "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


def hsv_cuts(frames: np.ndarray) -> list[int]:
    from pipeline import media
    from pipeline.config import PipelineConfig
    from pipeline.stages.segment import scene_change_scores, scenes_from_scores

    with tempfile.NamedTemporaryFile(suffix=".rgb") as f:
        frames.tofile(f.name)
        scores = scene_change_scores(media.FrameReader(f.name, (SIZE, SIZE), len(frames)))
    threshold = PipelineConfig().scene_threshold
    return [a for a, _ in scenes_from_scores(scores, threshold)[1:]]


def scenedetect_cuts(frames: np.ndarray, kind: str, width: int = 0) -> list[int]:
    """PySceneDetect's detector on the frames (BGR), or on copies `width` pixels wide when given."""
    import cv2
    from scenedetect import FrameTimecode
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    detector = ContentDetector() if kind == "content" else AdaptiveDetector()
    cuts = []
    for i, f in enumerate(frames):
        if width:
            f = cv2.resize(f, (width, width * f.shape[0] // f.shape[1]), interpolation=cv2.INTER_AREA)
        cuts += detector.process_frame(FrameTimecode(i, FPS), np.ascontiguousarray(f[:, :, ::-1]))
    cuts += detector.post_process(FrameTimecode(len(frames), FPS)) if hasattr(detector, "post_process") else []
    return sorted({int(c.frame_num) for c in cuts})


DETECTORS = {"hsv (pipeline)": hsv_cuts, "pyscenedetect content": lambda f: scenedetect_cuts(f, "content"),
             "pyscenedetect adaptive": lambda f: scenedetect_cuts(f, "adaptive"),
             "pyscenedetect content 128px": lambda f: scenedetect_cuts(f, "content", 128)}


def cases(root: str) -> list[tuple[str, np.ndarray, list[int]]]:
    video = lambda n: os.path.join(root, "videos", f"{n}.mp4")
    out = [(n, frames_of(video(n)), []) for n in ORIGINALS]
    for a, b in JOINS:
        fa, fb = frames_of(video(a)), frames_of(video(b))
        out.append((f"{a} + {b}", np.concatenate([fa, fb]), [len(fa)]))
    for n in ORIGINALS[:3]:
        fa, fb = frames_of(video(n), 0, 2.0), frames_of(video(n), 3.0)
        out.append((f"{n} jump cut", np.concatenate([fa, fb]), [len(fa)]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="the real-footage folder (videos/ inside)")
    a = p.parse_args()
    data = cases(a.root)
    stage = frames_of(os.path.join(a.root, "videos", "short_hamilton_clip.mp4"))
    frames_total = sum(len(f) for _, f, _ in data)
    print(f"{len(data)} cases, {sum(len(c) for _, _, c in data)} labelled cuts, {frames_total} frames at {FPS:g} fps")
    for name, detect in DETECTORS.items():
        hits = misses = false = 0
        t0 = time.process_time()
        for case, frames, truth in data:
            found = detect(frames)
            hit = [c for c in truth if any(abs(c - d) <= TOLERANCE for d in found)]
            hits, misses = hits + len(hit), misses + len(truth) - len(hit)
            extra = [d for d in found if all(abs(c - d) > TOLERANCE for c in truth)]
            false += len(extra)
            if len(hit) < len(truth) or extra:
                print(f"  {name:24s} {case:28s} missed {len(truth) - len(hit)}, false {extra}")
        ms = 1000 * (time.process_time() - t0) / frames_total
        stage_cuts = [round(c / FPS, 2) for c in detect(stage)]
        print(f"{name:24s} hits {hits}/{hits + misses}  false cuts {false}  {ms:.2f} ms a frame  "
              f"stage recording: cuts at {stage_cuts} s")


if __name__ == "__main__":
    main()
