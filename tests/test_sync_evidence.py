"""The pieces of the offline sync check and of its validation that need no footage: the shift convention,
audio read around a clip, the speaker-weighted threshold rule, and the trainer's filter on sync_status."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from benchmarks.footage_calibration import Clip, Filter, SyncRule, filter_threshold, sync_outcome, sync_thresholds
from benchmarks.footage_labels import LabelledFile
from pipeline.checks.sync_evidence import pool_source, read_curve, shift_correlations, to_grid


def test_a_late_audio_reads_a_negative_offset_as_syncnet_says():
    """Audio 6 frames late: video frame t matches audio frame t + 6; SyncNet's sign makes that -6."""
    rng = np.random.default_rng(0)
    mouth = rng.standard_normal(80)
    pad = 10
    audio = np.concatenate([rng.standard_normal(pad + 6), mouth, rng.standard_normal(pad - 6)])
    curve = shift_correlations(mouth, audio, pad)
    assert len(curve) == 2 * pad + 1 and read_curve(curve).offset == -6
    assert curve.max() == pytest.approx(1.0)


def test_pooling_lets_a_weak_clip_borrow_its_sources_offset():
    strong = np.zeros(21)
    strong[10 + 4] = 5.0  # audio 4 frames late
    weak = np.zeros(21)
    weak[10 - 7] = 1.0  # a noise peak elsewhere
    pooled = pool_source([strong, strong.copy(), weak])
    assert read_curve(weak).offset == 7 and read_curve(pooled[2]).offset == -4
    assert pool_source([weak])[0] is weak  # a clip alone is read on its own


def test_a_25fps_curve_is_read_at_the_clips_shifts_by_time():
    shifts25 = np.arange(-15, 16)
    curve = -np.abs(shifts25 / 25 - 0.2)  # peak at 0.2 s
    on24 = to_grid(curve, 25.0, 24.0, 15)
    assert np.argmax(on24) - 15 in (4, 5)  # 0.2 s = 4.8 frames at 24 fps


def test_clip_audio_moves_and_widens_with_silence_past_the_source():
    from records.rows import SourceRow
    from pipeline.stages.worker_state import SourceScratch, clip_pcm, new_clip

    sr, fps = 100, 10.0  # 10 samples per frame
    src = SourceRow({}, scratch=SourceScratch("x"))
    src.scratch.pcm = np.arange(1, 201, dtype=np.float32)  # 20 frames
    c = new_clip(src, {"start_frame": 2, "num_frames": 5, "fps": fps})
    assert clip_pcm(c, sr)[0] == 21 and len(clip_pcm(c, sr)) == 50
    wide = clip_pcm(c, sr, pad_frames=3)  # starts one frame before the source
    assert len(wide) == 110 and (wide[:10] == 0).all() and wide[10] == 1
    c["audio_shift_frames"] = 14  # ends past the source: silence
    late = clip_pcm(c, sr)
    assert late[0] == 161 and len(late) == 50 and (late[40:] == 0).all()
    assert clip_pcm(c, sr, shift=0)[0] == 21


def labelled(name: str, kind: str) -> LabelledFile:
    return LabelledFile("first", name, name, {"expect": "accept"}, kind, frozenset({name.split("__")[0]}), 0.0)


def test_a_filter_counts_every_recording_once_however_many_clips_it_has():
    """20 recordings; one long one has 30 clips all below the default: it is 1 recording in 20 (5%), within
    the budget, so the default stands; clip by clip it would be 30 of 49 and the threshold would collapse."""
    f = Filter("audio:speech_snr", "speech_snr_db", "min", "min_speech_snr_db")
    clips = [Clip(labelled(f"r{i}", "original"), {"speech_snr_db": 20.0 + i}, 0, 5.0, 1.0, 0) for i in range(19)]
    clips += [Clip(labelled("long", "original"), {"speech_snr_db": -3.0 + 0.01 * k}, 0, 5.0, 1.0, 0) for k in range(30)]
    assert filter_threshold(f, clips, 10.0) == 10.0
    clips += [Clip(labelled("r_noisy", "original"), {"speech_snr_db": 5.0}, 0, 5.0, 1.0, 0)]  # a second one: 2 in 21
    assert filter_threshold(f, clips, 10.0) <= 5.0


def test_the_sync_rule_keeps_within_both_budgets_on_what_it_was_chosen_on():
    rng = np.random.default_rng(1)
    def read(name, kind, offset, conf):  # the clip's own evidence reads where its pooled evidence does
        return Clip(labelled(name, kind), {}, offset, conf, 1.0, offset)

    clips = [read(f"o{i}", "original", int(rng.integers(-2, 3)), float(rng.uniform(3, 20))) for i in range(40)]
    clips += [read(f"o{i}", "original", 8, 4.0) for i in range(3)]  # in sync, read far off
    clips += [read(f"n{i}__audio_late_0.4s", "late", -10 + int(rng.integers(-2, 3)), 15.0) for i in range(30)]
    clips += [read(f"n{i}__voice_of_x", "voice_swap", 0, 2.0) for i in range(5)]
    rule = sync_thresholds(clips)
    out = [sync_outcome(c, rule) for c in clips]
    orig = [o for c, o in zip(clips, out) if c.file.kind == "original"]
    neg = [o for c, o in zip(clips, out) if c.file.kind != "original"]
    assert sum(o == "out_of_sync" for o in orig) <= 0.1 * len(orig)
    assert sum(o == "in_sync" for o in neg) <= 0.1 * len(neg)
    assert rule.accept > 2.0  # the voice swaps, read at 0 with weak evidence, are not called in sync
    assert sync_outcome(Clip(labelled("z", "original"), {}, 0, 1.0, 1.0, 0), SyncRule(3, 3, 3.0, 3.0)) == "unverified"


def test_a_clip_is_not_rejected_on_its_sources_evidence_alone():
    """A rejection cannot be undone (rescoring reads kept clips), so a clip whose pooled evidence reads far
    off while its own reads in sync is unverified: the stage and the validation decide alike."""
    from pipeline.config import PipelineConfig
    from pipeline.stages.sync import SyncStage

    stage = SyncStage(PipelineConfig.of(input="x", output="y"))
    tol, strong = stage.cfg.offline_sync_tolerance, stage.cfg.min_offsync_evidence + 5
    rule = SyncRule(tol, tol, stage.cfg.min_sync_evidence, stage.cfg.min_offsync_evidence)
    for pooled, own, want in ((-7, 0, "unverified"), (-7, -6, "out_of_sync"), (1, -9, "in_sync"),
                              (9, tol + 1, "out_of_sync"), (9, tol, "unverified")):
        assert stage.offline_status(pooled, strong, own) == want, (pooled, own)
        assert sync_outcome(Clip(labelled("c", "original"), {}, pooled, strong, 1.0, own), rule) == want


def test_the_trainer_leaves_out_clips_whose_sync_status_it_was_not_asked_for():
    from train.data import Unwanted, decode

    def sample(status):
        arr = io.BytesIO()
        np.save(arr, np.zeros((4, 2), np.float32))
        meta = {"fps": 24, "transcript": "", "language": "en", "sync": {"sync_status": status} if status else None}
        return {"__key__": "k", "json": json.dumps(meta).encode(), "audio_mean.npy": arr.getvalue(),
                "text.npy": arr.getvalue()}

    only_in_sync = {"sync_status": ("in_sync",)}
    decode(sample("in_sync"), 1, only_in_sync)
    decode(sample(None), 1, only_in_sync)  # audio-only samples carry no status
    decode(sample("unverified"), 1, None)
    with pytest.raises(Unwanted, match="unverified"):
        decode(sample("unverified"), 1, only_in_sync)
    with pytest.raises(Unwanted, match="language:en"):
        decode(sample("in_sync"), 1, {"language": ("de",)})


def test_left_out_samples_are_counted_per_shard_not_kept_one_by_one(tmp_path):
    """A real tar read twice (a shard drawn again): the samples the filter leaves out are counted by reason,
    once, in one entry per shard and reason however many samples it holds."""
    import tarfile

    from train.data import read_shard, reasons

    arr = io.BytesIO()
    np.save(arr, np.zeros((4, 2), np.float32))
    path = tmp_path / "shard-000000.tar"
    with tarfile.open(path, "w") as tar:
        for i, status in enumerate(["in_sync", "unverified", "unverified", "out_of_sync", "in_sync"]):
            meta = {"fps": 24, "transcript": "", "sync": {"sync_status": status}}
            for ext, data in (("json", json.dumps(meta).encode()), ("audio_mean.npy", arr.getvalue()),
                              ("text.npy", arr.getvalue())):
                info = tarfile.TarInfo(f"clip{i:03d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    bad, filtered = {}, {}
    for _ in range(2):
        samples = read_shard(str(path), 1, bad, {"sync_status": ("in_sync",)}, filtered)
        assert [s is not None for s in samples] == [True, False, False, False, True]
    assert bad == {} and len(filtered) == 2
    assert reasons(bad, filtered) == {"filtered:sync_status:unverified": 2, "filtered:sync_status:out_of_sync": 1}
