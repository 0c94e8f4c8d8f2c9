"""Shared fixtures: the sample corpus and one real pipeline run over it (local Ray, ffmpeg, whisperx)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a test that takes one of these fixtures waits on a pipeline or training run, a Ray cluster, an S3 server or
# the real footage: it belongs to the integration tier (the fast tier is -m "not integration")
INTEGRATION_FIXTURES = {"corpus_run", "runs", "audio_run", "bad_run", "derived_run", "held_out", "offline_run",
                        "local_cluster", "s3_env", "footage", "real_videos", "real_speech", "lip_sync_run"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
# latents from small random weights made through the real loaders, at a bucket small enough for a CPU
LATENT_ARGS = ("--debug-models", "--buckets", "128x128")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> tuple[str, dict]:
    from sample_corpus.build import build

    out = str(tmp_path_factory.mktemp("corpus"))
    labels = build(out)
    return out, labels


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> str:
    from model.loading.offline_models import prepare_offline_models

    out = str(tmp_path_factory.mktemp("models"))
    prepare_offline_models(out)
    return out


def build_shards(input_dir: str, output_dir: str, models_dir: str, *extra: str, env: dict | None = None,
                 check: bool = True) -> subprocess.CompletedProcess:
    """The job exactly as a user runs it without a cluster: a script that starts a local Ray."""
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), "--input", input_dir,
           "--output", output_dir, "--models-dir", models_dir, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"build_shards failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def counting_ffmpeg(folder) -> tuple[dict, str]:
    """An environment whose ffmpeg records each call's arguments (NUL-separated, one call per line) in a log
    before running the real one: an independent count of how often each source is decoded."""
    import shutil

    log = os.path.join(str(folder), "ffmpeg_calls.log")
    shim = os.path.join(str(folder), "ffmpeg")
    with open(shim, "w") as f:
        f.write(f'#!/bin/sh\nprintf "%s\\0" "$@" >> "{log}"\necho >> "{log}"\nexec {shutil.which("ffmpeg")} "$@"\n')
    os.chmod(shim, 0o755)
    return dict(os.environ, PATH=f"{folder}:{os.environ['PATH']}"), log


def reads_per_input(log: str) -> dict[str, list[float | None]]:
    """Every ffmpeg read of each input file (by its basename), from a counting_ffmpeg log: the seek point
    given with -ss before its -i, or None for a read from the start."""
    reads: dict[str, list[float | None]] = {}
    with open(log, "rb") as f:
        for call in f.read().split(b"\0\n"):
            args, seek = call.split(b"\0"), None
            for k, a in enumerate(args[:-1]):
                if a == b"-ss":
                    seek = float(args[k + 1])
                if a == b"-i":
                    if args[k + 1] not in (b"pipe:0", b"-"):
                        reads.setdefault(os.path.basename(os.fsdecode(args[k + 1])), []).append(seek)
                    seek = None
    return reads


@pytest.fixture(scope="session")
def corpus_run(corpus, models_dir, tmp_path_factory) -> dict:
    import pyarrow.parquet as pq

    corpus_dir, labels = corpus
    out = str(tmp_path_factory.mktemp("run"))
    env, log = counting_ffmpeg(tmp_path_factory.mktemp("bin"))
    proc = build_shards(corpus_dir, out, models_dir, *LATENT_ARGS, env=env)
    sources = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    return {"out": out, "labels": labels, "corpus": corpus_dir, "stdout": proc.stdout, "reads": reads_per_input(log),
            "sources": {s["source_path"]: s for s in sources},
            "clips": {p: [c for c in clips if c["source_path"] == p] for p in {s["source_path"] for s in sources}}}


REAL_FOOTAGE = os.environ.get("REAL_FOOTAGE", "")


@pytest.fixture(scope="session")
def footage() -> str:
    """The labelled real-footage folder named by REAL_FOOTAGE (from the repository root); missing is a failure."""
    root = os.path.join(REPO, REAL_FOOTAGE)
    for part in ("labels.json", "videos", os.path.join("speech", "transcripts.json")):
        if not os.path.exists(os.path.join(root, part)):
            pytest.fail(f"REAL_FOOTAGE={REAL_FOOTAGE} is set but {os.path.join(root, part)} is missing")
    return root


def load_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


from tests.training_runs import runs  # noqa: E402,F401  (the training runs, once per session)
