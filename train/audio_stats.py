"""Per-channel statistics of the audio latents, so audio reaches the transformer at unit scale as the
video latents do (Wan's statistics normalise those in the encode stage; MMAudio's VAE has none).

    python -m train.audio_stats OUT/shards [more shard folders] --out audio_stats.json [--max-shards 256]

Stats are of the stored posterior means over every token of the samples read; the trainer normalises the
posterior sample (mean + std * noise) with them and sampling undoes it before the audio VAE decodes. A
model is tied to the statistics it trained on: exports carry them, and stage 2 inherits stage 1's.

A run never scans every shard at start: it takes the statistics from the stage-1 export, from a given file,
or estimates them over a bounded, seeded sample of shards whose reading every rank shares (`sample_shards`,
`partial_sums`), so start-up reads a number of shards that does not grow with the data set.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import tarfile

import numpy as np

from records.sample import latent_member
from train.data import list_shards

CHANNELS = 20  # MMAudio's latent channels


def sample_shards(shards: list[str], count: int, seed: int) -> list[str]:
    """At most `count` shards drawn without replacement from a seed (all of them when count <= 0)."""
    if count <= 0 or count >= len(shards):
        return list(shards)
    return sorted(random.Random(seed).sample(sorted(shards), count))


def partial_sums(paths: list[str], channels: int = CHANNELS) -> np.ndarray:
    """float64 [sum per channel, sum of squares per channel, tokens, samples, skipped] over the `audio_mean`
    latents of `paths`: vectors that add up across ranks. An unreadable shard or latent is counted as
    skipped, as the trainer does."""
    out = np.zeros(2 * channels + 3)
    for path in paths:
        try:
            with tarfile.open(path) as tar:
                for member in tar:
                    if not member.name.endswith("." + latent_member("audio_mean")):
                        continue
                    try:
                        a = np.load(io.BytesIO(tar.extractfile(member).read()), allow_pickle=False).astype(np.float64)
                        if a.ndim != 2 or a.shape[0] != channels or not np.isfinite(a).all():
                            raise ValueError("not a finite (channels, tokens) latent")
                    except ValueError:
                        out[-1] += 1
                        continue
                    out[:channels] += a.sum(1)
                    out[channels:2 * channels] += (a ** 2).sum(1)
                    out[-3:-1] += (a.shape[1], 1)
        except (tarfile.TarError, OSError):
            out[-1] += 1
    return out


def from_sums(sums: np.ndarray, source: dict, channels: int = CHANNELS) -> dict:
    tokens = sums[-3]
    if not tokens:
        raise ValueError(f"no readable audio latents in {source}")
    mean = sums[:channels] / tokens
    std = np.sqrt(np.maximum(sums[channels:2 * channels] / tokens - mean ** 2, 0.0))
    return {"mean": mean.tolist(), "std": np.maximum(std, 1e-4).tolist(), "tokens": int(tokens),
            "samples": int(sums[-2]), "skipped": int(sums[-1]), **source}


def compute(dirs: list[str], max_shards: int = 0, seed: int = 0) -> dict:
    """Statistics over every shard under `dirs`, or over `max_shards` of them drawn from `seed`."""
    shards = list_shards(dirs, stage=1)
    chosen = sample_shards(shards, max_shards, seed)
    return from_sums(partial_sums(chosen), {"shards": dirs, "shards_read": len(chosen), "shards_total": len(shards),
                                            "seed": seed})


def agree(a: dict, b: dict, rtol: float = 1e-5) -> bool:
    """The same normalisation (to float32 precision)."""
    return all(np.allclose(a[k], b[k], rtol=rtol, atol=1e-7) for k in ("mean", "std"))


def load(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        stats = json.load(f)
    if len(stats.get("mean", ())) != len(stats.get("std", ())) or not stats.get("mean"):
        raise ValueError(f"{path} holds no per-channel 'mean' and 'std'")
    return stats


def save(stats: dict, path: str) -> str:
    """Written whole or not at all (a temporary name, then renamed)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(stats, f, indent=1)
    os.replace(path + ".partial", path)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", help="shard folders (a run's shards/ or single buckets)")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--max-shards", type=int, default=0, help="read at most this many shards, drawn from --seed (0: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    stats = compute(args.dirs, args.max_shards, args.seed)
    save(stats, args.out)
    print(f"{stats['samples']} samples from {stats['shards_read']} of {stats['shards_total']} shards "
          f"({stats['skipped']} unreadable skipped), {stats['tokens']} tokens: mean {np.round(stats['mean'], 3).tolist()} "
          f"std {np.round(stats['std'], 3).tolist()} -> {args.out}")


if __name__ == "__main__":
    main()
