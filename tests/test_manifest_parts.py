"""Manifest parts: their order is data they carry (a copied folder's new file times change nothing), and a
corrupt part is named by `verify` and stops a run with what to do, never a traceback."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess

from storage.parts import finished_source_ids, read_parts, write_part
from storage.store import Store
from tests.conftest import LATENT_ARGS, build_shards
from tests.test_verify_diff import manifests_cli


def test_the_latest_run_wins_whatever_the_file_times(tmp_path):
    """A source failed in run 1 and was done in run 2; the run-2 part gets the older file time (as a copy
    can give it), and still wins."""
    store = Store(str(tmp_path))
    row = {"source_id": "s1", "source_path": "a.mp4"}
    write_part(store, "shards/unsharded/000000", [dict(row, status="failed")], [], (1, 1))
    write_part(store, "shards/clips/000000", [dict(row, status="done")],
               [{"clip_id": "c1", "source_id": "s1", "status": "accepted"}], (2, 1))
    for k, path in enumerate(sorted(glob.glob(str(tmp_path / "shards" / "clips" / "*")))):
        os.utime(path, (1_000_000 + k, 1_000_000 + k))  # older than the run-1 part
    sources, clips = read_parts(str(tmp_path))
    assert sources.column("status").to_pylist() == ["done"] and clips.column("clip_id").to_pylist() == ["c1"]
    assert finished_source_ids(str(tmp_path)) == {"s1"}


def test_a_rerun_starts_from_the_sources_columns_alone_and_stops_on_a_broken_part(tmp_path):
    """What a rerun reads to start (each source's latest status) is what the full merge says, read from the
    sources files' columns; a clips file cut short still stops it, naming the file, before any work."""
    import pytest

    from storage.ledger import finished_lines

    store = Store(str(tmp_path))
    rows = [{"source_id": f"s{i}", "source_path": f"{i}.mp4", "status": st} for i, st in enumerate(["failed", "done"])]
    write_part(store, "shards/unsharded/000000", rows, [], (1, 1))
    write_part(store, "shards/clips/000000", [dict(rows[0], status="rejected")], [], (2, 1))
    merged, _ = read_parts(str(tmp_path))
    latest = finished_lines(str(tmp_path))
    assert sorted((r["source_id"], r["status"]) for r in latest) == \
        sorted(zip(merged.column("source_id").to_pylist(), merged.column("status").to_pylist()))
    assert finished_source_ids(str(tmp_path)) == {"s0", "s1"}
    broken = tmp_path / "shards" / "clips" / "000000.clips.parquet"
    broken.write_bytes(broken.read_bytes()[:20])
    with pytest.raises(SystemExit, match="000000.clips.parquet is unreadable"):
        finished_source_ids(str(tmp_path))


def test_sources_without_samples_reach_a_part_by_count_and_by_time_not_at_the_end(tmp_path, monkeypatch):
    """The driver holds the rows it writes itself (listing rejects, sources whose worker died) only until
    `max_sources` of them are in, or the first has waited `max_wait_s`: a crash then loses at most that much
    finished work. The ledger's lines arrive by count and time too, and say what the parts say."""
    import itertools

    from pipeline.run import row_parts
    from pipeline.run.row_parts import RowParts
    from storage import ledger as ledger_module
    from storage.ledger import LedgerWriter, finished_lines

    out = str(tmp_path)
    result = lambda i: {"source": {"source_id": f"s{i}", "source_path": f"{i}.mp4", "status": "rejected"}, "clips": []}
    numbers = itertools.count(1)
    ledger = LedgerWriter(out, 1, max_lines=4)
    rows = RowParts(out, ledger, lambda: (1, next(numbers)), max_sources=3, max_wait_s=60)
    for i in range(7):
        rows.add(result(i))
    assert finished_source_ids(out) == {f"s{i}" for i in range(6)}  # two parts of three, before any flush
    assert len(list((tmp_path / "ledger").glob("*.parquet"))) == 1  # six lines: one file of four, two held
    now = [1000.0]
    monkeypatch.setattr(row_parts.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(ledger_module.time, "monotonic", lambda: now[0])
    ledger = LedgerWriter(out, 2, max_lines=100)
    rows = RowParts(out, ledger, lambda: (2, next(numbers)), max_sources=100, max_wait_s=60)
    rows.add(result(7))
    now[0] += 30
    rows.add(result(8))
    assert "s7" not in finished_source_ids(out)
    now[0] += 31
    rows.add(result(9))
    assert {"s7", "s8", "s9"} <= finished_source_ids(out)
    sources, _ = read_parts(out)
    assert sorted(sources.column("source_id").to_pylist()) == sorted(f"s{i}" for i in range(10) if i != 6)
    now[0] += 600
    ledger.add([], (2, 99))  # an empty message still lets the waiting lines out
    assert sorted((r["source_id"], r["part"]) for r in finished_lines(out)) == sorted(
        zip(sources.column("source_id").to_pylist(), ["shards/" + p for p in sources.column("part").to_pylist()]))


def test_a_copied_output_reruns_to_nothing(corpus_run, models_dir, tmp_path):
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-r", corpus_run["out"], copy], check=True)  # new file times, in cp's order
    proc = build_shards(corpus_run["corpus"], copy, models_dir, *LATENT_ARGS)
    assert f"{len(corpus_run['labels'])} already finished, 0 to process" in proc.stdout
    assert manifests_cli("verify", copy).returncode == 0


def test_a_corrupt_part_is_named_by_verify_and_stops_a_run(corpus_run, models_dir, tmp_path):
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-r", corpus_run["out"], copy], check=True)
    part = sorted(glob.glob(os.path.join(copy, "shards", "*", "*.clips.parquet")))[0]
    with open(part, "r+b") as f:
        f.truncate(os.path.getsize(part) // 2)
    proc = manifests_cli("verify", copy)
    assert proc.returncode == 1 and os.path.basename(part) in proc.stdout and "unreadable" in proc.stdout
    # a rerun trusts the ledger and reads no part (verify is the check of every file); one that must read
    # the parts, as after a killed driver or rescoring, stops before any work, naming the file
    shutil.rmtree(os.path.join(copy, "ledger"))
    run = build_shards(corpus_run["corpus"], copy, models_dir, *LATENT_ARGS, check=False)
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert os.path.basename(part) in run.stderr and "run again" in run.stderr


def test_a_part_written_before_a_column_existed_reads_it_as_nulls(tmp_path):
    """Outputs outlive the schema: a part whose clips file lacks a column added later (`seconds_vae` here)
    is read, and merged, with that column null, not reported unreadable."""
    import pyarrow.parquet as pq

    from storage.parts import write_manifests

    store = Store(str(tmp_path))
    row = {"source_id": "s0", "source_path": "0.mp4", "status": "done"}
    clip = {"clip_id": "c0", "source_id": "s0", "source_path": "0.mp4", "status": "rejected", "seconds_vae": 1.0}
    write_part(store, "shards/unsharded/r00001-00000001", [row], [clip], (1, 1))
    path = tmp_path / "shards" / "unsharded" / "r00001-00000001.clips.parquet"
    old = pq.read_table(path)
    pq.write_table(old.drop_columns(["seconds_vae"]).replace_schema_metadata(old.schema.metadata), path)
    _, clips = read_parts(str(tmp_path))
    assert clips.column("seconds_vae").to_pylist() == [None] and clips.column("clip_id").to_pylist() == ["c0"]
    write_manifests(str(tmp_path))
    assert pq.read_table(tmp_path / "manifests" / "clips.parquet").column("clip_id").to_pylist() == ["c0"]
