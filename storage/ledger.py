"""The ledger: which part holds each finished source, in a few Parquet files that the driver appends as
lines come in (records.messages.Finished plus the part's order). A rerun reads the ledger instead of every
part, and reads a part itself only when the ledger lacks it (the driver died between a worker writing the
part and the ledger's next file), so the parts stay the truth and the ledger only a summary of them.

At 100k parts the ledger is about a hundred files of a thousand lines."""
from __future__ import annotations

import dataclasses
import time

import pyarrow as pa
import pyarrow.parquet as pq

from records.messages import Finished
from storage.layout import LEDGER, PART_CLIPS, PART_SOURCES, SHARDS, ledger_file
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
        import io

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(self.lines, SCHEMA), buf)
        self.files += 1
        self.store.write_bytes(ledger_file(self.run, self.files), buf.getvalue())
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


def finished_lines(out_dir: str) -> list[dict]:
    """The latest line of every source in a part: the ledger's, and for parts the ledger lacks, lines read
    from their sources files (a broken one stops the run with what to do, as storage.parts says)."""
    from storage.parts import part_order, stop_on, unreadable

    store = Store(out_dir)
    stems, _ = part_listing(store)
    found = []
    for info in store.files(LEDGER, (".parquet",)):
        with store.open(store.relative(info.path)) as f:
            table = pq.read_table(f, schema=SCHEMA)
        found += [r for r in table.to_pylist() if r["part"] in stems]
    known = {r["part"] for r in found}
    for stem in sorted(stems - known):
        rel = stem + PART_SOURCES
        try:
            with store.open(rel) as f:
                pf = pq.ParquetFile(f)
                run, seq = part_order(pf.schema_arrow.metadata)
                names = [c for c in LINE_COLUMNS if c in pf.schema_arrow.names]
                rows = pf.read(columns=names).to_pylist()
            rel = stem + PART_CLIPS
            with store.open(rel) as f:
                pq.read_metadata(f)
        except Exception as e:  # noqa: BLE001 - any failure to read is the same news for the user
            raise stop_on(unreadable(store, rel, e), stem) from e
        for r in rows:
            line = Finished.of(r, stem)
            found.append(dict(dataclasses.asdict(line), run=run, seq=seq))
    latest: dict[str, dict] = {}
    for r in sorted(found, key=lambda r: (r["run"], r["seq"], r["part"])):  # later parts overwrite earlier ones
        latest[r["source_id"]] = r
    return list(latest.values())



def next_run(out_dir: str, lines: list[dict] | None = None) -> int:
    """The number of a new run over `out_dir`: one after the latest of its ledger files and parts."""
    store = Store(out_dir)
    runs = [int(store.relative(i.path).rsplit("/", 1)[1].split("-")[0]) for i in store.files(LEDGER, (".parquet",))]
    runs += [r["run"] for r in (finished_lines(out_dir) if lines is None else lines)]
    return max(runs, default=0) + 1
