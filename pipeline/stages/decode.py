"""Stage 2: decode each source exactly once into analysis frames and 16 kHz mono audio.

Everything downstream reads what this stage wrote to the worker's scratch folder; nothing decodes the
source again. ffmpeg streams to disk, so a worker's memory does not grow with the video's length."""
from __future__ import annotations

import os

from pipeline import media, scratch
from pipeline.stages.base import Record, Resources, Stage, reject

# A source that decodes to less than its probed duration by this much is truncated or corrupt.
TRUNCATION_TOLERANCE_S = 1.0


class DecodeStage(Stage):
    name = "decode"
    resources = Resources(cpus=1.0, memory_gb=0.5)

    def process(self, records: list[Record]) -> None:
        for r in records:
            workdir = scratch.make_dir("decode", self.run.scratch_dir)
            r.scratch.workdir = workdir
            dw, dh = r["display_width"], r["display_height"]
            analysis = media.even_size(dw, dh, self.run.analysis_size)
            normalized = media.even_size(dw, dh, self.run.max_side)  # the size clips are cut at
            result = media.decode(r.scratch.path, workdir, self.run.fps, self.run.sample_rate, analysis, self.threads)
            r["decode_passes"] = r.get("decode_passes", 0) + 1
            r.scratch.decoded = result
            r["decoded_frames"] = result.num_frames
            r["decoded_seconds"] = result.num_frames / self.run.fps
            r["analysis_width"], r["analysis_height"] = analysis
            r["normalized_width"], r["normalized_height"] = normalized
            missing = r["duration_s"] - r["decoded_seconds"]
            if missing > TRUNCATION_TOLERANCE_S:
                first_error = result.errors.splitlines()[0] if result.errors else "no decoder error"
                reject(r, self.name, "truncated",
                       f"decoded {r['decoded_seconds']:.2f} s of {r['duration_s']:.2f} s ({first_error[:200]})")


def cleanup(record: Record) -> None:
    """Remove the scratch files of a source once its clips are written."""
    workdir, record.scratch.workdir = record.scratch.workdir, None
    if workdir and os.path.isdir(workdir):
        for name in os.listdir(workdir):
            os.remove(os.path.join(workdir, name))
        os.rmdir(workdir)
