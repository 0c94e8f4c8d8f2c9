"""Per-channel statistics of the audio latents, so audio reaches the transformer at unit scale as the
video latents do (Wan's statistics normalise those in the encode stage; MMAudio's VAE has none).

    python -m train.audio_stats OUT/shards [more shard folders] --out audio_stats.json

Stats are of the stored posterior means over every token of every sample; the trainer normalises the
posterior sample (mean + std * noise) with them and sampling undoes it before the audio VAE decodes.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import tarfile

import numpy as np

from train.data import list_shards


def compute(dirs: list[str]) -> dict:
    """Mean and std per channel over every token of every `audio_mean` in the shards (float64 sums). An
    unreadable shard or latent is skipped and counted, as the trainer does."""
    total = sq = None
    tokens = samples = skipped = 0
    for path in list_shards(dirs, stage=1):
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    if not member.name.endswith(".audio_mean.npy"):
                        continue
                    try:
                        a = np.load(io.BytesIO(tar.extractfile(member).read()), allow_pickle=False).astype(np.float64)
                        if a.ndim != 2 or not np.isfinite(a).all():
                            raise ValueError("not a finite (channels, tokens) latent")
                    except ValueError:
                        skipped += 1
                        continue
                    total = a.sum(1) if total is None else total + a.sum(1)
                    sq = (a ** 2).sum(1) if sq is None else sq + (a ** 2).sum(1)
                    tokens, samples = tokens + a.shape[1], samples + 1
        except (tarfile.TarError, OSError):
            skipped += 1
    if not tokens:
        raise ValueError(f"no audio latents in {dirs}")
    mean = total / tokens
    std = np.sqrt(np.maximum(sq / tokens - mean ** 2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-4).tolist(), "samples": samples, "tokens": tokens,
            "skipped": skipped, "shards": dirs}


def save(stats: dict, path: str) -> str:
    """Written whole or not at all (a temporary name, then renamed)."""
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
    os.replace(path + ".partial", path)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", help="shard folders (a run's shards/ or single buckets)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    stats = compute(args.dirs)
    save(stats, args.out)
    print(f"{stats['samples']} samples ({stats['skipped']} unreadable skipped), {stats['tokens']} tokens: mean {np.round(stats['mean'], 3).tolist()} "
          f"std {np.round(stats['std'], 3).tolist()} -> {args.out}")


if __name__ == "__main__":
    main()
