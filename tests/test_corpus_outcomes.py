"""Acceptance 2 and 3: every case of the sample corpus ends with its expected status and reason, and
lip-sync offsets are measured where they should be."""
from __future__ import annotations

import os

import pytest

from pipeline.media import clip_seek_s
from sample_corpus.build import SECONDS


def test_every_input_has_a_source_row(corpus_run):
    assert set(corpus_run["sources"]) == set(corpus_run["labels"])


@pytest.mark.parametrize("name", [
    "insync_24fps.mp4", "in sync 25fps.mp4", 'in-sync "quoted" 30fps.mp4', "synchronisé à 24 ïmages – Ω.mp4",
    "audio_late_0.3s.mp4", "audio_early_0.4s.mp4", "mismatched_mouth.mp4", "two_faces.mp4", "no_face.mp4",
    "silence.mp4", "tone.mp4", "music.mp4", "scene_cut.mp4", "truncated.mp4", "no_audio.mp4", "no_video.mp4",
    "empty.mp4", "notes.mp4", "variable_fps.mp4", "rotated_90.mp4", "odd_dims_515x487.mp4",
])
def test_case_outcome(corpus_run, name):
    expect, src, clips = corpus_run["labels"][name], corpus_run["sources"][name], corpus_run["clips"][name]
    assert src["status"] == expect["source_status"], (src["reject_reason"], src["reject_detail"], src["error"])
    if expect["source_status"] == "rejected":
        assert (src["reject_stage"], src["reject_reason"]) == (expect["reject_stage"], expect["reject_reason"])
        assert src["reject_detail"]
        assert clips == []
        return
    # counted by an ffmpeg wrapper, not the stage: one decode of the whole source, then one read of each
    # accepted clip's span, from its seek point (a few frames before the clip)
    reads = corpus_run["reads"][os.path.basename(name)]
    seeks = sorted(round(clip_seek_s(c["start_frame"], c["fps"]), 6) for c in clips if c["status"] == "accepted")
    assert reads.count(None) == 1 and sorted(round(s, 6) for s in reads if s is not None) == seeks, reads
    assert len(clips) == len(expect["clips"]), [(c["start_s"], c["status"]) for c in clips]
    for clip, want in zip(clips, expect["clips"]):
        assert clip["status"] == want["status"], (clip["reject_stage"], clip["reject_reason"], clip["reject_detail"])
        if want["status"] == "rejected":
            reasons = want["reject_reason"] if isinstance(want["reject_reason"], list) else [want["reject_reason"]]
            assert clip["reject_stage"] == want["reject_stage"] and clip["reject_reason"] in reasons
            assert clip["reject_detail"]
        else:
            assert clip["shard"] and clip["reject_reason"] is None
            assert {"mp4", "wav", "json", "npy"} == {m["name"].rsplit(".", 1)[1] for m in clip["members"]}


def test_accepted_sources_count_their_clips(corpus_run):
    for name, src in corpus_run["sources"].items():
        clips = corpus_run["clips"][name]
        assert src["clips_total"] == len(clips)
        assert src["clips_accepted"] == sum(c["status"] == "accepted" for c in clips)


def test_in_sync_offsets_are_zero(corpus_run):
    for name, expect in corpus_run["labels"].items():
        if expect.get("clips") and expect["clips"][0].get("sync_offset_s") == 0.0:
            clip = corpus_run["clips"][name][0]
            assert abs(clip["sync_offset_frames"]) <= 1, (name, clip["sync_offset_frames"])


@pytest.mark.parametrize("name", ["audio_late_0.3s.mp4", "audio_early_0.4s.mp4"])
def test_shifted_offset_is_measured(corpus_run, name):
    clip = corpus_run["clips"][name][0]
    expected_frames = corpus_run["labels"][name]["clips"][0]["sync_offset_s"] * clip["sync_fps"]
    assert abs(clip["sync_offset_frames"] - expected_frames) <= 2, (clip["sync_offset_frames"], expected_frames)
    assert clip["sync_scorer"] == "mouth_motion"


def test_mismatched_mouth_has_low_confidence(corpus_run):
    clip = corpus_run["clips"]["mismatched_mouth.mp4"][0]
    in_sync = corpus_run["clips"]["insync_24fps.mp4"][0]
    assert clip["motion_conf"] < in_sync["motion_conf"] / 2


def test_clips_never_span_a_scene_cut(corpus_run):
    src = corpus_run["sources"]["scene_cut.mp4"]
    assert len(src["scene_cuts_s"]) == 1 and abs(src["scene_cuts_s"][0] - SECONDS) < 0.1
    cut = src["scene_cuts_s"][0]
    for clip in corpus_run["clips"]["scene_cut.mp4"]:
        assert clip["end_s"] <= cut or clip["start_s"] >= cut


def test_probe_facts(corpus_run):
    s = corpus_run["sources"]
    assert s["rotated_90.mp4"]["rotation"] == -90
    assert s["variable_fps.mp4"]["variable_fps"] is True
    assert (s["odd_dims_515x487.mp4"]["width"], s["odd_dims_515x487.mp4"]["height"]) == (515, 487)
    assert round(s["in sync 25fps.mp4"]["fps"]) == 25 and round(s['in-sync "quoted" 30fps.mp4']["fps"]) == 30
    assert s["truncated.mp4"]["decoded_seconds"] < s["truncated.mp4"]["duration_s"] - 1
    # the decoder's complaint, without the address ffmpeg prints (new each run): a rerun's manifest is the same
    detail = s["truncated.mp4"]["reject_detail"]
    assert detail.startswith("decoded ") and " @ 0x" not in detail and "[" not in detail, detail
