"""The audit as one self-contained HTML file: funnel and score plots (inline SVG), contact sheets of accepted
and rejected clips with the face box drawn (inline JPEG), grouped by reason, each linking to its row."""
from __future__ import annotations

import base64
import html
import os
import subprocess
import tarfile

import cv2
import numpy as np

from manifests.audit import SCORES, Audit
from storage.layout import shard_file
from storage.store import Store

THUMB_WIDTH = 192
STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222} h2{margin-top:32px}
table{border-collapse:collapse} td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.sheet{display:flex;flex-wrap:wrap;gap:8px} .sheet figure{margin:0;width:192px;font-size:11px}
.sheet img{width:192px;border:1px solid #999} .plots{display:flex;flex-wrap:wrap;gap:16px}
tr:target{background:#ffe9a8}"""


def frame_at(video: bytes | str, seconds: float) -> np.ndarray | None:
    """One RGB frame of an mp4 (bytes) or a file path, at a time, THUMB_WIDTH wide."""
    src = ["-i", "pipe:0"] if isinstance(video, bytes) else ["-i", video]
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{max(0.0, seconds):.3f}", *src, "-frames:v", "1",
           "-vf", f"scale={THUMB_WIDTH}:-2", "-f", "image2pipe", "-vcodec", "png", "pipe:1"]
    proc = subprocess.run(cmd, input=video if isinstance(video, bytes) else None, capture_output=True)
    img = cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_COLOR) if proc.stdout else None
    return None if img is None else img[:, :, ::-1]


def thumbnail(out_dir: str, clip: dict, source: dict) -> str | None:
    """data: URI of the clip's middle frame with its face box, from its shard or else its source video."""
    frame = None
    mp4 = next((m["name"] for m in clip.get("members") or [] if m["name"].endswith(".mp4")), None)
    if clip["status"] == "accepted" and clip["shard"] and mp4:
        with Store(out_dir).open(shard_file(clip['shard'])) as f, tarfile.open(fileobj=f) as tar:
            frame = frame_at(tar.extractfile(mp4).read(), (clip["end_s"] - clip["start_s"]) / 2)
    if frame is None:  # rejected clips have no mp4 of their own
        frame = source_frame(source, (clip["start_s"] + clip["end_s"]) / 2)
    if frame is None:
        return None
    frame = np.ascontiguousarray(frame)
    if clip.get("face_box"):
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = clip["face_box"]
        cv2.rectangle(frame, (int(x0 * w), int(y0 * h)), (int(x1 * w), int(y1 * h)), (60, 220, 60), 2)
    return jpeg_uri(frame)


def jpeg_uri(frame: np.ndarray | None) -> str | None:
    """data: URI of an RGB frame as a JPEG."""
    ok, jpg = cv2.imencode(".jpg", frame[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80]) if frame is not None else (False, None)
    return "data:image/jpeg;base64," + base64.b64encode(jpg.tobytes()).decode() if ok else None


def svg_bars(items: list[tuple[str, float]], width: int = 520, unit: str = "") -> str:
    top = max((v for _, v in items), default=1) or 1
    rows = []
    for i, (label, v) in enumerate(items):
        w = int((width - 240) * v / top)  # room for the value label after the longest bar
        rows.append(f'<text x="0" y="{i * 22 + 15}">{html.escape(label)}</text>'
                    f'<rect x="170" y="{i * 22 + 3}" width="{w}" height="16" fill="#4a7fd4"/>'
                    f'<text x="{175 + w}" y="{i * 22 + 15}">{v:g}{unit}</text>')
    return f'<svg width="{width}" height="{len(items) * 22 + 4}" font-size="12">{"".join(rows)}</svg>'


def svg_histogram(values: np.ndarray, label: str, bins: int = 20) -> str:
    counts, edges = np.histogram(values, bins=bins)
    top, w, h = max(counts.max(), 1), 300, 120
    bars = "".join(f'<rect x="{i * w / bins:.1f}" y="{h - c * h / top:.1f}" width="{w / bins - 1:.1f}" '
                   f'height="{c * h / top:.1f}" fill="#d4874a"/>' for i, c in enumerate(counts))
    axis = f'<text x="0" y="{h + 14}">{edges[0]:.3g}</text><text x="{w - 40}" y="{h + 14}">{edges[-1]:.3g}</text>'
    return (f'<figure><svg width="{w}" height="{h + 18}" font-size="11">{bars}{axis}</svg>'
            f'<figcaption>{html.escape(label)} (n={len(values)})</figcaption></figure>')


def source_frame(source: dict, seconds: float) -> np.ndarray | None:
    """A frame of the source itself, where it is a local file."""
    path = source.get("source_uri")
    return frame_at(path, seconds) if path and os.path.exists(path) else None


def source_thumbnail(source: dict) -> str | None:
    """data: URI of the middle frame of a source rejected before it had clips."""
    return jpeg_uri(source_frame(source, (source.get("duration_s") or 0.0) / 2)) if source.get("has_video") else None


def figure(uri: str | None, caption: str, anchor: str) -> str:
    img = f'<img class="thumb" alt="{caption}" src="{uri}">' if uri else "<div>(no frame)</div>"
    return f'<figure><a href="#{anchor}">{img}</a><figcaption>{caption}</figcaption></figure>'


def contact_sheets(a: Audit, out_dir: str) -> str:
    """Accepted clips, then rejected clips and sources, one sheet per stage and reason."""
    parts = []
    for key in sorted(a.sheets, key=lambda k: (k != "accepted", k)):
        figures = []
        for r in a.sheets[key]:
            if "clip_id" in r:
                caption = html.escape(f"{r['source_path']} {r['start_s']:.1f}-{r['end_s']:.1f}s")
                figures.append(figure(thumbnail(out_dir, r, a.sheet_sources.get(r["source_id"], {})), caption,
                                      f"clip-{r['clip_id']}"))
            else:
                caption = html.escape(f"{r['source_path']}: {r.get('reject_detail') or ''}")
                figures.append(figure(source_thumbnail(r), caption, "funnel"))
        parts.append(f"<h3>{html.escape(key)} ({a.outcomes[key]})</h3><div class=\"sheet\">{''.join(figures)}</div>")
    return "".join(parts)


def rows_table(a: Audit) -> str:
    """The rows of the clips on the contact sheets (the manifest holds every row)."""
    cols = ["source_path", "start_s", "end_s", "status", "reject_stage", "reject_reason", "reject_detail",
            "face_width_px", "sync_scorer", "sync_offset_frames", "syncnet_conf", "motion_conf",
            "asd_speaking", "loudness_db", "transcript", "shard"]
    clips = [r for key in sorted(a.sheets, key=lambda k: (k != "accepted", k)) for r in a.sheets[key] if "clip_id" in r]
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join(f'<tr id="clip-{c["clip_id"]}">' + "".join(f"<td>{html.escape(str(c.get(k) if c.get(k) is not None else ''))}</td>"
                                                               for k in cols) + "</tr>" for c in clips)
    return f"<p>{len(clips)} of {a.clips} clip rows: those on the contact sheets.</p><table><tr>{head}</tr>{body}</table>"


def html_report(a: Audit, out_dir: str) -> str:
    funnel = svg_bars([(s, float(n)) for s, n in a.funnel])
    reasons = svg_bars([(f"{s}: {r}", float(n)) for (s, r), n in a.reasons.most_common()])
    hists = "".join(svg_histogram(v, SCORES[k]) for k, v in a.distributions.items() if len(v))
    slow = svg_bars([(s, round(m, 3)) for s, (m, _, _) in sorted(a.stage_seconds.items(), key=lambda kv: -kv[1][0])], unit=" s")
    langs = ", ".join(f"{html.escape(k)}: {v}" for k, v in a.languages.most_common()) or "none"
    script = ("window.addEventListener('load',()=>{const t=[...document.querySelectorAll('img.thumb')];"
              "document.body.dataset.thumbsLoaded=t.filter(i=>i.complete&&i.naturalWidth>0).length;});")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Pipeline audit</title>
<style>{STYLE}</style></head><body>
<h1>Pipeline audit: {html.escape(out_dir)}</h1>
<p>{a.sources} sources, {a.hours_in:.3f} h in; {a.clips} candidate clips, {a.accepted} accepted, {a.hours_out:.3f} h out.
Languages: {langs}.</p>
<h2>Funnel</h2><div id="funnel">{funnel}</div>
<h2>Rejections by stage and reason</h2>{reasons}
<h2>Scores</h2><div class="plots">{hists}</div>
<h2>Slowest stages (mean seconds)</h2>{slow}
<h2>Contact sheets</h2>{contact_sheets(a, out_dir)}
<h2>Clip rows</h2>{rows_table(a)}
<script>{script}</script></body></html>"""
