"""What every stage is: declared resources, models loaded once in `setup`, records in, records out."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from records.rows import Row

Record = Row  # a SourceRow or ClipRow; its worker data in .scratch (stages/worker_state.py)

# Namespace of clip and source ids: fixed forever, so ids are stable across runs and machines.
ID_NAMESPACE = uuid.UUID("5b0f4a7e-2f7c-4c55-9d0e-3c1a7b2d9e61")


def source_id(identity: str) -> str:
    """Deterministic id of a source from its identity (relative path, size)."""
    return uuid.uuid5(ID_NAMESPACE, identity).hex


def clip_id(source: str, start_frame: int, num_frames: int, fps: float) -> str:
    """Deterministic, dot-free clip id from the source id and the clip's time span."""
    return uuid.uuid5(ID_NAMESPACE, f"{source}:{start_frame}:{num_frames}@{fps:g}").hex


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage reserves on a Ray node."""
    cpus: float = 1.0
    gpus: float = 0.0
    memory_gb: float = 1.0


class Stage:
    """A step of the pipeline. Subclasses set `name` and `resources`, load models in `setup`, and map a
    batch of records to records in `process`. Rejected records pass through untouched."""

    name = "stage"
    section = ""  # the config section it reads (pipeline/config_sections.py); none: the run's settings only
    resources = Resources()
    across_sources = False  # runs once on the clips of a worker's whole group of sources (work they can share)

    def __init__(self, cfg):
        """`cfg`: the PipelineConfig; the stage keeps its own section (`self.cfg`) and the run's (`self.run`).
        Cheap to build anywhere: models come in setup()."""
        self.run = cfg.run
        self.cfg = getattr(cfg, self.section) if self.section else None
        self.threads = 1  # CPU threads its models may use: the worker sets it to the CPUs it reserved

    def setup(self) -> None:
        """Load models once per worker (never in __init__, which runs where the stage is built)."""

    def process(self, records: list[Record]) -> None:
        """Update each record in place: add measurements, or `reject` it."""
        raise NotImplementedError

    def __call__(self, records: list[Record]) -> list[Record]:
        """Run `process` on the records still alive (in place) and time it."""
        live = [r for r in records if r.get("status") != "rejected"]
        if live:
            t0 = time.perf_counter()
            self.process(live)
            per_record = (time.perf_counter() - t0) / len(live)
            for r in live:
                r[f"seconds_{self.name}"] = round(per_record, 4)
        return records


def reject(record: Record, stage: str, reason: str, detail: str = "") -> Record:
    """Mark a record rejected by `stage` for `reason` (a short code) with a human-readable detail."""
    record.update(status="rejected", reject_stage=stage, reject_reason=reason, reject_detail=detail)
    return record
