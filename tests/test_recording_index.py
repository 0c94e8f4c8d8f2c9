"""The near-duplicate register finds kept recordings through an index of their picture hashes: it must name
the recording a scan over every kept one names, and compare in full only a few of them. The fingerprints
here are random (the index's arithmetic is under test); `benchmarks/near_duplicates.py` runs the same
comparison on copies of the recorded footage."""
from __future__ import annotations

import numpy as np

from pipeline.checks.fingerprint import Fingerprint, same_recording
from pipeline.run.near_duplicates import RecordingRegister
from pipeline.run.recording_index import BUFFER, KeyIndex, picture_keys


def recording(rng, seconds: float) -> Fingerprint:
    video = rng.integers(0, 2 ** 64, int(seconds * 2), dtype=np.uint64)
    audio = np.clip(np.cumsum(rng.normal(0, 6, (int(seconds / 0.04), 2)), 0) + 128, 0, 255).astype(np.uint8)
    return Fingerprint(seconds, video, audio)


def copy_of(rng, fp: Fingerprint, bit_errors: float) -> Fingerprint:
    flips = np.packbits(rng.random((len(fp.video), 64)) < bit_errors, axis=1).view(">u8")[:, 0].astype(np.uint64)
    audio = np.clip(fp.audio.astype(int) + rng.integers(-3, 4, fp.audio.shape), 0, 255).astype(np.uint8)
    return Fingerprint(fp.duration_s + rng.uniform(-0.2, 0.2), fp.video ^ flips, audio)


def row(i: int, fp: Fingerprint) -> dict:
    video, audio = fp.to_text()
    return {"source_id": f"s{i}", "source_path": f"v{i}.mp4", "duration_s": fp.duration_s,
            "video_fingerprint": video, "audio_fingerprint": audio}


def test_the_index_names_what_a_scan_names_and_compares_few():
    rng = np.random.default_rng(0)
    kept = [recording(rng, float(rng.uniform(3, 40))) for _ in range(200)]
    register = RecordingRegister()
    for i, fp in enumerate(kept):
        register.add(row(i, fp))
    queries = [copy_of(rng, kept[i], float(rng.uniform(0.0, 0.1))) for i in rng.choice(200, 50, replace=False)]
    queries += [recording(rng, float(rng.uniform(3, 40))) for _ in range(50)]  # repeats nothing
    compared = []
    for q in queries:
        scan = next((f"s{i}" for i, fp in enumerate(kept) if same_recording(q, fp)[0]), None)
        found = register.match(q)
        assert (found[0] if found else None) == scan
        compared.append(len(register.candidate_rows(q)))
    assert sum(register.match(q) is not None for q in queries[:50]) == 50
    assert np.mean(compared[50:]) < 0.1 and max(compared[:50]) <= 2  # not a scan in disguise


def test_a_recording_without_picture_is_compared_by_duration():
    rng = np.random.default_rng(1)
    register = RecordingRegister()
    sound = recording(rng, 12.0)
    register.add(row(0, Fingerprint(12.0, np.zeros(0, np.uint64), sound.audio)))
    register.add(row(1, recording(rng, 30.0)))
    heard = Fingerprint(12.1, np.zeros(0, np.uint64), sound.audio)
    assert register.match(heard)[0] == "s0"
    assert list(register.candidate_rows(copy_of(rng, sound, 0.05))) == [0]  # a picture query sees it too


def test_key_runs_merge_without_losing_or_repeating_a_row():
    """Thousands of appends cross many flushes and merges; every key then gives exactly the rows filed
    under it, as a plain dictionary does."""
    rng = np.random.default_rng(2)
    index, reference = KeyIndex(), {}
    for r in range(3 * BUFFER // 16 + 7):
        keys = rng.integers(0, 3000, 16)
        index.add(keys, r)
        for k in keys:
            reference.setdefault(int(k), []).append(r)
    assert index.size == sum(len(v) for v in reference.values()) and len(index.runs) >= 1
    for k in rng.integers(0, 3100, 200):
        assert sorted(index.rows(np.array([k]))) == sorted(reference.get(int(k), []))


def test_keys_say_frame_piece_and_bits():
    hashes = np.array([0x0123456789ABCDEF, 0xFFFF000000000000], dtype=np.uint64)
    keys = picture_keys(hashes)
    assert len(keys) == 8 and len(set(keys.tolist())) == 8
    assert keys[0] == (0 << 16) | 0xCDEF and keys[7] == (7 << 16) | 0xFFFF
