"""Training batches from the pipeline's WebDataset shards.

Every (rank, dataloader worker) pair reads its own endless stream: draw k picks a shard at random from
the seed, the rank, the worker and k (resampled shards: no epoch barrier, no two streams alike), reads it
with webdataset's tar reader and yields its samples in a seeded order. Samples wait in one queue per latent
shape until a queue holds a batch (token budget); a batch therefore has one shape, and stage-1 audio of
different lengths is padded with a mask. A sample that fails to decode, or a shard that fails to open, is
skipped and counted. Each batch carries its stream's position, so a checkpoint resumes the stream exactly
where the consumed batches left it. A run resumed with other streams (another number of ranks or of
dataloader workers) cannot continue the old ones: its streams restart, seeded by the step they restart at
(`restart`), deterministically for the new layout.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from records.sample import MEDIA, META, SampleMeta, latent_member

AUDIO_BUCKET = "audio"  # the pipeline's audio-only shards (stage 1)
NOT_LATENT = {"clips", ".staging"}  # shard folders without latents


def list_shards(dirs: list[str], stage: int, where: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Shard paths (or URIs) under each folder (a pipeline output, its shards/ root or one bucket): from the
    output's shard index where it has one (train/shard_index.py; `where` selects by clip columns), else
    the tars found there; stage 2 skips audio-only buckets."""
    from train.shard_index import indexed_shards

    out = []
    for d in dirs:
        found = indexed_shards(d, where)
        if found is None:
            tars = glob.glob(os.path.join(d, "*.tar")) or glob.glob(os.path.join(d, "*", "*.tar"))
            found = [(os.path.basename(os.path.dirname(p)), p) for p in tars]
        for bucket, path in found:
            if bucket in NOT_LATENT or (stage == 2 and bucket == AUDIO_BUCKET):
                continue
            out.append(path)
    if not out:
        raise FileNotFoundError(f"no latent shards under {dirs} (expected shards/<WxHxT>/*.tar or shards/audio/*.tar)")
    return sorted(out)


def buckets(shards: list[str]) -> dict[str, list[str]]:
    """Shards by bucket, the folder they sit in (the pipeline's shards/<WxHxT>/ or shards/audio/): within a
    bucket every clip has one latent shape."""
    out: dict[str, list[str]] = {}
    for path in shards:
        out.setdefault(os.path.basename(os.path.dirname(path)), []).append(path)
    return out


def seeded(*parts) -> random.Random:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


class Unwanted(Exception):
    """A sample the run's data filter leaves out (counted with its reason, like a bad one)."""


def decode(sample: dict, stage: int, where: dict[str, tuple[str, ...]] | None = None) -> dict:
    """Raw tar members -> arrays (never unpickled); raises on anything missing or malformed, and `Unwanted` on
    a clip whose metadata field (`sync_status`, `language`) is not among the values `where` allows for it (a
    sample without the field passes: audio-only samples have no lip-sync status)."""
    def array(name: str) -> np.ndarray:
        a = np.load(io.BytesIO(sample[latent_member(name)]), allow_pickle=False)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has non-finite values")
        return a.astype(np.float32)

    meta = SampleMeta.from_json(sample[META])
    for column, allowed in (where or {}).items():
        value = getattr(meta, column)
        if value is not None and value not in allowed:
            raise Unwanted(f"{column}:{value}")
    out = {"key": sample["__key__"], "audio": array("audio_mean"), "text": array("text"),
           "fps": float(meta.fps or 24.0), "transcript": str(meta.transcript or "")}
    for name in ("audio_logvar", "ref_voice"):
        if latent_member(name) in sample:
            out[name] = array(name)
    if stage == 2:
        out["video"] = array("video_mean")
    if out["audio"].ndim != 2 or out["text"].ndim != 2:
        raise ValueError(f"unexpected shapes audio {out['audio'].shape} text {out['text'].shape}")
    return out


def read_shard(path: str, stage: int, bad: dict[str, str], where: dict[str, tuple[str, ...]] | None = None,
               filtered: dict[str, int] | None = None) -> list[dict | None]:
    """Every sample of a shard in file order; None where a sample failed to decode or the data filter left
    it out. Failures land in `bad` (what failed -> why), left-out samples in `filtered` as one count per shard
    and reason ("shard#reason" -> count; a filter may leave out millions, so never one entry each); both once
    however often the shard is drawn."""
    import webdataset as wds

    from train.shard_index import open_shard

    wanted = lambda name: not name.endswith(tuple(f".{m}" for m in MEDIA))  # the media are not training inputs
    out, left_out = [], {}
    try:
        with open_shard(path) as f:
            members = ({**m, "__url__": path} for m in wds.tariterators.tar_file_iterator(f, select_files=wanted))
            for sample in wds.tariterators.group_by_keys(members):
                try:
                    if stage == 2 and latent_member("video_mean") not in sample:
                        raise KeyError("no video latent (audio-only sample)")
                    out.append(decode(sample, stage, where))
                except Unwanted as e:
                    left_out[str(e)] = left_out.get(str(e), 0) + 1
                    out.append(None)
                except Exception as e:  # noqa: BLE001 - a bad sample is counted, never fatal
                    bad[f"{path}#{sample.get('__key__')}"] = type(e).__name__
                    out.append(None)
    except Exception as e:  # noqa: BLE001 - an unreadable shard is counted and the stream moves on
        bad[path] = f"shard:{type(e).__name__}"
    if filtered is not None:
        filtered.update({f"{path}#{why}": n for why, n in left_out.items()})
    return out


def reasons(bad: dict[str, str], filtered: dict[str, int] | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for why in bad.values():
        counts[why] = counts.get(why, 0) + 1
    for key, n in (filtered or {}).items():
        why = "filtered:" + key.rsplit("#", 1)[1]
        counts[why] = counts.get(why, 0) + n
    return counts


def shape_key(s: dict, stage: int) -> str:
    if stage == 2:
        return "x".join(map(str, s["video"].shape)) + f"/{s['audio'].shape[1]}"
    return f"audio/{-(-s['audio'].shape[1] // 32) * 32}"  # lengths within 32 tokens batch together


def tokens_of(key: str, patch: tuple[int, int, int] = (1, 2, 2)) -> int:
    if key.startswith("audio/"):
        return int(key.split("/")[1])
    video, audio = key.split("/")
    _, f, h, w = map(int, video.split("x"))
    return (f // patch[0]) * (h // patch[1]) * (w // patch[2]) + int(audio)


def batch_size(key: str, tokens_per_batch: int, max_batch: int) -> int:
    """Samples of shape `key` in one batch: the token budget's worth, at least 1, at most `max_batch`."""
    return max(1, min(max_batch, tokens_per_batch // tokens_of(key)))


def pad_stack(arrays: list[np.ndarray], axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad along `axis` to the longest; returns the stack and a (B, L) mask of real positions."""
    longest = max(a.shape[axis] for a in arrays)
    out, mask = [], torch.zeros(len(arrays), longest, dtype=torch.bool)
    for i, a in enumerate(arrays):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, longest - a.shape[axis])
        out.append(np.pad(a, pad))
        mask[i, :a.shape[axis]] = True
    return torch.from_numpy(np.stack(out)), mask


def collate(samples: list[dict], stage: int) -> dict:
    audio, audio_mask = pad_stack([s["audio"] for s in samples], 1)
    text, _ = pad_stack([s["text"] for s in samples], 0)
    batch = {"keys": [s["key"] for s in samples], "audio": audio, "audio_mask": audio_mask, "text": text,
             "fps": samples[0]["fps"], "transcripts": [s["transcript"] for s in samples]}
    if all("audio_logvar" in s for s in samples):
        batch["audio_logvar"] = pad_stack([s["audio_logvar"] for s in samples], 1)[0]
    refs = [s.get("ref_voice") for s in samples]
    if any(r is not None for r in refs):
        blank = np.zeros((samples[0]["audio"].shape[0], 1), np.float32)
        batch["ref_voice"], batch["ref_mask"] = pad_stack([r if r is not None else blank for r in refs], 1)
        batch["has_ref"] = torch.tensor([r is not None for r in refs])
    if stage == 2:
        batch["video"] = torch.from_numpy(np.stack([s["video"] for s in samples]))
    return batch


@dataclass
class StreamSpec:
    shards: list[str]
    stage: int
    seed: int
    tokens_per_batch: int
    max_batch: int
    restart: int = 0  # the step the streams restarted at (0: the run's first streams)
    where: dict[str, tuple[str, ...]] | None = None  # clip fields' allowed values (train/shard_index.py; None: all)


class LatentStream:
    """One endless, resumable stream of batches. State: the next (draw, offset) and the positions of the
    samples waiting in the shape queues."""

    def __init__(self, spec: StreamSpec, stream_id: int, state: dict | None = None, bucket: str | None = None,
                 shards: list[str] | None = None):
        """`bucket`: draw only that bucket's `shards` (see `buckets`); None draws from all of them."""
        self.spec, self.id, self.bucket = spec, stream_id, bucket
        self.shards = spec.shards if bucket is None else shards
        self.state = state or {"draw": 0, "offset": 0, "pending": {}}
        self.bad: dict[str, str] = {}
        self.filtered: dict[str, int] = {}
        self._cache: tuple[int, list] | None = None

    def shard_samples(self, draw: int) -> list[dict | None]:
        """The samples of draw `draw`, in their seeded order."""
        if self._cache is None or self._cache[0] != draw:
            extra = ([self.spec.restart] if self.spec.restart else []) + ([self.bucket] if self.bucket else [])
            rng = seeded(self.spec.seed, self.id, draw, *extra)
            path = rng.choice(self.shards)
            samples = read_shard(path, self.spec.stage, self.bad, self.spec.where, self.filtered)
            rng.shuffle(samples)
            self._cache = (draw, samples)
        return self._cache[1]

    def __iter__(self):
        st, empty_draws = self.state, 0
        queues = {k: [self.shard_samples(d)[o] for d, o in pos] for k, pos in st["pending"].items()}
        while True:
            samples = self.shard_samples(st["draw"])
            if st["offset"] >= len(samples):
                empty_draws = empty_draws + 1 if not any(s is not None for s in samples) else 0
                if empty_draws > 100:
                    raise RuntimeError(f"stream {self.id}: 100 shard draws in a row gave no readable sample "
                                       f"(skipped: {reasons(self.bad, self.filtered)})")
                st["draw"], st["offset"] = st["draw"] + 1, 0
                continue
            position, sample = [st["draw"], st["offset"]], samples[st["offset"]]
            st["offset"] += 1
            if sample is None:
                continue
            key = shape_key(sample, self.spec.stage)
            queues.setdefault(key, []).append(sample)
            st["pending"].setdefault(key, []).append(position)
            if len(queues[key]) >= batch_size(key, self.spec.tokens_per_batch, self.spec.max_batch):
                batch = collate(queues.pop(key), self.spec.stage)
                del st["pending"][key]
                batch.update(stream=self.id, state=json.loads(json.dumps(st)), skipped=reasons(self.bad, self.filtered))
                yield batch


def validation_batches(shards: list[str], stage: int, tokens_per_batch: int, max_batch: int, count: int) -> list[dict]:
    """The first `count` batches of the held-out shards in file order. Every rank evaluates the same
    batches: under ZeRO-3 all ranks must run the same forwards, and the held-out set is small."""
    queues: dict[str, list] = {}
    out = []
    for path in shards:
        for s in read_shard(path, stage, {}):
            if s is None:
                continue
            key = shape_key(s, stage)
            queues.setdefault(key, []).append(s)
            if len(queues[key]) >= batch_size(key, tokens_per_batch, max_batch):
                out.append(collate(queues.pop(key), stage))
                if len(out) >= count:
                    return out
    return (out + [collate(q, stage) for q in queues.values()])[:count]
