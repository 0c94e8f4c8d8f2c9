"""An index over kept recordings' picture hashes, so that finding which kept recording a new one repeats
costs about the same at 1M kept recordings as at 1k (the register's scan grew with every recording kept).

A recording's picture fingerprint is a 64-bit difference hash every half second from its start, compared
frame by frame (`checks/fingerprint.py`): a copy differs from its original in at most 15% of the bits on
average, about 10 bits a frame, and in most frames fewer. Each of the first FRAMES hashes is cut into
CHUNKS pieces of 16 bits, and each piece, with the frame and piece it comes from, is a key. A frame of a
copy with at most CHUNKS - 1 differing bits shares at least one key with its original; at 5% of the bits
(the benchmark's copies differ in 1-10%) a frame keeps a piece whole with odds of 9 in 10, at the
threshold's 15% of 1 in 4. A kept recording is compared in full when it shares MIN_VOTES keys with the new
one: a copy at 5% shares about 28 of 64, at 10% about 12. Two unrelated pictures share a given piece about
once in 65,536 if their bits are independent, so two of 64 about once in two million: the candidates
compared in full stay few however many recordings are kept. A recording of under SHORT_FRAMES hashes
(4 s) has few keys, and one shared key is enough for it.

Keys live in sorted numpy runs merged like a binary counter (a log-structured merge): appending is amortised
O(log n) per key, a lookup is a binary search per run.
"""
from __future__ import annotations

import numpy as np

FRAMES = 16  # hashes indexed per recording (the first 8 s at 2 Hz)
CHUNKS = 4  # 16-bit pieces per 64-bit hash
BUFFER = 4096  # keys held unsorted before they become a sorted run
MAX_POSTINGS = 4096  # a key shared by more recordings than this (a black frame) selects nothing: skipped
MIN_VOTES = 2  # keys a kept recording must share with the new one to be compared in full
SHORT_FRAMES = 8  # below this many hashes, one shared key is enough


def picture_keys(hashes: np.ndarray) -> np.ndarray:
    """(k,) int64 keys of a recording's first FRAMES picture hashes: frame, piece and its 16 bits."""
    h = np.asarray(hashes, np.uint64)[:FRAMES]
    pieces = (h[:, None] >> (np.arange(CHUNKS, dtype=np.uint64) * np.uint64(16))) & np.uint64(0xFFFF)
    where = np.arange(len(h))[:, None] * CHUNKS + np.arange(CHUNKS)[None, :]
    return ((where.astype(np.int64) << 16) | pieces.astype(np.int64)).ravel()


class KeyIndex:
    """key -> row ids, for keys appended in any order."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # (sorted keys, their row ids), sizes decreasing
        self.pending_keys: list[np.ndarray] = []
        self.pending_rows: list[np.ndarray] = []
        self.pending = 0

    def add(self, keys: np.ndarray, row: int) -> None:
        self.pending_keys.append(keys)
        self.pending_rows.append(np.full(len(keys), row, np.int32))
        self.pending += len(keys)
        if self.pending >= BUFFER:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        keys, rows = np.concatenate(self.pending_keys), np.concatenate(self.pending_rows)
        self.pending_keys, self.pending_rows, self.pending = [], [], 0
        order = np.argsort(keys, kind="stable")
        run = (keys[order], rows[order])
        while self.runs and len(self.runs[-1][0]) <= len(run[0]):  # merge equal-sized runs: a binary counter
            k, r = self.runs.pop()
            keys, rows = np.concatenate([k, run[0]]), np.concatenate([r, run[1]])
            order = np.argsort(keys, kind="stable")
            run = (keys[order], rows[order])
        self.runs.append(run)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Every row id filed under any of `keys` (once per key it shares), skipping keys too common to
        select anything."""
        found = []
        for run_keys, run_rows in self.runs:
            lo, hi = np.searchsorted(run_keys, keys, "left"), np.searchsorted(run_keys, keys, "right")
            found += [run_rows[a:b] for a, b in zip(lo, hi) if 0 < b - a <= MAX_POSTINGS]
        if self.pending:
            pend_keys, pend_rows = np.concatenate(self.pending_keys), np.concatenate(self.pending_rows)
            found.append(pend_rows[np.isin(pend_keys, keys)])
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    @property
    def size(self) -> int:
        return sum(len(k) for k, _ in self.runs) + self.pending


def candidates(index: KeyIndex, hashes: np.ndarray) -> np.ndarray:
    """Row ids, in order, of the kept recordings that share enough keys with `hashes`."""
    ids, votes = np.unique(index.rows(picture_keys(hashes)), return_counts=True)
    return ids[votes >= (MIN_VOTES if len(hashes) >= SHORT_FRAMES else 1)]
