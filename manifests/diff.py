"""`python -m manifests diff OUT_A OUT_B`: what changed between two runs: clips added, dropped, and
decisions flipped (with the stage and reason on each side), plus sources whose status changed."""
from __future__ import annotations

from dataclasses import dataclass, field

from storage.parts import read_manifest


def decision(row: dict) -> str:
    if row["status"] == "accepted":  # kept unverified and kept in sync are different decisions
        return "accepted" + (" (sync unverified)" if row.get("sync_status") == "unverified" else "")
    return f"{row['status']} at {row['reject_stage']}: {row['reject_reason']}"


@dataclass
class RunDiff:
    added: list[dict] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    flipped: list[tuple[dict, dict]] = field(default_factory=list)  # (row in A, row in B)
    sources_changed: list[tuple[dict, dict]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.dropped or self.flipped or self.sources_changed)


def _read(out_dir: str, name: str) -> list[dict]:
    return read_manifest(out_dir, name)


def diff_runs(a_dir: str, b_dir: str) -> RunDiff:
    d = RunDiff()
    a = {r["clip_id"]: r for r in _read(a_dir, "clips")}
    b = {r["clip_id"]: r for r in _read(b_dir, "clips")}
    d.added = [b[k] for k in sorted(set(b) - set(a), key=lambda k: (b[k]["source_path"], b[k]["start_frame"]))]
    d.dropped = [a[k] for k in sorted(set(a) - set(b), key=lambda k: (a[k]["source_path"], a[k]["start_frame"]))]
    for k in sorted(set(a) & set(b), key=lambda k: (a[k]["source_path"], a[k]["start_frame"])):
        if decision(a[k]) != decision(b[k]):
            d.flipped.append((a[k], b[k]))
    sa = {r["source_id"]: r for r in _read(a_dir, "sources")}
    sb = {r["source_id"]: r for r in _read(b_dir, "sources")}
    for k in sorted(set(sa) & set(sb), key=lambda k: sa[k]["source_path"]):
        if (sa[k]["status"], sa[k]["reject_reason"]) != (sb[k]["status"], sb[k]["reject_reason"]):
            d.sources_changed.append((sa[k], sb[k]))
    return d


def format_diff(d: RunDiff) -> str:
    if d.empty:
        return "no differences in clips or source decisions"
    span = lambda r: f"{r['source_path']} [{r['start_s']:.2f}-{r['end_s']:.2f} s] {r['clip_id'][:8]}"
    lines = [f"clips added: {len(d.added)}, dropped: {len(d.dropped)}, decisions flipped: {len(d.flipped)}, "
             f"sources changed: {len(d.sources_changed)}"]
    lines += [f"+ {span(r)}  {decision(r)}" for r in d.added]
    lines += [f"- {span(r)}  {decision(r)}" for r in d.dropped]
    for ra, rb in d.flipped:
        why = rb["reject_detail"] if rb["status"] != "accepted" else ra["reject_detail"]
        lines.append(f"~ {span(ra)}  {decision(ra)}  ->  {decision(rb)}" + (f"  ({why})" if why else ""))
    for ra, rb in d.sources_changed:
        lines.append(f"~ source {ra['source_path']}: {ra['status']} ({ra['reject_reason']}) -> "
                     f"{rb['status']} ({rb['reject_reason']})")
    return "\n".join(lines)
