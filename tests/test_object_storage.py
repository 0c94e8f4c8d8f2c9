"""Inputs and outputs on object storage: the job reads s3:// sources and writes s3:// shards and manifests
through pyarrow's file systems. The S3 service is moto's server on loopback (no real S3 can be reached
here); everything else is the real pipeline."""
from __future__ import annotations

import os
import subprocess
import sys

import pyarrow.fs as pafs
import pytest

from storage.parts import read_manifest
from tests.conftest import REPO, build_shards


@pytest.fixture(scope="module")
def s3_env():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield dict(os.environ)
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        server.stop()


def test_job_reads_and_writes_object_storage(corpus, models_dir, s3_env):
    """The run of the kill tests, on object storage: a source worker killed by SIGKILL mid-task, its task
    run again under the same names; the run ends with no repeated shard keys, `verify` clean, and a rerun
    with nothing to do."""
    import signal
    import tarfile
    import time

    from storage.store import Store
    from tests.test_resume import find_process

    corpus_dir, labels = corpus
    fs = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("media")
    names = ["insync_24fps.mp4", "silence.mp4", "notes.mp4"]
    for name in names:
        with open(os.path.join(corpus_dir, name), "rb") as src, fs.open_output_stream(f"media/raw/{name}") as dst:
            dst.write(src.read())
    args = ["--latents", "off", "--sync-scorer", "mouth_motion", "--workers", "1"]
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), "--input", "s3://media/raw",
           "--output", "s3://media/out", "--models-dir", models_dir, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=s3_env)
    killed, deadline = None, time.time() + 300
    while killed is None and proc.poll() is None and time.time() < deadline:
        killed = find_process(lambda a: a.startswith("ray::SourceWorker.run_task"))
        time.sleep(0.05)
    assert killed, "no source worker was seen running a task"
    os.kill(killed, signal.SIGKILL)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    assert "3 sources, 0 already finished, 3 to process" in log and "retrying it on a new worker" in log
    sources = {s["source_path"]: s for s in read_manifest("s3://media/out", "sources")}
    clips = read_manifest("s3://media/out", "clips")
    assert set(sources) == set(names) and sources["insync_24fps.mp4"]["source_uri"] == "s3://media/raw/insync_24fps.mp4"
    assert sources["notes.mp4"]["reject_reason"] == "unreadable"
    accepted = [c for c in clips if c["status"] == "accepted"]
    assert [c["source_path"] for c in accepted] == ["insync_24fps.mp4"]
    assert fs.get_file_info(f"media/out/shards/{accepted[0]['shard']}").size > 0
    assert fs.get_file_info(pafs.FileSelector("media/out/shards/.staging", allow_not_found=True)) == []
    store, keys = Store("s3://media/out"), []
    for info in store.files("shards", (".tar",)):
        with store.open_stream(store.relative(info.path)) as f, tarfile.open(fileobj=f, mode="r|") as tar:
            keys += sorted({m.name.split(".", 1)[0] for m in tar})
    assert keys == [c["clip_id"] for c in accepted]  # each accepted clip once, in one shard
    verify = subprocess.run([sys.executable, "-m", "manifests", "verify", "s3://media/out"], cwd=REPO,
                            capture_output=True, text=True, env=s3_env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = build_shards("s3://media/raw", "s3://media/out", models_dir, *args, env=s3_env)
    assert "3 already finished, 0 to process" in again.stdout


def test_a_tar_on_object_storage_is_read_in_one_request(s3_env, tmp_path, monkeypatch):
    """A 200-member tar read front to back (a staged sample, a shard for verify or rescoring): one GET
    through the streaming reader; through a seekable S3 file tarfile asks for every block on its own. The
    requests are counted by moto's request recorder."""
    import io
    import json
    import tarfile
    import urllib.request

    from moto.moto_api import recorder as moto_recorder

    from storage.store import Store

    # the in-process server's recorder logs to ./moto_recording unless told otherwise (read once, at import)
    monkeypatch.setattr(moto_recorder, "_location", str(tmp_path / "moto_recording"))

    url = s3_env["AWS_ENDPOINT_URL"]
    fs = pafs.S3FileSystem(endpoint_override=url, access_key="test", secret_key="test", region="us-east-1",
                           allow_bucket_creation=True)
    fs.create_dir("tars")
    store, buf, members = Store("s3://tars/run"), io.BytesIO(), {f"k{i:04d}.npy": os.urandom(20_000) for i in range(200)}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store.write_bytes("shard.tar", buf.getvalue())

    def recorder(action: str) -> bytes:
        method = "GET" if action == "download-recording" else "POST"
        return urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/recorder/{action}", method=method)).read()

    def requests_to_read(opener, mode: str) -> int:
        recorder("reset-recording")
        recorder("start-recording")
        with opener("shard.tar") as f, tarfile.open(fileobj=f, mode=mode) as tar:
            assert {m.name: tar.extractfile(m).read() for m in tar} == members
        recorder("stop-recording")
        return sum(json.loads(line)["method"] == "GET" for line in recorder("download-recording").decode().splitlines()
                   if line.strip())

    assert requests_to_read(store.open_stream, "r|") == 1
    assert requests_to_read(store.open, "r:") > 100  # what tarfile over a seekable S3 file costs


def test_the_trainer_finds_shards_by_the_index_on_object_storage(corpus_run, s3_env):
    """The trainer's shard list comes from the pipeline's shard index, not a listing: the same shards
    locally and on S3 (a copy of the corpus run's output), read through the same stream; a selection by
    manifest columns drops shards that hold no clip it allows before any is opened."""
    import glob

    from train.data import LatentStream, StreamSpec, list_shards

    out = corpus_run["out"]
    local = list_shards([os.path.join(out, "shards")], 2)
    assert local == sorted(p for p in glob.glob(os.path.join(out, "shards", "*", "*.tar")) if "/clips/" not in p)
    assert list_shards([out], 2) == local
    assert list_shards([out], 2, {"language": ("en",), "sync_status": ("in_sync", "unverified")}) == local
    with pytest.raises(FileNotFoundError):
        list_shards([out], 2, {"language": ("xx",)})
    fs = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("trained")
    for path in glob.glob(os.path.join(out, "manifests", "*.parquet")) + local:
        with open(path, "rb") as src, fs.open_output_stream("trained/" + os.path.relpath(path, out)) as dst:
            dst.write(src.read())
    remote = list_shards(["s3://trained/shards"], 2)
    assert [r.removeprefix("s3://trained/") for r in remote] == [os.path.relpath(p, out) for p in local]
    batch = next(iter(LatentStream(StreamSpec(remote, stage=2, seed=0, tokens_per_batch=1400, max_batch=4), 0)))
    assert batch["keys"] and not batch["skipped"]
