"""Manifest parts (one pair per shard, written beside it) and the merged manifests built from them.

A part is written only after its shard is complete and renamed, so the parts in the output are exactly
the finished work: a rerun skips their sources, and merging them gives the run's manifests. The output
may be a local folder or object storage (see storage.py)."""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from records.schema import CLIPS, SOURCES, to_table
from storage.layout import PART_CLIPS, PART_SOURCES, SHARDS, manifest_file
from storage.store import Store

def write_table(store: Store, table: pa.Table, rel: str) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    store.write_bytes(rel, buf.getvalue())


def read_table(store: Store, rel: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
    with store.open(rel) as f:
        # pre-buffering reads every column's bytes in coalesced ranges: with a few columns asked for (the
        # ledger without its fingerprints) it read 100 times what was needed
        return pq.read_table(f, schema=schema, columns=columns, pre_buffer=columns is None)


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
    return sorted(store.relative(i.path)[: -len(PART_SOURCES)] for i in store.files(SHARDS, (PART_SOURCES,)))


def unreadable(store: Store, rel: str, e: Exception) -> UnreadablePart:
    return UnreadablePart(f"manifest part {store.uri_of(rel)} is unreadable ({type(e).__name__}: {str(e)[:200]})")


def stop_on(e: UnreadablePart, stem: str) -> SystemExit:
    return SystemExit(f"{e}\ndelete that part's files ({stem}.*) and run again: its sources are processed again")


def with_columns_of(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` as `schema`: a column the schema gained after the file was written reads as nulls."""
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field.name, pa.nulls(len(table), field.type))
    return table.select(schema.names).cast(schema)


def read_part(store: Store, stem: str, columns: list[str] | None = None) -> tuple[tuple[int, int], pa.Table, pa.Table]:
    """(order, sources, clips) of one part (only `columns`, where given, and source_id); UnreadablePart
    says which file and why."""
    tables = []
    for suffix, schema in ((PART_SOURCES, SOURCES), (PART_CLIPS, CLIPS)):
        if columns:
            schema = pa.schema([schema.field(n) for n in schema.names if n in columns or n == "source_id"])
        try:
            with store.open(stem + suffix) as f:
                pf = pq.ParquetFile(f, pre_buffer=not columns)
                table = pf.read(columns=[n for n in schema.names if n in pf.schema_arrow.names])
            tables.append(with_columns_of(table, schema).replace_schema_metadata(table.schema.metadata))
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

    return {r["source_id"] for r in finished_lines(out_dir, ["status"]) if r["status"] != "failed"}


SHARD_INDEX = pa.schema([("shard", pa.string()), ("bucket", pa.string()), ("samples", pa.int64()),
                         ("sources", pa.int64()), ("latent_shapes", pa.string()), ("run", pa.int64())])


class RowGroups:
    """Tables written to a Parquet file in row groups of at least `rows` rows. A row group per part (a few
    dozen rows) made the file's footer, statistics per row group and column, grow with the parts: 1.5 GB
    for 500k clip rows in 6,250 parts."""

    def __init__(self, writer: pq.ParquetWriter, rows: int = 16384):
        self.writer, self.rows, self.held, self.count = writer, rows, [], 0

    def add(self, table: pa.Table) -> None:
        self.held.append(table)
        self.count += len(table)
        if self.count >= self.rows:
            self.flush()

    def flush(self) -> None:
        if self.held:
            self.writer.write_table(pa.concat_tables(self.held))
        self.held, self.count = [], 0


def write_manifests(out_dir: str) -> tuple[str, str]:
    """manifests/sources.parquet and manifests/clips.parquet, the rows of each source's latest part, written
    a part at a time (memory: one part, and the latest part of each source); and manifests/shards.parquet,
    the shard index the trainer reads instead of listing shards: each shard's path under shards/, bucket,
    sample count and latent shapes. Parts go in (run, sequence, path) order, so equal work gives equal files."""
    import os
    import tempfile

    from storage.ledger import finished_table

    store = Store(out_dir)
    lines = finished_table(out_dir, [])
    latest: dict[str, set[str]] = {}
    for sid, part in zip(lines.column("source_id").to_pylist(), lines.column("part").to_pylist()):
        latest.setdefault(part, set()).add(sid)
    orders = {p: (r, q) for p, r, q in zip(*(lines.column(n).to_pylist() for n in ("part", "run", "seq")))}
    del lines
    index = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: os.path.join(tmp, f"{name}.parquet") for name in ("sources", "clips", "shards")}
        with pq.ParquetWriter(paths["sources"], SOURCES) as s_file, pq.ParquetWriter(paths["clips"], CLIPS) as c_file:
            s_out, c_out = RowGroups(s_file), RowGroups(c_file)
            for stem in sorted(latest, key=lambda p: (orders[p], p)):
                _, s, c = read_part(store, stem)
                keep = pa.array(sorted(latest[stem]), pa.string())
                s = s.filter(pc.is_in(s.column("source_id"), keep)).replace_schema_metadata(None)
                c = c.filter(pc.is_in(c.column("source_id"), keep)).replace_schema_metadata(None)
                s_out.add(s.sort_by([("source_path", "ascending")]))
                c_out.add(c.sort_by([("source_path", "ascending"), ("start_frame", "ascending")]))
                index += shard_rows(stem, s, c, orders[stem][0])
            s_out.flush()
            c_out.flush()
        pq.write_table(pa.Table.from_pylist(index, SHARD_INDEX), paths["shards"])
        for name, path in paths.items():
            store.upload(path, manifest_file(name))
    return store.uri_of(manifest_file("sources")), store.uri_of(manifest_file("clips"))


def shard_rows(stem: str, sources: pa.Table, clips: pa.Table, run: int) -> list[dict]:
    """The shard index's row for the shard beside part `stem`, if it has one with samples."""
    accepted = clips.filter(pc.equal(clips.column("status"), "accepted"))
    if not len(accepted) or not stem.startswith(SHARDS + "/"):
        return []
    shards = accepted.column("shard").unique().to_pylist()
    shapes = accepted.column("latent_shapes").to_pylist() if "latent_shapes" in accepted.column_names else []
    return [{"shard": shard, "bucket": shard.split("/")[0], "run": run,
             "samples": int(pc.sum(pc.equal(accepted.column("shard"), shard)).as_py()),
             "sources": len(sources), "latent_shapes": next((x for x in shapes if x), None)}
            for shard in shards if shard]


def read_manifest(out_dir: str, name: str) -> list[dict]:
    """manifests/{name}.parquet of a run, as rows."""
    return read_table(Store(out_dir), manifest_file(name)).to_pylist()


def manifest_columns(out_dir: str, name: str, columns: list[str]) -> pa.Table:
    """Only `columns` of manifests/{name}.parquet, as one table."""
    return read_table(Store(out_dir), f"manifests/{name}.parquet", columns=columns)


def manifest_batches(out_dir: str, name: str, columns: list[str] | None = None, rows: int = 4096):
    """manifests/{name}.parquet of a run in record batches of `rows` (only `columns`, if given): what the
    tools that read a whole run hold at once, whatever its size (a clip row with its transcript and word
    times is about 10 KB)."""
    with Store(out_dir).open(manifest_file(name)) as f:
        pf = pq.ParquetFile(f)
        names = pf.schema_arrow.names
        yield from pf.iter_batches(batch_size=rows, columns=[c for c in columns if c in names] if columns else None)
