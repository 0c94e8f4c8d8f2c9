"""The training batches of one rank: its dataloader workers' streams, mixed over buckets in step with the
other ranks, and where they stand (for checkpoints).

Equal work on every rank: micro-batch c of every rank comes from the same bucket (resolution and length),
chosen from a seed shared by all ranks (`bucket_for`), so no rank waits at the gradient reduce for another's
larger clip. Each (rank, worker) stream keeps one `LatentStream` per bucket and takes its next batch from the
chosen one. Buckets are chosen in proportion to their shards. The DataLoader hands out its workers' batches
in turn, so worker k of W delivers micro-batches c = first + k, first + k + W, ...
"""
from __future__ import annotations

import copy
import itertools
import json

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from train.data import LatentStream, StreamSpec, buckets, seeded


class BucketOrder:
    """The bucket of every rank's micro-batch number c, the same on every rank (shards' share of each
    bucket as weights). The shard list is grouped once, not per micro-batch."""

    def __init__(self, spec: StreamSpec, groups: dict[str, list[str]]):
        """`groups`: the spec's shards by bucket (`buckets`)."""
        self.names = sorted(groups)
        self.weights = [len(groups[n]) for n in self.names]
        self.seed, self.restart = spec.seed, spec.restart

    def __call__(self, count: int) -> str:
        if len(self.names) == 1:
            return self.names[0]
        return seeded(self.seed, "bucket", self.restart, count).choices(self.names, weights=self.weights)[0]


def bucket_for(spec: StreamSpec, count: int) -> str:
    return BucketOrder(spec, buckets(spec.shards))(count)


class MixedStream:
    """One (rank, worker) stream: a LatentStream per bucket, read in the shared bucket order from micro-batch
    `first` on, every `every`-th. State: each bucket stream's state."""

    def __init__(self, spec: StreamSpec, stream_id: int, state: dict | None, first: int, every: int):
        self.first, self.every = first, every
        saved = copy.deepcopy((state or {}).get("buckets", {}))  # the streams advance their states in place
        groups = buckets(spec.shards)
        self.streams = {name: LatentStream(spec, stream_id, saved.get(name), name, shards)
                        for name, shards in groups.items()}
        self.order = BucketOrder(spec, groups)
        self.iterators = {}

    def __iter__(self):
        for count in itertools.count(self.first, self.every):
            name = self.order(count)
            if name not in self.iterators:
                self.iterators[name] = iter(self.streams[name])
            batch = next(self.iterators[name])
            states = {n: s.state for n, s in self.streams.items()}
            batch.update(state={"buckets": json.loads(json.dumps(states))}, count=count, bucket=name)
            yield batch


class ShardDataset(IterableDataset):
    """The streams of one rank; dataloader worker w runs stream `order[w]`, starting at micro-batch first + w."""

    def __init__(self, spec: StreamSpec, order: list[int], states: dict[int, dict], first: int):
        self.spec, self.order, self.states, self.first = spec, order, states, first

    def __iter__(self):
        info = get_worker_info()
        w, n = (info.id, info.num_workers) if info else (0, 1)
        sid = self.order[w]
        return iter(MixedStream(self.spec, sid, self.states.get(sid), self.first + w, n))


class DataPosition:
    """Where each stream of this rank stands after the batches the trainer consumed, and how many it consumed."""

    def __init__(self, stream_ids: list[int], saved: dict | None = None, restart: int = 0):
        """`saved`: a checkpoint's position of these very streams; None starts them (at `restart`)."""
        if saved and saved.get("ids", stream_ids) != stream_ids:
            raise ValueError("the checkpoint's data streams differ from this run's ranks x workers: restart them")
        saved = saved or {}
        self.ids = stream_ids
        self.restart = saved.get("restart", restart)
        self.count = saved.get("count", 0)
        self.states = {int(k): v for k, v in saved.get("states", {}).items()}
        self.next = saved.get("next", stream_ids[0])
        self.skipped: dict[int, dict] = {}

    def order(self) -> list[int]:
        """Streams in the order the dataloader's workers will deliver, starting with the one due next."""
        j = self.ids.index(self.next)
        return self.ids[j:] + self.ids[:j]

    def consumed(self, batch: dict) -> None:
        if batch["count"] != self.count:
            raise RuntimeError(f"batch {batch['count']} arrived where batch {self.count} was due")
        self.count += 1
        self.states[batch["stream"]] = batch["state"]
        self.skipped[batch["stream"]] = batch["skipped"]
        self.next = self.ids[(self.ids.index(batch["stream"]) + 1) % len(self.ids)]

    def skipped_reasons(self) -> dict[str, int]:
        """Distinct unreadable shards and samples met so far by this rank's streams, by reason."""
        total: dict[str, int] = {}
        for counts in self.skipped.values():
            for why, n in counts.items():
                total[why] = total.get(why, 0) + n
        return total

    def to_json(self) -> dict:
        return {"ids": self.ids, "states": {str(k): v for k, v in self.states.items()}, "next": self.next,
                "restart": self.restart, "count": self.count}


def train_loader(spec: StreamSpec, position: DataPosition, workers: int) -> DataLoader:
    spec = StreamSpec(**{**spec.__dict__, "restart": position.restart})
    dataset = ShardDataset(spec, position.order(), position.states, position.count)
    return DataLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None,
                      persistent_workers=False)


def stream_ids(rank: int, workers: int) -> list[int]:
    n = max(1, workers)
    return [rank * n + w for w in range(n)]
