"""`python -m manifests verify OUT`: do the manifests and the shards agree?

Every accepted row's members must be in its shard with the recorded size and sha256; every shard member
must belong to an accepted row; every shard must open with webdataset. Each mismatch is named."""
from __future__ import annotations

import glob
import hashlib
import os
import tarfile

import pyarrow.parquet as pq


def shard_members(path: str) -> dict[str, tuple[int, str]]:
    """member name -> (size, sha256), reading the tar once."""
    out = {}
    with tarfile.open(path) as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()
                out[m.name] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def opens_with_webdataset(path: str) -> str | None:
    import webdataset as wds

    try:
        for _ in wds.WebDataset(path, shardshuffle=False):
            pass
    except Exception as e:  # report, do not stop: the point is to list every problem
        return f"{type(e).__name__}: {e}"
    return None


def verify(out_dir: str) -> list[str]:
    """Human-readable problems; empty when everything agrees."""
    problems: list[str] = []
    clips = pq.read_table(os.path.join(out_dir, "manifests", "clips.parquet")).to_pylist()
    expected: dict[str, dict[str, tuple[int, str, str]]] = {}  # shard -> member -> (size, sha, clip id)
    for c in clips:
        if c["status"] != "accepted":
            continue
        if not c["shard"] or not c["members"]:
            problems.append(f"clip {c['clip_id']} ({c['source_path']}): accepted but names no shard or members")
            continue
        for m in c["members"]:
            expected.setdefault(c["shard"], {})[m["name"]] = (m["bytes"], m["sha256"], c["clip_id"])
    on_disk = {os.path.relpath(p, os.path.join(out_dir, "shards"))
               for p in glob.glob(os.path.join(glob.escape(out_dir), "shards", "*", "*.tar"))}
    for shard in sorted(set(expected) | on_disk):
        path = os.path.join(out_dir, "shards", shard)
        if shard not in on_disk:
            problems.append(f"shard {shard}: named by the manifest but missing")
            continue
        try:
            found = shard_members(path)
        except (tarfile.TarError, OSError) as e:
            problems.append(f"shard {shard}: unreadable tar ({e})")
            continue
        error = opens_with_webdataset(path)
        if error:
            problems.append(f"shard {shard}: webdataset cannot read it ({error})")
        want = expected.get(shard, {})
        for name, (size, sha, clip) in sorted(want.items()):
            if name not in found:
                problems.append(f"shard {shard}: member {name} of clip {clip} is missing")
            elif found[name][0] != size:
                problems.append(f"shard {shard}: member {name} has {found[name][0]} bytes, manifest says {size}")
            elif found[name][1] != sha:
                problems.append(f"shard {shard}: member {name} has sha256 {found[name][1][:12]}..., "
                                f"manifest says {sha[:12]}...")
        for name in sorted(set(found) - set(want)):
            problems.append(f"shard {shard}: member {name} has no accepted manifest row")
    return problems
