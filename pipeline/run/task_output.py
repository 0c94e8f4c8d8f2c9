"""What a worker writes when it has finished a task: its sources' samples as shards and their rows as the
manifest parts beside them, straight to the output, so that no sample byte and no row passes through the
driver, which hears only a line per source (records/messages.py).

Per bucket, whole sources go into shards of up to the target size; the sources that left no sample go to
a part of the `unsharded` bucket. Each shard is written under a temporary name and renamed, and only then
gets its part: a part present means its shard is complete. The names come from the task's, so a task tried
again after its worker died writes the same files again, and no clip lands in two shards."""
from __future__ import annotations

import os

from pipeline import scratch
from records.messages import Finished
from storage.layout import UNSHARDED, part_stem, shard_column, shard_file
from storage.parts import write_part
from storage.samples import concatenate
from storage.store import Store


def shard_groups(results: list[dict], sizes: dict[str, int], target: int) -> list[list[dict]]:
    """Consecutive whole sources, a group closing once it holds `target` bytes of samples."""
    groups, held = [[]], 0
    for r in results:
        if groups[-1] and held >= target:
            groups.append([])
            held = 0
        groups[-1].append(r)
        held += sizes[r["source"]["source_id"]]
    return [g for g in groups if g]


def write_task(store: Store, task: str, order: tuple[int, int], results: list[dict], sample_tars: dict[str, str],
               buckets: dict[str, str], target_mb: float, scratch_dir: str | None = None) -> list[Finished]:
    """`results`: each source's {"source": row, "clips": rows}; `sample_tars`: local tar of each source with
    samples; `buckets`: the bucket of each of those. Returns the sources' ledger lines, in task order."""
    by_bucket: dict[str, list[dict]] = {}
    for r in results:
        sid = r["source"]["source_id"]
        by_bucket.setdefault(buckets.get(sid, UNSHARDED) if sid in sample_tars else UNSHARDED, []).append(r)
    sizes = {sid: os.path.getsize(p) for sid, p in sample_tars.items()}
    parts: dict[str, str] = {}
    for bucket, members in sorted(by_bucket.items()):
        if bucket == UNSHARDED:
            for r in members:
                r["source"]["shard"] = None
                for c in r["clips"]:
                    c["shard"] = None
            write_rows(store, part_stem(UNSHARDED, task), members, order, parts)
            continue
        for k, group in enumerate(shard_groups(members, sizes, int(target_mb * 2 ** 20))):
            name = f"{task}-{k:03d}"
            write_shard(store, bucket, name, group, sample_tars, scratch_dir)
            write_rows(store, part_stem(bucket, name), group, order, parts)
    return [Finished.of(r["source"], parts[r["source"]["source_id"]]) for r in results]


def write_shard(store: Store, bucket: str, name: str, group: list[dict], sample_tars: dict[str, str],
                scratch_dir: str | None) -> None:
    shard = shard_column(bucket, name)
    local = scratch.make_file("shard", ".tar", scratch_dir)
    try:
        concatenate(local, [sample_tars[r["source"]["source_id"]] for r in group])
        for r in group:
            r["source"]["shard"] = shard
            for c in r["clips"]:
                c["shard"] = shard if c["status"] == "accepted" else None
        store.upload(local, shard_file(shard))
    finally:
        os.remove(local)


def write_rows(store: Store, stem: str, group: list[dict], order: tuple[int, int], parts: dict[str, str]) -> None:
    rel = stem.split("/", 1)[1]  # the `part` column: bucket/name
    for r in group:
        r["source"]["part"] = rel
        parts[r["source"]["source_id"]] = stem
    write_part(store, stem, [r["source"] for r in group], [c for r in group for c in r["clips"]], order)
