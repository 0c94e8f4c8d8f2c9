"""Where a run's files live under its output, in one place, so that the workers that write them, the driver
that resumes from them and the tools that read them agree.

    manifests/{sources,clips}.parquet   the merged manifests (build_shards' last step)
    shards/{bucket}/{task}.tar          samples of a worker task's sources in that bucket (a latent shape,
                                        `clips` without latents, `audio` for audio-only latents)
    shards/{bucket}/{task}.{sources,clips}.parquet   the manifest part beside each shard
    shards/unsharded/{task}.*.parquet   parts of sources that left no sample
    shards/.staging/{task}.{tar,json}   a task's samples and rows waiting for an encode worker
    ledger/{run}-{k}.parquet            which part holds each finished source (what a rerun reads)

A task is named by its run and its number in the run: two workers never write the same name, and a task
tried again after its worker died writes the same names again."""
from __future__ import annotations

MANIFESTS = "manifests"
SHARDS = "shards"
STAGING = f"{SHARDS}/.staging"
LEDGER = "ledger"
UNSHARDED = "unsharded"  # the bucket of sources without samples: parts, no shard
PART_SOURCES, PART_CLIPS = ".sources.parquet", ".clips.parquet"


def task_name(run: int, seq: int) -> str:
    return f"r{run:05d}-{seq:08d}"


def part_stem(bucket: str, name: str) -> str:
    """A part's path without its suffix, relative to the output."""
    return f"{SHARDS}/{bucket}/{name}"


def shard_column(bucket: str, name: str) -> str:
    """The manifests' `shard` value: the tar's path under shards/."""
    return f"{bucket}/{name}.tar"


def shard_file(shard: str) -> str:
    """A `shard` value's path relative to the output."""
    return f"{SHARDS}/{shard}"


def staged_samples(task: str) -> str:
    return f"{STAGING}/{task}.tar"


def staged_rows(task: str) -> str:
    return f"{STAGING}/{task}.json"


def ledger_file(run: int, k: int) -> str:
    return f"{LEDGER}/{run:05d}-{k:06d}.parquet"


def manifest_file(name: str) -> str:
    return f"{MANIFESTS}/{name}.parquet"
