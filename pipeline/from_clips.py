"""`build_shards.py --from-clips`: re-encode latents from an earlier run's shards (for example with another
VAE) without cutting and filtering again. The earlier run's manifest rows are kept as they are; only the
latent columns, members and shard placement change."""
from __future__ import annotations

import os
import tarfile

import pyarrow.parquet as pq

from pipeline.source_worker import staging_path

CLIP_MEMBERS = ("mp4", "wav", "json")  # what a clip needs to be encoded again


def previous_results(old_out: str) -> list[dict]:
    """The earlier run's rows as scheduler results, one per source, in source order."""
    manifests = os.path.join(old_out, "manifests")
    if not os.path.isfile(os.path.join(manifests, "clips.parquet")):
        raise SystemExit(f"--from-clips: {manifests}/clips.parquet not found; point --input at a build_shards output")
    sources = pq.read_table(os.path.join(manifests, "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(manifests, "clips.parquet")).to_pylist()
    results = {s["source_id"]: {"source": s, "clips": []} for s in sources}
    for c in clips:
        results[c["source_id"]]["clips"].append(c)
    return list(results.values())


def restage(old_out: str, new_out: str, results: list[dict]) -> None:
    """Copy each source's clip members out of the old shards into a staging tar of the new run."""
    owner = {c["clip_id"]: r["source"]["source_id"] for r in results for c in r["clips"] if c["status"] == "accepted"}
    shards = sorted({c["shard"] for r in results for c in r["clips"] if c["status"] == "accepted" and c["shard"]})
    current, out = None, None
    try:
        for shard in shards:
            with tarfile.open(os.path.join(old_out, "shards", shard)) as tar:
                for member in tar:
                    key, ext = os.path.basename(member.name).split(".", 1)
                    if ext not in CLIP_MEMBERS or key not in owner:
                        continue
                    if owner[key] != current:  # the packer keeps a source's samples together
                        if out is not None:
                            out.close()
                            os.replace(staging_path(new_out, current) + ".tmp", staging_path(new_out, current))
                        current = owner[key]
                        os.makedirs(os.path.dirname(staging_path(new_out, current)), exist_ok=True)
                        out = tarfile.open(staging_path(new_out, current) + ".tmp", "w", format=tarfile.USTAR_FORMAT)
                    out.addfile(member, tar.extractfile(member))
    finally:
        if out is not None:
            out.close()
            os.replace(staging_path(new_out, current) + ".tmp", staging_path(new_out, current))
    for r in results:
        if r["source"]["source_id"] in set(owner.values()):
            r["staged"] = staging_path(new_out, r["source"]["source_id"])
