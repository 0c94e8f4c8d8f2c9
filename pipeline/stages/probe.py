"""Stage 1: ffprobe each source; unusable ones end here with a reason (heavy compression included: the
container's bit rate is known before any frame is decoded)."""
from __future__ import annotations

from pipeline import media
from pipeline.stages.base import Record, Resources, Stage, reject


class ProbeStage(Stage):
    name = "probe"
    section = "visual"  # the coding bits per pixel; the face size comes from the face section
    resources = Resources(cpus=0.25, memory_gb=0.2)

    def __init__(self, cfg):
        super().__init__(cfg)
        self.face = cfg.face

    def process(self, records: list[Record]) -> None:
        run = self.run
        for r in records:
            try:
                facts = media.probe(r.scratch.path)
                r.scratch.still_image = facts.pop("still_image", False)  # a fact for this stage, not a column
                r.update(facts)
            except media.ProbeError as e:
                reject(r, self.name, e.reason, e.detail)
                continue
            cfg = self.cfg
            if not r["has_video"] and not run.audio_only:
                reject(r, self.name, "no_video_stream", "the file has no video stream")
            elif r.scratch.still_image and not run.audio_only:
                reject(r, self.name, "still_image", f"a picture ({r['video_codec']}), not a video")
            elif r["has_video"] and not run.audio_only and (
                    r["display_width"] < self.face.min_face_width or r["display_height"] < self.face.min_face_height):
                reject(r, self.name, "frame_too_small", f"{r['display_width']}x{r['display_height']} px cannot hold "
                       f"a face of the minimum {self.face.min_face_width}x{self.face.min_face_height} px")
            elif r["has_video"] and not run.audio_only and (r.get("video_bits_per_pixel") or 1) < cfg.min_bits_per_pixel:
                reject(r, self.name, "low_bitrate", f"{r['video_bits_per_pixel']:.4f} video bits per pixel and frame < "
                       f"{cfg.min_bits_per_pixel:g} (heavy compression)")
            elif not r["has_audio"]:
                reject(r, self.name, "no_audio_stream", "the file has no audio stream")
            elif r["duration_s"] < (1.0 if run.audio_only else run.clip_seconds):
                reject(r, self.name, "too_short",
                       f"{r['duration_s']:.2f} s is shorter than one clip ({run.clip_seconds:.2f} s)")
