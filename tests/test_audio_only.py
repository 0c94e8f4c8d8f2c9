"""build_shards --audio-only: speech recordings become audio-only samples for stage-1 pre-training."""
from __future__ import annotations

import glob
import json
import os
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from scipy.io import wavfile

from sample_corpus import media as cm
from sample_corpus.build import SENTENCES
from tests.conftest import build_shards, counting_ffmpeg, reads_per_input


@pytest.fixture(scope="module")
def audio_run(models_dir, tmp_path_factory):
    src = tmp_path_factory.mktemp("recordings")
    gap = np.zeros(int(1.5 * cm.SAMPLE_RATE), np.float32)
    long = np.concatenate([x for s in SENTENCES for x in (cm.speak(s), gap)])  # ~20 s with pauses
    wavfile.write(src / "long talk.wav", cm.SAMPLE_RATE, (long * 32767).astype(np.int16))
    short = cm.pad_to(cm.speak(SENTENCES[1], "en-gb"), 5.0)
    wavfile.write(src / "short.wav", cm.SAMPLE_RATE, (short * 32767).astype(np.int16))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(src / "short.wav"), str(src / "given.mp3")], check=True)
    (src / "given.txt").write_text("Please open the window and bring me a glass of cold water.\n")
    wavfile.write(src / "silent.wav", cm.SAMPLE_RATE, np.zeros(4 * cm.SAMPLE_RATE, np.int16))
    (src / "broken.flac").write_text("not audio")
    out = str(tmp_path_factory.mktemp("audio_out"))
    env, log = counting_ffmpeg(tmp_path_factory.mktemp("bin"))
    build_shards(str(src), out, models_dir, "--audio-only", "--debug-models", env=env)
    sources = {s["source_path"]: s for s in pq.read_table(os.path.join(out, "manifests", "sources.parquet")).to_pylist()}
    clips = pq.read_table(os.path.join(out, "manifests", "clips.parquet")).to_pylist()
    sources["long talk.wav"]["_ffmpeg_reads"] = reads_per_input(log).get("long talk.wav", [])
    return out, sources, clips


def test_every_recording_has_its_decision(audio_run):
    _, sources, _ = audio_run
    assert set(sources) == {"long talk.wav", "short.wav", "given.mp3", "silent.wav", "broken.flac"}
    assert (sources["broken.flac"]["reject_stage"], sources["broken.flac"]["reject_reason"]) == ("probe", "unreadable")
    assert (sources["silent.wav"]["reject_stage"], sources["silent.wav"]["reject_reason"]) == ("segment", "no_speech")
    # decoded once: counted by an ffmpeg wrapper on the run's PATH, not by the pipeline
    assert sources["long talk.wav"]["status"] == "done" and sources["long talk.wav"]["_ffmpeg_reads"] == [None]


def test_long_recordings_are_cut_at_pauses(audio_run):
    _, _, clips = audio_run
    long = [c for c in clips if c["source_path"] == "long talk.wav"]
    assert len(long) >= 2 and all(c["end_s"] - c["start_s"] <= 10.0 + 1e-6 for c in long)
    assert all(c["status"] == "accepted" for c in long)
    for a, b in zip(long, long[1:]):
        assert a["end_s"] <= b["start_s"]


def test_provided_transcript_is_kept_and_whisper_fills_the_rest(audio_run):
    _, _, clips = audio_run
    given = [c for c in clips if c["source_path"] == "given.mp3"][0]
    assert given["word_timing_source"] == "provided" and given["transcript"].startswith("Please open the window")
    short = [c for c in clips if c["source_path"] == "short.wav"][0]
    assert short["word_timing_source"] == "whisper" and "window" in short["transcript"].lower()


def test_audio_latents_and_reference_voice(audio_run):
    out, _, clips = audio_run
    tars = glob.glob(os.path.join(out, "shards", "audio", "*.tar"))
    accepted = [c for c in clips if c["status"] == "accepted"]
    assert tars and accepted and all(c["latent_bucket"] == "audio" for c in accepted)
    for c in accepted:
        shapes = json.loads(c["latent_shapes"])
        frames = (c["audio_samples"] // 256) // 2
        assert shapes["audio_mean"] == [20, frames] and "video_mean" not in shapes
        assert {m["name"].split(".", 1)[1] for m in c["members"]} >= {"wav", "json", "audio_mean.npy", "text.npy"}
        assert not any(m["name"].endswith(".mp4") for m in c["members"])
    long = [c for c in accepted if c["source_path"] == "long talk.wav"]
    for c in long:  # a reference voice from another chunk of the same recording, never its own
        assert c["ref_voice_clip_id"] in {o["clip_id"] for o in long} - {c["clip_id"]}
        assert json.loads(c["latent_shapes"])["ref_voice"] == [20, 125]


def test_stage1_batches_pad_audio_of_different_lengths(audio_run):
    """The trainer's stage-1 stream over these shards: lengths within 32 tokens share a batch, padding masked."""
    from train.data import LatentStream, StreamSpec, list_shards

    out, _, clips = audio_run
    accepted = {c["clip_id"]: c for c in clips if c["status"] == "accepted"}
    lengths = {k: json.loads(c["latent_shapes"])["audio_mean"][1] for k, c in accepted.items()}
    shards = list_shards([os.path.join(out, "shards")], stage=1)
    stream = iter(LatentStream(StreamSpec(shards, stage=1, seed=0, tokens_per_batch=2000, max_batch=8), 0))
    seen = set()
    for _ in range(6):
        batch = next(stream)
        seen |= set(batch["keys"])
        real = batch["audio_mask"].sum(1).tolist()
        assert real == [lengths[k] for k in batch["keys"]] and batch["audio"].shape[2] == max(real)
        assert max(real) - min(real) < 32 and "video" not in batch
        for i, n in enumerate(real):
            assert torch.all(batch["audio"][i, :, n:] == 0)
    assert seen == set(accepted)
