"""`python -m manifests verify OUT`: do the manifests and the shards agree?

Every manifest part must be readable, and the merged manifests must hold exactly the parts' rows; every
accepted row's members must be in its shard with the recorded size and sha256; every shard member must
belong to an accepted row; every shard must open with webdataset. Each mismatch is named."""
from __future__ import annotations

import hashlib
import tarfile

from storage.parts import read_manifest, read_parts
from storage.store import Store


def shard_members(store: Store, rel: str) -> dict[str, tuple[int, str]]:
    """member name -> (size, sha256), reading the tar once."""
    out = {}
    with store.open_stream(rel) as f, tarfile.open(fileobj=f, mode="r|") as tar:
        for m in tar:
            if m.isfile():
                data = tar.extractfile(m).read()
                out[m.name] = (len(data), hashlib.sha256(data).hexdigest())
    return out


def opens_with_webdataset(store: Store, rel: str) -> str | None:
    import webdataset as wds

    try:
        with store.open_stream(rel) as f:
            for _ in wds.tariterators.tar_file_expander([{"stream": f, "url": rel}]):
                pass
    except Exception as e:  # report, do not stop: the point is to list every problem
        return f"{type(e).__name__}: {e}"
    return None


def verify(out_dir: str) -> list[str]:
    """Human-readable problems; empty when everything agrees."""
    problems: list[str] = []
    store = Store(out_dir)
    clips = read_manifest(out_dir, "clips")
    _, from_parts = read_parts(out_dir, problems)
    merged = {c["clip_id"]: c["status"] for c in clips}
    in_parts = dict(zip(from_parts.column("clip_id").to_pylist(), from_parts.column("status").to_pylist()))
    for cid in sorted(set(merged) ^ set(in_parts)):
        where = "the parts but not manifests/clips.parquet" if cid in in_parts else "manifests/clips.parquet but no part"
        problems.append(f"clip {cid}: in {where} (build_shards on the same output rewrites the manifests)")
    for cid in sorted(c for c in set(merged) & set(in_parts) if merged[c] != in_parts[c]):
        problems.append(f"clip {cid}: {merged[cid]} in manifests/clips.parquet, {in_parts[cid]} in its part")
    expected: dict[str, dict[str, tuple[int, str, str]]] = {}  # shard -> member -> (size, sha, clip id)
    for c in clips:
        if c["status"] != "accepted":
            continue
        if not c["shard"] or not c["members"]:
            problems.append(f"clip {c['clip_id']} ({c['source_path']}): accepted but names no shard or members")
            continue
        for m in c["members"]:
            expected.setdefault(c["shard"], {})[m["name"]] = (m["bytes"], m["sha256"], c["clip_id"])
    on_disk = {store.relative(i.path)[len("shards/"):] for i in store.files("shards", (".tar",))
               if "/.staging/" not in i.path}
    for shard in sorted(set(expected) | on_disk):
        rel = f"shards/{shard}"
        if shard not in on_disk:
            problems.append(f"shard {shard}: named by the manifest but missing")
            continue
        try:
            found = shard_members(store, rel)
        except (tarfile.TarError, OSError) as e:
            problems.append(f"shard {shard}: unreadable tar ({e})")
            continue
        error = opens_with_webdataset(store, rel)
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
