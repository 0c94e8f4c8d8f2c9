"""The checks on recorded people: `REAL_FOOTAGE` names the labelled folder (`.ci/run` sets it to
../shared/real_footage; a path is taken from the repository root). When the variable is set and the folder
is missing, every test here fails rather than skips. One pipeline run per corpus serves all tests."""
from __future__ import annotations

import importlib.util
import os

import pytest

from tests.conftest import REAL_FOOTAGE, REPO

pytestmark = pytest.mark.skipif(not REAL_FOOTAGE, reason="REAL_FOOTAGE does not name the real-footage folder")
SHIFTED = "audio_early_0.4s", "audio_late_0.4s"


def benchmark():
    return load_benchmark("real_footage")


@pytest.fixture(scope="module")
def offline_run(footage, models_dir, tmp_path_factory) -> dict:
    """The offline scorer (no SyncNet weights here) at a clip length the 3-5.6 s recordings hold."""
    return benchmark().score_videos(footage, str(tmp_path_factory.mktemp("real")), models_dir, "motion_asd", 73)


def test_in_sync_speakers_are_kept(offline_run):
    """Kept: accepted, or kept with sync_status unverified. lrs2_00002 (1.5 s) holds no 73-frame clip."""
    originals = {n: f for n, f in offline_run["files"].items() if f["expect"] == "accept"}
    assert len(originals) == 7
    kept = [n for n, f in originals.items() if f["result"] in ("accepted", "unverified")]
    assert len(kept) >= 6, {n: f["reason"] for n, f in originals.items()}


def test_no_shifted_or_dubbed_copy_is_accepted_as_in_sync(offline_run):
    negatives = {n: f for n, f in offline_run["files"].items() if "__" in n}
    assert len(negatives) == 12
    # the goal is 90% (issue 25); face_2 with face_3's voice reads in sync at 73 frames (a voice over a
    # face with similar rhythm: held out at 49 frames, 1 of 11 voice-swap clips is called in sync)
    accepted = [n for n, f in negatives.items() if f["result"] == "accepted"]
    assert len(accepted) <= 0.1 * len(negatives), accepted
    rejected = [f for f in negatives.values() if f["result"] == "rejected"]
    assert all(f["reason"].startswith("sync:") for f in rejected)  # rejected for sync, not by accident


def test_shifted_copies_move_the_offset_by_the_shift(offline_run):
    """0.4 s is 10 frames at 25 fps (9.6 at 24): audio early reads positive, late negative, as SyncNet's sign."""
    files = offline_run["files"]
    moved = [(n, f["offset"]) for n, f in files.items() if n.endswith(SHIFTED[0] + ".mp4")] + \
            [(n, -f["offset"]) for n, f in files.items() if n.endswith(SHIFTED[1] + ".mp4")]
    assert len(moved) == 10
    near = [n for n, o in moved if abs(o - 10) <= 3]
    assert len(near) >= 8, moved


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def derived_run(footage, models_dir, tmp_path_factory) -> tuple[dict, dict]:
    """Three recorded speakers and, made from each, one case per data filter (benchmarks/derived_cases.py)."""
    root, out = str(tmp_path_factory.mktemp("derived")), str(tmp_path_factory.mktemp("derived_run"))
    labels = load_benchmark("derived_cases").build(footage, root)
    return labels, dict(benchmark().score_videos(root, out, models_dir, "motion_asd", 73), out=out)


def test_each_data_filter_rejects_its_derived_cases_and_keeps_the_originals(derived_run):
    labels, run = derived_run
    assert len(labels) == 24
    for name, label in labels.items():
        got = run["files"][name]
        if label["expect"] == "accept":
            assert got["result"] == "accepted", (name, got)
            continue
        if label["expect"] == "any":  # the music bed: no filter catches it at its validated threshold
            continue
        # x264 cannot code a 160 px recording at 0.002 bits per pixel (1 kbit/s): it gets 0.0064, above the
        # probe's threshold, and the picture breaks up so that the face detector loses the face (or, in one CI
        # run of an earlier version, sees a second face in face_2's blocks)
        allowed = {label["reason"]} | ({"face:no_face", "face:face_count"} if label["case"] == "blocky" else set())
        assert got["result"] == "rejected" and got["reason"] in allowed, (name, got)


def test_the_audit_shows_each_filters_scores_and_rejects_with_thumbnails(derived_run, tmp_path):
    import html
    import re
    import subprocess
    import sys

    from manifests.audit import SCORES

    labels, run = derived_run
    page = tmp_path / "audit.html"
    proc = subprocess.run([sys.executable, "-m", "manifests", "audit", run["out"], "--html", str(page)], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    dom = page.read_text(encoding="utf-8")
    for column in ("speech_snr_db", "face_motion", "mouth_motion", "face_sharpness", "brisque", "text_line_width"):
        assert f"{SCORES[column]} (n=" in dom, column  # the score's histogram
    sheets = {}  # contact-sheet heading -> its figures
    for head, figures in re.findall(r'<h3>(.*?) \(\d+\)</h3><div class="sheet">((?:<figure>.*?</figure>)*)</div>',
                                    dom, re.S):
        sheets[html.unescape(head)] = figures
    for reason in {run["files"][n]["reason"] for n, label in labels.items() if label["expect"] == "reject"}:
        stage, why = reason.split(":")
        key = next(k for k in sheets if k.endswith(f"rejected at {stage}: {why}"))
        assert "data:image/jpeg" in sheets[key], key  # a thumbnail of a rejected clip or source


def test_scene_cuts_of_the_stage_recording_are_found(offline_run):
    """short_hamilton_clip changes shot at 1.50, 3.58 and 7.88 s (looked at frame by frame); the old
    threshold of 30 found only the first."""
    cuts = offline_run["files"]["short_hamilton_clip.mp4"]["scene_cuts_s"]
    assert len(cuts) == 3 and all(abs(c - t) < 0.1 for c, t in zip(cuts, (1.5, 3.58, 7.88))), cuts


def test_read_speech_is_transcribed(footage, models_dir, tmp_path_factory):
    mean = benchmark().speech_wer(footage, str(tmp_path_factory.mktemp("speech")), models_dir)
    assert mean < 0.15


def decode(path: str, size: int = 448) -> tuple:
    """RGB frames at 25 fps and 16 kHz mono audio of a recording, through ffmpeg."""
    import subprocess

    import numpy as np

    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-vf", f"fps=25,scale={size}:{size}", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    pcm = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3), np.frombuffer(pcm, np.int16) / 32768.0


@pytest.mark.parametrize("name", ["face_2.mp4", "lrs2_00001.mp4"])
def test_active_speaker_tells_a_speaking_face_from_a_still_one(footage, name):
    """Light-ASD on a recorded speaker: speaking through most of the speech; the same face frozen on its
    first frame over the same voice (a photo with a voice-over: the speaker is off screen) is not."""
    import numpy as np

    from model.light_asd import load_light_asd
    from pipeline.checks.asd_sync import LightASDScorer, asd_faces
    from pipeline.checks.face_detectors import RetinaFaceDetector
    from pipeline.checks.face_tracking import smooth_boxes
    from pipeline.checks.lip_sync import syncnet_crops

    frames, pcm = decode(os.path.join(footage, "videos", name))
    boxes = np.stack([max(d, key=lambda x: x.score).box for d in RetinaFaceDetector().detect(frames, 0.5)])
    faces = asd_faces(syncnet_crops(frames, smooth_boxes(boxes)))
    scorer = LightASDScorer(load_light_asd())
    speaking = scorer.speaking_share(*scorer.embed(faces, pcm))
    still = scorer.speaking_share(*scorer.embed(np.repeat(faces[:1], len(faces), 0), pcm))
    assert speaking > 0.5 > still, (speaking, still)


@pytest.mark.parametrize("name", ["face_3.mp4", "lrs2_00009.mp4"])
def test_tracking_between_keyframes_stays_on_the_detected_face(footage, name):
    """On recorded speakers, boxes tracked from a detection every 8th frame stay within a few percent of the
    face width of the detector's own box on every frame (measured: 1.4% and 2.9% on average; the
    detector's own jitter from frame to frame is of that order)."""
    import cv2
    import numpy as np

    from pipeline.checks.face_detectors import RetinaFaceDetector
    from pipeline.checks.face_tracking import track

    frames, _ = decode(os.path.join(footage, "videos", name))
    found = [max(d, key=lambda x: x.score) for d in RetinaFaceDetector().detect(frames, 0.5)]
    boxes, marks = np.stack([d.box for d in found]), np.stack([d.landmarks for d in found])
    keys = sorted(set(range(0, len(frames), 8)) | {len(frames) - 1})
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    tracked, _ = track(grey, {k: (boxes[k], marks[k]) for k in keys})
    between = np.setdiff1d(np.arange(len(frames)), keys)
    error = np.abs(tracked - boxes)[between] / np.median(boxes[:, 2] - boxes[:, 0])
    assert error.mean() < 0.04 and np.quantile(error, 0.95) < 0.1, (error.mean(), np.quantile(error, 0.95))


@pytest.fixture(scope="module")
def held_out(footage, models_dir, tmp_path_factory) -> dict:
    """Both collections measured at 49 frames (every stage on every clip), thresholds chosen by speaker."""
    from benchmarks.footage_report import validate

    return validate(footage, str(tmp_path_factory.mktemp("validate")), [49], models_dir)[49]


def test_offline_sync_meets_its_goal_on_speakers_held_out(held_out):
    """Issue 25's goal for the offline check, with thresholds chosen without the speaker: at most 10% of
    in-sync clips called out of sync; at least 90% of 0.4 s shifts and voice swaps not called in sync."""
    clips, sync = held_out["clips"], held_out["held_out"]["sync"]
    orig = [o for c, o in zip(clips, sync) if c.file.kind == "original"]
    neg = [o for c, o in zip(clips, sync) if c.file.kind in ("late", "early", "voice_swap")]
    assert len(orig) >= 50 and len(neg) >= 70  # both collections were read
    assert sum(o in ("out_of_sync", "unmeasured") for o in orig) <= 0.1 * len(orig)
    assert sum(o == "in_sync" for o in neg) <= 0.1 * len(neg)


def test_every_filter_together_keeps_in_sync_recordings_held_out(held_out):
    """Issue 25's acceptance, every check at its held-out threshold: at least 90% of the in-sync recordings
    kept (accepted, or unverified), at least 90% of the shifted and dubbed copies not accepted, and no clip
    of a hard case labelled `reject` accepted."""
    from benchmarks.footage_report import per_file

    clips, final = held_out["clips"], held_out["held_out"]["final"]
    files = per_file(clips, final)
    kind = {(c.file.collection, c.file.name): (c.file.kind, c.file.label["expect"]) for c in clips}
    originals = [o for k, o in files.items() if kind[k][0] == "original"]
    negatives = [o for k, o in files.items() if kind[k][0] in ("late", "early", "voice_swap")]
    assert len(originals) >= 25 and len(negatives) >= 30  # both collections were read
    assert sum(o in ("accepted", "unverified") for o in originals) >= 0.9 * len(originals), files
    assert sum(o == "accepted" for o in negatives) <= 0.1 * len(negatives)
    hard = [k for k, o in files.items() if kind[k] == ("hard", "reject")]
    assert len(hard) == 6 and all(files[k] == "rejected" for k in hard), {k: files[k] for k in hard}


def test_the_chosen_rule_is_the_shipped_default(held_out):
    """The defaults of --offline-sync-tolerance, --min-sync-evidence and --min-offsync-evidence are the
    validation's choice on every speaker (rounded down to a tenth)."""
    from pipeline.config import PipelineConfig

    rule, cfg = held_out["chosen"]["sync"], PipelineConfig.of(input="x", output="y")
    assert rule.tolerance == cfg.offline_sync_tolerance == rule.reject_beyond
    assert abs(rule.accept - cfg.min_sync_evidence) < 0.1 and abs(rule.reject - cfg.min_offsync_evidence) < 0.1


def test_offset_correction_recuts_a_shifted_recording(footage, models_dir, tmp_path):
    """lrs2_00004 with its audio 0.4 s late (9.6 frames at 24 fps): with correction on, its clips come out
    kept with the audio re-cut about 10 frames later, and the shard's wav is the original recording's audio
    over the clip's span."""
    import io
    import shutil
    import tarfile

    import numpy as np
    import pyarrow.parquet as pq
    from scipy.io import wavfile

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(os.path.join(footage, "videos", "lrs2_00004__audio_late_0.4s.mp4"), src)
    out = tmp_path / "out"
    benchmark().build(str(src), str(out), models_dir, "--sync-scorer", "motion_asd", "--clip-frames", "49",
                      "--language", "en", "--max-offset-correction", "12", "--ray-address", "local")
    clips = [c for c in pq.read_table(out / "manifests" / "clips.parquet").to_pylist() if c["status"] == "accepted"]
    assert clips and all(abs(c["audio_shift_frames"] - 9.6) <= 2 for c in clips), \
        [(c["audio_shift_frames"], c["sync_offset_frames"]) for c in clips]
    from scipy.signal import correlate

    _, original = decode(os.path.join(footage, "videos", "lrs2_00004.mp4"), 64)
    for c in clips:
        with tarfile.open(out / "shards" / c["shard"]) as tar:
            rate, wav = wavfile.read(io.BytesIO(tar.extractfile(f"{c['clip_id']}.wav").read()))
        # where in the original recording the shard's audio lies: the clip's own span, to within the 2 frames
        # the correction is measured to (the late copy's audio at this span is 0.4 s away)
        wav = wav.astype(np.float64) / 32768
        lags = correlate(original, wav, mode="valid", method="fft")
        found_s = int(np.argmax(lags)) / rate
        assert abs(found_s - c["start_s"]) <= 2 / 24, (c["start_s"], found_s, c["audio_shift_frames"])


def test_rescoring_with_syncnet_rewrites_what_changed_and_verify_stays_clean(footage, models_dir, tmp_path):
    """A run made with the offline check, rescored with SyncNet weights in the official format (seeded random
    weights: only the bookkeeping is under test, not SyncNet's judgement): every kept clip gets SyncNet's
    columns and the decision they imply, rejected clips leave their shards, shards where nothing changed are
    not rewritten, `verify` stays clean and `diff` lists the flips."""
    import hashlib
    import shutil
    import subprocess
    import sys

    import pyarrow.parquet as pq

    from manifests.diff import decision, diff_runs
    from manifests.verify import verify
    from model.syncnet import save_debug_weights

    src = tmp_path / "in"
    for i, name in enumerate(("face_2.mp4", "lrs2_00001.mp4", "lrs2_00004.mp4", "face_3.mp4")):
        (src / str(i)).mkdir(parents=True)  # a source a shard (--shard-target-mb tiny): some shards keep their clips
        shutil.copy(os.path.join(footage, "videos", name), src / str(i))
    out = tmp_path / "out"
    benchmark().build(str(src), str(out), models_dir, "--sync-scorer", "motion_asd", "--clip-frames", "49",
                      "--language", "en", "--shard-target-mb", "0.000001", "--ray-address", "local")
    before = {r["clip_id"]: r for r in pq.read_table(out / "manifests" / "clips.parquet").to_pylist()}
    shards = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "shards").rglob("*.tar")}
    assert sum(r["status"] == "accepted" for r in before.values()) >= 4 and len(shards) >= 3
    weights = tmp_path / "models"
    save_debug_weights(str(weights))
    proc = subprocess.run([sys.executable, "-m", "pipeline.rescore", str(out), "--models-dir", str(weights),
                           "--min-sync-conf", "0"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    after = {r["clip_id"]: r for r in pq.read_table(out / "manifests" / "clips.parquet").to_pylist()}
    assert set(after) == set(before)
    for cid, b in before.items():
        a = after[cid]
        if b["status"] != "accepted":
            assert a == b  # nothing to score: left as it was
            continue
        assert a["sync_scorer"] == "syncnet_v2" and a["syncnet_conf"] is not None
        assert (a["status"] == "accepted") == (abs(a["sync_offset_frames"]) <= 3), a
        assert (a["sync_status"] == "in_sync") == (a["status"] == "accepted")
    flipped = [c for c in before if before[c]["status"] != after[c]["status"]]
    assert flipped, "random weights should move some offsets beyond 3 frames"
    assert verify(str(out)) == []
    changed_shards = {b["shard"] for c, b in before.items() if b["status"] == "accepted"
                      and b["sync_status"] != after[c]["sync_status"]}  # a clip left, or its metadata changed
    for path, digest in shards.items():
        same = hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert same == (str(path.relative_to(out / "shards")) not in changed_shards), path
    d = diff_runs(str(out / "before_rescore"), str(out))
    assert sorted(a["clip_id"] for a, _ in d.flipped) == sorted(c for c in before if decision(before[c]) != decision(after[c]))
    assert set(flipped) <= {a["clip_id"] for a, _ in d.flipped}
