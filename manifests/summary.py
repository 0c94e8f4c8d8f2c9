"""What a run accepted and rejected, and where its outputs are."""
from __future__ import annotations

import os
from collections import Counter

import pyarrow.compute as pc

from storage.parts import manifest_batches


def summary_counts(out_dir: str) -> dict:
    """Counts over the manifests, read a batch of a few columns at a time."""
    k = {"sources": 0, "sources_by_status": Counter(), "source_rejections": Counter(), "clips": 0, "clips_accepted": 0,
         "clip_rejections": Counter(), "hours_in": 0.0, "hours_out": 0.0, "shards": set()}
    for b in manifest_batches(out_dir, "sources", ["status", "reject_stage", "reject_reason", "duration_s"]):
        status = b.column("status").to_pylist()
        k["sources"] += len(status)
        k["sources_by_status"].update(status)
        k["source_rejections"].update(f"{st}:{r}" for s, st, r in zip(status, b.column("reject_stage").to_pylist(),
                                                                       b.column("reject_reason").to_pylist()) if s != "done")
        k["hours_in"] += (pc.sum(b.column("duration_s")).as_py() or 0.0) / 3600
    for b in manifest_batches(out_dir, "clips", ["status", "reject_stage", "reject_reason", "start_s", "end_s", "shard"]):
        accepted = pc.equal(b.column("status"), "accepted")
        k["clips"] += b.num_rows
        k["clips_accepted"] += pc.sum(accepted).as_py() or 0
        k["clip_rejections"].update(f"{st}:{r}" for s, st, r in zip(
            b.column("status").to_pylist(), b.column("reject_stage").to_pylist(), b.column("reject_reason").to_pylist())
            if s == "rejected")
        kept = b.filter(accepted)
        k["hours_out"] += (pc.sum(pc.subtract(kept.column("end_s"), kept.column("start_s"))).as_py() or 0.0) / 3600
        k["shards"].update(kept.column("shard").to_pylist())
    return {**k, "sources_by_status": dict(k["sources_by_status"]), "source_rejections": dict(k["source_rejections"]),
            "clip_rejections": dict(k["clip_rejections"]), "shards": sorted(k["shards"])}


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
