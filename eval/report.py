"""What an evaluation leaves: `scores.parquet` (one row per clip, a fixed schema) and `report.html` (the
summary per metric, distributions, and every clip with a frame of it)."""
from __future__ import annotations

import html
import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

STR, F64, I32 = pa.string(), pa.float64(), pa.int32()
SCHEMA = pa.schema([
    ("name", STR), ("kind", STR), ("error", STR), ("duration_s", F64),
    ("sync_scorer", STR), ("offset", I32), ("syncnet_offset", I32), ("sync_c", F64), ("sync_d", F64),
    ("motion_offset", I32), ("motion_conf", F64), ("asd_speaking", F64), ("face_coverage", F64), ("faces_max", I32),
    ("transcript", STR), ("language", STR), ("reference_text", STR), ("wer", F64),
    ("speaker_sim", F64), ("speaker_model", STR),
    ("loudness_db", F64), ("peak_db", F64), ("silence_share", F64),
])
# metric -> (what it is, its scale); in the order the summary shows them
METRICS = {
    "sync_c": ("Sync-C (SyncNet confidence)", "higher is better; UniTalking 4.87, Ovi 6.56"),
    "sync_d": ("Sync-D (SyncNet distance)", "lower is better; UniTalking 8.05"),
    "motion_conf": ("mouth-motion confidence", "0-2, offline scorer; recorded in-sync speakers 0.21-0.64"),
    "asd_speaking": ("Light-ASD speaking share", "0-1 of frames"),
    "wer": ("WER", "after Whisper's English normaliser; UniTalking 0.038 (Seed-TTS test-en)"),
    "speaker_sim": ("speaker similarity (GE2E)", "cosine 0-1; not the WavLM-TDNN scale papers report"),
    "loudness_db": ("mean volume", "dBFS"),
    "silence_share": ("silence share", "of 20 ms windows, 35 dB under the loudest"),
}


def write_table(rows: list[dict], path: str) -> pa.Table:
    table = pa.Table.from_pylist([{k: r.get(k) for k in SCHEMA.names} for r in rows], schema=SCHEMA)
    pq.write_table(table, path)
    return table


def summary(rows: list[dict]) -> dict[str, dict]:
    """Per metric: n, mean, median, min, max and the worst clip (by the metric's direction)."""
    out = {}
    for key in METRICS:
        vals = [(r[key], r["name"]) for r in rows if r.get(key) is not None and not math.isnan(r[key])]
        if not vals:
            continue
        v = np.array([x for x, _ in vals])
        worst = (max if key in ("sync_d", "wer", "silence_share") else min)(vals)
        out[key] = {"n": len(v), "mean": float(v.mean()), "median": float(np.median(v)), "min": float(v.min()),
                    "max": float(v.max()), "worst": worst[1]}
    return out


def item_thumb(media, seconds: float) -> str | None:
    import base64

    import cv2

    from manifests.report import frame_at

    frame = frame_at(media, seconds)
    if frame is None:
        return None
    ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(frame[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 80])
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else None


def html_page(rows: list[dict], media: dict[str, object], notes: dict[str, str], title: str) -> str:
    from manifests.report import STYLE, svg_histogram

    stats = summary(rows)
    head = "<tr><th>metric</th><th>n</th><th>mean</th><th>median</th><th>min</th><th>max</th><th>worst</th><th>scale</th></tr>"
    lines = "".join(f"<tr><td>{html.escape(METRICS[k][0])}</td><td>{s['n']}</td><td>{s['mean']:.4g}</td>"
                    f"<td>{s['median']:.4g}</td><td>{s['min']:.4g}</td><td>{s['max']:.4g}</td>"
                    f"<td>{html.escape(s['worst'])}</td><td>{html.escape(METRICS[k][1])}</td></tr>"
                    for k, s in stats.items())
    hists = "".join(svg_histogram(np.array([r[k] for r in rows if r.get(k) is not None]), METRICS[k][0])
                    for k in stats)
    offsets = [r["offset"] for r in rows if r.get("offset") is not None]
    if offsets:
        hists += svg_histogram(np.array(offsets, float), "sync offset (frames at 25 fps)", bins=31)
    cols = ["offset", "sync_c", "sync_d", "motion_conf", "asd_speaking", "wer", "speaker_sim", "loudness_db",
            "silence_share", "transcript", "error"]
    cols = [c for c in cols if any(r.get(c) is not None for r in rows)]  # no column of blanks (no SyncNet here)
    body = []
    for r in rows:
        uri = item_thumb(media[r["name"]], (r.get("duration_s") or 0) / 2) if r["kind"] == "video" else None
        img = f'<img class="thumb" width="160" src="{uri}">' if uri else ""
        cells = "".join(f"<td>{html.escape('' if r.get(c) is None else str(r[c]))}</td>" for c in cols)
        body.append(f"<tr><td>{img}</td><td>{html.escape(r['name'])}</td>{cells}</tr>")
    notes_html = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in notes.items())
    script = ("window.addEventListener('load',()=>{const t=[...document.querySelectorAll('img.thumb')];"
              "document.body.dataset.thumbsLoaded=t.filter(i=>i.complete&&i.naturalWidth>0).length;});")
    errors = sum(r.get("error") is not None for r in rows)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>
<p>{len(rows)} clips, {errors} with an error.</p><ul id="notes">{notes_html}</ul>
<h2>Summary</h2><table id="summary">{head}{lines}</table>
<h2>Distributions</h2><div class="plots">{hists}</div>
<h2>Clips</h2><table id="clips"><tr><th></th><th>name</th>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{''.join(body)}</table>
<script>{script}</script></body></html>"""


def write_report(rows: list[dict], media: dict[str, object], notes: dict[str, str], out_dir: str,
                 title: str = "Evaluation") -> dict:
    os.makedirs(out_dir, exist_ok=True)
    write_table(rows, os.path.join(out_dir, "scores.parquet"))
    stats = summary(rows)
    with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
        json.dump({"metrics": stats, "notes": notes, "clips": len(rows)}, f, indent=1)
    with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
        f.write(html_page(rows, media, notes, title))
    return stats
