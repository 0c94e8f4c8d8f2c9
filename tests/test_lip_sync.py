"""SyncNet loads the official layout strictly; Sync-C / Sync-D / offset follow syncnet_python's
definition; the model-free scorer finds a known shift."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from model.syncnet import SyncNet, load_syncnet, save_debug_weights
from pipeline.checks.lip_sync import (MouthMotionScorer, SyncNetScorer, read_distances, shifted_distances, syncnet_crops,
                                syncnet_mfcc)

# tensor names and shapes of the official checkpoints (figures, kept in the repository so a clone tests them)
LAYOUTS = os.path.join(os.path.dirname(__file__), "reference", "state_dict_layouts.json")


def reference_layout(name: str) -> dict:
    with open(LAYOUTS) as f:
        return {k: list(v) for k, v in json.load(f)[name]["tensors"].items()}


def test_syncnet_state_dict_matches_official_layout():
    with torch.device("meta"):
        net = SyncNet()
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == reference_layout("syncnet_v2")


def test_strict_load_of_a_file_in_the_official_format(tmp_path):
    save_debug_weights(str(tmp_path), seed=3)
    net = load_syncnet(str(tmp_path))
    a = net.embed_audio(torch.randn(2, 1, 13, 20))
    v = net.embed_lips(torch.randn(2, 3, 5, 224, 224))
    assert a.shape == v.shape == (2, 1024)
    state = torch.load(tmp_path / "syncnet" / "syncnet_v2.model", weights_only=True)
    state["netfcaud.3.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "syncnet" / "syncnet_v2.model")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_syncnet(str(tmp_path))


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="syncnet_v2.model"):
        load_syncnet(str(tmp_path))


def test_offset_confidence_and_min_distance_follow_syncnet_python():
    g = torch.Generator().manual_seed(0)
    video, audio, vshift = torch.randn(40, 8, generator=g), torch.randn(40, 8, generator=g), 5
    dists = shifted_distances(video, audio, vshift)
    # independent computation: distance of video i to audio i + k (zero vector outside), averaged over i
    brute = np.zeros(2 * vshift + 1)
    for j, k in enumerate(range(-vshift, vshift + 1)):
        for i in range(40):
            a = audio[i + k].numpy() if 0 <= i + k < 40 else np.zeros(8, np.float32)
            brute[j] += np.linalg.norm(video[i].numpy() - a + 1e-6) / 40
    np.testing.assert_allclose(dists.mean(0).numpy(), brute, rtol=1e-5)
    s = read_distances(brute, vshift, 25.0, "x")
    assert s.offset == vshift - int(np.argmin(brute))
    assert s.min_dist == pytest.approx(brute.min())
    assert s.confidence == pytest.approx(np.sort(brute)[(len(brute) - 1) // 2] - brute.min())


@pytest.mark.integration
def test_syncnet_scorer_runs_on_a_clip_with_debug_weights(tmp_path):
    save_debug_weights(str(tmp_path))
    frames = np.random.default_rng(0).integers(0, 255, (60, 120, 160, 3), dtype=np.uint8)
    boxes = np.tile(np.array([50, 30, 110, 100], np.float32), (60, 1))
    crops = syncnet_crops(frames, boxes)
    assert crops.shape == (60, 224, 224, 3)
    pcm = np.random.default_rng(1).standard_normal(60 * 640) * 0.1
    net = load_syncnet(str(tmp_path))
    s = SyncNetScorer(net, batch_size=16).score(crops, pcm, 15)
    assert s.scorer == "syncnet_v2" and s.fps == 25.0
    # against a plain loop over frames and shifts, as syncnet_python's calc_pdist walks them
    with torch.no_grad():
        video = torch.from_numpy(crops).float().permute(3, 0, 1, 2)
        mfcc = torch.from_numpy(syncnet_mfcc(pcm)).float()
        n = 60 - 5
        v = [net.embed_lips(video[None, :, i:i + 5])[0] for i in range(n)]
        a = [net.embed_audio(mfcc[None, None, :, 4 * i:4 * i + 20])[0] for i in range(n)]
    mean = [np.mean([float(torch.dist(v[i], a[i + k]) if 0 <= i + k < n else torch.linalg.norm(v[i] + 1e-6))
                     for i in range(n)]) for k in range(-15, 16)]
    best = int(np.argmin(mean))
    # the chosen shift is a minimum of the plain loop's curve (random weights can tie two shifts to float
    # round-off, so which of the tied shifts argmin names depends on the BLAS's summation order)
    assert mean[15 - s.offset] == pytest.approx(mean[best], rel=1e-5) and s.min_dist == pytest.approx(mean[best], rel=1e-4)
    assert s.confidence == pytest.approx(float(np.sort(mean)[15]) - mean[best], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("lag_frames", [-6, 0, 4])
def test_mouth_motion_scorer_finds_a_known_shift(lag_frames):
    rng = np.random.default_rng(1)
    fps, sr, n = 24.0, 16000, 120
    loud = np.abs(np.convolve(rng.normal(size=n + 40), np.ones(4) / 4, "same"))
    opening = loud[20:20 + n]  # the mouth follows loudness
    heard = loud[20 - lag_frames:20 - lag_frames + n]  # audio heard `lag_frames` late
    pcm = np.concatenate([np.sin(np.arange(int(sr / fps)) * 0.3) * v for v in heard]).astype(np.float32)
    mouths = (200 - 100 * opening / opening.max())[:, None, None] * np.ones((1, 24, 32), np.float32)
    s = MouthMotionScorer().score(mouths, pcm, sr, fps, 15)
    assert s.offset == -lag_frames and s.confidence > 0.5


@pytest.mark.integration
def test_sync_stage_uses_syncnet_when_its_weights_are_present(tmp_path):
    """The stage path with the model: decoded frames on disk, a face track, SyncNet at 25 fps."""
    from pipeline.config import PipelineConfig
    from pipeline.media import DecodeResult
    from pipeline.stages.sync import SyncStage
    from pipeline.stages.worker_state import SourceScratch, new_clip
    from records.rows import SourceRow

    save_debug_weights(str(tmp_path))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (130, 96, 128, 3), dtype=np.uint8)
    frames.tofile(tmp_path / "frames.rgb")
    decoded = DecodeResult(str(tmp_path / "frames.rgb"), "", 130, (128, 96), "")
    source = SourceRow(scratch=SourceScratch("", decoded=decoded,
                                             pcm=(rng.standard_normal(16000 * 6) * 0.1).astype(np.float32)))
    clip = new_clip(source, {"start_frame": 0, "num_frames": 121, "fps": 24.0, "status": "candidate"})
    clip.scratch.track_boxes = np.tile(np.array([30, 20, 90, 80], np.float32), (121, 1))
    clip.scratch.track_landmarks = np.tile(np.array([[45, 40], [75, 40], [60, 55], [50, 68], [70, 68]], np.float32),
                                           (121, 1, 1))
    stage = SyncStage(PipelineConfig.of(input="x", output="y", models_dir=str(tmp_path)))
    stage.setup()
    stage([clip])
    assert clip["sync_scorer"] == "syncnet_v2" and clip["sync_fps"] == 25.0
    assert isinstance(clip["syncnet_conf"], float) and isinstance(clip["syncnet_dist"], float)
    assert clip.get("motion_conf") is None  # each scorer writes only its own columns
    passes = clip["syncnet_conf"] >= 1.5 and abs(clip["sync_offset_frames"]) <= 3  # the field's thresholds
    if not passes:
        assert clip["reject_reason"] == ("sync_confidence" if clip["syncnet_conf"] < 1.5 else "sync_offset")
        assert clip.get("asd_speaking") is None  # the active speaker is asked only after sync passes
    else:  # then Light-ASD decides whether the tracked face is the one speaking
        assert (clip["status"] == "rejected") == (clip["asd_speaking"] < 0.5)


@pytest.mark.integration
def test_a_real_run_without_syncnet_weights_stops_before_any_work(corpus, tmp_path):
    """No --debug-models, no SyncNet file, no --sync-scorer: the run names the file and the fetch command
    and writes nothing; choosing a scorer explicitly lets the same run through the check."""
    import subprocess
    import sys

    from tests.conftest import REPO

    corpus_dir, _ = corpus
    models = tmp_path / "models"
    models.mkdir()
    cmd = [sys.executable, os.path.join(REPO, "pipeline", "build_shards.py"), "--input", corpus_dir,
           "--output", str(tmp_path / "out"), "--models-dir", str(models), "--latents", "off"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0
    assert "syncnet/syncnet_v2.model" in proc.stderr and "python -m model.loading.fetch" in proc.stderr
    assert "--sync-scorer motion_asd" in proc.stderr and not os.path.exists(tmp_path / "out" / "manifests")
    from pipeline.config import parse_config
    from pipeline.stages.sync import resolve_scorer

    explicit = parse_config(["--input", corpus_dir, "--output", "x", "--models-dir", str(models), "--sync-scorer", "motion_asd"], "")
    debug = parse_config(["--input", corpus_dir, "--output", "x", "--models-dir", str(models), "--debug-models"], "")
    assert resolve_scorer(explicit.sync, explicit.run) == "motion_asd"
    assert resolve_scorer(debug.sync, debug.run) == "mouth_motion"
