"""Shards read back with webdataset and tarfile; transcripts (acceptance 4) and word times."""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import re
import subprocess
import tempfile

import jiwer
from scipy.io import wavfile


def accepted(corpus_run):
    return [c for clips in corpus_run["clips"].values() for c in clips if c["status"] == "accepted"]


def test_shards_hold_exactly_the_accepted_clips(corpus_run):
    import webdataset as wds

    tars = sorted(glob.glob(os.path.join(corpus_run["out"], "shards", "*", "*.tar")))
    assert tars and not glob.glob(os.path.join(corpus_run["out"], "shards", "*", "*.tmp"))
    samples = {s["__key__"]: s for s in wds.WebDataset(tars, shardshuffle=False)}
    rows = {c["clip_id"]: c for c in accepted(corpus_run)}
    assert set(samples) == set(rows)
    for key, sample in samples.items():
        row = rows[key]
        for m in row["members"]:
            data = sample[m["name"].split(".", 1)[1]]
            assert len(data) == m["bytes"] and hashlib.sha256(data).hexdigest() == m["sha256"]
        meta = json.loads(sample["json"])
        assert meta["clip_id"] == key and meta["num_frames"] == row["num_frames"] == 121
        rate, pcm = wavfile.read(io.BytesIO(sample["wav"]))
        assert rate == 16000 and pcm.ndim == 1 and len(pcm) == meta["audio_samples"] == round(121 / 24 * 16000)


def test_clip_mp4_is_normalised(corpus_run):
    import webdataset as wds

    tars = sorted(glob.glob(os.path.join(corpus_run["out"], "shards", "*", "*.tar")))
    sample = next(iter(wds.WebDataset(tars, shardshuffle=False)))
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(sample["mp4"])
        f.flush()
        out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_entries",
                              "stream=codec_type,nb_read_frames,avg_frame_rate,sample_rate", "-of", "json", f.name],
                             capture_output=True, text=True, check=True)
    streams = {s["codec_type"]: s for s in json.loads(out.stdout)["streams"]}
    assert int(streams["video"]["nb_read_frames"]) == 121 and streams["video"]["avg_frame_rate"] == "24/1"
    assert streams["audio"]["sample_rate"] == "16000"


def test_every_clip_mp4_carries_the_whole_wav(corpus_run):
    """The mp4's audio, decoded by ffmpeg, is the wav: as long (within one AAC frame of padding at the end),
    aligned from the first sample, and the same waveform (AAC is lossy: correlation, not equality)."""
    import numpy as np
    import webdataset as wds

    tars = sorted(glob.glob(os.path.join(corpus_run["out"], "shards", "*", "*.tar")))
    checked = 0
    for sample in wds.WebDataset(tars, shardshuffle=False):
        _, wav = wavfile.read(io.BytesIO(sample["wav"]))
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(sample["mp4"])
            f.flush()
            raw = subprocess.run(["ffmpeg", "-v", "error", "-i", f.name, "-map", "0:a:0", "-f", "s16le", "-ac", "1",
                                  "-ar", "16000", "-"], capture_output=True, check=True).stdout
        heard = np.frombuffer(raw, np.int16).astype(np.float64)
        assert 0 <= len(heard) - len(wav) < 1024, (sample["__key__"], len(heard), len(wav))
        ref = wav.astype(np.float64)
        assert np.corrcoef(heard[:len(ref)], ref)[0, 1] > 0.99, sample["__key__"]
        tail = slice(len(ref) - 1600, len(ref))  # the last 0.1 s is there too, not silence
        assert np.abs(heard[tail]).mean() >= 0.5 * np.abs(ref[tail]).mean(), sample["__key__"]
        checked += 1
    assert checked == len(accepted(corpus_run))


def normalise(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def test_transcripts_match_the_spoken_sentence(corpus_run):
    checked = 0
    for name, label in corpus_run["labels"].items():
        if "sentence" not in label:
            continue
        for clip in corpus_run["clips"][name]:
            if clip["status"] != "accepted":
                continue
            wer = jiwer.wer(normalise(label["sentence"]), normalise(clip["transcript"]))
            assert wer <= 0.2, (name, clip["transcript"], wer)
            assert clip["language"] == "en" and clip["word_timing_source"] == "whisper"
            checked += 1
    assert checked >= 6


def test_word_times_lie_inside_the_clip(corpus_run):
    for clip in accepted(corpus_run):
        words = json.loads(clip["words_json"])
        duration = clip["end_s"] - clip["start_s"]
        assert words and len(words) == clip["num_words"]
        for w in words:
            assert 0.0 <= w["start"] <= w["end"] <= duration + 1e-6, (clip["source_path"], w)
        assert words[-1]["end"] > words[0]["start"]
