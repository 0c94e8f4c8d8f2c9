"""The driver's register of kept recordings: a source whose clips passed every check but whose picture and
voice match a recording already kept (a re-encode, a rescaled or re-muxed copy) is rejected as
`near_duplicate` before its clips are encoded or packed. Exact copies never get this far (listing).

Only sources with accepted clips are compared and registered: a copy that failed its checks costs nothing.
Which of two copies in one run is kept depends on which finished first; across runs the earlier run's."""
from __future__ import annotations

import numpy as np

from pipeline.checks.fingerprint import Fingerprint, same_recording
from pipeline.run.recording_index import KeyIndex, candidates, picture_keys
from pipeline.stages.base import reject


def fingerprint_of(src: dict) -> Fingerprint | None:
    if not (src.get("video_fingerprint") or src.get("audio_fingerprint")):
        return None
    return Fingerprint.from_text(src.get("decoded_seconds") or src.get("duration_s") or 0.0,
                                src.get("video_fingerprint"), src.get("audio_fingerprint"))


class Growing:
    """A float array appended to one value at a time (amortised O(1), unlike np.append)."""

    def __init__(self) -> None:
        self.data, self.n = np.zeros(1024), 0

    def append(self, v: float) -> None:
        if self.n == len(self.data):
            self.data = np.concatenate([self.data, np.zeros(len(self.data))])
        self.data[self.n] = v
        self.n += 1

    def view(self) -> np.ndarray:
        return self.data[:self.n]


class RecordingRegister:
    """Kept recordings, found again through an index of their picture hashes (`recording_index.py`); a
    recording without picture is found by its duration among all kept ones."""

    def __init__(self) -> None:
        self.kept: list[tuple[str, str, Fingerprint]] = []  # source_id, source_path, fingerprint
        self.durations = Growing()
        self.pictures = KeyIndex()
        self.soundonly_rows: list[int] = []  # kept recordings without picture hashes
        self.soundonly_durations = Growing()

    def load(self, out_dir: str) -> "RecordingRegister":
        """Register the recordings kept by earlier runs over `out_dir` (from the ledger)."""
        from storage.ledger import finished_lines

        for row in finished_lines(out_dir):
            if row["status"] == "done" and row["clips_accepted"]:
                self.add(row)
        return self

    def add(self, src: dict) -> None:
        fp = fingerprint_of(src)
        if fp is not None:
            row = len(self.kept)
            self.kept.append((src["source_id"], src["source_path"], fp))
            self.durations.append(fp.duration_s)
            if len(fp.video):
                self.pictures.add(picture_keys(fp.video), row)
            else:
                self.soundonly_rows.append(row)
                self.soundonly_durations.append(fp.duration_s)

    def candidate_rows(self, fp: Fingerprint) -> np.ndarray:
        """Rows worth comparing in full, in the order they were kept: with a picture, those sharing an index
        key and the kept recordings without picture of about its duration; without, every kept recording of
        about its duration."""
        near = lambda durations: np.abs(durations - fp.duration_s) <= max(1.0, 0.02 * fp.duration_s)
        if not len(fp.video):
            return np.flatnonzero(near(self.durations.view()))
        sound = np.asarray(self.soundonly_rows, np.int64)[near(self.soundonly_durations.view())]
        return np.union1d(candidates(self.pictures, fp.video), sound)

    def match(self, fp: Fingerprint, own_id: str = "") -> tuple[str, str, str] | None:
        """(source_id, source_path, what agreed) of a kept recording other than `own_id` that `fp` repeats
        (a source tried again after its worker died finds itself kept)."""
        for k in self.candidate_rows(fp):
            sid, path, other = self.kept[k]
            if sid == own_id:
                continue
            same, said = same_recording(fp, other)
            if same:
                return sid, path, said
        return None

    def keep_or_match(self, src: dict) -> tuple[str, str, str] | None:
        """Keep the recording of source row `src` (with accepted clips), or say which kept one it repeats."""
        fp = fingerprint_of(src)
        if not src.get("clips_accepted") or fp is None:
            return None
        found = self.match(fp, src["source_id"])
        if found is None:
            self.add(src)
        return found

    def claim(self, result: dict) -> bool:
        """Register the source of `result`, or reject it and its clips when it repeats a kept recording;
        True when it was rejected."""
        found = self.keep_or_match(result["source"])
        if found is not None:
            reject_duplicate(result, found)
        return found is not None


def reject_duplicate(result: dict, found: tuple[str, str, str]) -> None:
    """Reject the source of `result` and its accepted clips as a repeat of the kept recording `found`."""
    src = result["source"]
    sid, path, said = found
    detail = f"the same recording as {path} ({said})"
    for c in result["clips"]:
        if c["status"] == "accepted":
            reject(c, "dedup", "near_duplicate", detail)
            c["members"] = None
    reject(src, "dedup", "near_duplicate", detail)
    src.update(duplicate_of=sid, clips_accepted=0, clips_rejected=src["clips_total"])
