"""The near-duplicate register's cost per claim as kept recordings grow: 1k, 10k and 100k random
recordings (5-60 s), each claim a copy of a kept one (1-10% of picture bits changed) or a new recording;
prints the milliseconds per claim, the recordings compared in full per claim, the index's keys, and the
same claims answered by a scan over every kept recording of about the same duration (the register before
the index) where that still finishes.

    python benchmarks/recording_index.py [--sizes 1000,10000,100000] [--scan-up-to 10000]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline.checks.fingerprint import Fingerprint, same_recording  # noqa: E402
from pipeline.run.near_duplicates import RecordingRegister  # noqa: E402


def recording(rng, seconds: float) -> Fingerprint:
    video = rng.integers(0, 2 ** 64, int(seconds * 2), dtype=np.uint64)
    audio = np.clip(np.cumsum(rng.normal(0, 6, (int(seconds / 0.04), 2)), 0) + 128, 0, 255).astype(np.uint8)
    return Fingerprint(seconds, video, audio)


def copy_of(rng, fp: Fingerprint) -> Fingerprint:
    bits = rng.random((len(fp.video), 64)) < rng.uniform(0.01, 0.1)
    flips = np.packbits(bits, axis=1).view(">u8")[:, 0].astype(np.uint64)
    audio = np.clip(fp.audio.astype(int) + rng.integers(-3, 4, fp.audio.shape), 0, 255).astype(np.uint8)
    return Fingerprint(fp.duration_s, fp.video ^ flips, audio)


def scan(kept: list[Fingerprint], durations: np.ndarray, q: Fingerprint) -> int | None:
    for k in np.flatnonzero(np.abs(durations - q.duration_s) <= max(1.0, 0.02 * q.duration_s)):
        if same_recording(q, kept[k])[0]:
            return int(k)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000")
    p.add_argument("--scan-up-to", type=int, default=10000)
    p.add_argument("--claims", type=int, default=200)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    register, kept = RecordingRegister(), []
    print(f"{'kept':>8s} {'ms/claim':>9s} {'compared':>9s} {'copies found':>13s} {'index keys':>11s} "
          f"{'scan ms/claim':>14s} {'same as scan':>13s}")
    for size in map(int, a.sizes.split(",")):
        while len(kept) < size:
            fp = recording(rng, float(rng.uniform(5, 60)))
            video, audio = fp.to_text()
            register.add({"source_id": str(len(kept)), "source_path": "", "duration_s": fp.duration_s,
                          "video_fingerprint": video, "audio_fingerprint": audio})
            kept.append(register.kept[-1][2])
        half = a.claims // 2
        targets = rng.choice(len(kept), half, replace=False)
        queries = [copy_of(rng, kept[k]) for k in targets] + \
                  [recording(rng, float(rng.uniform(5, 60))) for _ in range(half)]
        register.pictures.flush()
        t0 = time.process_time()
        found = [register.match(q) for q in queries]
        per_claim = (time.process_time() - t0) / len(queries) * 1000
        compared = np.mean([len(register.candidate_rows(q)) for q in queries])
        hits = sum(f is not None and int(f[0]) == k for f, k in zip(found[:half], targets))
        line = f"{size:8d} {per_claim:9.2f} {compared:9.2f} {hits:>6d} of {half:<4d} {register.pictures.size:11d}"
        if size <= a.scan_up_to:
            durations = np.array([f.duration_s for f in kept])
            t0 = time.process_time()
            scanned = [scan(kept, durations, q) for q in queries]
            per_scan = (time.process_time() - t0) / len(queries) * 1000
            same = sum((int(f[0]) if f else None) == s for f, s in zip(found, scanned))
            line += f" {per_scan:14.1f} {same:>6d} of {len(queries)}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
