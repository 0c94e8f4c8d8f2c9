"""The ledger: which part holds each finished source, in a few Parquet files that the driver appends as
lines come in (records.messages.Finished plus the part's order). A rerun reads the ledger instead of every
part, and reads a part itself only when the ledger lacks it (the driver died between a worker writing the
part and the ledger's next file), so the parts stay the truth and the ledger only a summary of them.

At 100k parts the ledger is about a hundred files of a thousand lines."""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from records.messages import Finished
from storage.layout import LEDGER, PART_CLIPS, PART_SOURCES, SHARDS, ledger_file
from storage.parts import part_order, read_table, stop_on, unreadable, write_table
from storage.store import Store

SCHEMA = pa.schema([("source_id", pa.string()), ("source_path", pa.string()), ("status", pa.string()),
                    ("reject_reason", pa.string()), ("clips_accepted", pa.int64()), ("part", pa.string()),
                    ("duration_s", pa.float64()), ("decoded_seconds", pa.float64()),
                    ("video_fingerprint", pa.string()), ("audio_fingerprint", pa.string()),
                    ("run", pa.int64()), ("seq", pa.int64())])
LINE_COLUMNS = [f.name for f in dataclasses.fields(Finished)]


class LedgerWriter:
    """The driver's: lines of sources whose parts are written, flushed to a new ledger file every
    `max_lines` lines or once the first has waited `max_wait_s`, and at the run's end."""

    def __init__(self, out_dir: str, run: int, max_lines: int = 1000, max_wait_s: float = 600.0):
        self.store, self.run, self.max_lines, self.max_wait_s = Store(out_dir), run, max_lines, max_wait_s
        self.lines: list[dict] = []
        self.files, self.opened = 0, 0.0

    def add(self, lines: list[Finished], order: tuple[int, int]) -> None:
        if not self.lines:
            self.opened = time.monotonic()
        self.lines += [dict(dataclasses.asdict(f), run=order[0], seq=order[1]) for f in lines if f.part]
        if len(self.lines) >= self.max_lines or time.monotonic() - self.opened >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        if not self.lines:
            return
        self.files += 1
        write_table(self.store, pa.Table.from_pylist(self.lines, SCHEMA), ledger_file(self.run, self.files))
        self.lines = []


def part_listing(store: Store) -> tuple[set[str], list[str]]:
    """(stems of complete parts, files of unfinished work: temporary files, shards and clips files without
    their part's sources file), from one listing of shards/."""
    files = [store.relative(i.path) for i in store.files(SHARDS, (".tar", ".tmp", PART_SOURCES, PART_CLIPS))
             if "/.staging/" not in store.relative(i.path)]
    stems = {f[: -len(PART_SOURCES)] for f in files if f.endswith(PART_SOURCES)}
    unfinished = [f for f in files if f.endswith(".tmp")
                  or (f.endswith(".tar") and f[: -len(".tar")] not in stems)
                  or (f.endswith(PART_CLIPS) and f[: -len(PART_CLIPS)] not in stems)]
    return stems, unfinished


def remove_unfinished(out_dir: str) -> int:
    """Delete what a killed run left half written (no part names it, so no reader trusts it); how many."""
    store = Store(out_dir)
    _, unfinished = part_listing(store)
    for rel in unfinished:
        store.remove(rel)
    return len(unfinished)


def finished_table(out_dir: str, columns: list[str] | None = None, repair: bool = False) -> pa.Table:
    """The latest line of every source in a part (only `columns`, with source_id, part, run and seq): the
    ledger's, and for parts the ledger lacks, lines read from their sources files (a broken one stops the
    run with what to do, as storage.parts says). Kept as Arrow columns: about 100 bytes a source for the
    columns a rerun needs, where Python rows took several hundred. `repair`: write the lines read from
    parts (after a killed driver, or rescoring) as a ledger file."""
    names = list(dict.fromkeys(["source_id", "part", "run", "seq"] + list(SCHEMA.names if columns is None else columns)))
    schema = pa.schema([SCHEMA.field(n) for n in names])
    store = Store(out_dir)
    stems, _ = part_listing(store)
    found = []
    for info in store.files(LEDGER, (".parquet",)):
        found.append(read_table(store, store.relative(info.path), columns=names).cast(schema))
    known = set(pa.concat_tables(found).column("part").unique().to_pylist()) if found else set()
    missing = lines_from_parts(store, sorted(stems - known))
    if len(missing):
        found.append(missing.select(names))
        if repair:  # the next rerun finds them in the ledger
            write_table(store, missing, f"{LEDGER}/repair-{len(store.files(LEDGER, ('.parquet',))) + 1:06d}.parquet")
    if not found:
        return schema.empty_table()
    table = pa.concat_tables(found)
    table = table.filter(pc.is_in(table.column("part"), pa.array(sorted(stems), pa.string())))
    table = table.sort_by([("run", "ascending"), ("seq", "ascending"), ("part", "ascending")])
    ids = table.column("source_id").to_numpy(zero_copy_only=False)
    _, first_from_end = np.unique(ids[::-1], return_index=True)
    last = np.zeros(len(ids), bool)  # later parts overwrite earlier ones: keep each source's last line
    last[len(ids) - 1 - first_from_end] = True
    return table.filter(pa.array(last))


def lines_from_parts(store: Store, stems: list[str]) -> pa.Table:
    """Ledger lines of the sources in parts `stems`, read from their sources files."""
    lines = []
    for stem in stems:
        rel = stem + PART_SOURCES
        try:
            with store.open(rel) as f:
                pf = pq.ParquetFile(f)
                run, seq = part_order(pf.schema_arrow.metadata)
                rows = pf.read(columns=[c for c in LINE_COLUMNS if c in pf.schema_arrow.names]).to_pylist()
            rel = stem + PART_CLIPS
            with store.open(rel) as f:
                pq.read_metadata(f)
        except Exception as e:  # noqa: BLE001 - any failure to read is the same news for the user
            raise stop_on(unreadable(store, rel, e), stem) from e
        lines += [dict(dataclasses.asdict(Finished.of(r, stem)), run=run, seq=seq) for r in rows]
    return pa.Table.from_pylist(lines, SCHEMA)


def finished_lines(out_dir: str, columns: list[str] | None = None) -> list[dict]:
    """finished_table's lines as dicts."""
    return finished_table(out_dir, columns).to_pylist()


def next_run(out_dir: str, lines: pa.Table | None = None) -> int:
    """The number of a new run over `out_dir`: one after the latest of its ledger files and parts."""
    store = Store(out_dir)
    names = [store.relative(i.path).rsplit("/", 1)[1] for i in store.files(LEDGER, (".parquet",))]
    runs = [int(n.split("-")[0]) for n in names if not n.startswith("repair")]
    table = finished_table(out_dir, ["status"]) if lines is None else lines
    return max(runs + ([pc.max(table.column("run")).as_py()] if len(table) else []), default=0) + 1
