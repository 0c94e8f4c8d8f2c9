"""Acceptance 5: a rerun decodes nothing and leaves identical manifests; a job killed part way through
`ray job submit` on a local cluster and submitted again ends like an uninterrupted run."""
from __future__ import annotations

import glob
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from records.schema import RUN_DEPENDENT
from tests.conftest import LATENT_ARGS, REPO, build_shards


def digest(path: str) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_rerun_decodes_nothing_and_keeps_manifests(corpus_run, models_dir, tmp_path):
    out = corpus_run["out"]
    before = {n: digest(os.path.join(out, "manifests", n)) for n in ("sources.parquet", "clips.parquet")}
    # ffmpeg and ffprobe that fail loudly: any decode or probe in the rerun would turn into a failed row
    shims = tmp_path / "bin"
    shims.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        (shims / tool).write_text("#!/bin/sh\necho decoding is not allowed in a rerun >&2\nexit 97\n")
        (shims / tool).chmod(stat.S_IRWXU)
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    proc = build_shards(corpus_run["corpus"], out, models_dir, *LATENT_ARGS, env=env)
    assert f"{len(corpus_run['labels'])} already finished, 0 to process" in proc.stdout
    after = {n: digest(os.path.join(out, "manifests", n)) for n in before}
    assert after == before


def comparable(rows: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k not in RUN_DEPENDENT} for r in rows),
                  key=lambda r: (r["source_path"], r.get("start_frame") or 0))


def ray_cli(*args: str, env: dict, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    proc = subprocess.run([ray, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ray {' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def local_cluster(tmp_path):
    env = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
               RAY_ADDRESS="http://127.0.0.1:8265")
    if os.path.exists(os.path.expanduser("~/.ray/auth_token")):
        env["RAY_AUTH_MODE"] = "token"
    ray_cli("stop", "--force", env=env, check=False)
    ray_cli("start", "--head", "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
            "--disable-usage-stats", env=env)
    yield env
    ray_cli("stop", "--force", env=env, check=False)


def submit(env: dict, corpus_dir: str, out: str, models: str, wait: bool) -> subprocess.CompletedProcess:
    args = ["job", "submit", "--working-dir", "."] + ([] if wait else ["--no-wait"]) + [
        "--", "python", "pipeline/build_shards.py", "--input", corpus_dir, "--output", out, "--models-dir", models,
        "--group-sources", "1", "--workers", "1", *LATENT_ARGS]
    return ray_cli(*args, env=env)


def assert_no_repeated_keys(out: str) -> None:
    """Every sample key appears in one shard tar only, once; `verify` agrees with the manifests."""
    import tarfile

    keys = []
    for tar in glob.glob(os.path.join(out, "shards", "*", "*.tar")):
        with tarfile.open(tar) as t:
            keys += sorted({m.name.split(".", 1)[0] for m in t.getmembers()})
    assert keys and len(keys) == len(set(keys))
    proc = subprocess.run([sys.executable, "-m", "manifests", "verify", out], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def find_process(wanted) -> int | None:
    """The pid of the first process whose full command line (or title) satisfies `wanted`."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    for line in ps.splitlines():
        pid, _, args = line.strip().partition(" ")
        if wanted(args.strip()):
            return int(pid)
    return None


def driver_pid(out: str) -> int | None:
    """The job's driver: the build_shards process writing to `out` (not its shell, not the submit client)."""
    return find_process(lambda args: "pipeline/build_shards.py" in args and out in args
                        and "job submit" not in args and not args.startswith("/bin/sh"))


def test_killed_job_resumes_to_the_same_manifests(corpus_run, models_dir, local_cluster, tmp_path):
    """The driver dies by SIGKILL after some parts are written (its workers die with it: Ray ends a dead
    driver's actors), and the same job submitted again ends like an uninterrupted run, with what the dead
    workers left half written removed."""
    env = local_cluster
    subset = tmp_path / "in"
    subset.mkdir()
    names = ["insync_24fps.mp4", "in sync 25fps.mp4", "audio_late_0.3s.mp4", "silence.mp4", "notes.mp4",
             "scene_cut.mp4"]
    for n in names:
        shutil.copy(os.path.join(corpus_run["corpus"], n), subset / n)
    out = str(tmp_path / "out")
    submit(env, str(subset), out, models_dir, wait=False)
    parts = os.path.join(out, "shards", "*", "*.sources.parquet")
    deadline = time.time() + 300
    while len(glob.glob(parts)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    pid = driver_pid(out)
    assert pid, "no driver process found:\n" + subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout[-3000:]
    os.kill(pid, signal.SIGKILL)
    time.sleep(5)  # the job's workers are gone by now
    finished_before = len(glob.glob(parts))
    assert 2 <= finished_before < len(names) and not os.path.exists(os.path.join(out, "manifests")), \
        "the driver was not killed part way"
    stray = os.path.join(out, "shards", "clips", "r00001-99999999-000.tar")  # as a worker killed mid-write leaves
    os.makedirs(os.path.dirname(stray), exist_ok=True)
    open(stray, "wb").close()

    submit(env, str(subset), out, models_dir, wait=True)
    assert not os.path.exists(stray), "the rerun kept a shard no part names"
    sources = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    assert sorted(s["source_path"] for s in sources) == sorted(names)
    want_s = [corpus_run["sources"][n] for n in names]
    want_c = [c for n in names for c in corpus_run["clips"][n]]
    assert comparable(sources) == comparable(want_s)
    assert comparable(clips) == comparable(want_c)
    assert_no_repeated_keys(out)


def test_a_local_run_says_it_joins_a_running_cluster(corpus_run, models_dir, local_cluster, tmp_path):
    """Ray joins a cluster that `ray start` left on the machine; the run says so, and `--ray-address local`
    starts a private one instead."""
    env = {k: v for k, v in local_cluster.items() if k != "RAY_ADDRESS"}
    subset = tmp_path / "in"
    subset.mkdir()
    shutil.copy(os.path.join(corpus_run["corpus"], "notes.mp4"), subset / "notes.mp4")
    joined = build_shards(str(subset), str(tmp_path / "a"), models_dir, "--latents", "off", "--sync-scorer",
                          "mouth_motion", env=env)
    assert "joining the Ray cluster already running on this machine" in joined.stdout
    private = build_shards(str(subset), str(tmp_path / "b"), models_dir, "--latents", "off", "--sync-scorer",
                           "mouth_motion", "--ray-address", "local", env=env)
    assert "joining" not in private.stdout and "Started a local Ray instance" in private.stdout + private.stderr
