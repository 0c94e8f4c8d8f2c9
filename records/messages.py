"""The messages between the driver and its workers: small typed JSON, never rows' payloads or sample bytes.

    driver -> source worker:   SourceTask (a few sources, the task's name and part order)
    source worker -> driver:   TaskDone (a line per source; with latents, `staged` names the task's rows and
                               samples waiting in shards/.staging for an encode worker)
    driver -> encode worker:   that TaskDone, as it came
    encode worker -> driver:   TaskDone (its sources' lines, now in parts)

A source's line (`Finished`) is also its row of the ledger, from which a rerun learns what is done and the
near-duplicate register which recordings are kept."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

FINGERPRINT = ("duration_s", "decoded_seconds", "video_fingerprint", "audio_fingerprint")


@dataclass
class SourceTask:
    name: str
    """storage.layout.task_name(run, seq): the name of every file the task writes."""
    order: tuple[int, int]
    """(run, seq): written into its parts, it decides between two parts holding the same source."""
    sources: list[tuple[str, str, int]]
    """(path or URI, path relative to the input, size in bytes) of each source."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SourceTask":
        d = json.loads(text)
        return cls(d["name"], tuple(d["order"]), [tuple(s) for s in d["sources"]])


@dataclass
class Finished:
    """One source's outcome, as the driver keeps it (the ledger's row)."""
    source_id: str
    source_path: str
    status: str
    reject_reason: str | None = None
    clips_accepted: int = 0
    part: str | None = None
    """Stem of the part holding its rows (None while staged for encoding, or for a source no part holds)."""
    duration_s: float | None = None
    decoded_seconds: float | None = None
    video_fingerprint: str | None = None
    """Fingerprints only of kept recordings (done, with accepted clips): the register's to compare against."""
    audio_fingerprint: str | None = None

    @classmethod
    def of(cls, src: dict, part: str | None) -> "Finished":
        kept = src.get("status") == "done" and bool(src.get("clips_accepted"))
        return cls(src["source_id"], src.get("source_path") or "", src["status"], src.get("reject_reason"),
                   int(src.get("clips_accepted") or 0), part,
                   **{k: src.get(k) if kept else None for k in FINGERPRINT})


@dataclass
class TaskDone:
    name: str
    order: tuple[int, int]
    sources: list[Finished] = field(default_factory=list)
    staged: bool = False
    """Its accepted samples and every row wait in staging for an encode worker; no part is written yet."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "TaskDone":
        d = json.loads(text)
        return cls(d["name"], tuple(d["order"]), [Finished(**s) for s in d["sources"]], d["staged"])
