"""Thresholds chosen by leave-one-speaker-out validation on the labelled recordings, and the held-out rates
they give: for each speaker in turn, every threshold is chosen on the files that hold neither that
speaker's face nor voice, then applied to that speaker's files. The rates printed are those of the held-out
decisions; the defaults are the same rules applied to every speaker.

Reads what benchmarks/footage_measure.py wrote (one JSON and one .npz per file).
"""
from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass

import numpy as np

from benchmarks.footage_labels import LabelledFile, labelled_files, speaker
from pipeline.checks.sync_evidence import pool_source, read_curve
from pipeline.stages.face import frame_share

NEGATIVE = ("late", "early", "voice_swap")
FILTER_BUDGET = 0.05  # at most this share of in-sync originals rejected by one data filter (issue 25)
SYNC_BUDGET = 0.10  # at most this share of in-sync originals rejected for sync, and of negatives accepted


@dataclass
class Clip:
    file: LabelledFile
    row: dict  # the clip's columns, every stage run
    offset: int | None  # the sync evidence read after pooling over the file's clips (None: no face track)
    confidence: float | None
    speaking: float | None  # Light-ASD speaking share
    own_offset: int | None  # the clip's own evidence read alone

    @property
    def owner(self) -> str:
        """The speaker whose face the file shows: its fold."""
        return speaker(self.file.name.split("__")[0])


@dataclass(frozen=True)
class Filter:
    name: str  # stage:reason, as the manifests say it
    column: str
    sense: str  # 'min': reject below; 'max': reject above; 'abs': reject |value| above
    field: str  # the PipelineConfig field


FILTERS = [
    Filter("audio:loudness", "loudness_db", "min", "min_loudness_db"),
    Filter("audio:speech_ratio", "speech_ratio", "min", "min_speech_ratio"),
    Filter("audio:speech_snr", "speech_snr_db", "min", "min_speech_snr_db"),
    Filter("face:face_track_coverage", "face_track_coverage", "min", "min_track_coverage"),
    Filter("face:face_count", "other_face_coverage", "max", "max_other_face_coverage"),
    Filter("face:face_too_small (width)", "face_width_px", "min", "min_face_width"),
    Filter("face:face_too_small (height)", "face_height_px", "min", "min_face_height"),
    Filter("face:face_cut_off", "face_frame_share", "max", "max_face_frame_share"),
    Filter("face:pose", "pose_yaw_deg", "abs", "max_yaw_deg"),
    Filter("visual:blurred_face", "face_sharpness", "min", "min_face_sharpness"),
    Filter("visual:low_quality", "brisque", "max", "max_brisque"),
    Filter("text:burnt_in_text", "text_frame_share", "max", "max_text_frame_share"),
    Filter("transcribe:language_uncertain", "language_evidence", "min", "min_language_prob"),
    Filter("transcribe:speech_rate (slow)", "words_per_s", "min", "min_words_per_s"),
    Filter("transcribe:speech_rate (fast)", "words_per_s", "max", "max_words_per_s"),
    Filter("sync:not_speaking", "asd_speaking", "min", "min_asd_speaking"),
]


def measured_files(measure_dir: str, root: str):
    """(labelled file, its JSON document, its arrays) for every file benchmarks/footage_measure.py wrote."""
    files = {(f.collection, f.name): f for f in labelled_files(root)}
    for path in sorted(glob.glob(os.path.join(measure_dir, "*", "*.json"))):
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
        yield files[(os.path.basename(os.path.dirname(path)), doc["file"])], doc, \
            np.load(path[:-5] + ".npz", allow_pickle=False)


def load(measure_dir: str, root: str) -> list[Clip]:
    clips = []
    for f, doc, arrays in measured_files(measure_dir, root):
        have = [i for i in range(len(doc["clips"])) if f"curve_{i}" in arrays]
        pooled = dict(zip(have, pool_source([arrays[f"curve_{i}"] for i in have])))
        for i, row in enumerate(doc["clips"]):
            r = read_curve(pooled[i]) if i in pooled else None
            own = read_curve(arrays[f"curve_{i}"]).offset if i in pooled else None
            row["asd_speaking"] = float(arrays[f"asd_share_{i}"][0]) if i in pooled else None
            clips.append(Clip(f, row, r.offset if r else None, r.confidence if r else None, row["asd_speaking"],
                              own))
    return clips


def value(c: Clip, f: Filter) -> float | None:
    if f.column == "language_evidence":  # the transcribe stage's rule: doubted only when both are low
        lp, tc = c.row.get("language_prob"), c.row.get("transcript_conf")
        return None if lp is None else max(lp, tc or 0.0)
    if f.column == "face_frame_share":
        return None if c.row.get("face_box") is None else frame_share(c.row["face_box"])
    v = c.row.get(f.column)
    return None if v is None else abs(v) if f.sense == "abs" else float(v)


def rejects(f: Filter, v: float | None, t: float) -> bool:
    if v is None:
        return False
    return v < t if f.sense == "min" else v > t


def filter_threshold(f: Filter, clips: list[Clip], default: float, budget: float = FILTER_BUDGET) -> float:
    """The default, loosened just enough that at most `budget` of these in-sync recordings fall to it, each
    recording weighing one whatever its number of clips (a recording's clips share speaker, room and camera)."""
    per_file: dict = {}
    for c in clips:
        if c.file.kind == "original" and (v := value(c, f)) is not None:
            per_file.setdefault(c.file.name, []).append(v if f.sense == "min" else -v)
    if not per_file:
        return default
    vals = np.array([v for vs in per_file.values() for v in vs])
    weights = np.array([1 / len(vs) for vs in per_file.values() for _ in vs]) / len(per_file)
    order = np.argsort(vals)
    vals, cum = vals[order], np.cumsum(weights[order])
    # the loosest rejection that keeps the weight below the threshold within budget: just below the first
    # value whose inclusion would pass it
    first_over = int(np.searchsorted(cum, budget + 1e-12, side="right"))
    cut = vals[min(first_over, len(vals) - 1)]
    return min(default, float(cut)) if f.sense == "min" else max(default, float(-cut))


@dataclass(frozen=True)
class SyncRule:
    """The offline sync decision (pipeline/stages/sync.py, offline_status): in sync within `tolerance` frames
    with evidence >= `accept`; out of sync beyond `reject_beyond` frames with evidence >= `reject` when the
    clip's own evidence also reads beyond the tolerance."""
    tolerance: int
    reject_beyond: int
    accept: float
    reject: float


def sync_outcome(c: Clip, rule: SyncRule) -> str:
    if c.offset is None:
        return "unmeasured"
    if abs(c.offset) <= rule.tolerance:
        return "in_sync" if c.confidence >= rule.accept else "unverified"
    if abs(c.offset) > rule.reject_beyond and abs(c.own_offset) > rule.tolerance:
        return "out_of_sync" if c.confidence >= rule.reject else "unverified"
    return "unverified"


TOLERANCES = (3, 4)  # in-sync tolerances tried (Ovi's SyncNet filter: 3)
REJECT_BEYOND = (3, 4, 5, 6, 7)  # offsets beyond which strong evidence rejects (0.4 s shifts read near 10)


def sync_thresholds(clips: list[Clip], budget: float = SYNC_BUDGET) -> SyncRule:
    """The rule that calls the most clips right while at most `budget` of the in-sync originals are called
    out of sync and at most `budget` of the shifted and dubbed copies in sync."""
    measured = [c for c in clips if c.offset is not None and (c.file.kind == "original" or c.file.kind in NEGATIVE)]
    pos = np.array([c.file.kind == "original" for c in measured])
    off = np.abs([c.offset for c in measured])
    own = np.abs([c.own_offset for c in measured])
    conf = np.array([c.confidence for c in measured])
    grid = np.append(np.quantile(conf, np.linspace(0, 1, 41)), np.inf)
    best, rule = -1.0, SyncRule(3, 3, np.inf, np.inf)
    for tol in TOLERANCES:
        for beyond in (b for b in REJECT_BEYOND if b >= tol):
            for ta in grid:
                accept = (off <= tol) & (conf >= ta)
                if accept[~pos].mean() > budget:
                    continue
                for tr in grid:
                    reject = (off > beyond) & (own > tol) & (conf >= tr)
                    if reject[pos].mean() <= budget:
                        score = accept[pos].mean() + reject[~pos].mean()
                        if score > best + 1e-9:
                            best, rule = score, SyncRule(tol, beyond, float(ta), float(tr))
    return rule


def held_out(clips: list[Clip], defaults: dict) -> dict:
    """Every clip's decision with thresholds chosen without its speaker: {'filters': {name: per-clip bool
    rejected}, 'sync': per-clip outcome, 'final': per-clip accepted|unverified|rejected, 'folds': thresholds}."""
    n = len(clips)
    out = {"filters": {f.name: [False] * n for f in FILTERS}, "sync": ["unmeasured"] * n, "final": [""] * n,
           "folds": {}}
    speakers = sorted({c.owner for c in clips if c.file.kind == "original"})
    everyone = chosen_defaults(clips, defaults)
    for i, c in enumerate(clips):  # hard cases hold no labelled speaker: every speaker's choice applies
        if c.owner not in speakers:
            for f in FILTERS:
                out["filters"][f.name][i] = rejects(f, value(c, f), everyone[f.name])
            out["sync"][i] = sync_outcome(c, everyone["sync"])
    for s in speakers:
        train = [c for c in clips if s not in c.file.speakers]
        test = [i for i, c in enumerate(clips) if c.owner == s]
        ts = {f.name: filter_threshold(f, train, defaults[f.field]) for f in FILTERS}
        rule = sync_thresholds(train)
        out["folds"][s] = {"filters": ts, "sync": rule}
        for i in test:
            for f in FILTERS:
                out["filters"][f.name][i] = rejects(f, value(clips[i], f), ts[f.name])
            out["sync"][i] = sync_outcome(clips[i], rule)
    for i, c in enumerate(clips):
        other = any(out["filters"][f.name][i] for f in FILTERS) or bool(c.row.get("_unmeasured"))
        sync = out["sync"][i]
        out["final"][i] = "rejected" if other or sync in ("out_of_sync", "unmeasured") else \
            "unverified" if sync == "unverified" else "accepted"
    return out


def chosen_defaults(clips: list[Clip], defaults: dict) -> dict:
    """The same rules on every speaker's files: what the README's defaults come from."""
    out = {f.name: filter_threshold(f, clips, defaults[f.field]) for f in FILTERS}
    out["sync"] = sync_thresholds(clips)
    return out


def candidate_curves(measure_dir: str, root: str) -> list[tuple[LabelledFile, dict]]:
    """Per clip, the offset curve of each candidate kind of evidence alone, of their sum, and of the sum
    pooled over the file: the comparison the offline scorer was chosen by."""
    from pipeline.checks.sync_evidence import evidence_parts
    from pipeline.stages.worker_state import SourceScratch, clip_pcm, new_clip
    from records.rows import SourceRow

    out = []
    for f, doc, arrays in measured_files(measure_dir, root):
        source = SourceRow({}, scratch=SourceScratch(f.path))
        source.scratch.pcm = arrays["pcm"] if "pcm" in arrays.files else None
        mine = []
        for i, row in enumerate(doc["clips"]):
            if f"curve_{i}" not in arrays:
                continue
            pad = (len(arrays[f"curve_{i}"]) - 1) // 2
            clip = new_clip(source, {k: row[k] for k in ("start_frame", "num_frames", "fps")})
            parts = evidence_parts(arrays[f"opening_{i}"], arrays[f"dark_{i}"], clip_pcm(clip, 16000, pad), 16000,
                                   row["fps"], pad)
            mine.append({**parts, "Light-ASD": arrays[f"asd_{i}"], "sum": arrays[f"curve_{i}"]})
        pooled = pool_source([m["sum"] for m in mine])
        out += [(f, {**m, "sum, pooled over the file": p}) for m, p in zip(mine, pooled)]
    return out
