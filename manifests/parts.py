"""Manifest parts (one pair per shard, written beside it) and the merged manifests built from them.

A part is written only after its shard is complete and renamed, so the parts on disk are exactly the
finished work: a rerun skips their sources, and merging them gives the run's manifests."""
from __future__ import annotations

import glob
import os

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import CLIPS, SOURCES, to_table

PART_SOURCES, PART_CLIPS = ".sources.parquet", ".clips.parquet"


def write_atomic(table: pa.Table, path: str) -> None:
    tmp = path + ".tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_part(shard_path_stem: str, sources: list[dict], clips: list[dict]) -> None:
    """Clips first, sources last: a part counts as present once its sources file exists."""
    write_atomic(to_table(clips, CLIPS), shard_path_stem + PART_CLIPS)
    write_atomic(to_table(sources, SOURCES), shard_path_stem + PART_SOURCES)


def part_stems(out_dir: str) -> list[str]:
    found = glob.glob(os.path.join(glob.escape(out_dir), "shards", "*", "*" + PART_SOURCES))
    # in the order they were written, so a source's last part (a retry after a failure) wins
    return [p[: -len(PART_SOURCES)] for p in sorted(found, key=lambda p: (os.path.getmtime(p), p))]


def read_parts(out_dir: str) -> tuple[pa.Table, pa.Table]:
    """All parts merged; a source written by several parts (a failed try, then a retry) keeps its last."""
    sources, clips, s_part, c_part = [], [], [], []
    for k, stem in enumerate(part_stems(out_dir)):
        sources.append(pq.read_table(stem + PART_SOURCES, schema=SOURCES))
        clips.append(pq.read_table(stem + PART_CLIPS, schema=CLIPS))
        s_part += [k] * len(sources[-1])
        c_part += [k] * len(clips[-1])
    s = pa.concat_tables(sources) if sources else SOURCES.empty_table()
    c = pa.concat_tables(clips) if clips else CLIPS.empty_table()
    last = dict(zip(s.column("source_id").to_pylist(), s_part))  # later parts overwrite earlier ones
    keep_s = [last[sid] == k for sid, k in zip(s.column("source_id").to_pylist(), s_part)]
    keep_c = [last.get(sid) == k for sid, k in zip(c.column("source_id").to_pylist(), c_part)]
    return s.filter(pa.array(keep_s, pa.bool_())), c.filter(pa.array(keep_c, pa.bool_()))


def finished_source_ids(out_dir: str) -> set[str]:
    """Sources a rerun skips: everything with a final decision (failed ones are tried again)."""
    s, _ = read_parts(out_dir)
    return {sid for sid, st in zip(s.column("source_id").to_pylist(), s.column("status").to_pylist()) if st != "failed"}


def write_manifests(out_dir: str) -> tuple[str, str]:
    """manifests/sources.parquet and manifests/clips.parquet, sorted so equal work gives equal files."""
    s, c = read_parts(out_dir)
    s = s.sort_by([("source_path", "ascending")])
    c = c.sort_by([("source_path", "ascending"), ("start_frame", "ascending")])
    os.makedirs(os.path.join(out_dir, "manifests"), exist_ok=True)
    paths = os.path.join(out_dir, "manifests", "sources.parquet"), os.path.join(out_dir, "manifests", "clips.parquet")
    write_atomic(s, paths[0])
    write_atomic(c, paths[1])
    return paths
