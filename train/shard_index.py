"""The shards a run trains on, from the pipeline's shard index (`manifests/shards.parquet`: path, bucket,
samples, latent shapes) instead of a listing of every object under shards/, which at 500k objects on
object storage costs minutes per rank; local paths and `s3://` alike. A selection by manifest columns
(`where`: column -> allowed values, on the clips manifest) drops, before any is opened, the shards that hold
no clip it allows; within a shard the reader leaves the other samples out by their JSON metadata."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from storage.layout import SHARDS, manifest_file, shard_file
from storage.parts import read_table
from storage.store import Store

INDEX = manifest_file("shards")


def locate(d: str) -> tuple[str, str | None]:
    """(the pipeline output holding folder `d`, the bucket `d` names or None): `d` is an output, its
    shards/ folder, or one bucket under it."""
    d = d.rstrip("/")
    parent, name = d.rsplit("/", 1) if "/" in d else ("", d)
    if name == SHARDS:
        return parent, None
    grand, above = parent.rsplit("/", 1) if "/" in parent else ("", parent)
    if above == SHARDS:
        return grand, name
    return d, None


def indexed_shards(d: str, where: dict[str, tuple[str, ...]] | None = None) -> list[tuple[str, str]] | None:
    """[(bucket, path or URI)] of the shards under `d` by its output's shard index, or None when there is no
    index (a folder of tars, not a pipeline output)."""
    root, bucket = locate(d)
    if not root:
        return None
    store = Store(root)
    if not store.exists(INDEX):
        return None
    index = read_table(store, INDEX, columns=["shard", "bucket", "samples"])
    if bucket is not None:
        index = index.filter(pc.equal(index.column("bucket"), bucket))
    index = index.filter(pc.greater(index.column("samples"), 0))
    if where:
        clips = read_table(store, manifest_file("clips"), columns=["shard", "status", *where])
        keep = pc.equal(clips.column("status"), "accepted")
        for column, allowed in where.items():
            values = clips.column(column)
            keep = pc.and_(keep, pc.or_kleene(pc.is_null(values), pc.is_in(values, pa.array(list(allowed)))))
        chosen = clips.filter(keep).column("shard").unique()
        index = index.filter(pc.is_in(index.column("shard"), chosen))
    return [(b, store.uri_of(shard_file(s))) for b, s in zip(index.column("bucket").to_pylist(),
                                                             index.column("shard").to_pylist())]


def open_shard(path: str):
    """A reader of a shard given by local path or URI, front to back."""
    if "://" in path:
        parent, name = path.rsplit("/", 1)
        return Store(parent).open_stream(name)
    return open(path, "rb")

