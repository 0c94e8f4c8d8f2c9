"""Issue 5 acceptance 2 and 3: verify passes on a fresh run and names the member after one byte of a shard
changes or a manifest row disappears; diff reports a decision flipped by a threshold change."""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO, build_shards


def manifests_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "manifests", *args], cwd=REPO, capture_output=True, text=True)


def test_verify_passes_on_a_fresh_run(corpus_run):
    proc = manifests_cli("verify", corpus_run["out"])
    assert proc.returncode == 0, proc.stdout
    assert "agree" in proc.stdout


def test_verify_names_a_changed_byte(corpus_run, tmp_path):
    out = shutil.copytree(corpus_run["out"], tmp_path / "run")
    shard = sorted(glob.glob(os.path.join(out, "shards", "128x128x121", "*.tar")))[0]
    with tarfile.open(shard) as tar:
        member = next(m for m in tar if m.name.endswith(".wav"))
    with open(shard, "r+b") as f:  # one byte inside the member's data; the tar itself stays readable
        f.seek(member.offset_data + member.size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    proc = manifests_cli("verify", str(out))
    assert proc.returncode == 1
    assert member.name in proc.stdout and "sha256" in proc.stdout


def test_verify_names_a_member_whose_row_was_deleted(corpus_run, tmp_path):
    """The row deleted from its manifest part (the parts are the dataset; verify checks each shard against
    its part) and from the merged manifest: the shard's members are named; deleted from the merged
    manifest alone, the clip is named as missing there."""
    out = shutil.copytree(corpus_run["out"], tmp_path / "run")
    path = os.path.join(out, "manifests", "clips.parquet")
    rows = pq.read_table(path).to_pylist()
    gone = next(r for r in rows if r["status"] == "accepted")
    pq.write_table(pa.Table.from_pylist([r for r in rows if r is not gone], schema=pq.read_schema(path)), path)
    proc = manifests_cli("verify", str(out))
    assert proc.returncode == 1
    assert f"clip {gone['clip_id']}: in the parts but not manifests/clips.parquet" in proc.stdout
    part = os.path.join(out, "shards", gone["shard"][:-len(".tar")] + ".clips.parquet")
    table = pq.read_table(part)
    kept = table.filter(pa.array([cid != gone["clip_id"] for cid in table.column("clip_id").to_pylist()]))
    pq.write_table(kept.replace_schema_metadata(table.schema.metadata), part)
    proc = manifests_cli("verify", str(out))
    assert proc.returncode == 1
    assert f"{gone['clip_id']}.mp4 has no accepted manifest row" in proc.stdout


@pytest.mark.integration
def test_diff_reports_a_decision_flipped_by_a_threshold(corpus, models_dir, tmp_path):
    corpus_dir, _ = corpus
    subset = tmp_path / "in"
    subset.mkdir()
    for name in ("insync_24fps.mp4", "in sync 25fps.mp4"):
        shutil.copy(os.path.join(corpus_dir, name), subset / name)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    build_shards(str(subset), a, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    confs = {r["source_path"]: r["motion_conf"] for r in pq.read_table(os.path.join(a, "manifests", "clips.parquet")).to_pylist()}
    assert len(confs) == 2 and len(set(confs.values())) == 2
    weaker = min(confs, key=confs.get)  # a threshold between the two flips exactly the weaker one
    between = str(sum(confs.values()) / 2)
    build_shards(str(subset), b, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion", "--min-motion-sync-conf", between)
    proc = manifests_cli("diff", a, b)
    assert proc.returncode == 0
    assert "decisions flipped: 1" in proc.stdout
    flipped = [line for line in proc.stdout.splitlines() if line.startswith("~ ")]
    assert len(flipped) == 1 and weaker in flipped[0]
    assert "accepted  ->  rejected at sync: sync_confidence" in flipped[0]
    assert "no differences" in manifests_cli("diff", a, a).stdout
