"""Manifest parts (one pair per shard, written beside it) and the merged manifests built from them.

A part is written only after its shard is complete and renamed, so the parts in the output are exactly
the finished work: a rerun skips their sources, and merging them gives the run's manifests. The output
may be a local folder or object storage (see storage.py)."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.schema import CLIPS, SOURCES, to_table
from manifests.storage import Store

PART_SOURCES, PART_CLIPS = ".sources.parquet", ".clips.parquet"


def write_table(store: Store, table: pa.Table, rel: str) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes(rel, buf.getvalue())


def read_table(store: Store, rel: str, schema: pa.Schema | None = None) -> pa.Table:
    with store.open(rel) as f:
        return pq.read_table(f, schema=schema)


def write_part(store: Store, stem: str, sources: list[dict], clips: list[dict]) -> None:
    """Clips first, sources last: a part counts as present once its sources file exists."""
    write_table(store, to_table(clips, CLIPS), stem + PART_CLIPS)
    write_table(store, to_table(sources, SOURCES), stem + PART_SOURCES)


def part_stems(store: Store) -> list[str]:
    """Relative stems of the parts, in the order they were written (a source's last part wins)."""
    found = store.files("shards", (PART_SOURCES,))
    found.sort(key=lambda i: (i.mtime_ns or 0, i.path))
    return [store.relative(i.path)[: -len(PART_SOURCES)] for i in found]


def read_parts(out_dir: str) -> tuple[pa.Table, pa.Table]:
    """All parts merged; a source written by several parts (a failed try, then a retry) keeps its last."""
    store = Store(out_dir)
    sources, clips, s_part, c_part = [], [], [], []
    for k, stem in enumerate(part_stems(store)):
        sources.append(read_table(store, stem + PART_SOURCES, SOURCES))
        clips.append(read_table(store, stem + PART_CLIPS, CLIPS))
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
    store = Store(out_dir)
    s, c = read_parts(out_dir)
    s = s.sort_by([("source_path", "ascending")])
    c = c.sort_by([("source_path", "ascending"), ("start_frame", "ascending")])
    write_table(store, s, "manifests/sources.parquet")
    write_table(store, c, "manifests/clips.parquet")
    return store.uri_of("manifests/sources.parquet"), store.uri_of("manifests/clips.parquet")


def read_manifest(out_dir: str, name: str) -> list[dict]:
    """manifests/{name}.parquet of a run, as rows."""
    return read_table(Store(out_dir), f"manifests/{name}.parquet").to_pylist()
