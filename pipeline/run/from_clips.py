"""`build_shards.py --from-clips`: re-encode latents from an earlier run's shards (for example with another
VAE) without cutting and filtering again. The earlier run's manifest rows are kept as they are; only the
latent columns, members and shard placement change."""
from __future__ import annotations

import json
import os
import tarfile
import tempfile

from records.messages import Finished, TaskDone
from records.sample import META, MP4, WAV
from storage.layout import manifest_file, shard_file, staged_rows, staged_samples, task_name
from storage.parts import read_manifest
from storage.store import Store

CLIP_MEMBERS = (MP4, WAV, META)  # what a clip needs to be encoded again


def previous_results(old_out: str) -> list[dict]:
    """The earlier run's rows as scheduler results, one per source, in source order."""
    if not Store(old_out).exists(manifest_file("clips")):
        raise SystemExit(f"--from-clips: {old_out}/manifests/clips.parquet not found; point --input at a "
                         "build_shards output")
    sources, clips = read_manifest(old_out, "sources"), read_manifest(old_out, "clips")
    results = {s["source_id"]: {"source": s, "clips": []} for s in sources}
    for c in clips:
        results[c["source_id"]]["clips"].append(c)
    return list(results.values())


def restage(old_out: str, cfg, results: list[dict], order) -> tuple[list[TaskDone], list[dict]]:
    """Stage the sources with accepted clips as encode tasks of `cfg.group_sources` sources (their rows, and
    their clip members copied out of the old shards), numbered by `order`; (those tasks, the results with
    nothing to encode)."""
    old, new = Store(old_out), Store(cfg.output)
    has_samples = lambda r: any(c["status"] == "accepted" and c.get("shard") for c in r["clips"])
    work = sorted((r for r in results if has_samples(r)), key=lambda r: min(c["shard"] for c in r["clips"] if c.get("shard")))
    tasks = []
    for i in range(0, len(work), cfg.group_sources):
        group, o = work[i:i + cfg.group_sources], order()
        name = task_name(*o)
        wanted = {c["clip_id"] for r in group for c in r["clips"] if c["status"] == "accepted"}
        shards = sorted({c["shard"] for r in group for c in r["clips"] if c["clip_id"] in wanted and c.get("shard")})
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "staged.tar")
            with tarfile.open(local, "w", format=tarfile.USTAR_FORMAT) as out:
                for shard in shards:
                    with old.open_stream(shard_file(shard)) as f, tarfile.open(fileobj=f, mode="r|") as tar:
                        for member in tar:
                            key, ext = os.path.basename(member.name).split(".", 1)
                            if ext in CLIP_MEMBERS and key in wanted:
                                out.addfile(member, tar.extractfile(member))
            new.upload(local, staged_samples(name))
        new.write_bytes(staged_rows(name), json.dumps(group).encode())
        tasks.append(TaskDone(name, o, [Finished.of(r["source"], None) for r in group], staged=True))
    return tasks, [r for r in results if not has_samples(r)]
