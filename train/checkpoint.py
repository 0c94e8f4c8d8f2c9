"""Checkpoints: DeepSpeed's sharded weights, optimizer and scheduler states, plus this trainer's own state
per rank (EMA fragments and random generators as safetensors; step, world size, data position and where
each EMA fragment starts as JSON; no pickle) and the strings its exports carry.

Layout: RUN/checkpoints/step00000010/{DeepSpeed files, run_state/rank00000.{safetensors,json},
export_metadata.json}; RUN/checkpoints/latest names the newest complete one (DeepSpeed writes it after
everything else). A checkpoint written by N ranks resumes on M: DeepSpeed's files are converted once to its
universal format (step00000010_universal/, kept beside) and loaded as such; the EMA is reassembled from the
fragments by overlap; the data streams restart (see `train/data.py`).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import time

import torch
from safetensors.torch import load_file, save_file

from train import distributed
from train.export import METADATA_FILE

TAG = re.compile(r"^step\d{8}$")


def tag_of(step: int) -> str:
    return f"step{step:08d}"


def latest_tag(ckpt_dir: str) -> str | None:
    path = os.path.join(ckpt_dir, "latest")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read().strip() or None


def saved_world(ckpt_dir: str, tag: str) -> int:
    """How many ranks wrote the checkpoint."""
    return len(glob.glob(os.path.join(ckpt_dir, tag, "run_state", "rank*.json")))


def save(engine, ckpt_dir: str, step: int, rank: int, world: int, ema, generator: torch.Generator, data_position,
         keep: int, metadata: dict[str, str]) -> str:
    tag = tag_of(step)
    state_dir = os.path.join(ckpt_dir, tag, "run_state")
    os.makedirs(state_dir, exist_ok=True)
    tensors = {"rng.train": generator.get_state(), "rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    state = {"step": step, "world": world, "data": data_position.to_json()}
    if ema is not None:
        ema_tensors, state["ema"] = ema.state()
        tensors.update(ema_tensors)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(state_dir, f"rank{rank:05d}.safetensors"))
    with open(os.path.join(state_dir, f"rank{rank:05d}.json"), "w", encoding="utf-8") as f:
        json.dump(state, f)
    if rank == 0:
        with open(os.path.join(ckpt_dir, tag, METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(dict(metadata, step=str(step)), f)
    distributed.barrier()
    distributed.save(engine, ckpt_dir, tag)  # 'latest' is written last: a kill before it keeps the old one
    distributed.barrier()
    if rank == 0:
        prune(ckpt_dir, keep)
    return tag


def prune(ckpt_dir: str, keep: int) -> None:
    tags = sorted(t for t in os.listdir(ckpt_dir) if TAG.match(t) and os.path.isdir(os.path.join(ckpt_dir, t)))
    current = latest_tag(ckpt_dir)
    for tag in tags[:-keep] if keep > 0 else []:
        if tag != current:
            for folder in (tag, tag + "_universal"):
                shutil.rmtree(os.path.join(ckpt_dir, folder), ignore_errors=True)


def prepare_resume(ckpt_dir: str, tag: str, rank: int, world: int, poll_s: float = 1.0) -> str:
    """The DeepSpeed tag to load: `tag` itself when as many ranks wrote it as run now, else its universal
    conversion, made once by rank 0 (minutes at 11B: it reads every optimizer file). It is written under a
    temporary name and renamed when complete; the other ranks watch the shared run folder for it rather than
    wait in a collective, which would time out on a long conversion."""
    if saved_world(ckpt_dir, tag) == world:
        return tag
    universal = os.path.join(ckpt_dir, tag + "_universal")
    if rank == 0 and not os.path.isdir(universal):
        shutil.rmtree(universal + ".partial", ignore_errors=True)
        distributed.to_universal(os.path.join(ckpt_dir, tag), universal + ".partial")
        os.replace(universal + ".partial", universal)
    while not os.path.isdir(universal):
        time.sleep(poll_s)
    distributed.barrier()
    return tag + "_universal"


def load(engine, ckpt_dir: str, tag: str, ds_tag: str, rank: int, world: int, ema, generator: torch.Generator,
         seed: int) -> dict:
    """Restore everything saved under `tag` (DeepSpeed's part from `ds_tag`); returns the JSON part of this
    rank's state (step, data position; `data` is None when the world size changed: the streams restart).
    A rank the checkpoint had no file for draws from generators seeded by (seed, rank, step)."""
    distributed.load(engine, ckpt_dir, ds_tag)
    state_dir = os.path.join(ckpt_dir, tag, "run_state")
    writers = saved_world(ckpt_dir, tag)
    own = rank < writers  # this rank wrote a file of its own
    with open(os.path.join(state_dir, f"rank{rank if own else 0:05d}.json"), encoding="utf-8") as f:
        state = json.load(f)
    if own:
        tensors = load_file(os.path.join(state_dir, f"rank{rank:05d}.safetensors"))
        generator.set_state(tensors["rng.train"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
    else:
        generator.manual_seed(seed * 1_000_003 + rank * 7919 + state["step"])
        torch.manual_seed(seed * 1_000_003 + rank * 7919 + state["step"] + 1)
    if ema is not None:
        ema.load(state_dir)
    return {"step": state["step"], "data": state["data"] if writers == world else None}
