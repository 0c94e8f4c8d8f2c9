"""Every check's measurement on every clip of labelled real footage, with no check stopping the others.

The pipeline stops a clip at its first rejection, so its manifests cannot say what a later filter would
have read. This runs the pipeline's own stages in this process on each labelled file and, after each clip
stage, notes the rejection and lets the clip go on to the next stage. It also keeps the raw evidence the
lip-sync candidates are built from (mouth opening per frame, the mouth region's darkness, Light-ASD's
per-shift scores, the source's audio), so `benchmarks/real_footage.py` can choose thresholds by speaker
without running the pipeline again.

    python benchmarks/footage_measure.py ../shared/real_footage OUT --clip-frames 49 [--jobs 2]

Writes OUT/<collection>/<file>.json (rows and rejections) and .npz (arrays; no pickle).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.footage_labels import labelled_files  # noqa: E402

WORKER = {}


def setup_worker(clip_frames: int, models_dir: str) -> None:
    import torch

    from pipeline.config import parse_config
    from pipeline.run.source_worker import SourceProcessor

    torch.set_num_threads(1)
    here = tempfile.mkdtemp(prefix="footage-measure-")
    os.makedirs(os.path.join(here, "in"))
    cfg = parse_config(["--input", os.path.join(here, "in"), "--output", os.path.join(here, "out"),
                        "--clip-frames", str(clip_frames), "--latents", "off", "--sync-scorer", "motion_asd",
                        "--models-dir", models_dir], "measure")
    proc = SourceProcessor(cfg)
    proc.setup()
    WORKER.update(cfg=cfg, proc=proc)


def run_all_stages(proc, clips: list) -> tuple[list[list], list[bool]]:
    """Each clip stage on every clip whose earlier stages left what it reads; rejections are noted and
    undone. Returns each clip's rejections [stage, reason, detail] and whether it could be measured to the end."""
    notes, whole = [[] for _ in clips], [True] * len(clips)
    for stage in proc.clip_stages:
        live = [i for i in range(len(clips)) if whole[i]]
        try:  # together first: the sync stage reads a source's clips together
            stage.process([clips[i] for i in live])
        except Exception:
            for i in live:
                try:
                    stage.process([clips[i]])
                except Exception as e:  # a stage that needs what an earlier rejection left out
                    notes[i].append([stage.name, "unmeasured", f"{type(e).__name__}: {e}"])
                    whole[i] = False
        for i in live:
            c = clips[i]
            if whole[i] and c.get("status") == "rejected":
                notes[i].append([stage.name, c["reject_reason"], c["reject_detail"]])
                c.update(status="candidate", reject_stage=None, reject_reason=None, reject_detail=None)
                whole[i] = c.scratch.track_boxes is not None or stage.name != "face"
    return notes, whole


def evidence(c, cfg, proc) -> dict[str, np.ndarray]:
    """The sync stage's own evidence of one clip, unpooled, and the parts it is summed from."""
    from pipeline.stages.sync import SyncStage, speech_mask

    sync = next(s for s in proc.clip_stages if isinstance(s, SyncStage))
    m = sync.offline_evidence(c, cfg.sync_vshift)
    share = sync.asd.speaking_share(*m["embeds"], speech_mask(c, len(m["embeds"][0]), 25.0))
    return {"curve": m["curve"], "opening": m["opening"], "dark": m["darkness"], "asd": m["asd"],
            "asd_share": np.array([share])}


def measure_file(job: tuple[str, str, str, dict]) -> str:
    from pipeline.run.source_worker import new_source_record
    from pipeline.stages.decode import cleanup

    path, rel, out_base, label = job
    cfg, proc = WORKER["cfg"], WORKER["proc"]
    src = new_source_record(path, rel)
    arrays, rows = {}, []
    try:
        for stage in proc.source_stages:
            stage([src])
        clips = src.scratch.clips if src.get("status") != "rejected" else []
        notes, whole = run_all_stages(proc, clips)
        for i, c in enumerate(clips):
            if whole[i] and c.scratch.track_boxes is not None:
                for k, v in evidence(c, cfg, proc).items():
                    arrays[f"{k}_{i}"] = np.asarray(v, np.float32)
            row = {k: v for k, v in c.items() if isinstance(v, (int, float, str, list, bool, type(None)))}
            rows.append({**row, "rejections": notes[i]})
        if src.scratch.pcm is not None:
            arrays["pcm"] = src.scratch.pcm.astype(np.float32)
    finally:
        cleanup(src)
    srow = {k: v for k, v in src.items() if isinstance(v, (int, float, str, list, bool, type(None)))}
    with open(out_base + ".json", "w", encoding="utf-8") as f:
        json.dump({"file": rel, "label": label, "source": srow, "clips": rows,
                   "speech": src.scratch.speech}, f, default=float)
    np.savez(out_base + ".npz", **arrays)
    return f"{rel}: {len(rows)} clips"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("root", help="../shared/real_footage (its second/ collection is read too)")
    p.add_argument("out")
    p.add_argument("--clip-frames", type=int, default=49)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--models-dir", default=os.path.join(REPO, "models"))
    a = p.parse_args()
    jobs = []
    for f in labelled_files(a.root):
        base = os.path.join(a.out, f.collection, f.name)
        os.makedirs(os.path.dirname(base), exist_ok=True)
        if not os.path.exists(base + ".npz"):
            jobs.append((f.path, f.name, base, f.label))
    from tqdm import tqdm

    with ProcessPoolExecutor(a.jobs, initializer=setup_worker, initargs=(a.clip_frames, a.models_dir)) as pool:
        for line in tqdm(pool.map(measure_file, jobs), total=len(jobs), desc=f"{a.clip_frames}-frame clips"):
            tqdm.write(line)


if __name__ == "__main__":
    main()
