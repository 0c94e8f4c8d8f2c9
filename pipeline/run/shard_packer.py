"""Packs finished sources into WebDataset shards of a target size, whole sources at a time.

One packer per bucket (a latent shape, or 'clips' when no latents are made); sources without any sample
go to the parts-only bucket 'unsharded'. A shard is written under a temporary name, renamed when
complete, and only then gets its manifest part (which lists its sources, including those with no accepted
clip). A crash loses at most the open shards, whose sources a rerun processes again: no clip id is ever
written twice."""
from __future__ import annotations

import os
import tarfile
import time

from pipeline import scratch
from storage.parts import write_part
from storage.store import Store

UNSHARDED = "unsharded"


class ShardPacker:
    def __init__(self, out_dir: str, bucket: str, target_mb: float, order, max_sources: int = 1000,
                 max_wait_s: float = 600.0):
        """A shard closes at `target_mb`, or when it holds `max_sources` sources, or when its first source
        has waited `max_wait_s`: what the driver holds, and what a crash costs, stays bounded even for
        sources with no sample (the 'unsharded' bucket, which never fills) and for slow buckets."""
        self.store, self.bucket, self.target = Store(out_dir), bucket, int(target_mb * 2 ** 20)
        self.max_sources, self.max_wait_s, self.opened = max_sources, max_wait_s, 0.0
        self.order = order  # () -> (run, sequence) of the next part written
        self.dir = f"shards/{bucket}"
        for stale in self.store.files(self.dir, (".tmp",)):
            self.store.fs.delete_file(stale.path)
        done = [int(i.path.rsplit("/", 1)[1].split(".")[0]) for i in self.store.files(self.dir, (".sources.parquet",))]
        self.next_index = max(done, default=-1) + 1
        self.local = scratch.make_dir("shard")  # the open shard grows here, then goes up whole
        self.tar: tarfile.TarFile | None = None
        self.sources: list[dict] = []
        self.clips: list[dict] = []
        self.staged: list[str] = []
        self.size = 0

    @property
    def name(self) -> str:
        return f"{self.next_index:06d}"

    def add(self, result: dict) -> None:
        """Append one source (its row, its clip rows, its staged samples, if any)."""
        src, clips = result["source"], result["clips"]
        shard = f"{self.bucket}/{self.name}.tar"
        staged = result.get("staged")
        if staged and any(c["status"] == "accepted" for c in clips):
            if self.tar is None:
                self.tar = tarfile.open(os.path.join(self.local, self.name + ".tar"), "w", format=tarfile.USTAR_FORMAT)
            with self.store.open_stream(staged) as f, tarfile.open(fileobj=f, mode="r|") as part:
                for member in part:
                    self.tar.addfile(member, part.extractfile(member))
                    self.size += member.size
            self.staged.append(staged)
        src["shard"] = shard if self.bucket != UNSHARDED else None
        src["part"] = f"{self.bucket}/{self.name}"
        for c in clips:
            c["shard"] = shard if c["status"] == "accepted" else None
        if not self.sources:
            self.opened = time.monotonic()
        self.sources.append(src)
        self.clips += clips
        if self.size >= self.target or len(self.sources) >= self.max_sources:
            self.flush()
        else:
            self.flush_if_old()

    def flush_if_old(self) -> None:
        if self.sources and time.monotonic() - self.opened >= self.max_wait_s:
            self.flush()

    def flush(self) -> None:
        """Close the open shard (if it has anything), rename it, write its manifest part."""
        if not self.sources:
            return
        stem = f"{self.dir}/{self.name}"
        if self.tar is not None:
            self.tar.close()
            local = os.path.join(self.local, self.name + ".tar")
            self.store.upload(local, stem + ".tar")
            os.remove(local)
        write_part(self.store, stem, self.sources, self.clips, self.order())
        for staged in self.staged:
            self.store.remove(staged)
        self.next_index += 1
        self.tar, self.sources, self.clips, self.staged, self.size = None, [], [], [], 0


class Packers:
    """One ShardPacker per bucket, made on first use."""

    def __init__(self, out_dir: str, target_mb: float, run: int, max_sources: int = 1000, max_wait_s: float = 600.0):
        self.out_dir, self.target_mb, self.max_sources, self.max_wait_s = out_dir, target_mb, max_sources, max_wait_s
        self.by_bucket: dict[str, ShardPacker] = {}
        self.run, self.written = run, 0

    def next_order(self) -> tuple[int, int]:
        self.written += 1
        return self.run, self.written

    def add(self, result: dict) -> None:
        bucket = result.get("bucket") if result.get("staged") else UNSHARDED
        if bucket not in self.by_bucket:
            self.by_bucket[bucket] = ShardPacker(self.out_dir, bucket, self.target_mb, self.next_order,
                                                 self.max_sources, self.max_wait_s)
        self.by_bucket[bucket].add(result)
        for packer in self.by_bucket.values():  # a bucket that stopped getting sources closes in time too
            packer.flush_if_old()

    def flush(self) -> None:
        """The run's end: every open shard written, and the local folders the shards grew in removed."""
        import shutil

        for packer in self.by_bucket.values():
            packer.flush()
            shutil.rmtree(packer.local, ignore_errors=True)
