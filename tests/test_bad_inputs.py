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


def make_inputs(corpus: str, inp, scratch) -> None:
    """Each case that must keep clips comes from another corpus recording: copies of one recording would be
    near duplicates of each other."""
    talking, other, third = (os.path.join(corpus, n) for n in ("insync_24fps.mp4", "in sync 25fps.mp4",
                                                                'in-sync "quoted" 30fps.mp4'))
    shutil.copy(talking, inp / "good.mp4")
    ffmpeg("-i", talking, "-vf", "scale=448:-2", "-c:v", "libx264", "-crf", "30", "-c:a", "aac", "-b:a", "64k",
           str(inp / "z_reencoded.mp4"))
    shutil.copy(talking, inp / "z_copy.mp4")  # the same bytes under another name
    shutil.copy(talking, os.fsencode(inp) + b"/caf\xe9-latin1.mp4")
    os.symlink(scratch / "gone.mp4", inp / "dangling.mp4")
    ffmpeg("-i", talking, "-t", "3", "-vn", "-c:a", "aac", str(scratch / "a3.m4a"))
    ffmpeg("-i", talking, "-i", str(scratch / "a3.m4a"), "-map", "0:v", "-map", "1:a", "-c", "copy",
           str(inp / "audio_short.mp4"))
    ffmpeg("-i", other, "-f", "lavfi", "-t", "4", "-i", "sine=f=300", "-filter_complex",
           "[0:a][1:a]concat=n=2:v=0:a=1[a]", "-map", "0:v", "-map", "[a]", "-c:v", "copy", "-c:a", "aac",
           str(inp / "audio_long.mp4"))
    ffmpeg("-i", third, "-c", "copy", "-output_ts_offset", "10", str(inp / "starts_at_10s.mp4"))
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
    make_inputs(corpus_run["corpus"], inp, scratch)
    out = str(root / "out")
    proc = build_shards(str(inp), out, models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    rows = pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    return {"inp": str(inp), "out": out, "stdout": proc.stdout, "sources": {r["source_path"]: r for r in rows},
            "clips": clips, "count": len(rows)}


EXPECTED = {  # file -> (status, stage, reason, words the detail must hold)
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


SAME_RECORDING = ("good.mp4", "z_reencoded.mp4")  # which one is kept depends on which finished first


def test_every_input_is_one_row(bad_run):
    names = set(EXPECTED) | set(SAME_RECORDING)
    assert bad_run["count"] == len(names) and set(bad_run["sources"]) == names


def test_a_reencode_is_the_same_recording(bad_run):
    """A smaller, more compressed copy with another audio bitrate: one of the two keeps its clips, the
    other is rejected as near_duplicate and names the one kept."""
    rows = [bad_run["sources"][n] for n in SAME_RECORDING]
    kept = [r for r in rows if r["status"] == "done"]
    dropped = [r for r in rows if r["reject_reason"] == "near_duplicate"]
    assert len(kept) == 1 and len(dropped) == 1 and kept[0]["clips_accepted"] >= 1, rows
    assert dropped[0]["reject_stage"] == "dedup" and dropped[0]["duplicate_of"] == kept[0]["source_id"]
    assert kept[0]["source_path"] in dropped[0]["reject_detail"]
    clips = [c for c in bad_run["clips"] if c["source_id"] == dropped[0]["source_id"]]
    assert clips and all(c["reject_reason"] == "near_duplicate" and not c["members"] for c in clips)


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
    n = len(EXPECTED) + len(SAME_RECORDING)
    assert f"{n} sources, {n} already finished, 0 to process" in again.stdout


def test_a_later_run_rejects_a_copy_of_a_kept_recording(bad_run, models_dir):
    """Recordings kept by earlier runs are compared too: a copy added later is not a new recording.
    (Last in this module: it adds an input.)"""
    kept = next(r for n, r in bad_run["sources"].items() if n in SAME_RECORDING and r["status"] == "done")
    ffmpeg("-i", os.path.join(bad_run["inp"], "good.mp4"), "-c:v", "libx264", "-crf", "34", "-c:a", "aac",
           os.path.join(bad_run["inp"], "zz_later_copy.mkv"))
    build_shards(bad_run["inp"], bad_run["out"], models_dir, "--latents", "off", "--sync-scorer", "mouth_motion")
    rows = {r["source_path"]: r for r in pq.read_table(os.path.join(bad_run["out"], "manifests", "sources.parquet")).to_pylist()}
    later = rows["zz_later_copy.mkv"]
    assert (later["reject_reason"], later["duplicate_of"]) == ("near_duplicate", kept["source_id"]), later
