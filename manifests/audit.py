"""`python -m manifests audit OUT [--html FILE]`: what a run took in and gave out, and why.

Counts, hours in and out, the acceptance funnel per stage and per reason, languages, the distribution of
every score, and the slowest stages, as text tables; `--html` also writes a self-contained report with
plots and contact sheets (report.py)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from records.schema import CLIPS, SOURCES
from storage.parts import manifest_batches

CLIP_STAGES = ("audio", "face", "visual", "sync", "text", "transcribe", "encode")  # the order clips meet them
SCORES = {  # column -> label
    "face_width_px": "face width (px)", "face_height_px": "face height (px)", "pose_yaw_deg": "yaw (deg)",
    "sync_offset_frames": "sync offset (frames)", "syncnet_conf": "SyncNet Sync-C",
    "motion_conf": "mouth-motion confidence (0-2)", "asd_speaking": "active-speaker share", "loudness_db": "loudness (dB)",
    "speech_ratio": "speech share", "speech_snr_db": "speech SNR (dB)", "still_frame_share": "still frame pairs",
    "face_motion": "face motion (grey levels)", "mouth_motion": "mouth motion (grey levels)", "face_sharpness": "face sharpness (Laplacian var.)",
    "brisque": "BRISQUE (0 pristine, 100 worst)",
    "text_line_width": "widest text line (share of width)", "text_crop_cover": "text in the crop (share)", "words_per_s": "speech rate (words/s)", "clip_seconds": "clip length (s)",
}


SHEET = 12  # rows kept per contact sheet (accepted, and each stage and reason)
SKIP = {"video_fingerprint", "audio_fingerprint", "scene_cuts_s"}  # large, and no report reads them


@dataclass
class Audit:
    """What the report shows, gathered a batch at a time: counts, the distributions of the scores, and a
    few rows per outcome; never every row."""
    sources: int = 0
    clips: int = 0
    accepted: int = 0
    source_status: Counter = field(default_factory=Counter)
    hours_in: float = 0.0
    hours_out: float = 0.0
    funnel: list[tuple[str, int]] = field(default_factory=list)  # (after stage, clips still in)
    reasons: Counter = field(default_factory=Counter)  # (stage, reason) -> clips or sources
    languages: Counter = field(default_factory=Counter)
    distributions: dict[str, np.ndarray] = field(default_factory=dict)
    stage_seconds: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # mean, max, count
    sheets: dict[str, list[dict]] = field(default_factory=dict)  # outcome -> its first SHEET rows
    outcomes: Counter = field(default_factory=Counter)  # outcome -> rows
    sheet_sources: dict[str, dict] = field(default_factory=dict)  # source rows of the clips in the sheets


def outcome(status: str, stage: str, reason: str, is_clip: bool) -> str:
    """The contact sheet a row belongs on."""
    if is_clip:
        return "accepted" if status == "accepted" else f"rejected at {stage}: {reason}"
    return f"source rejected at {stage}: {reason}"


class Tally:
    """Running sums of the seconds_* columns and the score values, batch by batch."""

    def __init__(self):
        self.seconds: dict[str, list[float]] = {}  # column -> [sum, max, n]
        self.scores: dict[str, list[np.ndarray]] = {k: [] for k in SCORES}

    def add_seconds(self, batch) -> None:
        for col in batch.schema.names:
            if col.startswith("seconds_") and col != "seconds_total":
                v = batch.column(col).drop_null().to_numpy(zero_copy_only=False).astype(float)
                if len(v):
                    t = self.seconds.setdefault(col[len("seconds_"):], [0.0, -np.inf, 0])
                    t[0], t[1], t[2] = t[0] + v.sum(), max(t[1], v.max()), t[2] + len(v)

    def add_scores(self, batch) -> None:
        for col in SCORES:
            if col == "clip_seconds":
                v = pc.subtract(batch.column("end_s"), batch.column("start_s"))
            elif col in batch.schema.names:
                v = batch.column(col)
            else:
                continue
            self.scores[col].append(v.drop_null().to_numpy(zero_copy_only=False).astype(float))


def load(out_dir: str) -> Audit:
    a, tally, gone = Audit(), Tally(), Counter()
    for b in manifest_batches(out_dir, "clips", [f.name for f in CLIPS if f.name not in SKIP]):
        status, stage, reason = (b.column(k).to_pylist() for k in ("status", "reject_stage", "reject_reason"))
        a.clips += b.num_rows
        gone.update(stage)
        a.reasons.update((st, r) for s, st, r in zip(status, stage, reason) if s in ("rejected", "failed"))
        accepted = pc.equal(b.column("status"), "accepted")
        a.accepted += pc.sum(accepted).as_py() or 0
        kept = b.filter(accepted)
        a.languages.update(x or "unknown" for x in kept.column("language").to_pylist())
        a.hours_out += (pc.sum(pc.subtract(kept.column("end_s"), kept.column("start_s"))).as_py() or 0.0) / 3600
        tally.add_seconds(b)
        tally.add_scores(b)
        for i, key in enumerate(outcome(s, st, r, True) for s, st, r in zip(status, stage, reason)):
            a.outcomes[key] += 1
            if a.outcomes[key] <= SHEET:
                a.sheets.setdefault(key, []).append(b.slice(i, 1).to_pylist()[0])
    wanted = {r["source_id"] for rows in a.sheets.values() for r in rows}
    for b in manifest_batches(out_dir, "sources", [f.name for f in SOURCES if f.name not in SKIP]):
        status, stage, reason = (b.column(k).to_pylist() for k in ("status", "reject_stage", "reject_reason"))
        a.sources += b.num_rows
        a.source_status.update(status)
        a.reasons.update((st, r) for s, st, r in zip(status, stage, reason) if s in ("rejected", "failed"))
        a.hours_in += (pc.sum(b.column("duration_s")).as_py() or 0.0) / 3600
        tally.add_seconds(b)
        for i, (sid, s, st, r) in enumerate(zip(b.column("source_id").to_pylist(), status, stage, reason)):
            key = outcome(s, st, r, False)
            if sid in wanted:
                a.sheet_sources[sid] = b.slice(i, 1).to_pylist()[0]
            if s == "rejected":  # sources rejected whole (at the probe, say) have no clip rows
                a.outcomes[key] += 1
                if a.outcomes[key] <= SHEET:
                    a.sheets.setdefault(key, []).append(b.slice(i, 1).to_pylist()[0])
    alive = a.clips
    a.funnel.append(("candidates", alive))
    for stage in CLIP_STAGES:
        alive -= gone[stage]
        a.funnel.append((stage, alive))
    a.distributions = {k: np.concatenate(v) if v else np.zeros(0) for k, v in tally.scores.items()}
    a.stage_seconds = {k: (t[0] / t[2], float(t[1]), t[2]) for k, t in tally.seconds.items()}
    return a


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = lambda row: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def text_report(a: Audit) -> str:
    parts = [
        f"sources {a.sources} ({', '.join(f'{k} {v}' for k, v in sorted(a.source_status.items()))}); "
        f"clips {a.clips} (accepted {a.accepted}); hours in {a.hours_in:.3f}, out {a.hours_out:.3f}",
        "funnel\n" + table(["after", "clips", "share"], [[s, n, n / max(1, a.funnel[0][1])] for s, n in a.funnel]),
        "rejections\n" + table(["stage", "reason", "count"],
                               [[s, r, n] for (s, r), n in sorted(a.reasons.items(), key=lambda x: -x[1])]),
        "languages (accepted clips)\n" + table(["language", "clips"], [[k, v] for k, v in a.languages.most_common()]),
        "scores (all measured clips)\n" + table(
            ["score", "n", "min", "p10", "median", "p90", "max"],
            [[SCORES[k], len(v), *np.percentile(v, [0, 10, 50, 90, 100]).tolist()] for k, v in a.distributions.items()
             if len(v)]),
        "slowest stages (seconds per source or clip)\n" + table(
            ["stage", "mean", "max", "n"],
            [[s, m, x, n] for s, (m, x, n) in sorted(a.stage_seconds.items(), key=lambda kv: -kv[1][0])]),
    ]
    if "vae" in a.stage_seconds and a.stage_seconds.get("encode", (0,))[0]:
        # the VAE's share of the encode workers' time: the rest is decoding, audio, text and writing
        (vae, _, n), (enc, _, m) = a.stage_seconds["vae"], a.stage_seconds["encode"]
        parts.append(f"encode workers: the VAE busy {vae * n / (enc * m):.0%} of the encode stage's time")
    return "\n\n".join(parts)
