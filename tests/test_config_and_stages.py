"""Options and the small pure parts of the stages."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import PipelineConfig, parse_config
from pipeline.stages.audio import mean_volume_db, overlap_ratio
from pipeline.stages.base import clip_id, source_id
from pipeline.stages.face import Detection, link_tracks
from pipeline.stages.segment import place_windows, scenes_from_scores
from tests.conftest import REPO


def test_help_documents_every_option():
    out = subprocess.run([sys.executable, "pipeline/build_shards.py", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for f in dataclasses.fields(PipelineConfig):
        assert "--" + f.name.replace("_", "-") in out
    assert "ray job submit" in out


def test_field_defaults():
    cfg = parse_config(["--input", "a", "--output", "b"], "")
    assert (cfg.fps, cfg.clip_frames, cfg.max_sync_offset, cfg.min_sync_conf, cfg.min_loudness_db) == (24, 121, 3, 1.5, -60)
    assert cfg.sync_vshift == 15 and cfg.sample_rate == 16000 and cfg.clip_seconds == pytest.approx(5.0417, abs=1e-4)


def test_clip_length_must_be_one_plus_four_k():
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        parse_config(["--input", "a", "--output", "b", "--clip-frames", "120"], "")


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
