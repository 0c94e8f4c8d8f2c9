"""Stage 5b (after face, before lip sync; cheap): static video and visual quality of each clip.

A clip is rejected when neither its face nor its mouth moves (a photo with a voice-over, a frozen stream, a
slideshow),
when its face crop is blurred (blur, upscaling), or when its source was coded with too few bits per pixel.
The share of still frame pairs over the whole frame is recorded beside the face's motion: the synthetic
corpus (a photo whose mouth alone is drawn moving) is still in 99% of its pairs, recorded speakers in 40%
at most. Measurements: pipeline/visual_quality.py."""
from __future__ import annotations

import numpy as np

from pipeline import media
from pipeline.stages.base import Record, Resources, Stage, reject
from pipeline.visual_quality import MotionMeter, face_sharpness, sharpness_frames


class VisualStage(Stage):
    name = "visual"
    resources = Resources(cpus=0.5, memory_gb=0.5)

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, dec = self.cfg, c["_source"]["_decoded"]
        boxes, marks, n, start = c["_track_boxes"], c["_track_landmarks"], c["num_frames"], c["start_frame"]
        reader = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames)
        motion, picks, sharp = MotionMeter(), sharpness_frames(n), []
        for first, frames in reader.windows(start, start + n, 32):
            for k, frame in enumerate(frames):
                i = first - start + k
                motion.add(frame, boxes[i], marks[i])
                if i in picks and (s := face_sharpness(frame, boxes[i])) is not None:
                    sharp.append(s)
        m = motion.result()
        c["still_frame_share"], c["face_motion"] = round(m.still_frame_share, 4), round(m.face_motion, 4)
        c["mouth_motion"] = round(m.mouth_motion, 4)
        c["face_sharpness"] = round(float(np.median(sharp)), 2) if sharp else 0.0
        bpp = c["_source"].get("video_bits_per_pixel")
        if max(m.face_motion, m.mouth_motion) < cfg.min_face_motion:
            reject(c, self.name, "static_video", f"the face moves {m.face_motion:.2f} and the mouth {m.mouth_motion:.2f} "
                   f"grey levels a frame < {cfg.min_face_motion}; {m.still_frame_share:.0%} of frame pairs still "
                   f"(a photo, a frozen stream or a slideshow)")
        elif c["face_sharpness"] < cfg.min_face_sharpness:
            reject(c, self.name, "blurred_face", f"face sharpness {c['face_sharpness']:.0f} < {cfg.min_face_sharpness:g} "
                   f"(blur, upscaling or heavy compression)")
        elif bpp is not None and bpp < cfg.min_bits_per_pixel:
            reject(c, self.name, "low_bitrate", f"{bpp:.4f} bits per pixel < {cfg.min_bits_per_pixel}")
