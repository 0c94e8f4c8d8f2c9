"""What a run accepted and rejected, and where its outputs are."""
from __future__ import annotations

import os
from collections import Counter

from storage.parts import read_manifest


def summary_counts(out_dir: str) -> dict:
    s, c = read_manifest(out_dir, "sources"), read_manifest(out_dir, "clips")
    accepted = [r for r in c if r["status"] == "accepted"]
    return {
        "sources": len(s),
        "sources_by_status": dict(Counter(r["status"] for r in s)),
        "source_rejections": dict(Counter(f"{r['reject_stage']}:{r['reject_reason']}" for r in s
                                          if r["status"] != "done")),
        "clips": len(c),
        "clips_accepted": len(accepted),
        "clip_rejections": dict(Counter(f"{r['reject_stage']}:{r['reject_reason']}" for r in c
                                        if r["status"] == "rejected")),
        "hours_in": sum(r["duration_s"] or 0.0 for r in s) / 3600,
        "hours_out": sum(r["end_s"] - r["start_s"] for r in accepted) / 3600,
        "shards": sorted({r["shard"] for r in accepted}),
    }


def summary_text(out_dir: str, k: dict) -> str:
    lines = [f"sources: {k['sources']}  " + "  ".join(f"{s}={n}" for s, n in sorted(k["sources_by_status"].items())),
             f"clips:   {k['clips']}  accepted={k['clips_accepted']}  rejected={k['clips'] - k['clips_accepted']}",
             f"hours:   in {k['hours_in']:.4f}  out {k['hours_out']:.4f}"]
    if k["source_rejections"]:
        lines.append("sources not cut into clips:")
        lines += [f"  {n:5d}  {why}" for why, n in sorted(k["source_rejections"].items(), key=lambda x: -x[1])]
    if k["clip_rejections"]:
        lines.append("clips rejected:")
        lines += [f"  {n:5d}  {why}" for why, n in sorted(k["clip_rejections"].items(), key=lambda x: -x[1])]
    lines += [f"manifests: {os.path.join(out_dir, 'manifests')}/{{sources,clips}}.parquet",
              f"shards:    {len(k['shards'])} under {os.path.join(out_dir, 'shards')}"]
    return "\n".join(lines)
