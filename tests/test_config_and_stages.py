"""Options and the small pure parts of the stages."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.checks.face_detectors import Detection
from pipeline.checks.face_tracking import link_tracks
from pipeline.checks.loudness import mean_volume_db
from pipeline.checks.vad import overlap_ratio
from pipeline.config import PipelineConfig, parse_config
from pipeline.stages.base import clip_id, source_id
from pipeline.stages.segment import place_windows, scenes_from_scores
from tests.conftest import REPO


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "pipeline/build_shards.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for name in PipelineConfig().flat():
        assert "--" + name.replace("_", "-") in out
    for section in ("face", "sync", "audio", "visual", "text", "transcribe", "encode", "run"):
        assert f"\n{section} (" in out  # the flags grouped by the stage that reads them
    assert "ray job submit" in out


def test_field_defaults(tmp_path):
    cfg = parse_config(["--input", str(tmp_path), "--output", "b"], "")
    assert (cfg.fps, cfg.clip_frames, cfg.max_sync_offset, cfg.min_sync_conf, cfg.min_loudness_db) == (24, 121, 3, 1.5, -60)
    assert cfg.sync_vshift == 15 and cfg.sample_rate == 16000 and cfg.clip_seconds == pytest.approx(5.0417, abs=1e-4)


BAD_ARGS = {  # flags -> what the one-line error must say
    ("--buckets", "garbage"): "expected WIDTHxHEIGHT", ("--buckets", "256x"): "expected WIDTHxHEIGHT",
    ("--buckets", ""): "expected WIDTHxHEIGHT", ("--buckets", "0x0"): "positive multiples of 32",
    ("--buckets=-64x64",): "positive multiples of 32", ("--encode-batch", "0"): "--encode-batch must be at least 1",
    ("--workers", "-1"): "--workers must be at least 0", ("--limit", "-1"): "--limit must be at least 0",
    ("--analysis-size", "0"): "--analysis-size must be at least 64", ("--clip-frames", "120"): "1 + 4k",
    ("--face-score", "1.5"): "share in [0, 1]", ("--max-sync-offset", "20"): "exceeds the search range",
}


@pytest.mark.parametrize("flags", list(BAD_ARGS), ids=lambda f: " ".join(f) or "empty")
def test_a_bad_argument_is_one_line_before_any_work(flags, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        parse_config(["--input", str(tmp_path), "--output", str(tmp_path.parent / "out"), *flags], "")
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ": error: " in last and BAD_ARGS[flags] in last


@pytest.mark.integration
def test_bad_paths_and_missing_models_stop_the_script_before_any_work(tmp_path):
    """End to end through the script: an --input that is a file, an --output inside --input, and a run
    without the Whisper model each exit with one line and create no output folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"not a video")
    cases = {("--input", str(folder / "a.mp4"), "--output", str(tmp_path / "o1")): "is not a folder (it is a file",
             ("--input", str(folder), "--output", str(folder / "out")): "lies inside --input",
             ("--input", str(folder), "--output", str(tmp_path / "o3"), "--models-dir", str(tmp_path / "none"),
              "--latents", "off", "--sync-scorer", "mouth_motion"): "Whisper model not found"}
    for args, says in cases.items():
        proc = subprocess.run([sys.executable, "pipeline/build_shards.py", *args], cwd=REPO, capture_output=True,
                              text=True)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert says in proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
        assert not os.path.exists(args[3])


def test_ids_are_deterministic_and_dot_free():
    a = clip_id(source_id("x/y.mp4:10"), 5, 121, 24.0)
    assert a == clip_id(source_id("x/y.mp4:10"), 5, 121, 24.0) and "." not in a
    assert a != clip_id(source_id("x/y.mp4:10"), 6, 121, 24.0)


def test_windows_start_at_speech_and_stay_inside_scenes():
    scenes = scenes_from_scores(np.array([0, 1, 1, 50, 1, 1, 1, 1, 1, 1], np.float32), 30)
    assert scenes == [(0, 3), (3, 10)]
    assert place_windows((0, 300), 121, 5, [(40, 200)]) == [40, 161]  # the second starts mid-speech
    assert place_windows((0, 300), 121, 5, [(0, 300)]) == [5, 126]
    assert place_windows((0, 100), 121, 5, [(0, 100)]) == []
    assert place_windows((0, 300), 121, 5, []) == [5, 126]


def test_loudness_and_speech_ratio():
    assert mean_volume_db(np.zeros(100)) == -120.0
    assert mean_volume_db(np.ones(100) * 0.1) == pytest.approx(-20.0)
    assert overlap_ratio([(0.0, 1.0), (2.0, 3.0)], 0.5, 2.5) == pytest.approx(0.5)


def test_tracks_link_by_overlap():
    det = lambda x: Detection(np.array([x, 0, x + 10, 10], np.float32), 0.9, np.zeros((5, 2), np.float32))
    tracks = link_tracks([(0, [det(0), det(50)]), (2, [det(1), det(51)]), (4, [det(2)])], 0.5)
    assert sorted(len(t) for t in tracks) == [2, 3]
