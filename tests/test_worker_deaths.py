"""Workers killed with SIGKILL mid-run (a real process death, found by the title Ray gives the process
running a task): the scheduler replaces the worker and retries what it held, so the run ends like an
uninterrupted one, with byte-identical members, no repeated shard keys, and `verify` agreeing."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from storage.parts import read_parts
from tests.conftest import LATENT_ARGS, REPO
from tests.test_resume import assert_no_repeated_keys, comparable, find_process

NAMES = ["insync_24fps.mp4", "in sync 25fps.mp4", "audio_late_0.3s.mp4", "notes.mp4"]


@pytest.mark.parametrize("worker", ["SourceWorker", "EncodeWorker"])
def test_a_killed_worker_costs_nothing(corpus_run, models_dir, tmp_path, worker):
    subset = tmp_path / "in"
    subset.mkdir()
    for n in NAMES:
        shutil.copy(os.path.join(corpus_run["corpus"], n), subset / n)
    out = str(tmp_path / "out")
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), "--input", str(subset), "--output", out,
           "--models-dir", models_dir, "--workers", "1", *LATENT_ARGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    killed, deadline = None, time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        killed = find_process(lambda args: args.startswith(f"ray::{worker}.run"))  # Ray's title for a running task
        time.sleep(0.05)
    assert killed, f"no {worker} was seen running a task"
    os.kill(killed, signal.SIGKILL)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert "worker died on" in log and "retrying it on a new worker" in log
    sources = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    assert comparable(sources) == comparable([corpus_run["sources"][n] for n in NAMES])
    assert comparable(clips) == comparable([c for n in NAMES for c in corpus_run["clips"][n]])
    assert_no_repeated_keys(out)


def test_an_encode_error_leaves_the_source_to_the_next_run(tmp_path):
    """An encode error is a condition of the worker more often than of the clip (out of GPU memory, a full
    disk, storage that failed a read): the source ends failed in a part the encode worker writes, so a
    corrected rerun tries it again, and a source of the same task that had nothing to encode is finished."""
    import json

    from pipeline.config import PipelineConfig
    from pipeline.run.encode_worker import EncodeProcessor
    from pipeline.run.source_worker import new_source_record
    from records.messages import Finished, TaskDone
    from storage.layout import staged_rows, task_name
    from storage.ledger import LedgerWriter
    from storage.parts import finished_source_ids
    from storage.store import Store

    out = str(tmp_path / "out")
    cfg = PipelineConfig.of(input=str(tmp_path), output=out, debug_models=True, buckets="128x128")
    src = new_source_record(str(tmp_path / "talk.mp4"), "talk.mp4", 1000)
    src.update(status="done", clips_total=1, clips_accepted=1, clips_rejected=0)
    clip = {"clip_id": "c0", "source_id": src["source_id"], "source_path": "talk.mp4", "start_frame": 0,
            "status": "accepted", "members": [{"name": "c0.wav", "bytes": 1, "sha256": "0"}]}
    quiet = new_source_record(str(tmp_path / "quiet.mp4"), "quiet.mp4", 10)
    quiet.update(status="done", clips_total=0, clips_accepted=0, clips_rejected=0)
    results = [{"source": dict(src), "clips": [clip]}, {"source": dict(quiet), "clips": []}]
    name, order = task_name(1, 1), (1, 1)
    # the task's rows are staged but its samples cannot be read (here: they are not there), as after a
    # storage failure
    Store(out).write_bytes(staged_rows(name), json.dumps(results).encode())
    message = TaskDone(name, order, [Finished.of(r["source"], None) for r in results], staged=True)
    done = TaskDone.from_json(EncodeProcessor(cfg).run_task(message.to_json()))
    assert [(f.source_path, f.status) for f in done.sources] == [("talk.mp4", "failed"), ("quiet.mp4", "done")]
    assert all(f.part for f in done.sources)
    sources, clips = read_parts(out)
    row = next(r for r in sources.to_pylist() if r["source_path"] == "talk.mp4")
    assert (row["status"], row["reject_stage"], row["reject_reason"]) == ("failed", "encode", "encode_error")
    assert "FileNotFoundError" in row["error"]
    clip = clips.to_pylist()[0]
    assert (clip["status"], clip["reject_reason"], clip["members"]) == ("rejected", "encode_error", None)
    assert finished_source_ids(out) == {quiet["source_id"]}  # read from the parts: no ledger yet
    ledger = LedgerWriter(out, 1)
    ledger.add(done.sources, done.order)
    ledger.flush()
    assert finished_source_ids(out) == {quiet["source_id"]}  # and from the ledger alone
    assert not Store(out).exists(staged_rows(name))
