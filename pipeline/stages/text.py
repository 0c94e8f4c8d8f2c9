"""Stage 6b (after lip sync, so it reads only clips that passed the cheaper checks): burnt-in text.

PP-OCRv4's text-region detector (pipeline/checks/text_regions.py) reads a few frames of the clip. A line of text at
least `min_text_line_width` of the frame wide is a caption or a subtitle; a logo in a corner, a sign or a
map behind the speaker gives short boxes and is left alone. A clip with such a line in at least
`max_text_frame_share` of the frames read is rejected. Also recorded: the share of the clip's crop (what
training sees) covered by text of any size."""
from __future__ import annotations

import numpy as np

from pipeline import media
from pipeline.stages.base import Record, Resources, Stage, reject

FRAMES = 3  # read at the start, middle and end of the clip


def covered_share(boxes: np.ndarray, region: tuple[float, float, float, float], size: tuple[int, int]) -> float:
    """Share of `region` (x0 y0 x1 y1, normalised) covered by the union of `boxes` (pixels of a w x h frame)."""
    w, h = size
    x0, y0, x1, y1 = int(region[0] * w), int(region[1] * h), int(np.ceil(region[2] * w)), int(np.ceil(region[3] * h))
    mask = np.zeros((h, w), bool)
    for b in boxes:
        mask[max(0, int(b[1])):max(0, int(np.ceil(b[3]))), max(0, int(b[0])):max(0, int(np.ceil(b[2])))] = True
    area = mask[y0:y1, x0:x1]
    return float(area.mean()) if area.size else 0.0


class TextStage(Stage):
    name = "text"
    section = "text"
    resources = Resources(cpus=1.0, memory_gb=0.5)

    def setup(self) -> None:
        from pipeline.checks.text_regions import TextDetector

        self.detector = TextDetector(self.run.models_dir, self.threads)

    def process(self, records: list[Record]) -> None:
        for c in records:
            self.measure(c)

    def measure(self, c: Record) -> None:
        cfg, dec = self.cfg, c.scratch.source.scratch.decoded
        reader = media.FrameReader(dec.frames_path, dec.analysis_size, dec.num_frames)
        picks = np.linspace(0, c["num_frames"] - 1, FRAMES).round().astype(int)
        widths, cover = [], []
        for i in picks:
            frame = reader.read(c["start_frame"] + int(i), 1)[0]
            boxes = self.detector.boxes(frame)
            w, h = dec.analysis_size
            widths.append(float(((boxes[:, 2] - boxes[:, 0]) / w).max()) if len(boxes) else 0.0)
            cover.append(covered_share(boxes, c["crop_box"], (w, h)))
        lines = np.asarray(widths) >= cfg.min_text_line_width
        c["text_frame_share"] = round(float(lines.mean()), 4)
        c["text_line_width"] = round(max(widths), 4)
        c["text_crop_cover"] = round(float(np.mean(cover)), 4)
        if c["text_frame_share"] >= cfg.max_text_frame_share:
            reject(c, self.name, "burnt_in_text", f"a line of text {c['text_line_width']:.0%} of the frame wide in "
                   f"{c['text_frame_share']:.0%} of the frames read (captions or subtitles)")
