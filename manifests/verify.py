"""`python -m manifests verify OUT`: do the manifests and the shards agree?

Every manifest part must be readable, and the merged manifests must hold exactly the parts' rows; every
accepted row's members must be in its shard with the recorded size and sha256; every shard member must
belong to an accepted row; every shard must open with webdataset. Each mismatch is named."""
from __future__ import annotations

import hashlib
import tarfile

import pyarrow.compute as pc

from storage.parts import UnreadablePart, manifest_columns, part_stems, read_part, read_parts
from storage.layout import SHARDS, shard_file
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


def compare_with_parts(out_dir: str, problems: list[str]) -> None:
    """The merged clips manifest against the parts' rows, by clip id and status (two columns of each)."""
    _, parts = read_parts(out_dir, problems, ["clip_id", "status"])
    merged = manifest_columns(out_dir, "clips", ["clip_id", "status"])
    both = merged.rename_columns(["clip_id", "merged"]).join(
        parts.select(["clip_id", "status"]).rename_columns(["clip_id", "part"]), "clip_id", join_type="full outer")
    odd = both.filter(pc.invert(pc.fill_null(pc.equal(both.column("merged"), both.column("part")), False)))
    for cid, m, p in sorted(zip(*(odd.column(k).to_pylist() for k in ("clip_id", "merged", "part")))):
        if m is None or p is None:
            where = "the parts but not manifests/clips.parquet" if m is None else "manifests/clips.parquet but no part"
            problems.append(f"clip {cid}: in {where} (build_shards on the same output rewrites the manifests)")
        else:
            problems.append(f"clip {cid}: {m} in manifests/clips.parquet, {p} in its part")


def expected_by_shard(out_dir: str, problems: list[str]):
    """(shard, {member: (size, sha256, clip id)}) for each shard the accepted rows name, a manifest part at a
    time (a part is one shard's rows): memory is one part's, whatever the run's size. A source written by
    several parts counts in its latest, as in the merged manifests."""
    store = Store(out_dir)
    stems = part_stems(store)
    found = []
    for stem in stems:
        try:
            order, sources, _ = read_part(store, stem, ["source_id"])
        except UnreadablePart:  # compare_with_parts has named it
            continue
        found.append((order, stem, sources.column("source_id").to_pylist()))
    latest = {sid: stem for _, stem, ids in sorted(found) for sid in ids}  # later parts overwrite earlier ones
    del found
    cols = ["clip_id", "source_id", "source_path", "status", "shard", "members"]
    by_shard: dict[str, dict] = {}
    for stem in stems:
        try:
            _, _, clips = read_part(store, stem, cols)
        except UnreadablePart:
            continue
        for c in clips.filter(pc.equal(clips.column("status"), "accepted")).to_pylist():
            if latest.get(c["source_id"]) != stem:
                continue
            if not c["shard"] or not c["members"]:
                problems.append(f"clip {c['clip_id']} ({c['source_path']}): accepted but names no shard or members")
                continue
            for m in c["members"]:
                by_shard.setdefault(c["shard"], {})[m["name"]] = (m["bytes"], m["sha256"], c["clip_id"])
        yield from sorted(by_shard.items())
        by_shard.clear()


def check_shard(store: Store, shard: str, want: dict, problems: list[str]) -> None:
    rel = shard_file(shard)
    try:
        found = shard_members(store, rel)
    except (tarfile.TarError, OSError) as e:
        problems.append(f"shard {shard}: unreadable tar ({e})")
        return
    error = opens_with_webdataset(store, rel)
    if error:
        problems.append(f"shard {shard}: webdataset cannot read it ({error})")
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


def verify(out_dir: str) -> list[str]:
    """Human-readable problems; empty when everything agrees. Reads the manifests a few columns and the
    shards one at a time: its memory is the accepted rows' member lists, not whole rows."""
    problems: list[str] = []
    store = Store(out_dir)
    compare_with_parts(out_dir, problems)
    on_disk = {store.relative(i.path)[len(SHARDS) + 1:] for i in store.files(SHARDS, (".tar",))
               if "/.staging/" not in i.path}
    named = set()
    for shard, want in expected_by_shard(out_dir, problems):
        named.add(shard)
        if shard not in on_disk:
            problems.append(f"shard {shard}: named by the manifest but missing")
        else:
            check_shard(store, shard, want, problems)
    for shard in sorted(on_disk - named):
        check_shard(store, shard, {}, problems)
    return problems
