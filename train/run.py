"""Train UniTalking from latent shards (the DeepSpeed entry point).

    deepspeed train/run.py --config train/configs/stage2_paper.yaml [--section.key value ...]
    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 train/run.py --config train/configs/stage1_debug.yaml ...

A run lives in `train.run_dir`: config.yaml, audio_stats.json, checkpoints/, tensorboard/, metrics.jsonl,
samples/ and export/ema/ (sharded safetensors). Starting the same command again resumes from the latest
checkpoint, on the same or another number of ranks.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # `deepspeed train/run.py`

import torch  # noqa: E402

from model.audio_norm import AudioNorm  # noqa: E402
from model.flops import training_flops  # noqa: E402
from train import distributed, startup, tasks  # noqa: E402
from train.config import Config, load_config  # noqa: E402
from train.ema import ShardedEMA  # noqa: E402
from train.export import rss_bytes  # noqa: E402
from train.metrics import Metrics, peak_flops  # noqa: E402
from train.preview import Preview  # noqa: E402
from train.run_outputs import Outputs  # noqa: E402
from train.streams import DataPosition  # noqa: E402


def lr_lambda(cfg: Config):
    o, total = cfg.optim, cfg.train.steps

    def factor(step: int) -> float:  # DeepSpeed steps the scheduler once per optimizer step
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - o.warmup_steps) / max(1, total - o.warmup_steps))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def step_flops(model_cfg, fwd: tasks.Forward) -> int:
    b = fwd.audio.shape[0]
    video = (48, 0, 2, 2) if fwd.video is None else tuple(fwd.video.shape[1:])
    ref = 0 if fwd.cond.ref_voice is None else fwd.cond.ref_voice.shape[2]
    return b * training_flops(model_cfg, video, fwd.audio.shape[2], ref, fwd.video_to_audio)


def validate(engine, batches: list[dict], cfg: Config, norm: AudioNorm, device) -> dict[str, float]:
    """Loss at fixed noise levels with fixed noise on held-out batches (the same numbers every time)."""
    sums: dict[str, list[float]] = {}
    engine.eval()
    with torch.no_grad():
        for i, batch in enumerate(batches):
            for s in cfg.train.val_timesteps:
                g = torch.Generator().manual_seed(cfg.train.seed * 7919 + i * 131 + int(s * 1000))
                fwd = tasks.build(batch, cfg.task, norm, g, device, fixed_s=s)
                pv, pa = engine(*fwd.model_inputs())
                total, parts = tasks.losses(fwd, pv, pa, cfg.task)
                for name, value in {"total": total, **parts, f"s{s:g}": total}.items():
                    sums.setdefault(f"val/{name}", []).append(float(value))
    engine.train()
    return {k: sum(v) / len(v) for k, v in sums.items()}


@dataclass
class StepResult:
    logged: dict[str, float]
    flops: int = 0
    samples: int = 0
    tokens: int = 0


def train_step(step: int, engine, batches, position: DataPosition, preview: Preview, cfg: Config, norm: AudioNorm,
               gen: torch.Generator, device: torch.device) -> StepResult:
    """One optimizer step over `parallel.micro_batches` micro-batches, each with its own task."""
    out = StepResult({"loss/total": 0.0})
    for micro in range(cfg.parallel.micro_batches):
        batch = next(batches)
        position.consumed(batch)
        preview.batch = preview.batch or batch  # without held-out shards, samples take the first batch
        task = tasks.pick_task(cfg.task, tasks.task_generator(cfg.train.seed, step, micro))
        fwd = tasks.build(batch, cfg.task, norm, gen, device, task)
        pv, pa = engine(*fwd.model_inputs())
        loss, parts = tasks.losses(fwd, pv, pa, cfg.task)
        distributed.backward_and_step(engine, loss)
        out.flops += step_flops(engine.module.config, fwd)
        out.samples += fwd.audio.shape[0]
        out.tokens += fwd.tokens
        out.logged["loss/total"] += loss.item() / cfg.parallel.micro_batches
        for name, value in parts.items():
            out.logged[f"loss/{fwd.task}/{name}"] = float(value)
    return out


def step_metrics(result: StepResult, elapsed: float, engine, scheduler, position: DataPosition, world: int,
                 device: torch.device, peak: float | None) -> dict[str, float]:
    """What a logged step reports: the loss averaged over ranks, learning rate, gradient norm, throughput."""
    logged = dict(result.logged, **{"loss/total": distributed.all_mean(result.logged["loss/total"], device)})
    logged.update({"lr": scheduler.get_last_lr()[0], "grad_norm": distributed.grad_norm(engine),
                   "throughput/samples_per_s": result.samples * world / elapsed,
                   "throughput/tokens_per_s": result.tokens * world / elapsed,
                   "data/skipped": float(sum(position.skipped_reasons().values()))})
    if peak:
        logged["throughput/mfu"] = result.flops / elapsed / peak
        logged["memory/peak_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return logged


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="recipe YAML (train/configs/*.yaml)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    args, overrides = p.parse_known_args(argv)
    cfg = load_config(args.config, overrides)
    t = cfg.train
    rank, world, device = distributed.init()
    ckpt_dir = startup.prepare_run_dir(cfg, rank)
    norm = startup.audio_norm(cfg, rank, world, device)
    plan = startup.plan_resume(cfg, ckpt_dir, rank, world)
    model, trainable, frozen = startup.build_model(cfg, device)
    engine, _, scheduler = distributed.wrap(model, cfg, device, lr_lambda(cfg), load_universal=plan.universal)
    master = lambda p: distributed.master_fragment(p, rank, world)
    ema = ShardedEMA(model, cfg.optim.ema_decay, master) if cfg.optim.ema_decay > 0 else None
    gen = torch.Generator().manual_seed(t.seed * 1000 + rank)  # timesteps, noise, tasks, dropout
    plan = startup.resume(plan, cfg, ckpt_dir, engine, rank, world, ema, gen)
    start = plan.step
    position, batches, val = startup.data_streams(cfg, rank, plan)
    outputs = Outputs(cfg, model, engine, ema, rank, world, device)
    metrics = Metrics(t.run_dir, rank, t.steps, start)
    preview = Preview(cfg, norm, val[0] if val else None, device, rank, metrics)
    if rank == 0:
        metrics.bar.write(f"world {world} on {device}, {trainable / 1e6:.2f}M trainable / {frozen / 1e6:.2f}M frozen "
                          f"parameters, ZeRO-{cfg.parallel.zero_stage}, {'resumed at step ' + str(start) if plan.tag else 'fresh'}")
        if plan.streams_restarted:
            metrics.bar.write(f"checkpoint {plan.tag} was written by {plan.saved_world} ranks with other data streams: "
                              f"{'its universal conversion loaded, ' if plan.universal else ''}data streams restarted "
                              f"at step {start}")
    metrics.log(start, {"memory/startup_peak_rss_mib": distributed.all_max(rss_bytes()[1] / 2 ** 20, device)})
    if plan.tag:
        metrics.log(start, outputs.fingerprint("resume/"))
    if start == 0 and val:
        metrics.log(0, validate(engine, val, cfg, norm, device))
    peak, reported_skips, exported = peak_flops(), 0.0, None
    for step in range(start + 1, t.steps + 1):
        began = time.perf_counter()
        result = train_step(step, engine, batches, position, preview, cfg, norm, gen, device)
        if ema is not None:
            ema.update()
        if step % t.log_every == 0 or step == t.steps:
            logged = step_metrics(result, time.perf_counter() - began, engine, scheduler, position, world, device, peak)
            metrics.log(step, logged)
            if rank == 0 and logged["data/skipped"] > reported_skips:  # corrupt input: counted, said, never fatal
                reported_skips = logged["data/skipped"]
                metrics.bar.write(f"step {step}: {int(reported_skips)} unreadable samples or shards skipped so far "
                                  f"({position.skipped_reasons()})")
        if val and (step % t.val_every == 0 or step == t.steps):
            metrics.log(step, validate(engine, val, cfg, norm, device))
        if t.sample_every and (step % t.sample_every == 0 or step == t.steps):
            preview.render(engine.module, step)
        if outputs.save_due(step):
            metrics.log(step, outputs.save(step, gen, position))
        if outputs.export_due(step):
            metrics.log(step, outputs.export(step))
            exported = step
    if exported != t.steps:  # a run resumed at its last step still leaves the export of that step
        metrics.log(t.steps, outputs.export(t.steps))
    if rank == 0:
        metrics.bar.write(f"done at step {t.steps}; exports: {os.path.join(t.run_dir, 'export')}")
    metrics.close()
    distributed.barrier()


if __name__ == "__main__":
    main()
