"""The driver's register of kept recordings: a source whose clips passed every check but whose picture and
voice match a recording already kept (a re-encode, a rescaled or re-muxed copy) is rejected as
`near_duplicate` before its clips are encoded or packed. Exact copies never get this far (listing).

Only sources with accepted clips are compared and registered: a copy that failed its checks costs nothing.
Which of two copies in one run is kept depends on which finished first; across runs the earlier run's."""
from __future__ import annotations

import numpy as np

from pipeline.checks.fingerprint import Fingerprint, same_recording
from pipeline.stages.base import reject


def fingerprint_of(src: dict) -> Fingerprint | None:
    if not (src.get("video_fingerprint") or src.get("audio_fingerprint")):
        return None
    return Fingerprint.from_text(src.get("decoded_seconds") or src.get("duration_s") or 0.0,
                                src.get("video_fingerprint"), src.get("audio_fingerprint"))


class RecordingRegister:
    def __init__(self) -> None:
        self.kept: list[tuple[str, str, Fingerprint]] = []  # source_id, source_path, fingerprint
        self.durations = np.zeros(0)

    def load(self, out_dir: str) -> "RecordingRegister":
        """Register the recordings kept by earlier runs over `out_dir`."""
        from storage.parts import read_parts

        sources, _ = read_parts(out_dir)
        for row in sources.to_pylist():
            if row["status"] == "done" and row["clips_accepted"]:
                self.add(row)
        return self

    def add(self, src: dict) -> None:
        fp = fingerprint_of(src)
        if fp is not None:
            self.kept.append((src["source_id"], src["source_path"], fp))
            self.durations = np.append(self.durations, fp.duration_s)

    def match(self, fp: Fingerprint) -> tuple[str, str, str] | None:
        """(source_id, source_path, what agreed) of a kept recording that `fp` repeats."""
        near = np.flatnonzero(np.abs(self.durations - fp.duration_s) <= max(1.0, 0.02 * fp.duration_s))
        for k in near:
            sid, path, other = self.kept[k]
            same, said = same_recording(fp, other)
            if same:
                return sid, path, said
        return None

    def claim(self, result: dict) -> bool:
        """Register the source of `result`, or reject it and its clips when it repeats a kept recording;
        True when it was rejected."""
        src = result["source"]
        fp = fingerprint_of(src)
        if not src.get("clips_accepted") or fp is None:
            return False
        found = self.match(fp)
        if found is None:
            self.add(src)
            return False
        sid, path, said = found
        detail = f"the same recording as {path} ({said})"
        for c in result["clips"]:
            if c["status"] == "accepted":
                reject(c, "dedup", "near_duplicate", detail)
                c["members"] = None
        reject(src, "dedup", "near_duplicate", detail)
        src.update(duplicate_of=sid, clips_accepted=0, clips_rejected=src["clips_total"])
        return True
