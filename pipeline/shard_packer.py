"""Packs finished sources into WebDataset shards of a target size, whole sources at a time.

A shard is written under a temporary name, renamed when complete, and only then gets its manifest part
(which lists its sources, including those with no accepted clip). A crash loses at most the open shard,
whose sources a rerun processes again: no clip id is ever written twice."""
from __future__ import annotations

import glob
import os
import tarfile

from manifests.parts import write_part
from pipeline.source_worker import staging_path

BUCKET = "clips"  # latents add shape buckets; cut clips all share one


class ShardPacker:
    def __init__(self, out_dir: str, target_mb: float):
        self.out_dir, self.target = out_dir, int(target_mb * 2 ** 20)
        self.dir = os.path.join(out_dir, "shards", BUCKET)
        os.makedirs(self.dir, exist_ok=True)
        for stale in glob.glob(os.path.join(glob.escape(self.dir), "*.tmp")):
            os.remove(stale)
        done = [int(os.path.basename(p).split(".")[0]) for p in glob.glob(os.path.join(glob.escape(self.dir), "*.sources.parquet"))]
        self.next_index = max(done, default=-1) + 1
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
        shard = f"{BUCKET}/{self.name}.tar"
        staged = staging_path(self.out_dir, src["source_id"])
        if os.path.exists(staged) and any(c["status"] == "accepted" for c in clips):
            if self.tar is None:
                self.tar = tarfile.open(os.path.join(self.dir, self.name + ".tar.tmp"), "w", format=tarfile.USTAR_FORMAT)
            with tarfile.open(staged) as part:
                for member in part:
                    self.tar.addfile(member, part.extractfile(member))
                    self.size += member.size
            self.staged.append(staged)
        src["shard"] = shard
        for c in clips:
            c["shard"] = shard if c["status"] == "accepted" else None
        self.sources.append(src)
        self.clips += clips
        if self.size >= self.target:
            self.flush()

    def flush(self) -> None:
        """Close the open shard (if it has anything), rename it, write its manifest part."""
        if not self.sources:
            return
        stem = os.path.join(self.dir, self.name)
        if self.tar is not None:
            self.tar.close()
            os.replace(stem + ".tar.tmp", stem + ".tar")
        write_part(stem, self.sources, self.clips)
        for staged in self.staged:
            os.remove(staged)
        self.next_index += 1
        self.tar, self.sources, self.clips, self.staged, self.size = None, [], [], [], 0
