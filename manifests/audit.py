"""`python -m manifests audit OUT [--html FILE]`: what a run took in and gave out, and why.

Counts, hours in and out, the acceptance funnel per stage and per reason, languages, the distribution of
every score, and the slowest stages, as text tables; `--html` also writes a self-contained report with
plots and contact sheets (report.py)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from storage.parts import read_manifest

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


@dataclass
class Audit:
    sources: list[dict]
    clips: list[dict]
    funnel: list[tuple[str, int]] = field(default_factory=list)  # (after stage, clips still in)
    reasons: Counter = field(default_factory=Counter)  # (stage, reason) -> clips or sources
    languages: Counter = field(default_factory=Counter)
    distributions: dict[str, np.ndarray] = field(default_factory=dict)
    stage_seconds: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # mean, max, count

    @property
    def hours_in(self) -> float:
        return sum(s["duration_s"] or 0.0 for s in self.sources) / 3600

    @property
    def hours_out(self) -> float:
        return sum(c["end_s"] - c["start_s"] for c in self.clips if c["status"] == "accepted") / 3600


def load(out_dir: str) -> Audit:
    a = Audit(read_manifest(out_dir, "sources"), read_manifest(out_dir, "clips"))
    alive = len(a.clips)
    a.funnel.append(("candidates", alive))
    for stage in CLIP_STAGES:
        alive -= sum(c["reject_stage"] == stage for c in a.clips)
        a.funnel.append((stage, alive))
    a.reasons = Counter((r["reject_stage"], r["reject_reason"]) for r in a.sources + a.clips
                        if r["status"] in ("rejected", "failed"))
    a.languages = Counter(c["language"] or "unknown" for c in a.clips if c["status"] == "accepted")
    for col in SCORES:
        values = [c["end_s"] - c["start_s"] if col == "clip_seconds" else c.get(col) for c in a.clips]
        a.distributions[col] = np.array([v for v in values if v is not None], dtype=float)
    for rows in (a.sources, a.clips):
        for col in {k for r in rows for k in r if k.startswith("seconds_") and k != "seconds_total"}:
            v = np.array([r[col] for r in rows if r.get(col) is not None], dtype=float)
            if len(v):
                a.stage_seconds[col[len("seconds_"):]] = (float(v.mean()), float(v.max()), len(v))
    return a


def table(headers: list[str], rows: list[list]) -> str:
    cells = [[str(h) for h in headers]] + [[f"{v:.3g}" if isinstance(v, float) else str(v) for v in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = lambda row: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(row, widths)))
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def text_report(a: Audit) -> str:
    status = Counter(s["status"] for s in a.sources)
    accepted = sum(c["status"] == "accepted" for c in a.clips)
    parts = [
        f"sources {len(a.sources)} ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))}); "
        f"clips {len(a.clips)} (accepted {accepted}); hours in {a.hours_in:.3f}, out {a.hours_out:.3f}",
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
    return "\n\n".join(parts)
