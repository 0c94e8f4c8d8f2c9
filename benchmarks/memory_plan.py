"""Per-GPU memory of the paper recipes, worked out from the model's own parameter counts (built on the meta
device) and the activation bytes per token measured on the real block (benchmarks/activation_bytes.py), for
8 and 64 GPUs, ZeRO-2 and ZeRO-3, with and without activation checkpointing; plus the export's and the
start-up's peaks. Prints a Markdown table (GiB) and which configurations fit an 80 GB H100.

    python benchmarks/memory_plan.py                     # measures the activations first (about a minute)
    python benchmarks/memory_plan.py --per-token-kib 261.5 --per-block-mib 44.4   # with known measurements

What each column holds, per GPU: weights (bf16; whole under ZeRO-2, a 1/N partition plus the blocks being
gathered under ZeRO-3), grads (float32 accumulation partition plus the reduce bucket, float32 as the
recipes communicate), optim (float32 master weights and Adam's two moments, 1/N), ema (float32, 1/N, of
the master weights), acts (one micro-batch: every block's saved tensors, or with checkpointing every
block's float32 input plus one block recomputed), and 2 GiB for the CUDA context, NCCL and fragmentation.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402
import yaml  # noqa: E402

from model.unitalking import PRESETS, UniTalking  # noqa: E402

GIB = 2 ** 30
OVERHEAD = 2 * GIB
H100 = 80e9  # bytes an H100 SXM holds (80 GB)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass
class Counts:
    total: int
    trainable: int
    block: int  # one joint block, both streams and their reference projections
    persistent: int  # parameters under ZeRO-3's persistence threshold (kept whole on every GPU)


def counts(trainable_patterns: list[str], persistence: int, video_stream: bool = True) -> Counts:
    with torch.device("meta"):
        model = UniTalking(dataclasses.replace(PRESETS["paper"], video_stream=video_stream))
    regexes = [re.compile(p) for p in trainable_patterns]
    named = dict(model.named_parameters())
    train = sum(p.numel() for n, p in named.items() if not regexes or any(r.search(n) for r in regexes))
    block = sum(p.numel() for n, p in named.items() if re.match(r"^(video|audio)\.blocks\.0\.|^(video|audio)_ref\.0\.", n))
    small = sum(p.numel() for p in named.values() if p.numel() < persistence)
    return Counts(sum(p.numel() for p in named.values()), train, block, small)


def recipe(name: str) -> dict:
    with open(os.path.join(REPO, "train", "configs", f"{name}.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def plan_row(c: Counts, gpus: int, zero: int, ckpt: bool, tokens: int, layers: int, per_token: float,
             per_block: float, bucket: int, prefetch: int) -> dict[str, float]:
    """Bytes per GPU by component."""
    frozen = c.total - c.trainable
    if zero == 2:
        weights = 2 * c.total
    else:  # the partition, persistent small tensors, and a block gathered while the next one is fetched
        weights = 2 * c.total / gpus + 2 * c.persistent + 2 * 2 * c.block + 2 * prefetch
    grads = 4 * c.trainable / gpus + 4 * bucket
    optim = 12 * c.trainable / gpus
    ema = 4 * c.trainable / gpus
    if ckpt:
        acts = layers * 4 * 3072 * tokens + per_token * tokens + per_block
    else:
        acts = layers * (per_token * tokens + per_block)
    row = {"weights": weights, "grads": grads, "optim": optim, "ema": ema, "acts": acts, "overhead": OVERHEAD}
    row["total"] = sum(row.values())
    row["frozen_bf16"] = 2 * frozen
    return row


PROCESS = 1.2e9  # a rank's host memory before its model: Python, torch, DeepSpeed, the data loader


def startup_host_before(c: Counts, zero: int, gpus_per_node: int, dit_bytes: float, stage1_bytes: float) -> float:
    """Peak host memory per node while the ranks started before issue 24: each rank drew the float32 model
    on the CPU (ZeRO-2) or its partition (ZeRO-3), and read the whole Wan DiT and stage-1 export."""
    model = 4 * c.total if zero == 2 else 4 * c.total / gpus_per_node
    return gpus_per_node * (PROCESS + model + dit_bytes + stage1_bytes)


def startup_host_now(largest: int, gpus_per_node: int) -> float:
    """Now: the model is made on the GPU in bf16 (ZeRO-2) or partitioned as built (ZeRO-3), its initial values
    drawn a tensor at a time, and the pretrained weights read a tensor at a time (under ZeRO-3 by rank 0)."""
    return gpus_per_node * (PROCESS + 2 * 4 * largest)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-token-kib", type=float, help="activation KiB per token per block (default: measure)")
    p.add_argument("--per-block-mib", type=float, default=0.0, help="activation MiB per block, token-independent")
    a = p.parse_args()
    if a.per_token_kib is None:
        from benchmarks.activation_bytes import measure

        m = measure()
        per_token, per_block = m["per_token"], m["per_block"]
    else:
        per_token, per_block = a.per_token_kib * 1024, a.per_block_mib * 2 ** 20
    layers = PRESETS["paper"].layers
    s1, s2 = recipe("stage1_paper"), recipe("stage2_paper")
    cases = []
    for stage, r, shapes in ((2, s2, {"704x704x121": 15_161, "1280x704x121": 27_437}),
                             (1, s1, {"8 x 10 s audio": 8 * 312})):  # the reference voice is cross-attended, not a token
        par = r["parallel"]
        c = counts(r["optim"].get("trainable", []), par.get("zero3_persistence_threshold", 100_000), stage == 2)
        for clip, tokens in shapes.items():
            for gpus in (8, 64):
                for zero in (2, 3):
                    for ckpt in (True, False):
                        row = plan_row(c, gpus, zero, ckpt, tokens, layers, per_token, per_block,
                                       par.get("reduce_bucket_size", 500_000_000),
                                       par.get("zero3_prefetch_bucket_size", 50_000_000))
                        cases.append((stage, clip, gpus, zero, ckpt, row))
        print(f"stage {stage}: {c.total / 1e9:.2f}B parameters, {c.trainable / 1e9:.2f}B trainable, one joint block "
              f"{c.block / 1e6:.0f}M; {per_token / 1024:.1f} KiB per token per block")
    cols = ("weights", "grads", "optim", "ema", "acts", "overhead", "total")
    print("\n| stage | micro-batch | GPUs | ZeRO | ckpt | " + " | ".join(cols) + " | fits 80 GB |")
    print("|---|---|---|---|---|" + "---|" * (len(cols) + 1))
    for stage, clip, gpus, zero, ckpt, row in cases:
        cells = " | ".join(f"{row[k] / GIB:.1f}" for k in cols)
        print(f"| {stage} | {clip} | {gpus} | {zero} | {'yes' if ckpt else 'no'} | {cells} | "
              f"{'yes' if row['total'] <= H100 else 'no'} |")
    c2 = counts([], 100_000)
    print(f"\nexport: pieces of 2^20 elements (2 MiB in bf16) per collective: 2 MiB extra on each GPU and on "
          f"rank 0's host, against {2 * c2.total / GIB:.1f} GiB for a bf16 gather of everything "
          f"({4 * c2.total / GIB:.1f} GiB float32 on every rank before issue 24)")
    dit, stage1 = 2 * 5.0e9, 4 * (c2.total / 2)
    with torch.device("meta"):
        largest = max(p.numel() for p in UniTalking(PRESETS["paper"]).parameters())
    for zero in (2, 3):
        print(f"start-up host peak per 8-GPU node, ZeRO-{zero}: before issue 24 "
              f"{startup_host_before(c2, zero, 8, dit, stage1) / 1e9:.0f} GB (a float32 model per rank, the Wan DiT "
              f"and a float32 stage-1 export read whole by every rank); now about "
              f"{startup_host_now(largest, 8) / 1e9:.0f} GB (the processes, and a tensor at a time)")


if __name__ == "__main__":
    main()
