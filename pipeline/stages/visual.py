"""Stage 5b (after face, before lip sync; cheap): static video and visual quality of each clip.

A clip is rejected when neither its face nor its mouth moves (a photo with a voice-over, a frozen stream, a
slideshow),
when its face crop is blurred, or when its frames score poorly on BRISQUE, a no-reference quality score that
also sees blocking and upscaling (the source's bits per pixel are checked earlier, at the probe).
The share of still frame pairs over the whole frame is recorded beside the face's motion: the synthetic
corpus (a photo whose mouth alone is drawn moving) is still in 99% of its pairs, recorded speakers in 40%
at most. Measurements: pipeline/checks/visual_quality.py and pipeline/checks/picture_quality.py."""
from __future__ import annotations

import numpy as np

from pipeline import media
from pipeline.checks.visual_quality import MotionMeter, face_sharpness, sharpness_frames
from pipeline.stages.base import Record, Resources, Stage, reject

QUALITY_FRAMES = 2  # BRISQUE reads the frames at a third and two thirds of the clip (about 15 ms each)


class VisualStage(Stage):
    name = "visual"
    section = "visual"
    resources = Resources(cpus=0.5, memory_gb=0.5)

    def setup(self) -> None:
        from pipeline.checks.picture_quality import Brisque

        self.brisque = Brisque(self.run.models_dir)

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, dec = self.cfg, c.scratch.source.scratch.decoded
        boxes, marks, n, start = c.scratch.track_boxes, c.scratch.track_landmarks, c["num_frames"], c["start_frame"]
        reader = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames)
        motion, picks, sharp, quality = MotionMeter(), sharpness_frames(n), [], []
        quality_picks = set(np.linspace(0, n - 1, QUALITY_FRAMES + 2)[1:-1].round().astype(int).tolist())
        for first, frames in reader.windows(start, start + n, 32):
            for k, frame in enumerate(frames):
                i = first - start + k
                motion.add(frame, boxes[i], marks[i])
                if i in picks and (s := face_sharpness(frame, boxes[i])) is not None:
                    sharp.append(s)
                if i in quality_picks:
                    quality.append(self.brisque.score(frame))
        m = motion.result()
        c["still_frame_share"], c["face_motion"] = round(m.still_frame_share, 4), round(m.face_motion, 4)
        c["mouth_motion"] = round(m.mouth_motion, 4)
        c["face_sharpness"] = round(float(np.median(sharp)), 2) if sharp else 0.0
        c["brisque"] = round(float(np.mean(quality)), 2)
        if max(m.face_motion, m.mouth_motion) < cfg.min_face_motion:
            reject(c, self.name, "static_video", f"the face moves {m.face_motion:.2f} and the mouth {m.mouth_motion:.2f} "
                   f"grey levels a frame < {cfg.min_face_motion}; {m.still_frame_share:.0%} of frame pairs still "
                   f"(a photo, a frozen stream or a slideshow)")
        elif c["face_sharpness"] < cfg.min_face_sharpness:
            reject(c, self.name, "blurred_face", f"face sharpness {c['face_sharpness']:.0f} < {cfg.min_face_sharpness:g} "
                   f"(blur, upscaling or heavy compression)")
        elif c["brisque"] > cfg.max_brisque:
            reject(c, self.name, "low_quality", f"BRISQUE {c['brisque']:.1f} > {cfg.max_brisque:g} (blur, blocking, "
                   f"upscaling or noise over the whole frame)")
