"""Sharded safetensors written one tensor at a time, in the Hugging Face layout: `model-0000k-of-0000n.safetensors`
files and `model.safetensors.index.json` (`weight_map`, and `metadata` with the run's strings).

A safetensors file is an 8-byte little-endian header length, a JSON header giving each tensor's dtype, shape
and byte range, then the bytes. Shapes and dtypes are known before any value is, so the header is written
first and each tensor's bytes are appended as they arrive: no shard is ever held whole in memory.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from dataclasses import dataclass

import torch

from model.checkpoints import EXPORT_INDEX

DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}


@dataclass(frozen=True)
class Entry:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n * torch.empty((), dtype=self.dtype).element_size()


def plan(entries: list[Entry], max_shard_bytes: int) -> list[list[Entry]]:
    """Entries in order, cut into shards of at most `max_shard_bytes` (a larger tensor gets a shard alone)."""
    shards, current, size = [], [], 0
    for e in entries:
        if current and size + e.nbytes > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(e)
        size += e.nbytes
    return shards + ([current] if current else [])


class ShardedWriter:
    """Writes the planned shards into `out_dir` (through a temporary folder renamed when complete, so a
    reader never sees half an export). Tensors must be given in plan order."""

    def __init__(self, out_dir: str, entries: list[Entry], metadata: dict[str, str], max_shard_bytes: int):
        self.out_dir, self.tmp = out_dir, out_dir.rstrip("/") + ".partial"
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        self.metadata = dict(metadata)
        self.shards = plan(entries, max_shard_bytes)
        n = len(self.shards)
        self.files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
        self.order = [e for shard in self.shards for e in shard]
        self.position, self.handle, self.shard = -1, None, -1
        self.written = 0  # bytes of the current tensor written so far

    def _open_next(self) -> None:
        if self.handle:
            self.handle.close()
        self.shard += 1
        header, offset = {"__metadata__": self.metadata}, 0
        for e in self.shards[self.shard]:
            header[e.name] = {"dtype": DTYPES[e.dtype], "shape": list(e.shape), "data_offsets": [offset, offset + e.nbytes]}
            offset += e.nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)
        self.handle = open(os.path.join(self.tmp, self.files[self.shard]), "wb")
        self.handle.write(struct.pack("<Q", len(text)) + text)
        self.left_in_shard = len(self.shards[self.shard])

    def write(self, name: str, flat: torch.Tensor) -> None:
        """Values of a tensor (flat, CPU, the planned dtype), written straight from their memory: a whole
        tensor, or consecutive pieces of it in calls with the same name."""
        if self.position < 0 or self.written == self.order[self.position].nbytes:
            self.position, self.written = self.position + 1, 0
            if self.position >= len(self.order):
                raise ValueError(f"{name}: every planned tensor is written already")
            if self.handle is None or self.left_in_shard == 0:
                self._open_next()
            self.left_in_shard -= 1
        e, size = self.order[self.position], flat.numel() * flat.element_size()
        if name != e.name or flat.dtype != e.dtype or self.written + size > e.nbytes:
            raise ValueError(f"expected {e.name} ({e.dtype}, {e.nbytes - self.written} bytes to go), got {name} "
                             f"({flat.dtype}, {size} bytes)")
        self.handle.write(memoryview(flat.contiguous().view(torch.uint8).numpy()))
        self.written += size

    def close(self) -> str:
        if self.position != len(self.order) - 1 or self.written != self.order[-1].nbytes:
            raise ValueError(f"export incomplete: stopped in tensor {self.position + 1} of {len(self.order)}")
        if self.handle:
            self.handle.close()
        weight_map = {e.name: self.files[i] for i, shard in enumerate(self.shards) for e in shard}
        total = sum(e.nbytes for e in self.order)
        with open(os.path.join(self.tmp, EXPORT_INDEX), "w", encoding="utf-8") as f:
            json.dump({"metadata": {**self.metadata, "total_size": total}, "weight_map": weight_map}, f, indent=1)
        old = self.out_dir.rstrip("/") + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(self.out_dir):
            os.replace(self.out_dir, old)
        os.replace(self.tmp, self.out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return self.out_dir
