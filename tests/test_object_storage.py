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
    corpus_dir, labels = corpus
    fs = pafs.S3FileSystem(endpoint_override=s3_env["AWS_ENDPOINT_URL"], access_key="test", secret_key="test",
                           region="us-east-1", allow_bucket_creation=True)
    fs.create_dir("media")
    names = ["insync_24fps.mp4", "silence.mp4", "notes.mp4"]
    for name in names:
        with open(os.path.join(corpus_dir, name), "rb") as src, fs.open_output_stream(f"media/raw/{name}") as dst:
            dst.write(src.read())
    proc = build_shards("s3://media/raw", "s3://media/out", models_dir, "--latents", "off", "--sync-scorer", "mouth_motion", env=s3_env)
    assert "3 sources, 0 already finished, 3 to process" in proc.stdout
    sources = {s["source_path"]: s for s in read_manifest("s3://media/out", "sources")}
    clips = read_manifest("s3://media/out", "clips")
    assert set(sources) == set(names) and sources["insync_24fps.mp4"]["source_uri"] == "s3://media/raw/insync_24fps.mp4"
    assert sources["notes.mp4"]["reject_reason"] == "unreadable"
    accepted = [c for c in clips if c["status"] == "accepted"]
    assert [c["source_path"] for c in accepted] == ["insync_24fps.mp4"]
    assert fs.get_file_info(f"media/out/shards/{accepted[0]['shard']}").size > 0
    assert fs.get_file_info(pafs.FileSelector("media/out/shards/.staging", allow_not_found=True)) == []
    verify = subprocess.run([sys.executable, "-m", "manifests", "verify", "s3://media/out"], cwd=REPO,
                            capture_output=True, text=True, env=s3_env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = build_shards("s3://media/raw", "s3://media/out", models_dir, "--latents", "off", "--sync-scorer", "mouth_motion", env=s3_env)
    assert "3 already finished, 0 to process" in again.stdout
