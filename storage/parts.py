"""Manifest parts (one pair per shard, written beside it) and the merged manifests built from them.

A part is written only after its shard is complete and renamed, so the parts in the output are exactly
the finished work: a rerun skips their sources, and merging them gives the run's manifests. The output
may be a local folder or object storage (see storage.py)."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from records.schema import CLIPS, SOURCES, to_table
from storage.layout import PART_CLIPS, PART_SOURCES
from storage.store import Store

def write_table(store: Store, table: pa.Table, rel: str) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes(rel, buf.getvalue())


def read_table(store: Store, rel: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
    with store.open(rel) as f:
        return pq.read_table(f, schema=schema, columns=columns)


ORDER = b"part_order"  # parquet metadata: "run sequence" of the part, which decides among repeats


class UnreadablePart(Exception):
    pass


def part_order(metadata: dict | None) -> tuple[int, int]:
    """(run, sequence) from a part's Parquet metadata; parts written before runs were numbered come first."""
    run, seq = (int(x) for x in (metadata or {}).get(ORDER, b"0 0").split())
    return run, seq


def write_part(store: Store, stem: str, sources: list[dict], clips: list[dict], order: tuple[int, int]) -> None:
    """Clips first, sources last: a part counts as present once its sources file exists. `order` is (run,
    sequence in the run): data the part carries, so copying a folder (new file times) changes nothing."""
    meta = {ORDER: f"{order[0]} {order[1]}".encode()}
    write_table(store, to_table(clips, CLIPS).replace_schema_metadata(meta), stem + PART_CLIPS)
    write_table(store, to_table(sources, SOURCES).replace_schema_metadata(meta), stem + PART_SOURCES)


def part_stems(store: Store) -> list[str]:
    """Relative stems of the parts present (those whose sources file exists), by path."""
    return sorted(store.relative(i.path)[: -len(PART_SOURCES)] for i in store.files("shards", (PART_SOURCES,)))


def unreadable(store: Store, rel: str, e: Exception) -> UnreadablePart:
    return UnreadablePart(f"manifest part {store.uri_of(rel)} is unreadable ({type(e).__name__}: {str(e)[:200]})")


def stop_on(e: UnreadablePart, stem: str) -> SystemExit:
    return SystemExit(f"{e}\ndelete that part's files ({stem}.*) and run again: its sources are processed again")


def read_part(store: Store, stem: str, columns: list[str] | None = None) -> tuple[tuple[int, int], pa.Table, pa.Table]:
    """(order, sources, clips) of one part (only `columns`, where given, and source_id); UnreadablePart
    says which file and why."""
    tables = []
    for suffix, schema in ((PART_SOURCES, SOURCES), (PART_CLIPS, CLIPS)):
        if columns:
            schema = pa.schema([schema.field(n) for n in schema.names if n in columns or n == "source_id"])
        try:
            with store.open(stem + suffix) as f:
                table = pq.read_table(f, columns=schema.names if columns else None)
            tables.append(table.select(schema.names).cast(schema).replace_schema_metadata(table.schema.metadata))
        except Exception as e:  # noqa: BLE001 - any failure to read is the same news for the user
            raise unreadable(store, stem + suffix, e) from e
    return part_order(tables[0].schema.metadata), tables[0], tables[1]


def read_parts(out_dir: str, problems: list[str] | None = None,
               columns: list[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """All parts merged (only `columns` and source_id, where given); a source written by several parts (a
    failed try, then a retry) keeps the one of the latest run. An unreadable part stops the merge with what
    to do, or, given `problems`, is listed there."""
    store = Store(out_dir)
    parts = []
    for stem in part_stems(store):
        try:
            parts.append((*read_part(store, stem, columns), stem))
        except UnreadablePart as e:
            if problems is None:
                raise stop_on(e, stem) from e
            problems.append(str(e))
    parts.sort(key=lambda p: (p[0], p[3]))
    s_part = [k for k, p in enumerate(parts) for _ in range(len(p[1]))]
    c_part = [k for k, p in enumerate(parts) for _ in range(len(p[2]))]
    if not parts:
        return tuple(pa.schema([t.field(n) for n in t.names if not columns or n in columns or n == "source_id"])
                     .empty_table() for t in (SOURCES, CLIPS))
    s = pa.concat_tables([p[1].replace_schema_metadata(None) for p in parts])
    c = pa.concat_tables([p[2].replace_schema_metadata(None) for p in parts])
    last = dict(zip(s.column("source_id").to_pylist(), s_part))  # later parts overwrite earlier ones
    keep_s = [last[sid] == k for sid, k in zip(s.column("source_id").to_pylist(), s_part)]
    keep_c = [last.get(sid) == k for sid, k in zip(c.column("source_id").to_pylist(), c_part)]
    return s.filter(pa.array(keep_s, pa.bool_())), c.filter(pa.array(keep_c, pa.bool_()))


def finished_source_ids(out_dir: str) -> set[str]:
    """Sources a rerun skips: everything with a final decision (failed ones are tried again)."""
    from storage.ledger import finished_lines

    return {r["source_id"] for r in finished_lines(out_dir) if r["status"] != "failed"}


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


def manifest_columns(out_dir: str, name: str, columns: list[str]) -> pa.Table:
    """Only `columns` of manifests/{name}.parquet, as one table."""
    return read_table(Store(out_dir), f"manifests/{name}.parquet", columns=columns)


def manifest_batches(out_dir: str, name: str, columns: list[str] | None = None, rows: int = 4096):
    """manifests/{name}.parquet of a run in record batches of `rows` (only `columns`, if given): what the
    tools that read a whole run hold at once, whatever its size (a clip row with its transcript and word
    times is about 10 KB)."""
    with Store(out_dir).open(f"manifests/{name}.parquet") as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        yield from pf.iter_batches(batch_size=rows, columns=[c for c in columns if c in names] if columns else None)
