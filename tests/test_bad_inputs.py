"""Inputs that end wrong in the wild, made with ffmpeg from a corpus file, in one run: each ends as exactly
one source row with a reason that says what is true, and nothing crashes the job."""
from __future__ import annotations

import os
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from tests.conftest import build_shards

NOT_UTF8 = "caf\\xe9-latin1.mp4"  # how the manifest shows the name b"caf\xe9-latin1.mp4"


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def make_inputs(talking: str, inp, scratch) -> None:
    shutil.copy(talking, inp / "good.mp4")
    shutil.copy(talking, inp / "z_copy.mp4")  # the same bytes under another name
    shutil.copy(talking, os.fsencode(inp) + b"/caf\xe9-latin1.mp4")
    os.symlink(scratch / "gone.mp4", inp / "dangling.mp4")
    ffmpeg("-i", talking, "-t", "3", "-vn", "-c:a", "aac", str(scratch / "a3.m4a"))
    ffmpeg("-i", talking, "-i", str(scratch / "a3.m4a"), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(inp / "audio_short.mp4"))
    ffmpeg("-i", talking, "-f", "lavfi", "-t", "4", "-i", "sine=f=300", "-filter_complex",
           "[0:a][1:a]concat=n=2:v=0:a=1[a]", "-map", "0:v", "-map", "[a]", "-c:v", "copy", "-c:a", "aac",
           str(inp / "audio_long.mp4"))
    ffmpeg("-i", talking, "-c", "copy", "-output_ts_offset", "10", str(inp / "starts_at_10s.mp4"))
    ffmpeg("-i", talking, "-frames:v", "1", "-f", "image2", "-c:v", "png", str(inp / "picture.mp4"))
    ffmpeg("-i", talking, "-c", "copy", "-movflags", "-faststart", str(scratch / "moov_at_end.mp4"))
    with open(scratch / "moov_at_end.mp4", "rb") as f:  # cut before the index at the end
        (inp / "no_moov.mp4").write_bytes(f.read(60000))
    ffmpeg("-i", talking, "-vf", "scale=64:48", "-c:a", "copy", str(inp / "tiny_64x48.mp4"))


@pytest.fixture(scope="module")
def bad_run(corpus_run, models_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad")
    inp, scratch = root / "in", root / "scratch"
    inp.mkdir()
    scratch.mkdir()
    make_inputs(os.path.join(corpus_run["corpus"], "insync_24fps.mp4"), inp, scratch)
    out = str(root / "out")
    proc = build_shards(str(inp), out, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    rows = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    return {"inp": str(inp), "out": out, "stdout": proc.stdout, "sources": {r["source_path"]: r for r in rows},
            "clips": clips, "count": len(rows)}


EXPECTED = {  # file -> (status, stage, reason, words the detail must hold)
    "good.mp4": ("done", None, None, ""),
    "z_copy.mp4": ("rejected", "list", "duplicate_of", "good.mp4"),
    NOT_UTF8: ("rejected", "list", "name_not_utf8", "UTF-8"),
    "dangling.mp4": ("rejected", "list", "dangling_link", "does not exist"),
    "audio_short.mp4": ("rejected", "segment", "no_window", "the audio ends at 3.0"),
    "audio_long.mp4": ("done", None, None, ""),
    "starts_at_10s.mp4": ("done", None, None, ""),
    "picture.mp4": ("rejected", "probe", "still_image", "png"),
    "no_moov.mp4": ("rejected", "probe", "unreadable", "moov atom not found"),
    "tiny_64x48.mp4": ("rejected", "probe", "frame_too_small", "64x48"),
}


def test_every_input_is_one_row(bad_run):
    assert bad_run["count"] == len(EXPECTED) and set(bad_run["sources"]) == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_input_ends_with_what_is_true(bad_run, name):
    status, stage, reason, words = EXPECTED[name]
    row = bad_run["sources"][name]
    assert (row["status"], row["reject_stage"], row["reject_reason"]) == (status, stage, reason), row["error"]
    assert words in (row["reject_detail"] or ""), row["reject_detail"]


def test_a_duplicate_names_the_source_kept(bad_run):
    rows = bad_run["sources"]
    assert rows["z_copy.mp4"]["duplicate_of"] == rows["good.mp4"]["source_id"]


def test_clips_of_uneven_streams_stay_inside_both(bad_run):
    """Audio longer than the video, and streams starting at 10 s: full clips, inside the pictures and the sound."""
    for name in ("audio_long.mp4", "starts_at_10s.mp4"):
        clips = [c for c in bad_run["clips"] if c["source_path"] == name]
        assert clips and all(c["end_s"] <= bad_run["sources"][name]["duration_s"] for c in clips)
        assert bad_run["sources"][name]["duration_s"] == pytest.approx(6.4, abs=0.2)


def test_a_rerun_sees_every_input_finished(bad_run, models_dir):
    again = build_shards(bad_run["inp"], bad_run["out"], models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    assert f"{len(EXPECTED)} already finished, 0 to process" in again.stdout
