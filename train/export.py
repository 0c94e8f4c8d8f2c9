"""Exports of a run's weights as sharded safetensors (the Hugging Face layout), written one tensor at a time.

    python -m train.export RUN/checkpoints/step00010000 OUT [--kinds ema,weights] [--dtype bf16]

Two kinds: `ema` (the EMA of the trainable weights, the current weights of frozen ones: what samples are
drawn from) and `weights` (the float32 master weights of the trainable parameters, frozen ones as they are).
During a run (`train.export_every`, and at the end) the tensors go out in pieces of `CHUNK` elements: every
rank writes its fragments' share of a piece into a buffer of the piece's size, the buffers are summed onto
rank 0 (fragments are disjoint, so the sum is exact), and rank 0 appends the bytes to the open shard: no
rank ever holds more than a piece of the export, however large the model or its largest tensor. The command rebuilds the same files on one CPU process from a checkpoint written by any number of
ranks: EMA from the run's rank files, weights from DeepSpeed's float32 partitions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import torch
import torch.distributed as dist

from train.safetensors_writer import Entry, ShardedWriter

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
KINDS = ("ema", "weights")
METADATA_FILE = "export_metadata.json"  # beside each checkpoint: the strings its exports carry
CHUNK = 1 << 20  # elements per collective: 2 MiB in bf16, and about 11,000 reduces for an 11B model


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident memory of this process (Linux)."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) * 1024
    return values.get("VmRSS", 0), values.get("VmHWM", 0)


def reset_peak_rss() -> None:
    """Start VmHWM again from the current RSS (Linux's clear_refs 5), so a peak can be measured per phase."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def export_run(model, fragments, out_root: str, rank: int, metadata: dict[str, str], dtype: torch.dtype,
               kinds: list[str], max_shard_bytes: int, device: torch.device) -> dict[str, float]:
    """Every rank calls this; rank 0 writes `out_root/<kind>/`. `fragments(p, kind, name)` gives this rank's
    (start, values) of parameter `name` for that kind. Returns the largest rise of resident memory any rank
    saw during the export (RSS peak over RSS before) and the size of the largest tensor exported."""
    from train.ema import shape_of

    params = dict(model.named_parameters())
    entries = [Entry(n, shape_of(params[n]), dtype) for n in sorted(params)]
    reset_peak_rss()
    before = rss_bytes()[0]
    for kind in kinds:
        writer = ShardedWriter(os.path.join(out_root, kind), entries, dict(metadata, kind=kind), max_shard_bytes) \
            if rank == 0 else None
        for e in entries:
            start, values = fragments(params[e.name], kind, e.name)
            values, end = values.reshape(-1), start + values.numel()
            numel = int(torch.Size(e.shape).numel())
            for lo in range(0, max(numel, 1), CHUNK):  # (an empty tensor still gets its entry)
                hi = min(lo + CHUNK, numel)
                buf = torch.zeros(hi - lo, dtype=dtype, device=device)
                a, b = max(lo, start), min(hi, end)
                if a < b:
                    buf[a - lo:b - lo].copy_(values[a - start:b - start])
                if dist.is_initialized() and dist.get_world_size() > 1:
                    dist.reduce(buf, dst=0)
                if writer is not None:
                    writer.write(e.name, buf.cpu())
        if writer is not None:
            writer.close()
    largest = max(e.nbytes for e in entries)
    peak = torch.tensor([float(rss_bytes()[1] - before)], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    return {"export/peak_extra_mib": float(peak) / 2 ** 20, "export/largest_tensor_mib": largest / 2 ** 20}


def export_checkpoint(ckpt: str, out_root: str, kinds: list[str], dtype: torch.dtype, max_shard_bytes: int) -> list[str]:
    """The exports of a checkpoint (`ckpt` = RUN/checkpoints/<tag>), on one process, identical to those the
    run writes at that step. DeepSpeed's float32 partitions are read once, for every kind."""
    from train import distributed
    from train.ema import assembled, saved_ranks

    with open(os.path.join(ckpt, METADATA_FILE), encoding="utf-8") as f:
        metadata = json.load(f)
    state_dir = os.path.join(ckpt, "run_state")
    weights = distributed.checkpoint_weights(*os.path.split(ckpt.rstrip("/")))  # lazy: a tensor when asked
    ema_shapes = {n: tuple(s) for meta, _ in saved_ranks(state_dir) for n, s in meta["shapes"].items()}

    def read(kind: str, name: str) -> torch.Tensor:
        if kind == "ema" and name in ema_shapes:
            return assembled(state_dir, name, ema_shapes[name])
        return weights[name].contiguous().float()

    out = []
    for kind in kinds:
        entries = [Entry(n, tuple(weights[n].shape), dtype) for n in sorted(weights)]
        writer = ShardedWriter(os.path.join(out_root, kind), entries, dict(metadata, kind=kind), max_shard_bytes)
        for e in entries:
            writer.write(e.name, read(kind, e.name).reshape(-1).to(dtype))
        out.append(writer.close())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/step...) or a run folder (its latest)")
    p.add_argument("out", help="folder to write <kind>/ into")
    p.add_argument("--kinds", default="ema,weights", help="comma-separated: ema, weights")
    p.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    p.add_argument("--shard-gb", type=float, default=5.0, help="largest shard file")
    a = p.parse_args(argv)
    ckpt = a.checkpoint
    latest = os.path.join(ckpt, "checkpoints", "latest")
    if os.path.isfile(latest):
        with open(latest, encoding="utf-8") as f:
            ckpt = os.path.join(ckpt, "checkpoints", f.read().strip())
    kinds = [k for k in a.kinds.split(",") if k]
    if not set(kinds) <= set(KINDS):
        sys.exit(f"--kinds: choose from {', '.join(KINDS)}")
    for path in export_checkpoint(ckpt, a.out, kinds, DTYPES[a.dtype], int(a.shard_gb * 2 ** 30)):
        print(path)


if __name__ == "__main__":
    main()
