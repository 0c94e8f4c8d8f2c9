"""Checkpoints: DeepSpeed's sharded weights, optimizer and scheduler states, plus this trainer's own state
per rank (EMA slices, random generators as safetensors; step and data position as JSON; no pickle), and
the export of the EMA weights to one safetensors file.

Layout: RUN/checkpoints/step00000010/{DeepSpeed files, run_state/rank00000.safetensors, rank00000.json};
RUN/checkpoints/latest names the newest complete one (DeepSpeed writes it after everything else).
"""
from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from train import distributed


def tag_of(step: int) -> str:
    return f"step{step:08d}"


def latest_tag(ckpt_dir: str) -> str | None:
    path = os.path.join(ckpt_dir, "latest")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


def save(engine, ckpt_dir: str, step: int, rank: int, ema, generator: torch.Generator, data_position,
         keep: int) -> str:
    tag = tag_of(step)
    state_dir = os.path.join(ckpt_dir, tag, "run_state")
    os.makedirs(state_dir, exist_ok=True)
    tensors = {"rng.train": generator.get_state(), "rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(state_dir, f"rank{rank:05d}.safetensors"))
    with open(os.path.join(state_dir, f"rank{rank:05d}.json"), "w", encoding="utf-8") as f:
        json.dump({"step": step, "data": data_position.to_json()}, f)
    distributed.barrier()
    distributed.save(engine, ckpt_dir, tag)  # 'latest' is written last: a kill before it keeps the old one
    distributed.barrier()
    if rank == 0:
        prune(ckpt_dir, keep)
    return tag


def prune(ckpt_dir: str, keep: int) -> None:
    tags = sorted(t for t in os.listdir(ckpt_dir) if t.startswith("step") and os.path.isdir(os.path.join(ckpt_dir, t)))
    current = latest_tag(ckpt_dir)
    for tag in tags[:-keep] if keep > 0 else []:
        if tag != current:
            shutil.rmtree(os.path.join(ckpt_dir, tag), ignore_errors=True)


def load(engine, ckpt_dir: str, tag: str, rank: int, ema, generator: torch.Generator) -> dict:
    """Restore everything saved under `tag`; returns the JSON part (step, data position)."""
    distributed.load(engine, ckpt_dir, tag)
    state_dir = os.path.join(ckpt_dir, tag, "run_state")
    tensors = load_file(os.path.join(state_dir, f"rank{rank:05d}.safetensors"))
    generator.set_state(tensors["rng.train"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    with open(os.path.join(state_dir, f"rank{rank:05d}.json"), encoding="utf-8") as f:
        return json.load(f)


def export_ema(model, ema, path: str, rank: int, metadata: dict[str, str]) -> str | None:
    """Whole model with EMA weights for the trainable parameters (current weights for frozen ones) in one
    safetensors file; every rank takes part in the gathers, rank 0 writes."""
    state = distributed.full_weights(model, None if ema is None else set(dict(model.named_parameters())) - set(ema.params))
    if ema is not None:
        state.update(ema.full_state())
    if rank != 0:
        return None
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".partial"
    save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=metadata)
    os.replace(tmp, path)
    return path
