"""Equal work on every rank: with two resolution buckets, every rank's micro-batch c has the same shape,
through the real DataLoader with two workers per rank, and a resumed rank continues in the same order.
The shards are written here as the pipeline lays them out (real tar files of .npy members and json)."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np

from train.data import StreamSpec, list_shards
from train.streams import DataPosition, bucket_for, stream_ids, train_loader

BUCKETS = {"64x64x9": (48, 3, 4, 4), "96x64x9": (48, 3, 4, 6)}  # two resolutions, 9 frames


def write_bucket(folder, name: str, shape: tuple[int, ...], shards: int, per_shard: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    (folder / name).mkdir(parents=True)
    for s in range(shards):
        with tarfile.open(folder / name / f"{s:06d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{name.replace('x', '_')}_{s}_{i}"
                members = {"json": json.dumps({"fps": 24.0, "transcript": key}).encode()}
                for member, array in (("video_mean", rng.standard_normal(shape)), ("audio_mean", rng.standard_normal((20, 12))),
                                      ("text", rng.standard_normal((5, 32)))):
                    buf = io.BytesIO()
                    np.save(buf, array.astype(np.float32))
                    members[f"{member}.npy"] = buf.getvalue()
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


def shapes(batches, position: DataPosition, n: int) -> list[tuple[int, ...]]:
    out = []
    for _ in range(n):
        batch = next(batches)
        position.consumed(batch)
        out.append(tuple(batch["video"].shape[1:]))
    return out


def test_two_ranks_draw_equal_shapes_in_every_micro_batch(tmp_path):
    write_bucket(tmp_path, "64x64x9", BUCKETS["64x64x9"], shards=3, per_shard=4, seed=1)
    write_bucket(tmp_path, "96x64x9", BUCKETS["96x64x9"], shards=2, per_shard=4, seed=2)
    spec = StreamSpec(list_shards([str(tmp_path)], 2), stage=2, seed=7, tokens_per_batch=200, max_batch=2)
    runs = {}
    for rank in (0, 1):
        position = DataPosition(stream_ids(rank, 2))
        runs[rank] = shapes(iter(train_loader(spec, position, workers=2)), position, 24)
    assert runs[0] == runs[1]
    assert set(runs[0]) == set(BUCKETS.values())  # both buckets drawn
    assert runs[0] == [BUCKETS[bucket_for(spec, c)] for c in range(24)]
    # the two ranks read different samples of those shapes
    position0, position1 = DataPosition(stream_ids(0, 2)), DataPosition(stream_ids(1, 2))
    keys0 = [b["keys"] for _, b in zip(range(6), train_loader(spec, position0, workers=2))]
    keys1 = [b["keys"] for _, b in zip(range(6), train_loader(spec, position1, workers=2))]
    assert keys0 != keys1


def test_a_resumed_rank_keeps_the_shared_bucket_order(tmp_path):
    write_bucket(tmp_path, "64x64x9", BUCKETS["64x64x9"], shards=2, per_shard=3, seed=3)
    write_bucket(tmp_path, "96x64x9", BUCKETS["96x64x9"], shards=2, per_shard=3, seed=4)
    spec = StreamSpec(list_shards([str(tmp_path)], 2), stage=2, seed=1, tokens_per_batch=200, max_batch=2)
    position = DataPosition(stream_ids(0, 2))
    batches = iter(train_loader(spec, position, workers=2))
    shapes(batches, position, 5)  # an odd count: the worker due next is the second one
    saved = json.loads(json.dumps(position.to_json()))
    expected = [next(batches)["keys"] for _ in range(8)]
    resumed = DataPosition(stream_ids(0, 2), saved)
    again = iter(train_loader(spec, resumed, workers=2))
    assert [next(again)["keys"] for _ in range(8)] == expected
    assert shapes(iter(train_loader(spec, DataPosition(stream_ids(0, 2), saved), workers=2)),
                  DataPosition(stream_ids(0, 2), saved), 8) == [BUCKETS[bucket_for(spec, c)] for c in range(5, 13)]
