"""`build_shards.py --from-clips`: re-encode latents from an earlier run's shards (for example with another
VAE) without cutting and filtering again. The earlier run's manifest rows are kept as they are; only the
latent columns, members and shard placement change."""
from __future__ import annotations

import os
import tarfile
import tempfile

from pipeline.run.source_worker import staging_path
from records.sample import META, MP4, WAV
from storage.parts import read_manifest
from storage.store import Store

CLIP_MEMBERS = (MP4, WAV, META)  # what a clip needs to be encoded again


def previous_results(old_out: str) -> list[dict]:
    """The earlier run's rows as scheduler results, one per source, in source order."""
    if not Store(old_out).exists("manifests/clips.parquet"):
        raise SystemExit(f"--from-clips: {old_out}/manifests/clips.parquet not found; point --input at a "
                         "build_shards output")
    sources, clips = read_manifest(old_out, "sources"), read_manifest(old_out, "clips")
    results = {s["source_id"]: {"source": s, "clips": []} for s in sources}
    for c in clips:
        results[c["source_id"]]["clips"].append(c)
    return list(results.values())


def restage(old_out: str, new_out: str, results: list[dict]) -> None:
    """Copy each source's clip members out of the old shards into a staging tar of the new run."""
    old, new = Store(old_out), Store(new_out)
    owner = {c["clip_id"]: r["source"]["source_id"] for r in results for c in r["clips"] if c["status"] == "accepted"}
    shards = sorted({c["shard"] for r in results for c in r["clips"] if c["status"] == "accepted" and c["shard"]})
    with tempfile.TemporaryDirectory() as tmp:
        current, out = None, None

        def close() -> None:
            if out is not None:
                out.close()
                new.upload(os.path.join(tmp, "staged.tar"), staging_path(current))

        for shard in shards:
            with old.open(f"shards/{shard}") as f, tarfile.open(fileobj=f) as tar:
                for member in tar:
                    key, ext = os.path.basename(member.name).split(".", 1)
                    if ext not in CLIP_MEMBERS or key not in owner:
                        continue
                    if owner[key] != current:  # the packer keeps a source's samples together
                        close()
                        current = owner[key]
                        out = tarfile.open(os.path.join(tmp, "staged.tar"), "w", format=tarfile.USTAR_FORMAT)
                    out.addfile(member, tar.extractfile(member))
        close()
    staged = set(owner.values())
    for r in results:
        if r["source"]["source_id"] in staged:
            r["staged"] = staging_path(r["source"]["source_id"])
