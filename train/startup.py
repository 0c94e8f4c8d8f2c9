"""A run's start: its folder, the audio statistics it normalises with, the model as this rank holds it, the
checkpoint it continues from, and its data streams."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import yaml

from model import init as weight_init
from model.audio_norm import AudioNorm
from model.unitalking import UniTalking
from train import audio_stats, checkpoint, distributed, model_setup
from train.activation_checkpoint import apply_activation_checkpointing
from train.config import Config, to_dict
from train.data import StreamSpec, list_shards, validation_batches
from train.streams import DataPosition, stream_ids, train_loader


def prepare_run_dir(cfg: Config, rank: int) -> str:
    """The run folder with the recipe as it ran; returns its checkpoint folder."""
    ckpt_dir = os.path.join(cfg.train.run_dir, "checkpoints")
    if rank == 0:
        os.makedirs(ckpt_dir, exist_ok=True)
        with open(os.path.join(cfg.train.run_dir, "config.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
    return ckpt_dir


def build_model(cfg: Config, device: torch.device):
    """The model as this rank holds it: built (partitioned under ZeRO-3) and initialised, pretrained weights
    in, the trainable set chosen, activation checkpointing applied; returns it with its parameter counts."""
    dtype = distributed.compute_dtype(cfg, device)
    if cfg.parallel.zero_stage == 3:  # each rank builds its partition; rank 0 draws the initial values
        with distributed.construction(cfg, device), weight_init.no_default_init():
            model = UniTalking(model_setup.model_config(cfg))
        distributed.init_partitioned(model, cfg.train.seed, dtype)
    else:  # on the meta device, then made on the GPU in bf16 (never a float32 copy on the host)
        model = model_setup.build(cfg, device, dtype)
    for prefix, state in model_setup.pretrained_states(cfg):  # a tensor at a time; under ZeRO-3 rank 0 reads
        distributed.load_weights(model, state, prefix)
    trainable, frozen = model_setup.set_trainable(model, cfg.optim.trainable)
    if cfg.model.activation_checkpointing:
        apply_activation_checkpointing(model)
    if cfg.model.compile:
        for i, block in enumerate(model.blocks):  # the blocks own no parameters: names stay as they are
            model.blocks[i] = torch.compile(block)
    return model, trainable, frozen


def audio_norm(cfg: Config, rank: int, world: int, device: torch.device) -> AudioNorm:
    """The run's audio statistics, kept in run_dir/audio_stats.json: stage 1's when the audio side starts
    from a stage-1 export (a `data.audio_stats` that disagrees stops the run), else `data.audio_stats`, else
    the run's own copy (a resumed run), else an estimate every rank helps read. A run that finds its own copy
    differing from the statistics it is given stops too: one model, one normalisation."""
    own = os.path.join(cfg.train.run_dir, "audio_stats.json")
    stats, origin = None, ""
    if cfg.model.audio_init:
        stats, origin = model_setup.stage1_audio_stats(cfg.model.audio_init)
        origin = f"the statistics stage 1 trained on ({origin})"
    if cfg.data.audio_stats:
        given = audio_stats.load(cfg.data.audio_stats)
        if stats is not None and not audio_stats.agree(stats, given):
            raise ValueError(f"data.audio_stats {cfg.data.audio_stats} (mean {given['mean'][:3]}...) disagrees with "
                             f"{origin} (mean {stats['mean'][:3]}...): leave data.audio_stats unset to inherit them")
        stats, origin = stats or given, origin or f"data.audio_stats {cfg.data.audio_stats}"
    if os.path.isfile(own):
        kept = audio_stats.load(own)
        if stats is not None and not audio_stats.agree(stats, kept):
            raise ValueError(f"{own}, the statistics this run started with, differs from {origin}")
        stats = stats or kept
    if stats is None:
        stats = estimate_audio_stats(cfg, rank, world, device)
    if rank == 0 and not os.path.isfile(own):
        audio_stats.save(stats, own)
    distributed.barrier()
    return AudioNorm(stats["mean"], stats["std"])


def estimate_audio_stats(cfg: Config, rank: int, world: int, device: torch.device) -> dict:
    """Statistics over `data.audio_stats_shards` shards drawn from the seed, each rank reading its share."""
    shards = list_shards(cfg.data.dirs, 1)
    chosen = audio_stats.sample_shards(shards, cfg.data.audio_stats_shards, cfg.train.seed)
    sums = distributed.all_sum(audio_stats.partial_sums(chosen[rank::world]), device)
    return audio_stats.from_sums(sums, {"shards": cfg.data.dirs, "shards_read": len(chosen),
                                        "shards_total": len(shards), "seed": cfg.train.seed})


@dataclass
class Resume:
    """The checkpoint a run continues from (tag None: a fresh run)."""
    tag: str | None = None
    ds_tag: str | None = None  # DeepSpeed's files to load: the tag, or its universal conversion
    step: int = 0
    data: dict | None = None  # this rank's data position; None: the streams (re)start
    saved_world: int = 0
    streams_restarted: bool = False  # the checkpoint's streams could not continue (other ranks or workers)

    @property
    def universal(self) -> bool:
        return self.tag is not None and self.ds_tag != self.tag


def plan_resume(cfg: Config, ckpt_dir: str, rank: int, world: int) -> Resume:
    """Which checkpoint to continue from, converted for this world size when another one wrote it (before
    the engine exists: DeepSpeed is told at initialisation to load a universal checkpoint)."""
    t = cfg.train
    tag = checkpoint.latest_tag(ckpt_dir) if t.resume == "auto" else (None if t.resume == "never" else t.resume)
    if not tag:
        return Resume()
    return Resume(tag, checkpoint.prepare_resume(ckpt_dir, tag, rank, world),
                  saved_world=checkpoint.saved_world(ckpt_dir, tag))


def resume(plan: Resume, cfg: Config, ckpt_dir: str, engine, rank: int, world: int, ema, gen: torch.Generator) -> Resume:
    """Load the planned checkpoint into the engine, EMA and generators; returns the plan with its step and
    this rank's data position filled in."""
    if plan.tag is None:
        return plan
    state = checkpoint.load(engine, ckpt_dir, plan.tag, plan.ds_tag, rank, world, ema, gen, cfg.train.seed)
    plan.step, plan.data = state["step"], state["data"]
    return plan


def data_streams(cfg: Config, rank: int, plan: Resume):
    """This rank's data position, its training batches from there, and the held-out batches. Streams that
    cannot continue (another world size or worker count) restart, seeded by the step they restart at."""
    d, stage = cfg.data, cfg.task.stage
    ids = stream_ids(rank, d.workers)
    same = plan.data is not None and plan.data.get("ids") == ids
    plan.streams_restarted = plan.tag is not None and not same
    position = DataPosition(ids, plan.data if same else None, restart=plan.step if plan.streams_restarted else 0)
    where = {"sync_status": tuple(d.sync_status), **({"language": tuple(d.languages)} if d.languages else {})}
    spec = StreamSpec(list_shards(d.dirs, stage, where), stage, cfg.train.seed, d.tokens_per_batch, d.max_batch,
                      where=where)
    batches = iter(train_loader(spec, position, d.workers))
    val = (validation_batches(list_shards(d.val_dirs, stage), stage, d.tokens_per_batch, d.max_batch,
                              cfg.train.val_batches) if d.val_dirs else [])
    return position, batches, val
