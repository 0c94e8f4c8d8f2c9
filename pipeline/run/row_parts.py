"""The few rows the driver itself writes: sources the listing rejected (empty files, exact copies), sources
whose worker died twice, and rows an earlier run left that need no work (build_shards --from-clips). They
reach a part of the `unsharded` bucket by count or by time, not at the run's end, so what the driver holds,
and what a crash costs, stays bounded; each part's lines go to the ledger."""
from __future__ import annotations

import time

from records.messages import Finished
from storage.layout import UNSHARDED, part_stem, task_name
from storage.ledger import LedgerWriter
from storage.parts import write_part
from storage.store import Store


class RowParts:
    def __init__(self, out_dir: str, ledger: LedgerWriter, order, max_sources: int = 1000, max_wait_s: float = 600.0):
        """`order`: () -> (run, sequence) of the next part, from the same count as the workers' tasks."""
        self.store, self.ledger, self.order = Store(out_dir), ledger, order
        self.max_sources, self.max_wait_s, self.opened = max_sources, max_wait_s, 0.0
        self.sources: list[dict] = []
        self.clips: list[dict] = []

    def add(self, result: dict) -> None:
        """One source's row and its clip rows (none of them in a shard)."""
        if not self.sources:
            self.opened = time.monotonic()
        self.sources.append(result["source"])
        self.clips += result["clips"]
        if len(self.sources) >= self.max_sources:
            self.flush()
        else:
            self.flush_if_old()

    def flush_if_old(self) -> None:
        if self.sources and time.monotonic() - self.opened >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        if not self.sources:
            return
        order = self.order()
        stem = part_stem(UNSHARDED, task_name(*order))
        for row in self.sources:
            row.update(shard=None, part=stem.split("/", 1)[1])
        for c in self.clips:
            c["shard"] = None
        write_part(self.store, stem, self.sources, self.clips, order)
        self.ledger.add([Finished.of(row, stem) for row in self.sources], order)
        self.sources, self.clips = [], []
